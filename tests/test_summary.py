"""One run summary: every view of a run shows the same task time and speedup."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from limitless.dashboard.model import Monitor
from limitless.plan import loader as plan_mod
from limitless.states import RunStatus, TaskStatus
from limitless.store import Attempt, Run, Store, TaskRow
from limitless.views.follow import finished_run
from limitless.views.report import build_report
from limitless.views.status import run_summary
from limitless.views.summary import summarize
from tests.conftest import git

PLAN = """\
name: retry
agent: shell
tasks:
  - {id: steady, prompt: "true"}
  - {id: flaky, prompt: "true"}
"""


def retried_run(repo: Path, state_dir: Path) -> tuple[str, float]:
    """A finished 100-second run: steady ran [0,40]; flaky failed [0,30], then ran [30,60].

    Returns the run id and the sum of every attempt's time (40 + 30 + 30)."""
    plan = plan_mod.loads(PLAN, source="retry.yaml", base_dir=repo)
    start = time.time() - 200
    with Store.open(state_dir) as store:
        run_id = store.next_run_id("retry")
        store.create_run(
            Run(
                id=run_id,
                plan_name=plan.name,
                plan_path=None,
                plan_json=plan.to_json(),
                repo_root=str(repo),
                base="main",
                base_sha=git(repo, "rev-parse", "main"),
                worktree_root=str(repo.parent / "retry.worktrees"),
                status=RunStatus.DONE,
                created_at=start,
                ended_at=start + 100,
                exit_code=0,
                max_concurrency=2,
            )
        )
        store.add_tasks(
            run_id,
            [
                TaskRow(run_id, task.id, position, "shell", f"b/{task.id}", f"/nowhere/{task.id}")
                for position, task in enumerate(plan.tasks)
            ],
        )
        for task_id, attempt, begin, end, code in (
            ("steady", 1, 0, 40, 0),
            ("flaky", 1, 0, 30, 1),
            ("flaky", 2, 30, 60, 0),
        ):
            store.add_attempt(Attempt(run_id, task_id, attempt, start + begin))
            store.end_attempt(
                run_id, task_id, attempt, ended_at=start + end, exit_code=code, reason="", ref=None
            )
            store.update_task(
                run_id,
                task_id,
                status=TaskStatus.DONE,
                attempt=attempt,
                started_at=start + begin,
                ended_at=start + end,
            )
    return run_id, 100.0


def test_dashboard_speedup_equals_the_reports_after_a_retry(repo: Path, tmp_path: Path) -> None:
    """A retried task's failed attempt counts in the dashboard's speedup as in the report's."""
    state_dir = tmp_path / "state"
    run_id, task_s = retried_run(repo, state_dir)
    with Store.open(state_dir) as store:
        report = build_report(store, run_id)
        followed = finished_run(store, store.get_run(run_id))
    monitor = Monitor(state_dir, run_id, socket_name=None)
    try:
        snapshot = monitor.poll()
    finally:
        monitor.close()
    assert report.task_s == pytest.approx(task_s)
    assert report.speedup == pytest.approx(task_s / 100)
    assert snapshot.summary.task_s == pytest.approx(report.task_s)
    assert snapshot.summary.speedup == pytest.approx(report.speedup)
    assert followed.summary.speedup == pytest.approx(report.speedup)


def test_every_view_reads_one_summary(repo: Path, tmp_path: Path) -> None:
    """The report, the follower, the `runs` listing and the dashboard share done, total,
    slots and cost with `summarize`."""
    state_dir = tmp_path / "state"
    run_id, _ = retried_run(repo, state_dir)
    with Store.open(state_dir) as store:
        run = store.get_run(run_id)
        summary = summarize(run, store.get_tasks(run_id), store.attempts(run_id))
        report = build_report(store, run_id)
        listed = run_summary(store, run)
    monitor = Monitor(state_dir, run_id, socket_name=None)
    try:
        snapshot = monitor.poll()
    finally:
        monitor.close()
    assert report.summary == summary
    assert snapshot.summary == summary
    assert (listed["tasks"], listed["done"], listed["counts"]) == (2, 2, {"done": 2})
    assert (summary.done, summary.total, summary.slots, summary.cost_usd) == (2, 2, 2, None)
