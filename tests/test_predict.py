"""Conflict prediction and the stale-base check, during real runs and on hand-made branches."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from limitless.merge import predict
from limitless.plan.model import Plan, Task
from limitless.states import TaskStatus
from limitless.store import Run, Store, TaskRow
from limitless.views.status import base_moved
from tests.conftest import git
from tests.engine_helpers import LIMITLESS, cli, latest_run, open_store, wait_for, write_plan

RACING = """\
name: racing
agent: shell
max_concurrency: 3
merge: {{on_conflict: skip, land: manual}}
tasks:
  - id: left
    prompt: |
      echo "left side" > README.md && git commit -qam "left: rewrite readme"
      while [ ! -f "{flag}" ]; do sleep 0.1; done
  - id: right
    prompt: |
      echo "right side" > README.md && git commit -qam "right: rewrite readme"
      while [ ! -f "{flag}" ]; do sleep 0.1; done
  - id: apart
    prompt: |
      echo apart > apart.txt && git add apart.txt && git commit -qm "apart: add"
      while [ ! -f "{flag}" ]; do sleep 0.1; done
"""


def _predicted(repo: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    try:
        run = latest_run(repo)
    except AssertionError:
        return []
    with open_store(repo) as store:
        return sorted((p.task_id, p.other, tuple(p.files)) for p in store.predictions(run.id))


@pytest.mark.usefixtures("tmux_socket")
def test_predicted_conflicts_appear_while_tasks_run(repo: Path, tmp_path: Path) -> None:
    """Two running tasks rewriting one file are predicted to conflict; status --json shows it."""
    flag = tmp_path / "go"
    write_plan(repo, RACING.format(flag=flag))
    proc = subprocess.Popen(
        [*LIMITLESS, "run", "--headless"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: (
                _predicted(repo) == [("left", "right", ("README.md",))]
                or _predicted(repo) == [("right", "left", ("README.md",))]
            ),
            timeout=90,
            what="a predicted conflict between left and right",
        )
        run = latest_run(repo)
        with open_store(repo) as store:
            statuses = {row.id: row.status for row in store.get_tasks(run.id)}
        assert statuses == dict.fromkeys(("left", "right", "apart"), TaskStatus.RUNNING)
        status = cli(repo, "status", run.id, "--json")
        assert status.returncode == 0, status.stderr
        tasks = {task["id"]: task for task in json.loads(status.stdout)["tasks"]}
        assert tasks["left"]["predicted_conflicts"] == [{"with": "right", "files": ["README.md"]}]
        assert tasks["right"]["predicted_conflicts"] == [{"with": "left", "files": ["README.md"]}]
        assert tasks["apart"]["predicted_conflicts"] == []
    finally:
        flag.write_text("go\n")
        try:
            proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


RUN = "p-1"


def _store_with_run(tmp_path: Path, repo: Path, tasks: list[TaskRow]) -> Store:
    plan = Plan(
        name="p",
        source=None,
        base="main",
        tasks=tuple(Task(row.id, f"Do {row.id}", "shell") for row in tasks),
    )
    store = Store.open(tmp_path / "state")
    store.create_run(
        Run(
            RUN,
            "p",
            None,
            plan.to_json(),
            str(repo),
            "main",
            git(repo, "rev-parse", "main"),
            str(tmp_path / "wt"),
            created_at=time.time(),
        )
    )
    store.add_tasks(RUN, tasks)
    return store


def _commit_on(repo: Path, branch: str, name: str, text: str) -> None:
    """Commit `name` with `text` on `branch` (created from main when new), via a worktree."""
    where = repo.parent / f"wt-{branch.replace('/', '-')}"
    if not where.exists():
        git(repo, "worktree", "add", "-q", "-b", branch, str(where), "main")
    (where / name).write_text(text)
    git(where, "add", name)
    git(where, "commit", "-qm", f"{branch}: {name}")


def _row(task_id: str, branch: str, position: int, **fields: object) -> TaskRow:
    return TaskRow(RUN, task_id, position, "shell", branch, "", **fields)  # type: ignore[arg-type]


def test_base_moved_says_where_base_went(tmp_path: Path, repo: Path) -> None:
    """None while base is where the run started or where the run landed; the new tip otherwise."""
    with _store_with_run(tmp_path, repo, [_row("a", "limitless/p-1/a", 0)]) as store:
        assert base_moved(store.get_run(RUN)) is None
        (repo / "other.txt").write_text("someone else\n")
        git(repo, "add", "other.txt")
        git(repo, "commit", "-qm", "someone commits to main")
        tip = git(repo, "rev-parse", "main")
        assert base_moved(store.get_run(RUN)) == tip
        store.update_run(RUN, landed=True, merged_sha=tip)
        assert base_moved(store.get_run(RUN)) is None
        (repo / "later.txt").write_text("after the landing\n")
        git(repo, "add", "later.txt")
        git(repo, "commit", "-qm", "work after the landing")
        assert base_moved(store.get_run(RUN)) is None
        git(repo, "reset", "-q", "--hard", "HEAD~2")  # base rewritten without the landing
        git(repo, "commit", "-q", "--allow-empty", "-m", "rewritten history")
        assert base_moved(store.get_run(RUN)) == git(repo, "rev-parse", "main")


def test_predictions_against_a_moved_base_and_for_epics(tmp_path: Path, repo: Path) -> None:
    """A branch clashing with base's new commit is predicted against base; an epic's
    shared branch files its predictions under the member that runs now."""
    _commit_on(repo, "limitless/p-1/solo", "README.md", "solo's readme\n")
    _commit_on(repo, "limitless/p-1/epic", "notes.txt", "epic notes\n")
    rows = [
        _row("solo", "limitless/p-1/solo", 0, status=TaskStatus.DONE, started_at=1.0),
        _row("e1", "limitless/p-1/epic", 1, status=TaskStatus.DONE, started_at=2.0),
        _row("e2", "limitless/p-1/epic", 2, status=TaskStatus.RUNNING, started_at=3.0),
    ]
    with _store_with_run(tmp_path, repo, rows) as store:
        assert predict.update_predictions(store, RUN) == 0
        (repo / "README.md").write_text("main's readme\n")
        (repo / "notes.txt").write_text("main's notes\n")
        git(repo, "add", "README.md", "notes.txt")
        git(repo, "commit", "-qm", "main moves on")
        assert predict.update_predictions(store, RUN) == 2
        found = sorted((p.task_id, p.other, tuple(p.files)) for p in store.predictions(RUN))
        assert found == [("e2", "", ("notes.txt",)), ("solo", "", ("README.md",))]


def test_branches_of_tasks_that_will_not_merge_are_left_out(tmp_path: Path, repo: Path) -> None:
    """A failed or killed task's branch is not going to be merged: no prediction names it."""
    for key, text in (("run", "running\n"), ("done", "done\n"), ("bad", "failed\n")):
        _commit_on(repo, f"limitless/p-1/{key}", "README.md", text)
    rows = [
        _row("run", "limitless/p-1/run", 0, status=TaskStatus.RUNNING),
        _row("done", "limitless/p-1/done", 1, status=TaskStatus.DONE),
        _row("bad", "limitless/p-1/bad", 2, status=TaskStatus.FAILED),
    ]
    with _store_with_run(tmp_path, repo, rows) as store:
        assert predict.update_predictions(store, RUN) == 1
        found = [(p.task_id, p.other, tuple(p.files)) for p in store.predictions(RUN)]
        assert found == [("run", "done", ("README.md",))]
        store.update_task(RUN, "done", status=TaskStatus.KILLED)
        assert predict.update_predictions(store, RUN) == 0
        assert store.predictions(RUN) == []
