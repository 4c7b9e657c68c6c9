"""Stats over all runs of a repository, and the budget alert event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limitless.errors import UsageError
from limitless.plan import loader as plan_mod
from limitless.plan.model import Budget
from limitless.states import RunStatus, TaskStatus
from limitless.store import Attempt, Run, Store, TaskRow
from limitless.views.stats import BudgetWatch, collect, parse_since, render_table, to_json
from tests.engine_helpers import cli, latest_run, open_store, write_plan

DAY1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY2 = DAY1 + 86_400

PLAN = """\
name: st
agent: shell
tasks:
  - {id: a, prompt: "true", model: opus}
  - {id: b, prompt: "true", agent: demo}
  - {id: c, prompt: "true"}
"""


def add_run(
    store: Store, run_id: str, created: float, outcome: dict[str, tuple[str, float, float | None]]
) -> None:
    """A finished run whose tasks a, b, c ended with (status, seconds, cost)."""
    plan = plan_mod.loads(PLAN, source="st.yaml", base_dir=Path("."))
    store.create_run(
        Run(
            id=run_id,
            plan_name="st",
            plan_path=None,
            plan_json=plan.to_json(),
            repo_root="/r",
            base="main",
            base_sha="0" * 40,
            worktree_root="/w",
            status=RunStatus.DONE,
            created_at=created,
            ended_at=created + 100,
        )
    )
    store.add_tasks(
        run_id,
        [
            TaskRow(run_id, task_id, i, "demo" if task_id == "b" else "shell", f"b/{task_id}", "/w")
            for i, task_id in enumerate(("a", "b", "c"))
        ],
    )
    for task_id, (status, seconds, cost) in outcome.items():
        store.add_attempt(Attempt(run_id, task_id, 1, created))
        store.end_attempt(
            run_id, task_id, 1, ended_at=created + seconds, exit_code=0, reason="", ref=None
        )
        store.update_task(
            run_id,
            task_id,
            status=TaskStatus(status),
            attempt=1,
            started_at=created,
            ended_at=created + seconds,
            cost_usd=cost,
        )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "state")
    add_run(store, "st-1", DAY1, {"a": ("done", 10, 0.5), "b": ("failed", 5, 0.25)})
    add_run(
        store,
        "st-2",
        DAY2,
        {"a": ("done", 20, 1.0), "b": ("done", 5, None), "c": ("done", 1, None)},
    )
    return store


def test_stats_by_agent(store: Store) -> None:
    """Per agent: runs, tasks, success rate over finished tasks, time and cost."""
    table = collect(store, by="agent")
    rows = {row.key: row for row in table.rows}
    assert set(rows) == {"demo", "shell"}
    assert (rows["shell"].tasks, rows["shell"].done, rows["shell"].finished) == (4, 3, 3)
    assert rows["shell"].time_s == 31.0
    assert rows["shell"].cost_usd == 1.5
    assert rows["demo"].success_rate == 0.5
    assert rows["demo"].cost_usd == 0.25
    assert table.total.tasks == 6 and table.total.runs == 2
    assert table.total.cost_usd == 1.75


def test_stats_by_model_run_and_day(store: Store) -> None:
    """Groupings by model (plan's task model), by run and by UTC day."""
    by_model = {row.key: row.tasks for row in collect(store, by="model").rows}
    assert by_model == {"(default)": 4, "opus": 2}
    by_run = {row.key: row.done for row in collect(store, by="run").rows}
    assert by_run == {"st-1": 1, "st-2": 3}
    by_day = {row.key: row.time_s for row in collect(store, by="day").rows}
    assert by_day == {"2026-01-01": 15.0, "2026-01-02": 26.0}


def test_stats_since_and_rendering(store: Store) -> None:
    """--since drops older runs; the table and JSON show the same numbers."""
    table = collect(store, by="run", since=parse_since("2026-01-02"))
    assert [row.key for row in table.rows] == ["st-2"]
    text = render_table(table)
    assert text.splitlines()[0].split() == [
        "run",
        "runs",
        "tasks",
        "done",
        "success",
        "time",
        "cost",
    ]
    assert text.splitlines()[1].split() == ["st-2", "1", "3", "3", "100%", "26s", "$1.00"]
    document = to_json(table)
    assert document["total"] == {
        "key": "total",
        "runs": 1,
        "tasks": 3,
        "done": 3,
        "finished": 3,
        "attempts": 3,
        "success_rate": 1.0,
        "time_s": 26.0,
        "cost_usd": 1.0,
    }


def test_bad_since_is_a_usage_error() -> None:
    """A --since that is no date says what to write."""
    with pytest.raises(UsageError, match=r"--since 'last week' is not a date; use YYYY-MM-DD"):
        parse_since("last week")


def test_budget_watch_alerts_once_even_after_a_restart(store: Store) -> None:
    """Below the threshold nothing; at it one event; a new watcher (resume) stays quiet."""
    rows = {row.id: row for row in store.get_tasks("st-2")}  # $1.00 in all
    budget = Budget(max_cost_usd=2.0, alert_at=0.5)
    assert BudgetWatch(store, "st-2", Budget(max_cost_usd=4.0, alert_at=0.5)).tick(rows) is None
    watch = BudgetWatch(store, "st-2", budget)
    message = watch.tick(rows)
    assert message == "budget alert: $1.00 spent of $2.00 (50%, alert at 50%)"
    assert watch.tick(rows) is None
    assert BudgetWatch(store, "st-2", budget).tick(rows) is None
    alerts = [e for e in store.events("st-2") if e.kind == "budget_alert"]
    assert len(alerts) == 1
    assert alerts[0].data == {"cost_usd": 1.0, "max_cost_usd": 2.0, "alert_at": 0.5}


BUDGET_PLAN = """\
name: spend
agent: shell
max_concurrency: 1
merge: {land: manual}
budget: {max_cost_usd: 10, alert_at: 0.5}
tasks:
  - {id: pricey, prompt: "echo 'total cost $6.00'"}
"""


@pytest.mark.usefixtures("tmux_socket")
def test_real_run_records_budget_alert_and_stats_command(repo: Path) -> None:
    """A task reporting $6 of a $10 budget (alert at 50%) gives one budget_alert event."""
    write_plan(repo, BUDGET_PLAN)
    result = cli(repo, "run", "--headless")
    run = latest_run(repo)
    with open_store(repo) as store:
        alerts = [e for e in store.events(run.id) if e.kind == "budget_alert"]
    assert len(alerts) == 1, result.stdout + result.stderr
    assert alerts[0].data["cost_usd"] == 6.0
    assert "budget alert: $6.0 spent of $10.0" in result.stdout
    stats = cli(repo, "stats", "--by", "run", "--json")
    assert stats.returncode == 0, stats.stderr
    document = json.loads(stats.stdout)
    assert document["rows"][0]["key"] == run.id
    assert document["rows"][0]["cost_usd"] == 6.0
    assert cli(repo, "stats", "--since", "someday").returncode == 2
