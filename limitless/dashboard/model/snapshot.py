"""What the dashboard shows at one moment: a `Snapshot` of the run and a `TaskView` per task.

Plain values, made by `Monitor.poll` and drawn by the widgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from limitless.states import NEEDS_INPUT, MergeStatus, RunStatus, TaskStatus, Waiting, task_state
from limitless.store import Event
from limitless.views.summary import RunSummary

NoticeKind = Literal["failed", "waiting", "run_ended", "budget"]
Severity = Literal["information", "warning", "error"]


@dataclass(frozen=True)
class TaskView:
    """One task as the dashboard shows it."""

    id: str
    status: TaskStatus
    attempt: int
    agent: str
    progress: float | None
    """0..100: the agent's own figure, else elapsed / estimate (at most 99); None if unknown."""
    progress_estimated: bool
    elapsed: float | None
    last_line: str
    ahead: int
    files_changed: int
    insertions: int
    deletions: int
    dirty: bool
    conflicts: tuple[str, ...]
    """Tasks (or `base`) git predicts this task's branch conflicts with."""
    cpu_percent: float | None
    """Of one core, summed over the pane's process tree; None when it does not run."""
    rss_mb: float | None
    cost: float | None
    reason: str
    pane_id: str | None
    merge_status: MergeStatus
    merge_order: int | None = None
    merge_reason: str = ""
    conflict_files: tuple[str, ...] = ()
    dirty_files: tuple[str, ...] = ()
    branch: str = ""
    worktree: str = ""
    start_sha: str | None = None
    head: str | None = None
    depends_on: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()
    """The last lines of its pane (while it runs) or of its log (after)."""
    diffstat: str = ""
    """`git diff --stat` since its start point; only filled for the focused task."""
    waiting: Waiting = Waiting.OTHER
    """What a waiting task waits for: input (needs input), idle (its turn ended), other."""
    idle_done_at: float | None = None
    """When an idle interactive agent is closed (its task done) unless the user types."""

    @property
    def state(self) -> str:
        """`needs_input` or `idle` for those kinds of waiting, else the task's status."""
        return task_state(self.status, self.waiting)

    @property
    def needs_input(self) -> bool:
        return self.state == NEEDS_INPUT

    @property
    def shown_status(self) -> str:
        """The status a user cares about: the merge status once merging began, else the task's."""
        if self.merge_status in (MergeStatus.UNMERGED,):
            return self.state
        return str(self.merge_status)

    @property
    def active(self) -> bool:
        return self.status.active


@dataclass(frozen=True)
class Notice:
    """Something the user is told about at once: a failure, a question, the end of the run."""

    kind: NoticeKind
    task_id: str | None
    text: str
    severity: Severity


@dataclass(frozen=True)
class PollStats:
    """Where the time of one poll went (milliseconds) and how much git ran."""

    store_ms: float = 0.0
    tmux_ms: float = 0.0
    psutil_ms: float = 0.0
    git_ms: float = 0.0
    total_ms: float = 0.0
    store_read: bool = False
    tmux_calls: int = 0
    git_inspections: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows at one moment."""

    run_id: str
    plan_name: str
    base: str
    base_sha: str
    repo_root: str
    status: RunStatus
    reason: str
    exit_code: int | None
    created_at: float
    ended_at: float | None
    tmux_session: str
    at: float
    summary: RunSummary
    """Wall time, task time, speedup, done, slots, cost: the figures every view shares."""
    slots_used: int
    tasks: tuple[TaskView, ...]
    events: tuple[Event, ...] = ()
    notices: tuple[Notice, ...] = ()
    problems: tuple[str, ...] = ()
    """Sources that could not be read this poll (tmux gone, git failing), in words."""
    base_moved_to: str | None = None
    """Base's new tip when someone committed to base since the run started (stale base)."""
    stats: PollStats = field(default_factory=PollStats)

    def task(self, task_id: str | None) -> TaskView | None:
        return next((task for task in self.tasks if task.id == task_id), None)

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def statuses(self) -> dict[str, str]:
        """Task id → shown status, for drawings."""
        return {task.id: task.shown_status for task in self.tasks}
