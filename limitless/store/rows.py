"""The rows of the store: one dataclass per table, its fields the table's columns."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from limitless.states import ControlAction, MergeStatus, RunStatus, TaskStatus, Waiting

logger = logging.getLogger(__name__)


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
    slot_panes: str = ""  # tmux pane ids of the slots, comma-separated, slot order
    control_pane: str = ""  # the pane of the supervisor
    dashboard_pane: str = ""
    control_dir: str = ""  # short folder of the ssh master sockets of the run's hosts
    resolver_cost_usd: float | None = None  # what the merge phase's resolver agents reported


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
    waiting_kind: Waiting = Waiting.OTHER
    """What a waiting task waits for: input (a question), idle (its turn ended), other."""
    idle_done_at: float | None = None
    """When an idle interactive agent is closed and its task done, unless the user types first."""
    merge_status: MergeStatus = MergeStatus.UNMERGED
    merge_order: int | None = None
    merge_reason: str = ""
    conflict_files: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    host: str | None = None
    """Where the task runs or last ran (a plan host's name; None: not placed yet)."""


@dataclass(frozen=True)
class Attempt:
    """One try at running a task (a row of `attempts`); `ref` keeps its work if any."""

    run_id: str
    task_id: str
    attempt: int
    started_at: float
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    ref: str | None = None
    cost_usd: float | None = None
    """What the agent of this attempt reported spending (the task's `cost_usd` sums them)."""
    host: str | None = None
    """The host the attempt ran on (None: this machine, before hosts existed)."""


@dataclass(frozen=True)
class Event:
    """One entry of a run's append-only log (a row of `events`); `data` is JSON."""

    id: int
    run_id: str
    task_id: str | None
    ts: float
    kind: str
    data: dict[str, object]


@dataclass(frozen=True)
class ControlRequest:
    """A request (kill, retry, mark done, merge) for the supervisor (a row of `controls`)."""

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
