"""`limitless wait` (and `run --headless`, the API's `wait`) when the run's supervisor dies
before it ends the run: they say so and how to go on, instead of waiting out the timeout."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from limitless.states import RunStatus, TaskStatus
from limitless.store import Run
from limitless.views.follow import SupervisorWatch
from tests.engine_helpers import cli, latest_run, start_until_running, tasks_of, write_plan
from tests.test_add import HOLD


@pytest.mark.usefixtures("tmux_socket")
def test_wait_says_the_supervisor_is_gone_and_resume_finishes_the_run(repo: Path) -> None:
    write_plan(repo, HOLD)  # `first` commits, then holds until `release` is dropped
    run_id = start_until_running(repo, "first", "--no-merge")
    pid = latest_run(repo).supervisor_pid
    assert pid
    os.kill(pid, signal.SIGKILL)  # the supervisor this test's run started

    waited = cli(repo, "wait", run_id, "--timeout", "100", timeout=160)
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert f"run {run_id}: its supervisor (pid {pid}) is gone" in waited.stderr
    assert f"limitless resume {run_id} starts a new supervisor" in waited.stderr
    assert "still going after" not in waited.stderr, "it said so before its timeout"

    resumed = cli(repo, "resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (repo / ".git" / "limitless" / "release").touch()
    finished = cli(repo, "wait", run_id, "--timeout", "90", timeout=150)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert latest_run(repo).status is RunStatus.DONE
    assert tasks_of(repo, run_id)["first"].status is TaskStatus.DONE


def _run(pid: int | None, status: RunStatus = RunStatus.RUNNING) -> Run:
    return Run(
        id="r-1",
        plan_name="r",
        plan_path=None,
        plan_json="{}",
        repo_root="/repo",
        base="main",
        base_sha="0" * 40,
        worktree_root="/wt",
        status=status,
        supervisor_pid=pid,
    )


def test_the_watch_waits_its_grace_and_starts_over_for_a_new_supervisor() -> None:
    alive: set[int] = set()
    watch = SupervisorWatch(lambda run: run.supervisor_pid in alive, grace_s=0.0)
    assert watch.gone(_run(7)) is None, "first seen dead: the grace starts"
    gone = watch.gone(_run(7))
    assert gone is not None and gone.pid == 7
    assert watch.gone(_run(8)) is None, "another pid (a resume's): the grace starts over"
    alive.add(8)
    assert watch.gone(_run(8)) is None
    assert watch.dead_since is None
    assert watch.gone(_run(9, RunStatus.DONE)) is None, "an ended run needs no supervisor"
