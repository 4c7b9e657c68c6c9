"""Tests of the SQLite store: round trips, compare-and-set, migrations, locking and load."""

from __future__ import annotations

import dataclasses
import multiprocessing
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from limitless.errors import StoreError, UsageError
from limitless.states import ControlAction, MergeStatus, RunStatus, TaskStatus
from limitless.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Attempt,
    ControlRequest,
    Event,
    Prediction,
    Run,
    Store,
    TaskRow,
    migrate,
)
from limitless.store.columns import TABLES

# --- helpers -----------------------------------------------------------------


def make_run(run_id: str = "shop-1", created_at: float = 1000.0, **overrides: Any) -> Run:
    """A run with every required field filled in."""
    values: dict[str, Any] = {
        "id": run_id,
        "plan_name": run_id.rsplit("-", 1)[0],
        "plan_path": "/repo/limitless.yaml",
        "plan_json": '{"name": "shop"}',
        "repo_root": "/repo",
        "base": "main",
        "base_sha": "a" * 40,
        "worktree_root": "/repo.worktrees",
        "created_at": created_at,
    }
    values.update(overrides)
    return Run(**values)


def make_task(task_id: str, position: int, run_id: str = "shop-1", **overrides: Any) -> TaskRow:
    """A task row with every required field filled in."""
    values: dict[str, Any] = {
        "run_id": run_id,
        "id": task_id,
        "position": position,
        "agent": "demo",
        "branch": f"limitless/{run_id}/{task_id}",
        "worktree": f"/repo.worktrees/{run_id}/{task_id}",
    }
    values.update(overrides)
    return TaskRow(**values)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Where the callers would put the store: `<git-common-dir>/limitless`."""
    return tmp_path / "git" / "limitless"


@pytest.fixture
def store(state_dir: Path) -> Iterator[Store]:
    """A fresh store, closed after the test."""
    with Store.open(state_dir) as opened:
        yield opened


@pytest.fixture
def run_store(store: Store) -> Store:
    """A store holding run shop-1 with tasks a and b."""
    store.create_run(make_run())
    store.add_tasks("shop-1", [make_task("a", 0), make_task("b", 1)])
    return store


# --- opening -----------------------------------------------------------------


def test_open_creates_folder_and_current_schema_in_wal_mode(state_dir: Path) -> None:
    """Opening creates the folder and a WAL database at the newest schema version."""
    with Store.open(state_dir) as store:
        assert store.path == state_dir / "state.db"
        assert store.path.is_file()
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reopening_keeps_rows(state_dir: Path) -> None:
    """A second open of the same folder sees what the first wrote."""
    with Store.open(state_dir) as first:
        first.create_run(make_run())
    with Store.open(state_dir) as second:
        assert second.get_run("shop-1").base == "main"


def test_schema_columns_are_the_row_fields(store: Store) -> None:
    """Every table has exactly the columns of its row dataclass."""
    for table in TABLES:
        info = store._conn.execute(f"PRAGMA table_info({table.name})").fetchall()
        columns = [row["name"] for row in info]
        assert sorted(columns) == sorted(f.name for f in dataclasses.fields(table.row)), table.name


def test_migrations_are_numbered_one_by_one() -> None:
    """Migrations produce versions 1, 2, ... in order; the last is SCHEMA_VERSION."""
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2


def test_concurrent_first_opens_migrate_once(state_dir: Path) -> None:
    """Eight connections opening a fresh database at once all succeed; it migrates once."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            barrier.wait(timeout=30)
            with Store.open(state_dir) as opened:
                opened.next_run_id("race")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with Store.open(state_dir) as store:
        assert store.next_run_id("race") == "race-9"


# --- migrations --------------------------------------------------------------


