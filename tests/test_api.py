"""The Python API: validate, load, start a real run, follow its events, wait, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from limitless import api
from limitless.errors import PlanError, UsageError
from limitless.states import RunStatus, TaskStatus
from tests.engine_helpers import open_store, write_plan

PLAN = """\
name: py
agent: shell
max_concurrency: 2
merge: {land: manual}
tasks:
  - {id: first, prompt: "sleep 1; echo 1 > first.txt"}
  - {id: second, prompt: "echo 2 > second.txt"}
  - {id: third, depends_on: [first], prompt: "test -f first.txt; echo 3 > third.txt"}
"""


def test_validate_lists_every_problem_with_its_place(tmp_path: Path) -> None:
    """`api.validate` returns the located problems; `load_plan` raises them."""
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nagent: shell\ntasks:\n  - {id: a, prompt: x, depends_on: [zz]}\n")
    problems = api.validate(path)
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line) == (str(path), 4)
    assert "zz" in problems[0].message
    with pytest.raises(PlanError):
        api.load_plan(path)


def test_validate_accepts_a_good_plan(tmp_path: Path) -> None:
    """A good plan has no problems and loads with its tasks."""
    path = write_plan(tmp_path, PLAN)
    assert api.validate(path) == []
    assert [task.id for task in api.load_plan(path).tasks] == ["first", "second", "third"]


@pytest.mark.usefixtures("tmux_socket")
def test_start_follow_wait_status(repo: Path) -> None:
    """A run started from Python: its events stream to the end, wait gives the report."""
    plan = api.load_plan(write_plan(repo, PLAN))
    handle = api.start(plan, repo=repo)
    assert handle.run_id == "py-1"
    with pytest.raises(TimeoutError, match="py-1 still going"):
        handle.wait(timeout=0.01)
    kinds = [event.kind for event in handle.events(follow=True)]
    assert kinds[0] == "run_started"
    assert kinds.count("task_done") == 3
    assert "run_done" in kinds
    report = handle.wait(timeout=60)
    assert report.status == "done" and report.done == 3
    state = handle.status()
    assert state.finished and state.status is RunStatus.DONE and state.exit_code == 0
    assert dict(state.tasks) == {tid: TaskStatus.DONE for tid in ("first", "second", "third")}
    with open_store(repo) as store:
        stored = store.events(handle.run_id)
    assert [e.id for e in handle.events()] == [e.id for e in stored]
    assert [e.id for e in handle.events(after=stored[-2].id)] == [stored[-1].id]
    assert api.open_run(repo=repo) == handle
    assert api.runs(repo=repo) == ["py-1"]


def test_start_refuses_a_bad_schedule_and_creates_nothing(repo: Path) -> None:
    """A wrong option is a usage error before any run exists."""
    plan = api.load_plan(write_plan(repo, PLAN))
    with pytest.raises(UsageError, match="schedule 'fastest' is not known; use 'deps' or 'waves'"):
        api.start(plan, repo=repo, schedule="fastest")
    assert api.runs(repo=repo) == []
