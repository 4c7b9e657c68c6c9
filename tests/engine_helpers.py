"""Helpers for tests that drive real runs: the CLI in a subprocess, the store, waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from limitless.git.repo import find_repo, state_dir
from limitless.store import Run, Store, TaskRow

LIMITLESS = [sys.executable, "-m", "limitless"]


def cli(cwd: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run `limitless ARGS` in `cwd` with the test's environment (private tmux socket)."""
    return subprocess.run(
        [*LIMITLESS, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        check=False,
        stdin=subprocess.DEVNULL,
    )


def write_plan(repo: Path, text: str, name: str = "limitless.yaml") -> Path:
    path = repo / name
    path.write_text(text)
    return path


def open_store(repo: Path) -> Store:
    return Store.open(state_dir(find_repo(repo)))


def latest_run(repo: Path) -> Run:
    with open_store(repo) as store:
        run = store.latest_run()
    if run is None:
        msg = f"no run in {repo}"
        raise AssertionError(msg)
    return run


def tasks_of(repo: Path, run_id: str) -> dict[str, TaskRow]:
    with open_store(repo) as store:
        return {row.id: row for row in store.get_tasks(run_id)}


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout}s waiting for {what or condition}"
            raise AssertionError(msg)
        time.sleep(0.05)


def start_until_running(repo: Path, task_id: str, *flags: str) -> str:
    """`limitless run --json FLAGS` in `repo`; the run's id once `task_id` runs."""
    from limitless.states import TaskStatus

    started = cli(repo, "run", "--json", *flags)
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = str(json.loads(started.stdout)["run"])
    wait_for(
        lambda: tasks_of(repo, run_id)[task_id].status is TaskStatus.RUNNING,
        60,
        f"{task_id} running",
    )
    return run_id
