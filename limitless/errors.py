"""The exception tree of limitless: every error the tool raises on purpose.

Each class carries the process exit code the command line uses for it
(DESIGN §4): 1 a run ended badly, 2 bad usage or a bad plan, 3 the environment.
"""

from __future__ import annotations

from dataclasses import dataclass


class LimitlessError(Exception):
    """Root of every error limitless raises on purpose."""

    exit_code: int = 1


class UsageError(LimitlessError):
    """Bad flags, an unknown run or task, a request that makes no sense now."""

    exit_code = 2


class EnvironmentProblem(LimitlessError):
    """No git repository, tmux or git missing or too old, store not writable."""

    exit_code = 3


class StoreError(LimitlessError):
    """The state database could not be read or written."""

    exit_code = 3


class GitError(LimitlessError):
    """A git operation failed; the message names the command and git's words."""


class TmuxError(LimitlessError):
    """A tmux operation failed; the message names the command and tmux's words."""


@dataclass(frozen=True)
class Problem:
    """One located mistake in a YAML file: lines and columns count from 1."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PlanError(UsageError):
    """A plan (or layout) file has one or more problems; all are listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class GraphError(LimitlessError):
    """The task graph has cycles; each is named as `a -> b -> a`."""

    exit_code = 2

    def __init__(self, cycles: list[list[str]]) -> None:
        self.cycles = cycles
        named = "; ".join(" -> ".join(cycle) for cycle in cycles)
        super().__init__(f"dependency cycle: {named}")
