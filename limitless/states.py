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
