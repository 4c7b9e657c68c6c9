"""Cost and budget: once the reported cost reaches the budget, no new task starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limitless.states import TaskStatus
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan

pytestmark = pytest.mark.usefixtures("tmux_socket")

DEMO_BUDGET = """\
name: spend
agent: demo
max_concurrency: 1
budget: {max_cost_usd: 0.05}
agents:
  demo: {env: {LIMITLESS_DEMO_SPEED: "0"}}
tasks:
  - {id: first, prompt: build the first part, priority: 10}
  - {id: second, prompt: build the second part}
  - {id: third, prompt: build the third part}
"""


def test_demo_agent_cost_stops_new_tasks_at_the_budget(repo: Path) -> None:
    """The demo agent reports more than the budget: the other tasks never start, and say why."""
    write_plan(repo, DEMO_BUDGET)
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 1, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["first"].status is TaskStatus.DONE
    assert (rows["first"].cost_usd or 0) >= 0.05
    for task_id in ("second", "third"):
        assert rows[task_id].status is TaskStatus.BLOCKED
        assert rows[task_id].attempt == 0
        assert rows[task_id].reason.startswith("not started: budget spent: $")
        assert "of $0.05 (budget.max_cost_usd)" in rows[task_id].reason
    status = json.loads(cli(repo, "status", run.id, "--json").stdout)
    reasons = {task["id"]: task["reason"] for task in status["tasks"]}
    assert reasons["second"] == rows["second"].reason
    final = latest_run(repo).reason
    assert "not done: second, third" in final
    assert "budget spent: $" in final, "the run's own reason says why it stopped"


def test_stream_json_total_cost_counts_and_running_tasks_finish(repo: Path) -> None:
    """`total_cost_usd` of a claude-style JSON result counts; a task already running finishes.

    The two tasks wait for each other's marker files, so `beside` is surely running when
    `costly` spends the budget (with a fast start `costly` could otherwise end first).
    """
    write_plan(
        repo,
        """\
name: json-cost
agent: shell
max_concurrency: 2
budget: {max_cost_usd: 1.0}
tasks:
  - id: costly
    priority: 10
    prompt: |
      for i in $(seq 200); do test -f "$LIMITLESS_STATE_DIR/beside-on" && break; sleep .05; done
      echo '{"type":"result","subtype":"success","total_cost_usd":1.25,"result":"ok"}'
      touch "$LIMITLESS_STATE_DIR/costly-ended"
  - id: beside
    prompt: |
      touch "$LIMITLESS_STATE_DIR/beside-on"
      for i in $(seq 200); do test -f "$LIMITLESS_STATE_DIR/costly-ended" && break; sleep .05; done
      echo finished beside
  - id: later
    depends_on: [costly]
    prompt: echo never
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["costly"].cost_usd == 1.25
    assert rows["beside"].status is TaskStatus.DONE, result.stdout  # was running: finished
    assert rows["later"].status is TaskStatus.BLOCKED
    assert "budget spent: $1.25 of $1.00" in rows["later"].reason
    with open_store(repo) as store:
        kinds = [event.kind for event in store.events(run.id) if event.task_id == "later"]
    assert "task_launched" not in kinds


def test_a_retried_task_costs_all_its_attempts(repo: Path) -> None:
    """A failed attempt's cost still counts after the retry: 0.6 + 0.6 spends a budget of 1."""
    write_plan(
        repo,
        """\
name: retry-cost
agent: shell
max_concurrency: 1
budget: {max_cost_usd: 1.0}
tasks:
  - id: flaky
    priority: 10
    retries: 1
    prompt: |
      echo '{"type":"result","total_cost_usd":0.6,"result":"ok"}'
      test "$LIMITLESS_ATTEMPT" = 2
  - id: later
    depends_on: [flaky]
    prompt: echo never
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = tasks_of(repo, latest_run(repo).id)
    assert (rows["flaky"].status, rows["flaky"].attempt) == (TaskStatus.DONE, 2)
    assert rows["flaky"].cost_usd == pytest.approx(1.2)
    assert rows["later"].status is TaskStatus.BLOCKED
    assert "budget spent: $1.20 of $1.00" in rows["later"].reason
    report = json.loads(cli(repo, "report", "--format", "json").stdout)
    assert report["run"]["total_cost_usd"] == pytest.approx(1.2)