def test_version_1_database_upgrades_with_rows_intact(state_dir: Path) -> None:
    """A database made by migration 1 alone opens, upgrades, and keeps its rows."""
    state_dir.mkdir(parents=True)
    path = state_dir / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=1)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.execute(
        "INSERT INTO runs (id, plan_name, plan_path, plan_json, repo_root, base, base_sha,"
        " worktree_root, status, created_at, no_merge)"
        " VALUES ('shop-4', 'shop', NULL, '{}', '/repo', 'main', 'abc', '/wt', 'done', 5.0, 1)"
    )
    conn.execute(
        "INSERT INTO tasks (run_id, id, position, agent, branch, worktree, status, attempt,"
        " commits, merge_status)"
        " VALUES ('shop-4', 'api', 0, 'claude', 'limitless/shop-4/api', '/wt/api', 'done', 2,"
        " 7, 'merged')"
    )
    conn.execute(
        "INSERT INTO attempts (run_id, task_id, attempt, started_at, ended_at, exit_code)"
        " VALUES ('shop-4', 'api', 2, 10.0, 20.0, 0)"
    )
    conn.execute(
        "INSERT INTO events (run_id, task_id, ts, kind, data)"
        " VALUES ('shop-4', 'api', 11.0, 'task.done', '{\"exit_code\": 0}')"
    )
    conn.execute(
        "INSERT INTO controls (run_id, task_id, action, source, created_at)"
        " VALUES ('shop-4', 'api', 'retry', 'dashboard', 12.0)"
    )
    conn.execute("INSERT INTO counters (name, value) VALUES ('run:shop', 4)")
    conn.close()

    with Store.open(state_dir) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        run = store.get_run("shop-4")
        assert (run.status, run.no_merge, run.created_at) == (RunStatus.DONE, True, 5.0)
        assert (run.merged_sha, run.landed, run.slot_panes) == (None, False, "")
        task = store.get_task("shop-4", "api")
        assert (task.status, task.attempt, task.commits) == (TaskStatus.DONE, 2, 7)
        assert task.merge_status is MergeStatus.MERGED
        assert (task.conflict_files, task.setup_done, task.waiting_reason) == ([], False, "")
        assert (task.merge_order, task.duration_s, task.not_before) == (None, 0.0, None)
        assert store.attempts("shop-4", "api") == [
            Attempt("shop-4", "api", 2, 10.0, ended_at=20.0, exit_code=0)
        ]
        assert [(e.kind, e.data) for e in store.events("shop-4")] == [
            ("task.done", {"exit_code": 0})
        ]
        [control] = store.pending_requests("shop-4")
        assert (control.action, control.source) == (ControlAction.RETRY, "dashboard")
        assert store.next_run_id("shop") == "shop-5"
        assert store.predictions("shop-4") == []


def test_newer_database_is_refused(state_dir: Path) -> None:
    """A database from a newer limitless raises StoreError asking for an upgrade."""
    state_dir.mkdir(parents=True)
    path = state_dir / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError) as caught:
        Store.open(state_dir)
    assert str(caught.value) == (
        f"{path} has schema version {SCHEMA_VERSION + 1}, but this limitless knows only up "
        f"to {SCHEMA_VERSION}: it was written by a newer limitless; upgrade limitless"
    )


def test_not_a_database_is_a_store_error(state_dir: Path) -> None:
    """A state.db that is not SQLite gives a StoreError naming the file and the step."""
    state_dir.mkdir(parents=True)
    path = state_dir / "state.db"
    path.write_bytes(b"this is not a database, just some text long enough" * 40)
    with pytest.raises(StoreError) as caught:
        Store.open(state_dir)
    assert str(caught.value) == f"{path}: failed to set up the connection: file is not a database"


