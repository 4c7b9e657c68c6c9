"""The hidden commands the panes of a run start (`tmux/pane_programs.py` names them):
`_exec`, the in-pane wrapper of one task attempt, and `_supervise`, the supervisor.

Runs started before an upgrade keep starting these: their arguments do not change.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from limitless.cli.common import Command
from limitless.tmux.pane_programs import EXEC_COMMAND, SUPERVISE_COMMAND


def add_commands(command: Command) -> None:
    p = command(EXEC_COMMAND, argparse.SUPPRESS, cmd_exec)
    p.add_argument("--run", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--state-dir", required=True)

    p = command(SUPERVISE_COMMAND, argparse.SUPPRESS, cmd_supervise)
    p.add_argument("--run", required=True)
    p.add_argument("--state-dir", required=True)


def cmd_exec(args: argparse.Namespace) -> int:
    from limitless.agents.wrapper import main as exec_main

    return exec_main(args.run, args.task, Path(args.state_dir))


def cmd_supervise(args: argparse.Namespace) -> int:
    from limitless.run.supervisor import main as supervise_main

    os.environ.setdefault("LIMITLESS_RUN", args.run)
    return supervise_main(args.run, Path(args.state_dir))
