"""What each real agent program is and how to talk to it: the built-in profiles
(`profiles`, argv templates) and one adapter per program (Claude Code, Codex, aider, ...).

A built-in agent profile names its adapter (`AgentProfile.adapter`); the
in-pane wrapper asks it for the permission flags of the task's `approve`
policy, the environment of an unattended start, and — for headless programs
that print JSON events — a reader that turns the events into pane lines and
facts (session, cost, denials, errors). `verdict` turns those facts into a
failure reason when the exit code alone would call the task a success.
`launch` is the one way a profile and a prompt become the argv, variables and
folder an agent starts with (the wrapper's, the resolver's and the planner's).

Imports: only the standard library and `limitless.programs.*`.
"""

from __future__ import annotations

from limitless.programs.aider import AIDER
from limitless.programs.base import (
    APPROVE_CHOICES,
    DEFAULT_APPROVE,
    Approve,
    DialogAnswer,
    EventStream,
    PaneLine,
    Program,
    Question,
    Refusal,
    ScreenState,
    StreamFacts,
)
from limitless.programs.claude import CLAUDE
from limitless.programs.claude_tui import CLAUDE_INTERACTIVE
from limitless.programs.codex import CODEX
from limitless.programs.codex_tui import CODEX_INTERACTIVE
from limitless.programs.gemini import GEMINI
from limitless.programs.opencode import OPENCODE

ADAPTERS: dict[str, Program] = {
    program.name: program
    for program in (CLAUDE, CLAUDE_INTERACTIVE, CODEX, CODEX_INTERACTIVE, AIDER, GEMINI, OPENCODE)
}

__all__ = [
    "ADAPTERS",
    "APPROVE_CHOICES",
    "DEFAULT_APPROVE",
    "Approve",
    "DialogAnswer",
    "EventStream",
    "PaneLine",
    "Program",
    "Question",
    "Refusal",
    "ScreenState",
    "StreamFacts",
    "adapter",
]


def adapter(name: str | None) -> Program | None:
    """The adapter called `name`, or None for a profile without one."""
    return ADAPTERS.get(name) if name else None