def test_uncreatable_state_folder_is_a_store_error(tmp_path: Path) -> None:
    """A state folder that cannot be created gives a StoreError naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=re.escape(f"cannot create the state folder {blocker}/x")):
        Store.open(blocker / "x")


# --- runs --------------------------------------------------------------------


def test_run_round_trip(store: Store) -> None:
    """A run with every field set reads back equal."""
    run = make_run(
        status=RunStatus.MERGING,
        ended_at=2000.5,
        exit_code=1,
        reason="gate failed",
        supervisor_pid=4242,
        tmux_socket="limitless-x",
        tmux_session="limitless-shop-1",
        max_concurrency=16,
        schedule="waves",
        no_merge=True,
        merge_strategy="squash",
        layout="grid",
        merged_sha="b" * 40,
        landed=True,
        slot_panes="%1,%2,%3",
        control_pane="%0",
        dashboard_pane="%4",
    )
    store.create_run(run)
    assert store.get_run("shop-1") == run
    assert isinstance(store.get_run("shop-1").status, RunStatus)


def test_create_run_fills_created_at(store: Store) -> None:
    """A run created with created_at 0 gets the current time."""
    before = time.time()
    store.create_run(make_run(created_at=0.0))
    assert before <= store.get_run("shop-1").created_at <= time.time()


def test_duplicate_run_is_refused(store: Store) -> None:
    """Creating a run whose id exists is a UsageError."""
    store.create_run(make_run())
    with pytest.raises(UsageError, match=r"^run 'shop-1' already exists$"):
        store.create_run(make_run())


def test_list_and_latest_runs_newest_first(store: Store) -> None:
    """list_runs is newest first; latest_run is its head, None when empty."""
    assert store.latest_run() is None
    assert store.list_runs() == []
    store.create_run(make_run("shop-1", created_at=10.0))
    store.create_run(make_run("docs-1", created_at=30.0))
    store.create_run(make_run("shop-2", created_at=20.0))
    assert [r.id for r in store.list_runs()] == ["docs-1", "shop-2", "shop-1"]
    latest = store.latest_run()
    assert latest is not None and latest.id == "docs-1"


def test_update_run(store: Store) -> None:
    """update_run sets only the named fields, converting enums and bools."""
    store.create_run(make_run())
    store.update_run("shop-1", status=RunStatus.DONE, exit_code=0, landed=True, ended_at=5.0)
    run = store.get_run("shop-1")
    assert (run.status, run.exit_code, run.landed, run.ended_at) == (RunStatus.DONE, 0, True, 5.0)
    assert run.base == "main"
    store.update_run("shop-1", status="failed")
    assert store.get_run("shop-1").status is RunStatus.FAILED


def test_next_run_id_counts_per_plan(state_dir: Path) -> None:
    """Run ids count up per plan name, survive reopening and skip ids already taken."""
    with Store.open(state_dir) as store:
        assert [store.next_run_id("shop") for _ in range(3)] == ["shop-1", "shop-2", "shop-3"]
        assert store.next_run_id("docs") == "docs-1"
        store.create_run(make_run("shop-4"))
        store.create_run(make_run("shop-5"))
    with Store.open(state_dir) as store:
        assert store.next_run_id("shop") == "shop-6"
        assert store.next_run_id("docs") == "docs-2"


def test_next_run_id_needs_a_name(store: Store) -> None:
    """An empty plan name is refused."""
    with pytest.raises(ValueError, match=r"^a run id needs a plan name; got an empty one$"):
        store.next_run_id("")


def test_delete_run_removes_everything_of_it(run_store: Store) -> None:
    """Deleting a run removes its tasks, attempts, events, requests and predictions."""
    run_store.add_attempt(Attempt("shop-1", "a", 1, 1.0))
    run_store.add_event("shop-1", "x")
    run_store.request("shop-1", ControlAction.MERGE)
    run_store.set_predictions("shop-1", [Prediction("shop-1", "a", "b", ("f",), 1.0)])
    run_store.create_run(make_run("shop-2", created_at=2000.0))
    run_store.delete_run("shop-1")
    assert [r.id for r in run_store.list_runs()] == ["shop-2"]
    for table in ("tasks", "attempts", "events", "controls", "predictions"):
        assert run_store._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


# --- tasks -------------------------------------------------------------------


def test_task_round_trip(store: Store) -> None:
    """A task with every field set reads back equal."""
    store.create_run(make_run())
    task = make_task(
        "api",
        0,
        status=TaskStatus.WAITING,
        attempt=2,
        exit_code=3,
        reason="timed out",
        start_sha="c" * 40,
        head_sha="d" * 40,
        pane_id="%7",
        pid=999,
        slot=2,
        started_at=100.0,
        ended_at=200.0,
        not_before=150.0,
        progress=42.5,
        cost_usd=1.25,
        commits=3,
        files_changed=4,
        insertions=50,
        deletions=6,
        setup_done=True,
        session_id="sess-1",
        last_signal="waiting",
        last_signal_at=190.0,
        waiting_reason="asks for approval",
        merge_status=MergeStatus.CONFLICT,
        merge_order=1,
        merge_reason="conflict in 2 files",
        conflict_files=["a.py", "b/c.py"],
        duration_s=99.5,
    )
    store.add_tasks("shop-1", [task])
    assert store.get_task("shop-1", "api") == task


def test_get_tasks_by_position(store: Store) -> None:
    """get_tasks returns a run's tasks ordered by position, not by insertion or id."""
    store.create_run(make_run())
    store.add_tasks("shop-1", [make_task("z", 1), make_task("y", 2), make_task("x", 0)])
    assert [t.id for t in store.get_tasks("shop-1")] == ["x", "z", "y"]


def test_add_tasks_is_all_or_nothing(run_store: Store) -> None:
    """A batch with one existing task adds none of them."""
    with pytest.raises(UsageError, match=r"^task 'a' already exists in run 'shop-1'$"):
        run_store.add_tasks("shop-1", [make_task("c", 2), make_task("a", 3)])
    assert [t.id for t in run_store.get_tasks("shop-1")] == ["a", "b"]


def test_add_tasks_of_another_run_is_refused(run_store: Store) -> None:
    """A task row whose run_id differs from the run it is added to is a ValueError."""
    with pytest.raises(ValueError, match=r"^task 'c' belongs to run 'shop-9', not 'shop-1'$"):
        run_store.add_tasks("shop-1", [make_task("c", 2, run_id="shop-9")])


