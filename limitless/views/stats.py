"""Statistics over every run of a repository, and the run's budget alert.

`collect(store, by=..., since=...)` groups the tasks of all runs by agent,
model, run or day and sums their time and cost; `BudgetWatch` is ticked by the
supervisor (and by `end_run` after a merge phase whose resolvers spent) and records
one `budget_alert` event when the run's reported cost reaches `budget.alert_at` of
`budget.max_cost_usd`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from limitless import fmt
from limitless.errors import UsageError
from limitless.fmt import duration
from limitless.plan.model import Budget
from limitless.plan.stored import plan_of
from limitless.states import TaskStatus
from limitless.store import Run, Store, TaskRow
from limitless.views.summary import task_seconds

log = logging.getLogger(__name__)

GROUPINGS = ("agent", "model", "run", "day")


@dataclass(frozen=True)
class StatsRow:
    """One group's figures: `finished` counts tasks that ended (done, failed, killed)."""

    key: str
    runs: int
    tasks: int
    done: int
    finished: int
    attempts: int
    time_s: float
    cost_usd: float | None

    @property
    def success_rate(self) -> float | None:
        return self.done / self.finished if self.finished else None


@dataclass(frozen=True)
class StatsTable:
    by: str
    since: float | None
    rows: tuple[StatsRow, ...]
    total: StatsRow


def parse_since(text: str) -> float:
    """`YYYY-MM-DD` or an ISO-8601 time (UTC unless it says otherwise) as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"--since {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        raise UsageError(msg) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass
class _Acc:
    runs: set[str]
    tasks: int = 0
    done: int = 0
    finished: int = 0
    attempts: int = 0
    time_s: float = 0.0
    cost: float = 0.0
    costed: bool = False

    def add(self, run_id: str, row: TaskRow, seconds: float) -> None:
        self.runs.add(run_id)
        self.tasks += 1
        self.done += row.status is TaskStatus.DONE
        self.finished += row.status in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.KILLED)
        self.attempts += row.attempt
        self.time_s += seconds
        if row.cost_usd is not None:
            self.cost += row.cost_usd
            self.costed = True

    def row(self, key: str) -> StatsRow:
        return StatsRow(
            key=key,
            runs=len(self.runs),
            tasks=self.tasks,
            done=self.done,
            finished=self.finished,
            attempts=self.attempts,
            time_s=self.time_s,
            cost_usd=round(self.cost, 6) if self.costed else None,
        )


def collect(store: Store, *, by: str = "agent", since: float | None = None) -> StatsTable:
    """Figures over every run of the store created at or after `since`, grouped `by`."""
    if by not in GROUPINGS:
        msg = f"--by {by!r} is not a grouping; use one of {', '.join(GROUPINGS)}"
        raise UsageError(msg)
    groups: dict[str, _Acc] = {}
    total = _Acc(runs=set())
    for run in store.list_runs():
        if since is not None and run.created_at < since:
            continue
        models = _models(run)
        tasks = store.get_tasks(run.id)
        seconds = task_seconds(run, tasks, store.attempts(run.id))
        for row in tasks:
            key = _key(by, run, row, models)
            groups.setdefault(key, _Acc(runs=set())).add(run.id, row, seconds.get(row.id, 0.0))
            total.add(run.id, row, seconds.get(row.id, 0.0))
    rows = tuple(acc.row(key) for key, acc in sorted(groups.items()))
    return StatsTable(by=by, since=since, rows=rows, total=total.row("total"))


def _models(run: Run) -> dict[str, str]:
    try:
        plan = plan_of(run)
    except Exception:  # a run written by another version: its model is unknown, not fatal
        log.debug("plan of run unreadable", extra={"run": run.id})
        return {}
    return {task.id: task.model for task in plan.tasks if task.model}


def _key(by: str, run: Run, row: TaskRow, models: Mapping[str, str]) -> str:
    if by == "agent":
        return row.agent
    if by == "model":
        return models.get(row.id, "(default)")
    if by == "run":
        return run.id
    moment = row.started_at if row.started_at is not None else run.created_at
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def _row_json(row: StatsRow) -> dict[str, object]:
    rate = row.success_rate
    return {
        "key": row.key,
        "runs": row.runs,
        "tasks": row.tasks,
        "done": row.done,
        "finished": row.finished,
        "attempts": row.attempts,
        "success_rate": round(rate, 4) if rate is not None else None,
        "time_s": round(row.time_s, 3),
        "cost_usd": row.cost_usd,
    }


def to_json(table: StatsTable) -> dict[str, object]:
    return {
        "by": table.by,
        "since": table.since,
        "rows": [_row_json(row) for row in table.rows],
        "total": _row_json(table.total),
    }


def render_table(table: StatsTable) -> str:
    """A plain text table, one line per group and a total."""
    if not table.rows:
        return "no runs yet" + (" since then" if table.since is not None else "")
    header = (table.by, "runs", "tasks", "done", "success", "time", "cost")
    lines = [header, *(_cells(row) for row in table.rows), _cells(table.total)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in lines
    ]
    text.insert(-1, "-" * len(text[0]))
    return "\n".join(text)


def _cells(row: StatsRow) -> tuple[str, ...]:
    rate = row.success_rate
    return (
        row.key,
        str(row.runs),
        str(row.tasks),
        str(row.done),
        f"{rate:.0%}" if rate is not None else "-",
        duration(row.time_s),
        fmt.money(row.cost_usd) if row.cost_usd is not None else "-",
    )


# --------------------------------------------------------------------- budget


class BudgetWatch:
    """Records one `budget_alert` event when the run's cost reaches alert_at × max_cost_usd."""

    def __init__(self, store: Store, run_id: str, budget: Budget) -> None:
        self.store = store
        self.run_id = run_id
        self.budget = budget
        self.alerted = budget.max_cost_usd is None or any(
            event.kind == "budget_alert" for event in store.events(run_id)
        )

    def tick(self, rows: Mapping[str, TaskRow], resolvers_usd: float = 0.0) -> str | None:
        """Check the costs in `rows` (and the merge phase's resolvers'); the alert's message
        the first time it fires, else None."""
        limit = self.budget.max_cost_usd
        if self.alerted or limit is None:
            return None
        spent = sum(row.cost_usd or 0.0 for row in rows.values()) + resolvers_usd
        threshold = limit * self.budget.alert_at
        if spent < threshold:
            return None
        self.alerted = True
        message = (
            f"budget alert: ${spent:.2f} spent of ${limit:.2f} "
            f"({spent / limit if limit > 0 else 1.0:.0%}, alert at {self.budget.alert_at:.0%})"
        )
        self.store.add_event(
            self.run_id,
            "budget_alert",
            cost_usd=round(spent, 6),
            max_cost_usd=limit,
            alert_at=self.budget.alert_at,
        )
        return message
