"""`limitless add`: a task added to a live run is picked up; bad additions create nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import (
    cli,
    latest_run,
    start_until_running,
    tasks_of,
    wait_for,
    write_plan,
)

pytestmark = pytest.mark.usefixtures("tmux_socket")

FIRST_HELD = """\
tasks:
  - id: first
    prompt: |
      echo first > first.txt && git add first.txt && git commit -qm "first: add"
      for i in $(seq 1 600); do test -f "$LIMITLESS_STATE_DIR/release" && exit 0; sleep 0.1; done
      exit 1
"""
"""A task that commits, then holds until the test drops `release` in the state folder."""

HOLD = "name: live\nagent: shell\nmax_concurrency: 2\nmerge: {land: manual}\n" + FIRST_HELD


def test_added_task_runs_after_its_dependency_and_chains_by_json(repo: Path) -> None:
    """`add --depends-on` prints JSON; the supervisor runs the task with its dependency's work."""
    write_plan(repo, HOLD)
    run_id = start_until_running(repo, "first", "--no-merge")
    added = cli(
        repo,
        "add",
        run_id,
        "--prompt",
        "test -f first.txt && echo extra > extra.txt",
        "--id",
        "extra",
        "--depends-on",
        "first",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"run": run_id, "task": "extra", "tasks": ["extra"]}
    duplicate = cli(repo, "add", run_id, "--prompt", "x", "--id", "extra")
    assert duplicate.returncode == 2
    assert "has a task 'extra' already" in duplicate.stderr
    unknown = cli(repo, "add", run_id, "--prompt", "x", "--depends-on", "nope")
    assert unknown.returncode == 2
    assert "--depends-on 'nope': run" in unknown.stderr
    bad_id = cli(repo, "add", run_id, "--prompt", "x", "--id", "no spaces")
    assert bad_id.returncode == 2
    assert set(tasks_of(repo, run_id)) == {"first", "extra"}
    (repo / ".git" / "limitless" / "release").touch()
    waited = cli(repo, "wait", run_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run_id)
    assert rows["extra"].status is TaskStatus.DONE
    assert (rows["extra"].started_at or 0) >= (rows["first"].ended_at or 0)
    files = git(repo, "ls-tree", "-r", "--name-only", f"limitless/{run_id}/extra").splitlines()
    assert {"first.txt", "extra.txt"} <= set(files)
    late = cli(repo, "add", run_id, "--prompt", "too late")
    assert late.returncode == 2
    assert "takes no new tasks" in late.stderr
    assert latest_run(repo).id == run_id


STAGED = (
    """\
name: staged
agent: shell
max_concurrency: 2
merge: {land: manual}
stages:
  - {name: build, prompt: "{prompt}"}
  - name: check
    prompt: |
      echo "checked {task}" >> checks.txt && git add checks.txt && git commit -qm "check {task}"
"""
    + FIRST_HELD
)


def test_an_added_task_goes_through_the_plans_stages(repo: Path) -> None:
    """With plan stages, `add` makes one task per stage in one worktree, after the
    dependency's last stage; `--no-stages` adds a single task."""
    write_plan(repo, STAGED)
    run_id = start_until_running(repo, "first.build", "--no-merge")
    added = cli(
        repo,
        "add",
        run_id,
        "--prompt",
        "echo more > more.txt",
        "--id",
        "more",
        "--depends-on",
        "first",
    )
    assert added.returncode == 0, added.stderr
    assert "added more to run" in added.stdout
    assert "as the plan's stages: more.build, more.check" in added.stdout
    plain = cli(
        repo,
        "add",
        run_id,
        "--prompt",
        "echo solo > solo.txt",
        "--id",
        "solo",
        "--no-stages",
        "--json",
    )
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == {"run": run_id, "task": "solo", "tasks": ["solo"]}
    (repo / ".git" / "limitless" / "release").touch()
    waited = cli(repo, "wait", run_id, "--timeout", "120")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run_id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    assert (rows["more.build"].started_at or 0) >= (rows["first.check"].ended_at or 0)
    assert rows["more.build"].branch == rows["more.check"].branch == f"limitless/{run_id}/more"
    log = git(repo, "log", "--format=%s", f"limitless/{run_id}/more").splitlines()
    assert log[:2] == ["check more", "limitless: more.build"] or "check more" in log[0]
    assert (
        "checks.txt"
        not in git(repo, "ls-tree", "-r", "--name-only", f"limitless/{run_id}/solo").splitlines()
    )


def test_a_one_task_run_grows_slots_for_added_tasks(repo: Path, tmux_socket: str) -> None:
    """`run --prompt` has one slot; tasks added to it run beside it in new slot panes
    (window agents-2), up to max_concurrency, instead of queueing one at a time."""
    release = repo / ".git" / "limitless" / "release"
    hold = (
        'touch "$LIMITLESS_STATE_DIR/in-$LIMITLESS_TASK"; '
        f"for i in $(seq 1 600); do test -f {release} && exit 0; sleep 0.1; done; exit 1"
    )
    started = cli(repo, "run", "--prompt", hold, "--agent", "shell", "--json", "--no-merge")
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run"]
    assert len(latest_run(repo).slot_panes.split(",")) == 1
    for task_id in ("two", "three"):
        added = cli(repo, "add", run_id, "--prompt", hold, "--id", task_id)
        assert added.returncode == 0, added.stderr
    state = repo / ".git" / "limitless"

    def all_agents_in() -> bool:
        return len(list(state.glob("in-*"))) == 3

    wait_for(all_agents_in, 60, "three agents working at once")  # none ends before release
    rows = tasks_of(repo, run_id)
    assert [row.status for row in rows.values()] == [TaskStatus.RUNNING] * 3
    assert len(latest_run(repo).slot_panes.split(",")) == 3
    windows = subprocess.run(
        [
            "tmux",
            "-L",
            tmux_socket,
            "list-panes",
            "-s",
            "-t",
            f"limitless-{run_id}",
            "-F",
            "#{window_name} #{@limitless-title}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "agents-2 " in windows
    release.touch()
    waited = cli(repo, "wait", run_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
