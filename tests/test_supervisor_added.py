"""Tasks added to a live run while the supervisor's loop is between reading the rows and
reading the plan (`limitless add` twice in quick succession).

Found by `test_add.py::test_an_added_task_goes_through_the_plans_stages`, which stalled
about once in twelve runs: the supervisor read the rows, a second `add` landed, the
reloaded plan named a task the rows lacked, and the loop died with a KeyError (the
control pane showed the traceback, and `wait` waited out its timeout). The interleaving
is forced here on a real store, by calling the loop's steps in that order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from limitless.git import worktrees
from limitless.git.refs import branch_name
from limitless.plan import loader as plan_mod
from limitless.run.adding import add_task
from limitless.run.supervisor import Supervisor
from limitless.states import RunStatus, TaskStatus
from limitless.store import Run, Store, TaskRow
from limitless.tmux.session import TmuxSession, session_name
from tests.conftest import git

PLAN = """\
name: live
agent: shell
max_concurrency: 2
tasks:
  - {id: first, prompt: "echo first > first.txt"}
"""


@pytest.fixture
def supervised(repo: Path, tmp_path: Path, tmux_socket: str) -> Iterator[tuple[Store, Supervisor]]:
    """A run of PLAN in a real store and the supervisor of it, its loop not started."""
    plan = plan_mod.loads(PLAN, source="live.yaml", base_dir=repo)
    store = Store.open(tmp_path / "state")
    run_id = store.next_run_id("live")
    root = repo.parent / "live.worktrees"
    store.create_run(
        Run(
            id=run_id,
            plan_name=plan.name,
            plan_path=str(repo / "live.yaml"),
            plan_json=plan.to_json(),
            repo_root=str(repo),
            base="main",
            base_sha=git(repo, "rev-parse", "main"),
            worktree_root=str(root),
            status=RunStatus.RUNNING,
            tmux_socket=tmux_socket,
            tmux_session=session_name(run_id),
            max_concurrency=2,
        )
    )
    store.add_tasks(
        run_id,
        [
            TaskRow(
                run_id=run_id,
                id="first",
                position=0,
                agent="shell",
                branch=branch_name(run_id, "first"),
                worktree=str(worktrees.worktree_path(root, run_id, "first")),
            )
        ],
    )
    supervisor = Supervisor(
        store, run_id, tmux=TmuxSession(tmux_socket, run_id), out=lambda line: None
    )
    try:
        yield store, supervisor
    finally:
        supervisor.background.shutdown()
        store.close()


def test_a_task_added_after_the_rows_were_read_is_taken_with_the_plan(
    supervised: tuple[Store, Supervisor],
) -> None:
    store, supervisor = supervised
    run_id = supervisor.run_id
    add_task(store, run_id, prompt="echo a > a.txt", task_id="a")
    picture = supervisor._look()  # the loop's read of the rows: `a`, not yet `b`
    add_task(store, run_id, prompt="echo b > b.txt", task_id="b", depends_on=("a",))

    supervisor._pick_up_added(picture)
    supervisor._settle(picture)  # walks the reloaded plan's tasks through the rows

    assert set(supervisor.dag.ids) == {"first", "a", "b"}
    assert picture.rows["b"].status is TaskStatus.PENDING, "waits for a"
    reloaded = [e.data for e in store.events(run_id) if e.kind == "plan_reloaded"]
    assert reloaded == [{"tasks": 3, "added": ["a", "b"]}]
    # the next pass sees nothing new to reload and settles every task
    picture = supervisor._look()
    supervisor._pick_up_added(picture)
    supervisor._settle(picture)
    assert len([e for e in store.events(run_id) if e.kind == "plan_reloaded"]) == 1
    statuses = {row.id: row.status for row in store.get_tasks(run_id)}
    assert statuses["b"] is TaskStatus.PENDING
    assert statuses["first"] is TaskStatus.READY and statuses["a"] is TaskStatus.READY
