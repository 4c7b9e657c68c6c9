"""Lost wrappers: a task still running or waiting whose pane died or vanished, or that ran
past its timeout, has lost its wrapper; the supervisor fails it (its retries decide the rest).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limitless.plan.model import Plan
from limitless.run.picture import ACTIVE, Picture
from limitless.run.processes import stop_wrapper
from limitless.states import TaskStatus
from limitless.store import Store, TaskRow
from limitless.tmux.panes import PaneState

TIMEOUT_GRACE_S = 30.0
"""How long past its timeout a task's wrapper has to stop it before the supervisor does."""
STATUS_WAIT_S = 3.0
"""How long a dead pane may lack its exit status before its task is judged without it."""


class LostWrappers:
    """Fails the tasks whose wrapper is gone; one per supervisor (it remembers dead panes)."""

    def __init__(self, store: Store, run_id: str, say: Callable[[str], None]) -> None:
        self.store = store
        self.run_id = run_id
        self.say = say
        self.dead_unreported: dict[str, float] = {}

    def check(self, picture: Picture, plan: Plan) -> None:
        """Fail every active task of `picture` whose pane died, vanished or timed out."""
        now = time.time()
        for row in list(picture.rows.values()):
            if row.status not in ACTIVE:
                continue
            pane = picture.panes.get(row.pane_id or "")
            timeout_s = plan.task(row.id).timeout_s
            timed_out = (
                timeout_s is not None
                and row.started_at is not None
                and now - row.started_at > timeout_s + TIMEOUT_GRACE_S
            )
            if pane is not None and not pane.dead and not timed_out:
                continue
            if pane is not None and not timed_out and self._status_pending(row.id, pane, now):
                continue  # its terminal closed a moment before tmux reaped it: look again
            if picture.panes == {} and not timed_out:
                continue  # tmux did not answer this tick; do not judge
            picture.rows[row.id] = self._fail(row.id, pane, timed_out, now)

    def _fail(self, task_id: str, pane: PaneState | None, timed_out: bool, now: float) -> TaskRow:
        fresh = self.store.get_task(self.run_id, task_id)
        if fresh.status not in ACTIVE:
            return fresh
        if timed_out:
            stop_wrapper(fresh)
            reason = "timed out; the wrapper did not stop it, so the supervisor did"
        elif pane is None:
            reason = "its tmux pane vanished"
        else:
            reason = f"its wrapper died ({how_pane_ended(pane)})"
        failed = self.store.transition(
            self.run_id,
            task_id,
            ACTIVE,
            TaskStatus.FAILED,
            event=("task_failed", {"reason": reason}),
            reason=reason,
            ended_at=now,
        )
        if failed is None:
            return self.store.get_task(self.run_id, task_id)
        self.say(f"{task_id} failed: {reason}")
        return failed

    def _status_pending(self, task_id: str, pane: PaneState, now: float) -> bool:
        """A dead pane with no exit status or signal yet, seen for less than
        STATUS_WAIT_S: tmux reports the status once it reaps the process."""
        if pane.dead_status is not None or pane.dead_signal is not None:
            self.dead_unreported.pop(task_id, None)
            return False
        first = self.dead_unreported.setdefault(task_id, now)
        if now - first < STATUS_WAIT_S:
            return True
        del self.dead_unreported[task_id]  # judged now; a later death waits afresh
        return False


def how_pane_ended(pane: PaneState) -> str:
    if pane.dead_signal is not None:
        return f"killed by signal {pane.dead_signal}"
    if pane.dead_status is not None:
        return f"pane exited with status {pane.dead_status}"
    return "its pane closed"
