"""`limitless run` checks out the first tasks' worktrees while its session and supervisor
start; the supervisor takes them over, or finishes what a killed checkout left."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from limitless.crashpoints import CRASH_AT, CRASH_MARK
from limitless.git.refs import branch_name
from limitless.git.worktrees import worktree_path
from limitless.plan.graph import Dag
from limitless.plan.loader import loads
from limitless.plan.model import Plan
from limitless.run import firstwave
from limitless.states import RunStatus, TaskStatus
from limitless.store import Run, TaskRow
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan

PLAN = """\
name: wave
agent: shell
max_concurrency: 2
tasks:
  - {id: one, prompt: "echo one > one.txt"}
  - {id: two, prompt: "echo two > two.txt"}
  - {id: three, prompt: "echo three > three.txt"}
  - {id: four, depends_on: [one], prompt: "test -f one.txt && echo four > four.txt"}
"""


def _plan(text: str) -> Plan:
    return loads(text, source="limitless.yaml", base_dir=Path.cwd())


def test_the_first_wave_is_its_roots_in_start_order_one_per_slot() -> None:
    plan = _plan(
        """\
name: w
agent: shell
tasks:
  - {id: a, prompt: x}
  - {id: b, prompt: x, priority: 5}
  - {id: c, prompt: x, depends_on: [a]}
  - {id: e1, prompt: x, epic: big}
  - {id: d, prompt: x}
"""
    )
    dag = Dag.from_tasks(plan.tasks)
    assert firstwave.first_wave(plan, dag, 2) == ["b", "a"]
    assert "c" not in firstwave.first_wave(plan, dag, 10)
    assert "e1" not in firstwave.first_wave(plan, dag, 10), "an epic's worktree is shared"


def _rows(repo: Path, ids: list[str]) -> tuple[Run, list[TaskRow]]:
    base_sha = git(repo, "rev-parse", "main")
    root = repo.parent / "wt"
    run = Run(
        id="w-1",
        plan_name="w",
        plan_path=None,
        plan_json="{}",
        repo_root=str(repo),
        base="main",
        base_sha=base_sha,
        worktree_root=str(root),
        status=RunStatus.RUNNING,
        created_at=time.time(),
    )
    rows = [
        TaskRow(
            run_id=run.id,
            id=task_id,
            position=i,
            agent="shell",
            branch=branch_name(run.id, task_id),
            worktree=str(worktree_path(root, run.id, task_id)),
            status=TaskStatus.PENDING,
        )
        for i, task_id in enumerate(ids)
    ]
    return run, rows


def test_a_checkout_started_apart_is_taken_once_it_is_done(repo: Path, tmp_path: Path) -> None:
    plan = _plan("name: w\nagent: shell\ntasks:\n  - {id: a, prompt: x}\n")
    run, rows = _rows(repo, ["a"])
    folder = tmp_path / "state" / "runs" / "w-1" / firstwave.FOLDER
    pid = firstwave.start(run, plan, rows, folder, tmp_path / "state")
    assert pid is not None
    taken = firstwave.take(folder, "a")  # waits for the child's lock
    os.waitpid(pid, 0)
    assert taken is not None and taken.created
    assert (taken.path / "README.md").read_text() == "# test repo\n"
    assert git(taken.path, "symbolic-ref", "--short", "HEAD") == rows[0].branch
    assert list(folder.iterdir()) == [], "the record and its lock are gone once taken"
    assert firstwave.take(folder, "a") is None, "taken once"


@pytest.mark.usefixtures("tmux_socket")
def test_a_run_s_first_worktrees_are_checked_out_by_run_and_taken_by_the_supervisor(
    repo: Path,
) -> None:
    write_plan(repo, PLAN)
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    assert {row.status for row in tasks_of(repo, run.id).values()} == {TaskStatus.DONE}
    for name in ("one", "two", "three", "four"):
        assert (repo / f"{name}.txt").read_text() == f"{name}\n"
    with open_store(repo) as store:
        folder = store.run_dir(run.id) / firstwave.FOLDER
        events = [e for e in store.events(run.id) if e.kind == "worktree_checked_out"]
    checked_out = {e.task_id for e in events}
    assert folder.is_dir(), "run started the first wave's checkouts"
    assert list(folder.iterdir()) == [], "the supervisor took both records"
    assert {"one", "two"} <= checked_out, "still reported as the tasks' checkouts"
    # each checkout's span (what the bench sets against the time to every agent running)
    for event in events:
        began, ended = event.data["began_at"], event.data["ended_at"]
        assert isinstance(began, float) and isinstance(ended, float), event.data
        assert run.created_at <= began <= ended <= event.ts, (run.created_at, event)


@pytest.mark.usefixtures("tmux_socket")
def test_a_first_wave_checkout_killed_halfway_is_finished_by_the_supervisor(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the checkout process after `worktree add`, before the files."""
    mark = repo.parent / "crashed"
    monkeypatch.setenv(CRASH_AT, "worktree:1")
    monkeypatch.setenv(CRASH_MARK, str(mark))
    write_plan(repo, PLAN)
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    assert mark.exists(), "the kill point was reached"
    killed = int(mark.read_text().split("pid ")[1])
    run = latest_run(repo)
    assert killed != run.supervisor_pid, "the first-wave process died, not the supervisor"
    rows = tasks_of(repo, run.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    for name in ("one", "two", "three", "four"):
        assert (repo / f"{name}.txt").read_text() == f"{name}\n"
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert status.stdout == "?? limitless.yaml\n"
