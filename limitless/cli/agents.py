"""Command line of agent-facing commands: signal, explain, hooks.

Parsing and printing only; the work happens in `agents/state.py` and `agents/claude_hooks.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from pathlib import Path

from limitless.cli.common import Command
from limitless.errors import LimitlessError, UsageError

HOOK_STDIN_LIMIT = 1 << 20


def add_commands(command: Command) -> None:
    """Register this module's commands with the main parser."""
    p = command(
        "signal",
        "tell limitless the state of the agent in this pane: done, waiting (needs input), "
        "idle (its turn ended) or working",
        cmd_signal,
    )
    p.add_argument("kind", choices=("done", "waiting", "idle", "working"))
    p.add_argument("note", nargs="?", default="", help="why, in a few words (shown as reason)")
    p.add_argument("--run", default=None, help="default $LIMITLESS_RUN (set in task panes)")
    p.add_argument("--task", default=None, help="default $LIMITLESS_TASK (set in task panes)")
    p.add_argument(
        "--hook",
        default=None,
        metavar="NAME",
        help="called by an agent's hook: read its JSON on stdin, print nothing, always exit 0",
    )

    p = command("explain", "show a task's state and every signal behind it", cmd_explain)
    p.add_argument("run")
    p.add_argument("task")
    p.add_argument("--json", action="store_true")

    p = command("hooks", "install an agent's hooks that report its state to limitless", cmd_hooks)
    p.add_argument("action", choices=("install",))
    p.add_argument("agent", choices=("claude",))
    p.add_argument(
        "--worktree", default=None, help="default $LIMITLESS_WORKTREE, else this checkout"
    )
    p.add_argument(
        "--on-stop",
        choices=("idle", "done"),
        default="idle",
        help="what Claude finishing its turn means (default idle: done after `idle_done` "
        "unless you type; done: done at once)",
    )


# ---------------------------------------------------------------- signal


def _hook_payload(hook: str | None) -> dict[str, object]:
    """The JSON an agent's hook passes on stdin ({} if none is ready)."""
    if hook is None or sys.stdin is None or sys.stdin.isatty():
        return {}
    try:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if not ready:
            return {}
        data = json.loads(sys.stdin.read(HOOK_STDIN_LIMIT) or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _signal_note(args: argparse.Namespace, payload: dict[str, object]) -> str:
    if args.note:
        return str(args.note)
    message = payload.get("message")
    if isinstance(message, str) and message:
        return message
    if args.hook:
        return f"{args.hook} hook"
    return ""


def cmd_signal(args: argparse.Namespace) -> int:
    from limitless.agents.state import record_signal
    from limitless.store import Store

    payload = _hook_payload(args.hook)
    try:
        run_id = args.run or os.environ.get("LIMITLESS_RUN")
        task_id = args.task or os.environ.get("LIMITLESS_TASK")
        if not run_id or not task_id:
            msg = (
                "no task to signal: run `limitless signal` inside a task's pane "
                "(LIMITLESS_RUN and LIMITLESS_TASK are set there) or pass --run and --task"
            )
            raise UsageError(msg)
        session = payload.get("session_id")
        state_dir = os.environ.get("LIMITLESS_STATE_DIR")
        if state_dir:
            store = Store.open(Path(state_dir))
        else:
            from limitless.run.context import open_context

            store = open_context().store
        with store:
            message = record_signal(
                store,
                run_id,
                task_id,
                args.kind,
                note=_signal_note(args, payload),
                source=args.hook or "cli",
                session_id=session if isinstance(session, str) else None,
            )
    except LimitlessError as exc:
        if args.hook is None:
            raise
        # A hook must not fail its agent (Claude Code even reads exit 2 as "do not stop").
        print(f"limitless: {exc}", file=sys.stderr)
        return 0
    if args.hook is None:
        print(message)
    return 0


# ---------------------------------------------------------------- explain


def cmd_explain(args: argparse.Namespace) -> int:
    from limitless.agents.state import explain
    from limitless.run.context import open_context

    with open_context() as ctx:
        run = ctx.run(args.run)
        explanation = explain(ctx.store, run.id, args.task)
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print("\n".join(explanation.lines()))
    return 0


# ---------------------------------------------------------------- hooks


def cmd_hooks(args: argparse.Namespace) -> int:
    from limitless.agents import claude_hooks

    if args.worktree:
        worktree = Path(args.worktree)
    elif os.environ.get("LIMITLESS_WORKTREE"):
        worktree = Path(os.environ["LIMITLESS_WORKTREE"])
    else:
        from limitless.git.repo import find_repo

        worktree = find_repo(Path.cwd()).root
    installed = claude_hooks.install(worktree, on_stop=args.on_stop)
    how = {
        "excluded": "the repository's info/exclude keeps it out of commits",
        "skip-worktree": "the repository tracks it: this worktree's index skips it",
    }[installed.kept_out]
    print(
        f"wrote {installed.path}: {', '.join(installed.events)} hooks report the agent's "
        f"state to limitless; {how}"
    )
    return 0