def test_update_task(run_store: Store) -> None:
    """update_task sets only the named fields of the named task."""
    run_store.update_task(
        "shop-1", "a", status=TaskStatus.RUNNING, conflict_files=["x"], setup_done=True, pid=7
    )
    a = run_store.get_task("shop-1", "a")
    assert (a.status, a.conflict_files, a.setup_done, a.pid) == (
        TaskStatus.RUNNING,
        ["x"],
        True,
        7,
    )
    assert run_store.get_task("shop-1", "b") == make_task("b", 1)
    run_store.update_task("shop-1", "a")  # nothing to set is fine


class BadUpdate(NamedTuple):
    test_id: str
    fields: dict[str, object]
    error: type[Exception]
    message: str


TASK_FIELDS = (
    "run_id, id, position, agent, branch, worktree, status, attempt, exit_code, reason, "
    "start_sha, head_sha, pane_id, pid, slot, started_at, ended_at, not_before, progress, "
    "cost_usd, commits, files_changed, insertions, deletions, setup_done, session_id, "
    "last_signal, last_signal_at, waiting_reason, waiting_kind, idle_done_at, merge_status, "
    "merge_order, merge_reason, conflict_files, duration_s"
)

BAD_UPDATES = [
    BadUpdate(
        "typo",
        {"stauts": "done"},
        ValueError,
        "unknown TaskRow field 'stauts'; did you mean 'status'?",
    ),
    BadUpdate(
        "unknown",
        {"x": 1},
        ValueError,
        f"unknown TaskRow field 'x'; fields: {TASK_FIELDS}",
    ),
    BadUpdate(
        "sql in name",
        {"status = 'done' --": 1},
        ValueError,
        f"unknown TaskRow field \"status = 'done' --\"; fields: {TASK_FIELDS}",
    ),
    BadUpdate(
        "key",
        {"id": "c"},
        ValueError,
        "TaskRow field 'id' is part of the key and cannot be updated",
    ),
    BadUpdate(
        "bad status",
        {"status": "finished"},
        ValueError,
        "TaskRow field 'status' got 'finished'; accepted: pending, ready, running, waiting, "
        "done, failed, blocked, killed",
    ),
    BadUpdate("none", {"reason": None}, ValueError, "TaskRow field 'reason' cannot be None"),
    BadUpdate("type", {"pid": "12"}, TypeError, "TaskRow field 'pid' takes an int, got str"),
    BadUpdate(
        "bool for int",
        {"commits": True},
        TypeError,
        "TaskRow field 'commits' takes an int, got bool",
    ),
    BadUpdate(
        "list",
        {"conflict_files": "a.py"},
        TypeError,
        "TaskRow field 'conflict_files' takes a list, got str",
    ),
]


@pytest.mark.parametrize("case", BAD_UPDATES, ids=[c.test_id for c in BAD_UPDATES])
def test_bad_task_updates_are_refused(run_store: Store, case: BadUpdate) -> None:
    """A wrong field name, key, value or type is refused with a message naming it."""
    with pytest.raises(case.error) as caught:
        run_store.update_task("shop-1", "a", **case.fields)
    assert str(caught.value) == case.message
    assert run_store.get_task("shop-1", "a") == make_task("a", 0)


def test_bad_run_update_names_run_fields(store: Store) -> None:
    """update_run checks names against Run, not TaskRow."""
    store.create_run(make_run())
    with pytest.raises(ValueError, match=r"^unknown Run field 'merge_status'; did you mean"):
        store.update_run("shop-1", merge_status="merged")


class Transition(NamedTuple):
    test_id: str
    current: TaskStatus
    from_: tuple[TaskStatus, ...]
    happens: bool


TRANSITIONS = [
    Transition("from the only status", TaskStatus.RUNNING, (TaskStatus.RUNNING,), True),
    Transition(
        "from one of several", TaskStatus.WAITING, (TaskStatus.RUNNING, TaskStatus.WAITING), True
    ),
    Transition("from another status", TaskStatus.KILLED, (TaskStatus.RUNNING,), False),
    Transition("from nothing", TaskStatus.RUNNING, (), False),
]


