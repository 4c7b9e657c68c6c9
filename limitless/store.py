"""The SQLite store: every durable fact about runs, tasks, events and requests.

One database per repository at `<git-common-dir>/limitless/state.db`, shared by
the supervisor, every in-pane wrapper, the dashboard and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from limitless.states import ControlAction, MergeStatus, RunStatus, TaskStatus


@dataclass
class Run:
    """One execution of a plan (a row of `runs`)."""

    id: str
    plan_name: str
    plan_path: str | None
    plan_json: str
    repo_root: str
    base: str
    base_sha: str
    worktree_root: str
    status: RunStatus = RunStatus.RUNNING
    created_at: float = 0.0
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    supervisor_pid: int | None = None
    tmux_socket: str | None = None
    tmux_session: str = ""
    max_concurrency: int = 4
    schedule: str = "deps"
    no_merge: bool = False
    merge_strategy: str = "merge"
    layout: str = "default"
    merged_sha: str | None = None
    landed: bool = False


@dataclass
class TaskRow:
    """The live state of one task of a run (a row of `tasks`)."""

    run_id: str
    id: str
    position: int
    agent: str
    branch: str
    worktree: str
    status: TaskStatus = TaskStatus.PENDING
    attempt: int = 0
    exit_code: int | None = None
    reason: str = ""
    start_sha: str | None = None
    head_sha: str | None = None
    pane_id: str | None = None
    pid: int | None = None
    slot: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    not_before: float | None = None
    progress: float | None = None
    cost_usd: float | None = None
    commits: int = 0
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    setup_done: bool = False
    session_id: str | None = None
    last_signal: str | None = None
    last_signal_at: float | None = None
    waiting_reason: str = ""
    merge_status: MergeStatus = MergeStatus.UNMERGED
    merge_order: int | None = None
    merge_reason: str = ""
    conflict_files: list[str] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass(frozen=True)
class Attempt:
    run_id: str
    task_id: str
    attempt: int
    started_at: float
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    ref: str | None = None


@dataclass(frozen=True)
class Event:
    id: int
    run_id: str
    task_id: str | None
    ts: float
    kind: str
    data: dict[str, object]


@dataclass(frozen=True)
class ControlRequest:
    id: int
    run_id: str
    task_id: str | None
    action: ControlAction
    source: str
    created_at: float
    done_at: float | None = None
    result: str | None = None


@dataclass(frozen=True)
class Prediction:
    """A conflict git predicts between task `task_id` and `other` ("" = base)."""

    run_id: str
    task_id: str
    other: str
    files: tuple[str, ...]
    updated_at: float
