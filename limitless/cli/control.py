"""Command line that steers a run: `kill`, `retry`, `done` (requests its supervisor
answers), `wait`, `resume`, `merge`, `cleanup`. Parsing and printing only; the work
happens in `run/requests.py`, `run/recovery.py`, `run/ending.py`, `run/cleanup.py`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from limitless.cli.common import Command, Handler, print_flush
from limitless.states import ControlAction


def add_commands(command: Command) -> None:
    for name, action, help_text in (
        ("kill", ControlAction.KILL, "kill a task (its process tree)"),
        ("retry", ControlAction.RETRY, "run a failed, killed or blocked task again"),
        ("done", ControlAction.DONE, "mark a running or waiting task done"),
    ):
        p = command(name, help_text, _request_handler(action))
        p.add_argument("run")
        p.add_argument("task")

    p = command(
        "wait",
        "wait until a run ends; exit with its code (a task that needs input is named as it asks)",
        cmd_wait,
    )
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds; exit 1 when reached")
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the outcome (the summary, or the task that needs input)",
    )
    p.add_argument(
        "--until-input",
        action="store_true",
        help="return as soon as a task needs input (a question or a permission), naming it "
        "and where to answer; exit 4",
    )

    p = command("resume", "go on with a run after a crash of its supervisor or tmux", cmd_resume)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--headless", action="store_true")
    p.add_argument("--detach", action="store_true")

    p = command("merge", "run (or finish) the merge phase of a run", cmd_merge)
    p.add_argument("run", nargs="?", default=None)

    p = command("cleanup", "remove a run's worktrees, session and merged branches", cmd_cleanup)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--all", action="store_true", help="every finished run")
    p.add_argument("--keep-branches", action="store_true")
    p.add_argument("--force", action="store_true", help="also delete unmerged branches")


def _request_handler(action: ControlAction) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        from limitless.run.context import open_context
        from limitless.run.requests import ask

        with open_context() as ctx:
            run = ctx.run(args.run)
            answer = ask(ctx.store, run, action, args.task, resumed=print)
        print(f"{action} {args.task}: {answer.result or 'queued for the supervisor'}")
        return 1 if answer.refused else 0

    return handler


def cmd_wait(args: argparse.Namespace) -> int:
    from limitless.cli.run import follow
    from limitless.run.context import open_context

    with open_context() as ctx:
        run = ctx.run(args.run)
    return follow(
        run.id,
        Path(run.repo_root),
        timeout=args.timeout,
        quiet=args.quiet,
        until_input=args.until_input,
    )


def cmd_resume(args: argparse.Namespace) -> int:
    from limitless.cli.run import follow
    from limitless.run.context import open_context
    from limitless.run.recovery import resume_run

    with open_context() as ctx:
        run = ctx.run(args.run)
        message, session = resume_run(ctx.store, run.id)
    print(message)
    if session is None:
        return 0
    if args.headless:
        return follow(run.id, Path(run.repo_root), timeout=None)
    if args.detach or not sys.stdin.isatty():
        return 0
    return session.attach()


def cmd_merge(args: argparse.Namespace) -> int:
    """`limitless merge [RUN]`: run, resume or redo the merge phase of an ended run.

    The phase prints its own summary (how to continue after a conflict, where
    the result is); the run ends again, as its supervisor ends it.
    """
    from limitless.run.context import open_context
    from limitless.run.ending import merge_and_end

    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    with open_context() as ctx:
        run = ctx.run(args.run)
        end = merge_and_end(ctx.store, run.id, out=print_flush, foreground=terminal)
    return end.exit_code


def cmd_cleanup(args: argparse.Namespace) -> int:
    from limitless.run.cleanup import cleanup_run
    from limitless.run.context import open_context

    with open_context() as ctx:
        if args.all:
            runs = [run for run in ctx.store.list_runs() if run.status.finished]
        else:
            runs = [ctx.run(args.run)]
        for run in runs:
            for line in cleanup_run(
                ctx.store, run.id, keep_branches=args.keep_branches, force=args.force
            ):
                print(line)
    return 0
