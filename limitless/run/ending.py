"""The end of a run: its status, exit code and reason, recorded with its `run_done` event.

A run ends in two ways: its supervisor ends it once every task is terminal (after
the merge phase, unless `--no-merge`), or `limitless merge` ends it again after
running the merge phase by hand. Both call `end_run`, so both record the same
`run_done` event (`status`, `exit_code`, `reason`) and the same kind of reason.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from limitless.errors import TmuxError, UsageError
from limitless.merge.phase import MergeOutcome, run_merge_phase
from limitless.plan.stored import plan_of
from limitless.run.processes import supervisor_alive
from limitless.states import RunStatus, TaskStatus
from limitless.store import Store, TaskRow
from limitless.tmux.pane_programs import done_channel
from limitless.tmux.session import TmuxSession
from limitless.views.stats import BudgetWatch


@dataclass(frozen=True)
class RunEnd:
    """How a run ended."""

    status: RunStatus
    exit_code: int
    reason: str


def end_run(
    store: Store, run_id: str, merge: MergeOutcome | None, *, tmux: TmuxSession | None = None
) -> RunEnd:
    """Record the end of `run_id`: done only when every task is done and the merge phase
    (`merge`; None when it was skipped by `--no-merge`) finished.

    The run row and its `run_done` event are written in one transaction; `tmux`, when
    given, is told on the run's done channel.
    """
    if merge is not None:
        _alert_budget(store, run_id)
    with store.transaction():
        rows = store.get_tasks(run_id)
        all_done = all(row.status is TaskStatus.DONE for row in rows)
        ok = all_done and (merge is None or merge.ok)
        status = RunStatus.DONE if ok else RunStatus.FAILED
        exit_code = 0 if ok else 1
        reason = final_reason(run_id, rows, merge)
        store.update_run(
            run_id,
            status=status,
            ended_at=time.time(),
            exit_code=exit_code,
            reason=reason,
            no_merge=merge is None,
        )
        store.add_event(run_id, "run_done", status=str(status), exit_code=exit_code, reason=reason)
    if tmux is not None:
        with contextlib.suppress(TmuxError):
            tmux.signal(done_channel(run_id))
    return RunEnd(status=status, exit_code=exit_code, reason=reason)


def _alert_budget(store: Store, run_id: str) -> None:
    """The run's `budget_alert` (once), counting what the merge phase's resolvers spent:
    the supervisor's alert saw only the tasks' costs."""
    run = store.get_run(run_id)
    if not run.resolver_cost_usd:
        return
    rows = {row.id: row for row in store.get_tasks(run_id)}
    BudgetWatch(store, run_id, plan_of(run).budget).tick(rows, run.resolver_cost_usd)


def merge_and_end(
    store: Store, run_id: str, *, out: Callable[[str], object], foreground: bool
) -> RunEnd:
    """`limitless merge`: run (or finish, or redo) the merge phase of a run nobody
    supervises, then end the run again by its result. `foreground`: a resolver agent
    may run in this terminal when the run's tmux session is gone."""
    run = store.get_run(run_id)
    if supervisor_alive(run):
        msg = (
            f"run {run.id} is still supervised (pid {run.supervisor_pid}); its merge phase "
            f"starts when every task has ended — `limitless wait {run.id}`"
        )
        raise UsageError(msg)
    outcome = run_merge_phase(store, run_id, out=out, foreground=foreground)
    return end_run(store, run_id, outcome)


def final_reason(run_id: str, rows: list[TaskRow], merge: MergeOutcome | None) -> str:
    """`3/4 tasks done; not done: x; <why the merge phase stopped>`."""
    done = sum(row.status is TaskStatus.DONE for row in rows)
    failed = [row.id for row in rows if row.status is not TaskStatus.DONE]
    text = f"{done}/{len(rows)} tasks done"
    if failed:
        text += f"; not done: {', '.join(failed)}"
    budget = next((r.reason for r in rows if r.reason.startswith("not started: budget")), "")
    if budget:
        text += f"; {budget.removeprefix('not started: ')}"
    if merge is None:
        text += "; merge skipped (--no-merge): branches left for `limitless merge`"
    elif not merge.ok:
        why = merge.message or f"`limitless events {run_id}` says why"
        text += f"; the merge phase did not finish: {why}"
    return text
