"""Command line that looks at runs: `list`, `status`, `attach`, `logs`, `dashboard`.
Parsing and printing only; what is shown comes from `views/` and the dashboard."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

from limitless.cli.common import Command, print_json
from limitless.errors import UsageError


def add_commands(command: Command) -> None:
    p = command("list", "list the runs of this repository", cmd_list)
    p.add_argument("--json", action="store_true")

    p = command("status", "show a run's tasks", cmd_status)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="redraw every --interval seconds")
    p.add_argument("--interval", type=float, default=1.0)

    p = command("attach", "attach to a run's tmux session", cmd_attach)
    p.add_argument("run", nargs="?", default=None)

    p = command("logs", "print a task's log", cmd_logs)
    p.add_argument("run")
    p.add_argument("task")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing as it grows")

    p = command("dashboard", "open the dashboard of a run (in any terminal)", cmd_dashboard)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")


def cmd_list(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.views import status as views

    with open_context() as ctx:
        runs = ctx.store.list_runs()
        summaries = [views.run_summary(ctx.store, run) for run in runs]
    if args.json:
        print_json({"runs": summaries})
        return 0
    if not summaries:
        print("no runs yet; start one with `limitless run [PLAN]` or try `limitless demo`")
        return 0
    views.print_runs_table(summaries)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.views import status as views

    with open_context() as ctx:
        run = ctx.run(args.run)
        if args.watch and not args.json:
            return views.watch_status(ctx.store, run.id, args.interval)
        document = views.status_document(ctx.store, run.id)
    if args.json:
        print_json(document)
    else:
        views.print_status(document)
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.tmux.session import TmuxSession

    with open_context() as ctx:
        run = ctx.run(args.run)
    session = TmuxSession(run.tmux_socket, run.id)
    if not session.exists():
        msg = (
            f"run {run.id} has no tmux session ({run.tmux_session}); it is {run.status}. "
            f"`limitless resume {run.id}` brings it back if it did not finish"
        )
        raise UsageError(msg)
    return session.attach()


def cmd_logs(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context

    with open_context() as ctx:
        run = ctx.run(args.run)
        ctx.store.get_task(run.id, args.task)
        path = ctx.store.log_path(run.id, args.task)
        if not path.exists():
            print(f"no log yet for {args.task} (it has not started)", file=sys.stderr)
            return 0 if not args.follow else _wait_for_log(path)
        out = _Output(plain=not sys.stdout.isatty())
        with open(path, "rb") as handle:
            out.copy(handle)
            if not args.follow:
                out.close()
                return 0
            while True:
                if not out.copy(handle):
                    if ctx.store.get_task(run.id, args.task).status.terminal:
                        out.close()
                        return 0
                    time.sleep(0.2)


def _wait_for_log(path: Path) -> int:
    while not path.exists():
        time.sleep(0.2)
    return 0


class _Output:
    """A log to stdout: as written to a terminal; piped or redirected, as plain lines —
    no terminal escapes, and of a line redrawn with carriage returns its last drawing."""

    def __init__(self, *, plain: bool) -> None:
        from limitless.dashboard.model.tails import strip_ansi  # not on the CLI's start

        self.strip_ansi = strip_ansi
        self.plain = plain
        self.pending = b""

    def copy(self, handle: BinaryIO) -> bool:
        data = handle.read()
        if not data:
            return False
        if not self.plain:
            sys.stdout.buffer.write(data)
        else:
            lines = (self.pending + data).split(b"\n")
            self.pending = lines.pop()  # an escape or a character may be cut at the end
            for line in lines:
                self._write_plain(line)
        sys.stdout.flush()
        return True

    def close(self) -> None:
        if self.pending:
            self._write_plain(self.pending)
            self.pending = b""
            sys.stdout.flush()

    def _write_plain(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        sys.stdout.write(self.strip_ansi(text.rsplit("\r", 1)[-1]) + "\n")


def cmd_dashboard(args: argparse.Namespace) -> int:
    # Textual waits 100 ms after an Esc for the rest of a key's sequence; Esc then a
    # key typed quickly would be read as Alt+key (read at textual's import, below)
    os.environ.setdefault("ESCDELAY", "25")
    from limitless.dashboard.app import run_dashboard
    from limitless.run.context import open_context, socket_name

    with open_context() as ctx:
        run = ctx.run(args.run)
        state_dir = ctx.store.state_dir
    if args.interval <= 0:
        raise UsageError(f"--interval {args.interval} must be above 0 seconds")
    return run_dashboard(
        state_dir, run.id, socket_name=run.tmux_socket or socket_name(None), interval=args.interval
    )