@pytest.mark.parametrize("case", TRANSITIONS, ids=[c.test_id for c in TRANSITIONS])
def test_transition_is_compare_and_set(run_store: Store, case: Transition) -> None:
    """transition moves the task and sets fields only if its status is in from_."""
    run_store.update_task("shop-1", "a", status=case.current)
    happened = run_store.transition(
        "shop-1", "a", case.from_, TaskStatus.DONE, exit_code=0, ended_at=9.0
    )
    assert (happened is not None) is case.happens
    a = run_store.get_task("shop-1", "a")
    if happened is not None:
        assert happened == a
    if case.happens:
        assert (a.status, a.exit_code, a.ended_at) == (TaskStatus.DONE, 0, 9.0)
    else:
        assert (a.status, a.exit_code, a.ended_at) == (case.current, None, None)


def test_racing_transitions_have_one_winner(state_dir: Path) -> None:
    """Of two stores moving a running task to different ends, exactly one wins."""
    with Store.open(state_dir) as supervisor, Store.open(state_dir) as wrapper:
        supervisor.create_run(make_run())
        supervisor.add_tasks("shop-1", [make_task("a", 0, status=TaskStatus.RUNNING)])
        active = (TaskStatus.RUNNING, TaskStatus.WAITING)
        assert wrapper.transition("shop-1", "a", active, TaskStatus.DONE, exit_code=0)
        assert not supervisor.transition("shop-1", "a", active, TaskStatus.KILLED, reason="kill")
        a = supervisor.get_task("shop-1", "a")
        assert (a.status, a.exit_code, a.reason) == (TaskStatus.DONE, 0, "")


def test_transition_refuses_status_field(run_store: Store) -> None:
    """Passing status as a field of transition is a ValueError."""
    with pytest.raises(ValueError, match=r"^transition\(\) sets 'status' itself"):
        run_store.transition("shop-1", "a", [TaskStatus.PENDING], TaskStatus.READY, status="done")


# --- unknown runs and tasks ----------------------------------------------------


def test_unknown_run_without_runs(store: Store) -> None:
    """An unknown run in an empty store says there are no runs yet."""
    with pytest.raises(UsageError) as caught:
        store.get_run("shop-9")
    assert str(caught.value) == "unknown run 'shop-9': this repository has no runs yet"


def test_unknown_run_lists_known_runs(store: Store) -> None:
    """An unknown run's message lists the known runs, newest first."""
    store.create_run(make_run("shop-1", created_at=1.0))
    store.create_run(make_run("shop-2", created_at=2.0))
    expected = "unknown run 'shop-9'; known runs: shop-2, shop-1"
    for call in (
        lambda: store.get_run("shop-9"),
        lambda: store.get_tasks("shop-9"),
        lambda: store.get_task("shop-9", "a"),
        lambda: store.update_run("shop-9", reason="x"),
        lambda: store.update_task("shop-9", "a", reason="x"),
        lambda: store.add_event("shop-9", "x"),
        lambda: store.events("shop-9"),
        lambda: store.request("shop-9", ControlAction.MERGE),
        lambda: store.add_tasks("shop-9", []),
        lambda: store.set_predictions("shop-9", []),
    ):
        with pytest.raises(UsageError) as caught:
            call()
        assert str(caught.value) == expected


def test_unknown_run_list_is_capped(store: Store) -> None:
    """With many runs the message names the ten newest and counts the rest."""
    for n in range(1, 13):
        store.create_run(make_run(f"r-{n}", created_at=float(n)))
    with pytest.raises(UsageError) as caught:
        store.get_run("r-99")
    assert str(caught.value) == (
        "unknown run 'r-99'; known runs: r-12, r-11, r-10, r-9, r-8, r-7, r-6, r-5, r-4, r-3"
        " and 2 more"
    )


def test_unknown_task_lists_known_tasks(run_store: Store) -> None:
    """An unknown task's message names the run and its tasks in order."""
    expected = "unknown task 'zz' in run 'shop-1'; known tasks: a, b"
    for call in (
        lambda: run_store.get_task("shop-1", "zz"),
        lambda: run_store.update_task("shop-1", "zz", reason="x"),
        lambda: run_store.transition("shop-1", "zz", [TaskStatus.PENDING], TaskStatus.READY),
        lambda: run_store.request("shop-1", ControlAction.KILL, "zz"),
        lambda: run_store.add_attempt(Attempt("shop-1", "zz", 1, 1.0)),
        lambda: run_store.attempts("shop-1", "zz"),
    ):
        with pytest.raises(UsageError) as caught:
            call()
        assert str(caught.value) == expected


def test_unknown_task_in_run_without_tasks(store: Store) -> None:
    """A task looked up in a run with no tasks says so."""
    store.create_run(make_run())
    with pytest.raises(UsageError) as caught:
        store.get_task("shop-1", "a")
    assert str(caught.value) == "unknown task 'a': run 'shop-1' has no tasks"


