"""The statuses of runs, tasks and merges, shared by every module."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    KILLED = "killed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK_STATUSES

    @property
    def active(self) -> bool:
        return self in (TaskStatus.RUNNING, TaskStatus.WAITING)


TERMINAL_TASK_STATUSES = frozenset(
    {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.KILLED}
)


class Waiting(StrEnum):
    """What a `waiting` task waits for (the `waiting_kind` of its row).

    A kind rather than more task statuses: a supervisor started before the
    upgrade reads the status column and knows `waiting`, so a run it still
    drives keeps working when a newer wrapper or hook writes the kind.
    """

    OTHER = ""  # rate limited, silent for a while, or recorded before kinds existed
    INPUT = "input"  # a question or a permission on screen: someone must answer
    IDLE = "idle"  # its turn ended and it asks nothing: done after `idle_done`


NEEDS_INPUT = "needs_input"
IDLE = "idle"


def task_state(status: TaskStatus, waiting: Waiting | str = Waiting.OTHER) -> str:
    """What a user is shown for a task: `needs_input` or `idle` for those kinds of
    waiting, else its status (`running`, `waiting`, `done`, ...)."""
    if status is TaskStatus.WAITING:
        if waiting == Waiting.INPUT:
            return NEEDS_INPUT
        if waiting == Waiting.IDLE:
            return IDLE
    return str(status)


class MergeStatus(StrEnum):
    UNMERGED = "unmerged"
    MERGING = "merging"
    MERGED = "merged"
    CONFLICT = "conflict"
    GATE_FAILED = "gate_failed"
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    RUNNING = "running"
    MERGING = "merging"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.DONE, RunStatus.FAILED, RunStatus.ABORTED)


class ControlAction(StrEnum):
    KILL = "kill"
    RETRY = "retry"
    DONE = "done"
    MERGE = "merge"


RESOLVER_TIMED_OUT = 124
"""The exit code a conflict resolver's runner reports when it stopped the resolver at
`merge.resolver_timeout` (as timeout(1) does)."""
