"""One run's figures, computed in one place: what it took, what its agents used, what
parallelism bought.

Every view of a run takes them from `summarize`: the report (`views.report`), the
`runs` listing (`views.status`), the last lines of a followed run (`views.follow`),
the stats over runs (`views.stats`, per task) and the dashboard's header.

Task time is the sum of every attempt's running time, retries included. Speedup is
task time over wall time: how many agents worked at once, on average. A failed
attempt held a slot and ran an agent as much as the one that succeeded, so
counting only the last attempt would make a run with retries look less parallel
than it was, and its slot utilisation (task time over slots × wall time) could no
longer be read as the share of time the slots were busy.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from limitless.states import TaskStatus, task_state
from limitless.store import Attempt, Run, TaskRow


@dataclass(frozen=True)
class Span:
    """When one attempt of a task ran, in seconds since the run started."""

    attempt: int
    start: float
    end: float
    last: bool
    """Whether it is the task's current (or final) attempt."""
    exit_code: int | None = None

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


def attempt_spans(
    row: TaskRow, attempts: Sequence[Attempt], run_start: float, run_end: float
) -> tuple[Span, ...]:
    """The attempts of task `row` as spans; an attempt still going runs to `run_end` (now,
    for a live run). A task launched whose wrapper never recorded an attempt gets one
    span from its row."""
    spans: list[Span] = []
    for attempt in sorted(attempts, key=lambda a: a.attempt):
        last = attempt.attempt == row.attempt
        ended = attempt.ended_at
        if ended is None:
            ended = row.ended_at if last and row.ended_at is not None else run_end
        spans.append(
            Span(
                attempt=attempt.attempt,
                start=max(0.0, attempt.started_at - run_start),
                end=max(0.0, ended - run_start),
                last=last,
                exit_code=attempt.exit_code,
            )
        )
    if not spans and row.started_at is not None:
        ended = row.ended_at if row.ended_at is not None else run_end
        spans.append(
            Span(max(row.attempt, 1), row.started_at - run_start, ended - run_start, last=True)
        )
    return tuple(spans)


def by_task(attempts: Sequence[Attempt]) -> dict[str, list[Attempt]]:
    """Task id → its attempts."""
    found: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        found.setdefault(attempt.task_id, []).append(attempt)
    return found


def run_end(run: Run, now: float | None = None) -> float:
    """When the run ended, or now while it goes on."""
    if run.ended_at is not None:
        return run.ended_at
    return now if now is not None else time.time()


def task_seconds(
    run: Run, rows: Sequence[TaskRow], attempts: Sequence[Attempt], *, now: float | None = None
) -> dict[str, float]:
    """Task id → its running time over all its attempts (see the module's docstring)."""
    end = run_end(run, now)
    attempts_of = by_task(attempts)
    return {
        row.id: sum(
            span.length
            for span in attempt_spans(row, attempts_of.get(row.id, []), run.created_at, end)
        )
        for row in rows
    }


def state_counts(rows: Sequence[TaskRow]) -> dict[str, int]:
    """Tasks per state as a user is shown it (`needs_input`, `idle`, or the status)."""
    return dict(Counter(task_state(row.status, row.waiting_kind) for row in rows))


def slot_count(run: Run, tasks: int) -> int:
    """The run's slots: its slot panes, else as many as may run at once (at least one)."""
    panes = [pane for pane in run.slot_panes.split(",") if pane]
    return len(panes) if panes else max(1, min(run.max_concurrency, tasks))


@dataclass(frozen=True)
class RunSummary:
    """The figures a run is judged by, as the store holds it at one moment."""

    run_id: str
    status: str
    exit_code: int | None
    reason: str
    wall_s: float
    task_s: float
    """Every attempt's running time, summed (see the module's docstring)."""
    done: int
    total: int
    slots: int
    cost_usd: float | None
    counts: Mapping[str, int] = field(default_factory=dict)
    """Tasks per state as a user is shown it (`needs_input`, `idle`, or the status)."""

    @property
    def speedup(self) -> float:
        """Sum of task time over wall time: how many agents worked at once, on average."""
        return self.task_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def utilisation(self) -> float:
        """Busy slot-seconds over (slots × wall time), 0..1."""
        capacity = self.slots * self.wall_s
        return self.task_s / capacity if capacity > 0 else 0.0


def summarize(
    run: Run, rows: Sequence[TaskRow], attempts: Sequence[Attempt], *, now: float | None = None
) -> RunSummary:
    """The summary of `run` from rows already read (a pure function of its arguments and
    `now`, which is the clock's time unless given)."""
    end = run_end(run, now)
    costs = [row.cost_usd for row in rows if row.cost_usd is not None]
    if run.resolver_cost_usd is not None:
        costs.append(run.resolver_cost_usd)
    return RunSummary(
        run_id=run.id,
        status=str(run.status),
        exit_code=run.exit_code,
        reason=run.reason,
        wall_s=max(0.0, end - run.created_at),
        task_s=sum(task_seconds(run, rows, attempts, now=end).values()),
        done=sum(row.status is TaskStatus.DONE for row in rows),
        total=len(rows),
        slots=slot_count(run, len(rows)),
        cost_usd=round(sum(costs), 6) if costs else None,
        counts=state_counts(rows),
    )