# --- attempts ------------------------------------------------------------------


def test_attempt_round_trip(run_store: Store) -> None:
    """Attempts are recorded, ended and listed per task and per run."""
    run_store.add_attempt(Attempt("shop-1", "a", 1, 10.0))
    run_store.add_attempt(Attempt("shop-1", "b", 1, 11.0))
    run_store.end_attempt("shop-1", "a", 1, 20.0, 1, "exit 1", "refs/limitless/a/1")
    run_store.add_attempt(Attempt("shop-1", "a", 2, 21.0))
    first = Attempt("shop-1", "a", 1, 10.0, 20.0, 1, "exit 1", "refs/limitless/a/1")
    assert run_store.attempts("shop-1", "a") == [first, Attempt("shop-1", "a", 2, 21.0)]
    assert [(x.task_id, x.attempt) for x in run_store.attempts("shop-1")] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
    ]


def test_add_attempt_again_restarts_it(run_store: Store) -> None:
    """Recording an attempt that exists replaces it (a resume after a crash)."""
    run_store.add_attempt(Attempt("shop-1", "a", 1, 10.0))
    run_store.end_attempt("shop-1", "a", 1, 20.0, None, "supervisor died", None)
    run_store.add_attempt(Attempt("shop-1", "a", 1, 30.0))
    assert run_store.attempts("shop-1", "a") == [Attempt("shop-1", "a", 1, 30.0)]


def test_a_task_costs_what_all_its_attempts_reported(run_store: Store) -> None:
    """Each attempt's reported cost is kept; the task's cost is their sum, so a retry
    does not forget what the failed attempt spent (and a restarted attempt keeps it)."""
    run_store.add_attempt(Attempt("shop-1", "a", 1, 10.0))
    run_store.record_cost("shop-1", "a", 1, 0.25)
    run_store.record_cost("shop-1", "a", 1, 0.75)  # running totals replace each other
    assert run_store.get_task("shop-1", "a").cost_usd == 0.75
    run_store.end_attempt("shop-1", "a", 1, 20.0, 1, "exit 1", None)
    run_store.add_attempt(Attempt("shop-1", "a", 2, 21.0))
    assert run_store.get_task("shop-1", "a").cost_usd == 0.75
    run_store.record_cost("shop-1", "a", 2, 0.5)
    assert run_store.get_task("shop-1", "a").cost_usd == 1.25
    run_store.add_attempt(Attempt("shop-1", "a", 2, 30.0))  # restarted after a crash
    assert [x.cost_usd for x in run_store.attempts("shop-1", "a")] == [0.75, 0.5]
    assert run_store.get_task("shop-1", "b").cost_usd is None


def test_end_unknown_attempt(run_store: Store) -> None:
    """Ending an attempt never started is a UsageError naming it."""
    with pytest.raises(UsageError) as caught:
        run_store.end_attempt("shop-1", "a", 3, 1.0, 0, "", None)
    assert (
        str(caught.value) == "unknown attempt 3 of task 'a' of run 'shop-1': it was never started"
    )


# --- events --------------------------------------------------------------------


def test_event_round_trip_and_paging(run_store: Store) -> None:
    """Events keep kind, task and JSON data; after_id and limit page through them."""
    before = time.time()
    first = run_store.add_event("shop-1", "run.started")
    second = run_store.add_event(
        "shop-1", "task.progress", task_id="a", percent=42.5, files=["x"], note=None
    )
    third = run_store.add_event("shop-1", "task.log", task_id="b", path=Path("/l/b.log"))
    assert first < second < third
    events = run_store.events("shop-1")
    assert [e.id for e in events] == [first, second, third]
    assert events[1] == Event(
        second,
        "shop-1",
        "a",
        events[1].ts,
        "task.progress",
        {"percent": 42.5, "files": ["x"], "note": None},
    )
    assert before <= events[1].ts <= time.time()
    assert events[2].data == {"path": "/l/b.log"}  # odd values are stored as their str
    assert [e.id for e in run_store.events("shop-1", after_id=first)] == [second, third]
    assert [e.id for e in run_store.events("shop-1", after_id=first, limit=1)] == [second]
    assert run_store.events("shop-1", after_id=third) == []


def test_last_event_id_and_data_version(state_dir: Path) -> None:
    """last_event_id follows the newest event; data_version changes on others' commits."""
    with Store.open(state_dir) as writer, Store.open(state_dir) as poller:
        writer.create_run(make_run())
        writer.create_run(make_run("docs-1"))
        assert poller.last_event_id("shop-1") == 0
        version = poller.data_version()
        assert poller.data_version() == version
        event = writer.add_event("shop-1", "x")
        writer.add_event("docs-1", "y")
        assert poller.data_version() != version
        assert poller.last_event_id("shop-1") == event
        assert poller.last_event_id() == event + 1


