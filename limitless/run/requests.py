"""Requests to a running run (`limitless kill|done|retry`, the dashboard's keys): asked
through the store (`ask`), applied by the supervisor (`apply_request`), answered with one
line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from limitless.errors import UsageError
from limitless.plan.graph import Dag
from limitless.run.picture import ACTIVE, MARKED_DONE, NOT_DONE_TERMINAL
from limitless.run.processes import stop_wrapper, supervisor_alive
from limitless.states import ControlAction, TaskStatus
from limitless.store import ControlRequest, Run, Store, TaskRow

ANSWER_WAIT_S = 10.0
ANSWER_POLL_S = 0.1


def apply_request(
    store: Store, run_id: str, dag: Dag, request: ControlRequest, rows: dict[str, TaskRow]
) -> str:
    """Apply `request` to the run's tasks (`rows`, as seen this tick); the answer."""
    if request.action is ControlAction.MERGE:
        return "the merge phase runs once every task is terminal"
    task_id = request.task_id or ""
    if task_id not in rows:
        return f"unknown task {task_id!r}"
    row = rows[task_id]
    if request.action is ControlAction.KILL:
        return kill(store, run_id, row)
    if request.action is ControlAction.DONE:
        return mark_done(store, run_id, row)
    return retry(store, run_id, dag, row)


def kill(store: Store, run_id: str, row: TaskRow) -> str:
    """Kill a task that has not ended; a running one's wrapper is stopped."""
    if row.status.terminal:
        return f"not killed: already {row.status}"
    killed = store.transition(
        run_id,
        row.id,
        (row.status,),
        TaskStatus.KILLED,
        event=("task_killed", {}),
        reason="killed by request",
        ended_at=time.time() if row.status in ACTIVE else None,
    )
    if killed is None:
        return "not killed: its status changed meanwhile"
    if row.status in ACTIVE:
        stop_wrapper(row)  # its slot is freed once the wrapper has saved the work and exited
    return "killed"


def mark_done(store: Store, run_id: str, row: TaskRow) -> str:
    """Mark a running or waiting task done; its wrapper saves the work and records the end."""
    if row.status not in ACTIVE:
        return f"not marked done: it is {row.status}, not running or waiting"
    if store.transition(run_id, row.id, ACTIVE, TaskStatus.DONE, reason=MARKED_DONE) is None:
        return "not marked done: its status changed meanwhile"
    stop_wrapper(row)
    return "marked done"


def retry(store: Store, run_id: str, dag: Dag, row: TaskRow) -> str:
    """Queue a failed, blocked or killed task again, and unblock what waits for it."""
    if row.status not in NOT_DONE_TERMINAL:
        return f"not retried: it is {row.status}"
    store.transition(
        run_id,
        row.id,
        (row.status,),
        TaskStatus.PENDING,
        reason="retry requested",
        not_before=None,
    )
    for dependant in dag.descendants(row.id):
        store.transition(run_id, dependant, (TaskStatus.BLOCKED,), TaskStatus.PENDING, reason="")
    return "queued for retry"


@dataclass(frozen=True)
class Answer:
    """The supervisor's answer to a request ("" when none came in time)."""

    result: str

    @property
    def refused(self) -> bool:
        return self.result.startswith("not ")


def ask(
    store: Store,
    run: Run,
    action: ControlAction,
    task_id: str,
    *,
    resumed: Callable[[str], object],
    timeout: float = ANSWER_WAIT_S,
) -> Answer:
    """Ask the supervisor of `run` to apply `action` to `task_id`, and wait for its answer.

    A run nobody supervises takes only a retry: its supervisor is started again for it
    (`resumed` is told what resume said). Anything else is a UsageError.
    """
    from limitless.run.recovery import resume_run

    row = store.get_task(run.id, task_id)
    if not supervisor_alive(run) and action is not ControlAction.RETRY:
        msg = f"run {run.id} is not supervised ({run.status}); {task_id} is {row.status}"
        raise UsageError(f"{msg}, so there is nothing to {action}")
    request_id = store.request(run.id, action, task_id, source="cli")
    if not supervisor_alive(run):
        message, _ = resume_run(store, run.id)
        resumed(message)
    return Answer(await_answer(store, run.id, request_id, timeout))


def await_answer(store: Store, run_id: str, request_id: int, timeout: float) -> str:
    """The supervisor's answer to a request, if it comes within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in store.requests(run_id):
            if request.id == request_id and request.result is not None:
                return request.result
        time.sleep(ANSWER_POLL_S)
    return ""
