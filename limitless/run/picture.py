"""What the supervisor sees at one tick, and the slots it fills.

`Picture`: the task rows from the store and the panes from tmux, read once per
tick; `Slot`: one slot pane and the task it runs. The status groups the
supervisor's parts share live here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from limitless.states import TaskStatus
from limitless.store import TaskRow
from limitless.tmux.panes import PaneState

ACTIVE = (TaskStatus.RUNNING, TaskStatus.WAITING)
NOT_DONE_TERMINAL = (TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.KILLED)
MARKED_DONE = "marked done by request"
"""The reason of a task marked done by request, until its wrapper records its end."""


@dataclass
class Slot:
    index: int
    pane_id: str
    task_id: str | None = None
    freed_at: float = 0.0


@dataclass
class Picture:
    """What the supervisor knows at one tick: rows from the store, panes from tmux."""

    rows: dict[str, TaskRow]
    panes: dict[str, PaneState] = field(default_factory=dict)

    def status(self, task_id: str) -> TaskStatus:
        return self.rows[task_id].status