# --- control requests --------------------------------------------------------


def test_control_request_lifecycle(run_store: Store) -> None:
    """A request is pending until completed; completing twice keeps the first result."""
    before = time.time()
    kill = run_store.request("shop-1", ControlAction.KILL, "a", source="dashboard")
    merge = run_store.request("shop-1", ControlAction.MERGE)
    pending = run_store.pending_requests("shop-1")
    assert [p.id for p in pending] == [kill, merge]
    assert pending[0] == ControlRequest(
        kill, "shop-1", "a", ControlAction.KILL, "dashboard", pending[0].created_at
    )
    assert pending[1].source == "cli" and pending[1].task_id is None
    assert before <= pending[0].created_at <= time.time()

    run_store.complete_request(kill, "killed")
    run_store.complete_request(kill, "again")
    assert [p.id for p in run_store.pending_requests("shop-1")] == [merge]
    done = run_store.requests("shop-1")[0]
    assert (done.result, done.action) == ("killed", ControlAction.KILL)
    assert done.done_at is not None and done.done_at >= done.created_at


def test_complete_unknown_request(run_store: Store) -> None:
    """Completing a request that does not exist is a UsageError."""
    with pytest.raises(UsageError, match=r"^unknown control request 99$"):
        run_store.complete_request(99, "x")


def test_request_action_is_checked(run_store: Store) -> None:
    """An action that is not a ControlAction is refused."""
    with pytest.raises(ValueError, match=r"^ControlRequest field 'action' got 'explode'"):
        run_store.request("shop-1", "explode")  # type: ignore[arg-type]


# --- predictions -------------------------------------------------------------


def test_predictions_replace_all_of_a_run(run_store: Store) -> None:
    """set_predictions replaces every prediction of the run and leaves other runs alone."""
    run_store.create_run(make_run("shop-2", created_at=2000.0))
    run_store.add_tasks("shop-2", [make_task("a", 0, run_id="shop-2")])
    other = Prediction("shop-2", "a", "", ("z",), 5.0)
    run_store.set_predictions("shop-2", [other])
    old = [
        Prediction("shop-1", "b", "a", ("x.py",), 1.0),
        Prediction("shop-1", "a", "", ("README.md", "y.py"), 1.0),
    ]
    run_store.set_predictions("shop-1", old)
    assert run_store.predictions("shop-1") == sorted(old, key=lambda p: (p.task_id, p.other))
    new = [Prediction("shop-1", "a", "b", ("x.py",), 2.0)]
    run_store.set_predictions("shop-1", new)
    assert run_store.predictions("shop-1") == new
    run_store.set_predictions("shop-1", [])
    assert run_store.predictions("shop-1") == []
    assert run_store.predictions("shop-2") == [other]


# --- paths ---------------------------------------------------------------------


def test_run_dir_and_log_path(store: Store, state_dir: Path) -> None:
    """Run folders and task logs live under state_dir/runs/<run>."""
    assert store.run_dir("shop-1") == state_dir / "runs" / "shop-1"
    assert store.log_path("shop-1", "api.build") == state_dir / "runs/shop-1/logs/api.build.log"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "a\\b"])
def test_unsafe_path_names_are_refused(store: Store, name: str) -> None:
    """Ids that would leave the state folder are refused."""
    with pytest.raises(ValueError, match="cannot be used as a file name"):
        store.log_path("shop-1", name)
    with pytest.raises(ValueError, match="cannot be used as a file name"):
        store.run_dir(name)


# --- transactions and locking ------------------------------------------------


def test_transaction_commits_together(state_dir: Path) -> None:
    """Writes inside transaction() are invisible to others until the block ends."""
    with Store.open(state_dir) as store, Store.open(state_dir) as other:
        store.create_run(make_run())
        with store.transaction():
            store.add_tasks("shop-1", [make_task("a", 0)])
            store.update_task("shop-1", "a", commits=1)
            assert store.get_task("shop-1", "a").commits == 1
            assert other.get_tasks("shop-1") == []
        assert other.get_task("shop-1", "a").commits == 1


def test_transaction_rolls_back_on_error(run_store: Store) -> None:
    """An exception in a transaction block undoes every write of the block."""
    with pytest.raises(RuntimeError), run_store.transaction():
        run_store.update_task("shop-1", "a", commits=5)
        run_store.add_event("shop-1", "x")
        raise RuntimeError
    assert run_store.get_task("shop-1", "a").commits == 0
    assert run_store.events("shop-1") == []


