"""Command line that looks at runs: `list`, `status`, `attach`, `logs`, `dashboard`.
Parsing and printing only; what is shown comes from `views/` and the dashboard."""

from __future__ import annotations

import argparse
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
        with open(path, "rb") as handle:
            _copy(handle)
            if not args.follow:
                return 0
            while True:
                if not _copy(handle):
                    if ctx.store.get_task(run.id, args.task).status.terminal:
                        return 0
                    time.sleep(0.2)


def _wait_for_log(path: Path) -> int:
    while not path.exists():
        time.sleep(0.2)
    return 0


def _copy(handle: BinaryIO) -> bool:
    data = handle.read()
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return bool(data)


def cmd_dashboard(args: argparse.Namespace) -> int:
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