def test_failed_call_inside_transaction_undoes_only_itself(run_store: Store) -> None:
    """A store call that fails inside a block leaves no partial writes; the block goes on."""
    with run_store.transaction():
        run_store.update_task("shop-1", "a", commits=1)
        with pytest.raises(UsageError):
            run_store.add_tasks("shop-1", [make_task("c", 2), make_task("b", 3)])
        with run_store.transaction():  # nested blocks join the outer one
            run_store.update_task("shop-1", "b", commits=2)
    assert [(t.id, t.commits) for t in run_store.get_tasks("shop-1")] == [("a", 1), ("b", 2)]


def test_locked_database_waits_then_gives_a_clear_error(state_dir: Path) -> None:
    """A write lock held past the timeout gives a StoreError; reads still work meanwhile."""
    with Store.open(state_dir) as setup:
        setup.create_run(make_run())
    holder = sqlite3.connect(state_dir / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(state_dir, lock_timeout_s=0.2) as store:
            assert store.get_run("shop-1").reason == ""
            started = time.monotonic()
            with pytest.raises(StoreError) as caught:
                store.update_run("shop-1", reason="x")
            assert time.monotonic() - started >= 0.2
            assert re.fullmatch(
                re.escape(f"{state_dir / 'state.db'}: the database stayed locked for 0.2 s while")
                + r" trying to update run 'shop-1' \(\d+ retries\); another process holds it"
                r" \(a stuck limitless process\?\)",
                str(caught.value),
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Store.open(state_dir) as store:
        store.update_run("shop-1", reason="after")
        assert store.get_run("shop-1").reason == "after"


def test_closed_store_raises_store_error(state_dir: Path) -> None:
    """Using a closed store is a StoreError, not a raw sqlite3 error."""
    store = Store.open(state_dir)
    store.close()
    with pytest.raises(StoreError, match="failed to list runs"):
        store.list_runs()


# --- load ----------------------------------------------------------------------

WORKERS = 20
UPDATES = 200
SHARED_TASKS = 5  # each task row is incremented by WORKERS / SHARED_TASKS processes
RUN_ID_EVERY = 25
REQUEST_EVERY = 10


def _load_worker(
    state_dir: Path, worker: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """Hammer the store: read-modify-write a shared task row, add events and requests."""
    run_ids: list[str] = []
    try:
        with Store.open(state_dir) as store:
            barrier.wait(timeout=60)
            task_id = f"t{worker % SHARED_TASKS}"
            for n in range(UPDATES):
                with store.transaction():
                    task = store.get_task("load-1", task_id)
                    store.update_task("load-1", task_id, commits=task.commits + 1)
                store.add_event("load-1", "tick", task_id=task_id, worker=worker, n=n)
                if n % REQUEST_EVERY == 0:
                    store.request("load-1", ControlAction.KILL, task_id, source=f"w{worker}")
                if n % RUN_ID_EVERY == 0:
                    run_ids.append(store.next_run_id("load"))
        results.put((worker, "", run_ids))
    except BaseException as error:
        results.put((worker, f"{type(error).__name__}: {error}", run_ids))


def test_twenty_processes_lose_no_update(state_dir: Path) -> None:
    """20 processes x 200 read-modify-writes, events and requests: nothing lost, no error."""
    with Store.open(state_dir) as store:
        assert store.next_run_id("load") == "load-1"
        store.create_run(make_run("load-1"))
        store.add_tasks(
            "load-1", [make_task(f"t{i}", i, run_id="load-1") for i in range(SHARED_TASKS)]
        )
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_load_worker, args=(state_dir, worker, barrier, results))
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    assert [error for _, error, _ in reports if error] == []

    run_ids = [run_id for _, _, ids in reports for run_id in ids]
    per_worker = UPDATES // RUN_ID_EVERY
    assert sorted(run_ids) == sorted(f"load-{n}" for n in range(2, WORKERS * per_worker + 2))
    with Store.open(state_dir) as store:
        per_task = UPDATES * WORKERS // SHARED_TASKS
        assert [t.commits for t in store.get_tasks("load-1")] == [per_task] * SHARED_TASKS
        events = store.events("load-1")
        assert len(events) == WORKERS * UPDATES
        seen = {(e.data["worker"], e.data["n"]) for e in events}
        assert len(seen) == WORKERS * UPDATES
        assert len(store.pending_requests("load-1")) == WORKERS * UPDATES // REQUEST_EVERY
