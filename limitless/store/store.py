"""The SQLite store: every durable fact about runs, tasks, events and requests.

One database per repository at `<git-common-dir>/limitless/state.db`, shared by
the supervisor, every in-pane wrapper, the dashboard and the CLI. Many processes
read and write it at once: the database runs in WAL mode, every write is one
`BEGIN IMMEDIATE` transaction, and a busy database is waited for (bounded), so
no caller ever sees "database is locked". Every other SQLite failure becomes a
`StoreError` naming the database and what was being done.

The schema carries a version (`PRAGMA user_version`) and grows only through the
forward migrations in `MIGRATIONS`, applied in order, all at once, under the
write lock. A database written by a newer limitless is refused.

The `Store` class is the one place SQL runs: one short method per question or change,
over 700 lines together; rows, columns and migrations live beside it.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from limitless.errors import StoreError, UsageError
from limitless.states import ControlAction, TaskStatus
from limitless.store.columns import ATTEMPTS, CONTROLS, EVENTS, PREDICTIONS, RUNS, TASKS
from limitless.store.rows import Attempt, ControlRequest, Event, Prediction, Run, TaskRow
from limitless.store.schema import (
    migrate,
    rollback,
)

logger = logging.getLogger(__name__)

DB_NAME = "state.db"
LOCK_TIMEOUT_S = 30.0


def _is_busy(error: sqlite3.Error) -> bool:
    """Whether `error` means another connection holds a lock we need (worth waiting for)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    text = str(error).lower()
    return "database is locked" in text or "database is busy" in text or "table is locked" in text


def _safe_name(kind: str, name: str) -> str:
    """`name` if it can be one path component inside the state folder, else ValueError."""
    if name in ("", ".", "..") or any(ch in name for ch in "/\\\0"):
        msg = f"{kind} {name!r} cannot be used as a file name"
        raise ValueError(msg)
    return name


def _listing(names: Sequence[str], limit: int = 10) -> str:
    """`a, b, c` — at most `limit` names, then how many more there are."""
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return f"{shown} and {more} more" if more > 0 else shown


T = TypeVar("T")


# --- the store ---------------------------------------------------------------


class Store:
    """Typed access to the state database of one repository.

    A Store holds one SQLite connection and must be used from the thread that
    opened it (open one Store per thread; opening is cheap once the schema is
    current). Every method is one transaction of its own, unless called inside
    `with store.transaction():`, which makes several calls one atomic unit.
    """

    def __init__(
        self, conn: sqlite3.Connection, state_dir: Path, path: Path, lock_timeout_s: float
    ) -> None:
        self._conn = conn
        self.state_dir = state_dir
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self._depth = 0  # nesting depth of transaction()/write units in progress
        self._savepoints = 0

    # -- opening and closing --------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> Store:
        """Open (creating the folder, database and schema if needed) `state_dir/state.db`."""
        state_dir = Path(state_dir)
        path = state_dir / DB_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            msg = f"cannot create the state folder {state_dir}: {error.strerror or error}"
            raise StoreError(msg) from error
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=lock_timeout_s)
        except sqlite3.Error as error:
            msg = f"{path}: cannot open the state database: {error}"
            raise StoreError(msg) from error
        conn.row_factory = sqlite3.Row
        store = cls(conn, state_dir, path, lock_timeout_s)
        try:
            store._retry("set up the connection", store._setup)
        except BaseException:
            conn.close()
            raise
        return store

    def _setup(self) -> None:
        """Configure the connection (busy wait, WAL, synchronous, foreign keys) and migrate."""
        conn = self._conn
        wait_ms = int(min(self.lock_timeout_s, 5.0) * 1000)
        conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            msg = f"{self.path}: cannot switch the database to WAL mode (it stays {mode!r})"
            raise StoreError(msg)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, self.path)

    def close(self) -> None:
        """Close the connection; the Store cannot be used afterwards."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- paths ----------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run's logs and files: `state_dir/runs/<run>` (not created)."""
        return self.state_dir / "runs" / _safe_name("run id", run_id)

    def log_path(self, run_id: str, task_id: str) -> Path:
        """The output log of one task: `run_dir/logs/<task>.log` (not created)."""
        return self.run_dir(run_id) / "logs" / f"{_safe_name('task id', task_id)}.log"

    # -- transactions ---------------------------------------------------------

    def _retry(self, what: str, action: Callable[[], T]) -> T:
        """Run `action`, waiting out a busy database (bounded); wrap SQLite errors."""
        deadline = time.monotonic() + self.lock_timeout_s
        pause = 0.002
        tries = 0
        while True:
            try:
                return action()
            except sqlite3.Error as error:
                rollback(self._conn)
                busy = _is_busy(error)
                if busy and time.monotonic() < deadline:
                    tries += 1
                    logger.debug(
                        "busy database retried", extra={"db": str(self.path), "what": what}
                    )
                    left = deadline - time.monotonic()
                    time.sleep(max(0.0, min(pause * random.uniform(0.5, 1.5), left)))
                    pause = min(pause * 2, 0.1)
                    continue
                if busy:
                    msg = (
                        f"{self.path}: the database stayed locked for {self.lock_timeout_s:g} s "
                        f"while trying to {what} ({tries} retries); another process holds it "
                        "(a stuck limitless process?)"
                    )
                else:
                    msg = f"{self.path}: failed to {what}: {error}"
                raise StoreError(msg) from error

    def _write(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` as one write transaction (a savepoint inside `transaction()`)."""
        conn = self._conn
        if self._depth:
            self._savepoints += 1
            name = f"s{self._savepoints}"

            def nested() -> T:
                conn.execute(f"SAVEPOINT {name}")
                try:
                    result = body(conn)
                except BaseException:
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                    raise
                conn.execute(f"RELEASE {name}")
                return result

            return self._guard(what, nested)

        def unit() -> T:
            conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
            finally:
                self._depth -= 1
            return result

        return self._retry(what, unit)

    def _read(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run the queries of `body` (retried on a busy database outside a transaction)."""
        conn = self._conn
        if self._depth:
            return self._guard(what, lambda: body(conn))
        return self._retry(what, lambda: body(conn))

    def _guard(self, what: str, action: Callable[[], T]) -> T:
        """Inside a transaction nothing is retried: SQLite errors become StoreError."""
        try:
            return action()
        except sqlite3.Error as error:
            msg = f"{self.path}: failed to {what}: {error}"
            raise StoreError(msg) from error

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Make every store call in the block one atomic write transaction.

        The write lock is taken at the start (waiting for it as any write does),
        so a read-modify-write inside the block cannot lose an update. Nested
        blocks join the outer one. An exception rolls everything back.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        conn = self._conn
        self._retry("start a transaction", lambda: conn.execute("BEGIN IMMEDIATE"))
        self._depth = 1
        try:
            yield self
        except BaseException:
            rollback(conn)
            raise
        else:
            try:
                self._guard("commit a transaction", lambda: conn.execute("COMMIT"))
            except StoreError:
                rollback(conn)
                raise
        finally:
            self._depth = 0

    # -- change detection -----------------------------------------------------

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (cheap to poll)."""
        return self._read(
            "read the data version",
            lambda conn: int(conn.execute("PRAGMA data_version").fetchone()[0]),
        )

    def last_event_id(self, run_id: str | None = None) -> int:
        """The id of the newest event (of `run_id`, or of any run); 0 when there is none."""

        def body(conn: sqlite3.Connection) -> int:
            if run_id is None:
                row = conn.execute("SELECT MAX(id) FROM events").fetchone()
            else:
                row = conn.execute(
                    "SELECT MAX(id) FROM events WHERE run_id = ?", (run_id,)
                ).fetchone()
            return int(row[0] or 0)

        return self._read("read the last event id", body)

    # -- existence checks (inside a transaction or read) ----------------------

    def _unknown_run(self, conn: sqlite3.Connection, run_id: str) -> UsageError:
        known = [
            row[0]
            for row in conn.execute("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC")
        ]
        if not known:
            msg = f"unknown run {run_id!r}: this repository has no runs yet"
        else:
            msg = f"unknown run {run_id!r}; known runs: {_listing(known)}"
        return UsageError(msg)

    def _require_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise self._unknown_run(conn, run_id)

    def _unknown_task(self, conn: sqlite3.Connection, run_id: str, task_id: str) -> UsageError:
        self._require_run(conn, run_id)
        known = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM tasks WHERE run_id = ? ORDER BY position, id", (run_id,)
            )
        ]
        if not known:
            msg = f"unknown task {task_id!r}: run {run_id!r} has no tasks"
        else:
            msg = f"unknown task {task_id!r} in run {run_id!r}; known tasks: {_listing(known, 40)}"
        return UsageError(msg)

    def _require_task(self, conn: sqlite3.Connection, run_id: str, task_id: str) -> None:
        found = conn.execute(
            "SELECT 1 FROM tasks WHERE run_id = ? AND id = ?", (run_id, task_id)
        ).fetchone()
        if found is None:
            raise self._unknown_task(conn, run_id, task_id)

    # -- runs -----------------------------------------------------------------

    def next_run_id(self, plan_name: str) -> str:
        """A fresh run id `<plan>-<n>`, n counting up per plan name (atomic across processes)."""
        if not plan_name:
            msg = "a run id needs a plan name; got an empty one"
            raise ValueError(msg)

        def body(conn: sqlite3.Connection) -> str:
            while True:
                (n,) = conn.execute(
                    "INSERT INTO counters (name, value) VALUES (?, 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                    (f"run:{plan_name}",),
                ).fetchone()
                run_id = f"{plan_name}-{n}"
                if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    return run_id

        return self._write(f"number a new run of plan {plan_name!r}", body)

    def create_run(self, run: Run) -> None:
        """Record a new run (`created_at` 0 is stored as now); UsageError if the id is taken."""
        if not run.created_at:
            run.created_at = time.time()
        sql, names = RUNS.insert_sql()
        params = RUNS.values(run, names)

        def body(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run.id,)).fetchone() is not None:
                msg = f"run {run.id!r} already exists"
                raise UsageError(msg)
            conn.execute(sql, params)

        self._write(f"create run {run.id!r}", body)

    def get_run(self, run_id: str) -> Run:
        """The run `run_id`; UsageError naming the known runs if there is none."""

        def body(conn: sqlite3.Connection) -> Run:
            row = conn.execute(f"{RUNS.select} WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._unknown_run(conn, run_id)
            return RUNS.load(row)

        return self._read(f"read run {run_id!r}", body)

    def list_runs(self) -> list[Run]:
        """Every run of the repository, newest first."""
        return self._read(
            "list runs",
            lambda conn: [
                RUNS.load(row)
                for row in conn.execute(f"{RUNS.select} ORDER BY created_at DESC, rowid DESC")
            ],
        )

    def latest_run(self) -> Run | None:
        """The newest run, or None when there is none."""

        def body(conn: sqlite3.Connection) -> Run | None:
            row = conn.execute(
                f"{RUNS.select} ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            return None if row is None else RUNS.load(row)

        return self._read("read the latest run", body)

    def update_run(self, run_id: str, **fields: object) -> None:
        """Set some fields of a run (names checked against `Run`)."""
        assignments, params = RUNS.assignments(fields)
        if not fields:
            return

        def body(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*params, run_id))
            if cursor.rowcount == 0:
                raise self._unknown_run(conn, run_id)

        self._write(f"update run {run_id!r}", body)

    def add_resolver_cost(self, run_id: str, cost_usd: float) -> None:
        """Add what a resolver agent reported spending to the run's `resolver_cost_usd`."""

        def body(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE runs SET resolver_cost_usd = COALESCE(resolver_cost_usd, 0) + ? "
                "WHERE id = ?",
                (float(cost_usd), run_id),
            )
            if cursor.rowcount == 0:
                raise self._unknown_run(conn, run_id)

        self._write(f"add a resolver's cost to run {run_id!r}", body)

    def delete_run(self, run_id: str) -> None:
        """Forget a run and everything recorded about it (tasks, attempts, events, ...)."""

        def body(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise self._unknown_run(conn, run_id)

        self._write(f"delete run {run_id!r}", body)

    # -- tasks ----------------------------------------------------------------

    def add_tasks(self, run_id: str, tasks: Sequence[TaskRow]) -> None:
        """Record the tasks of a run, all or none; UsageError if one already exists."""
        sql, names = TASKS.insert_sql()
        rows: list[list[object]] = []
        for task in tasks:
            if task.run_id != run_id:
                msg = f"task {task.id!r} belongs to run {task.run_id!r}, not {run_id!r}"
                raise ValueError(msg)
            rows.append(TASKS.values(task, names))

        def body(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            for task, params in zip(tasks, rows, strict=True):
                exists = conn.execute(
                    "SELECT 1 FROM tasks WHERE run_id = ? AND id = ?", (run_id, task.id)
                ).fetchone()
                if exists is not None:
                    msg = f"task {task.id!r} already exists in run {run_id!r}"
                    raise UsageError(msg)
                conn.execute(sql, params)

        self._write(f"add {len(rows)} tasks to run {run_id!r}", body)

    def get_task(self, run_id: str, task_id: str) -> TaskRow:
        """One task; UsageError naming the run's known tasks if there is none."""

        def body(conn: sqlite3.Connection) -> TaskRow:
            row = conn.execute(
                f"{TASKS.select} WHERE run_id = ? AND id = ?", (run_id, task_id)
            ).fetchone()
            if row is None:
                raise self._unknown_task(conn, run_id, task_id)
            return TASKS.load(row)

        return self._read(f"read task {task_id!r} of run {run_id!r}", body)

    def get_tasks(self, run_id: str) -> list[TaskRow]:
        """Every task of a run, by position; UsageError if the run is unknown."""

        def body(conn: sqlite3.Connection) -> list[TaskRow]:
            rows = conn.execute(
                f"{TASKS.select} WHERE run_id = ? ORDER BY position, id", (run_id,)
            ).fetchall()
            if not rows:
                self._require_run(conn, run_id)
            return [TASKS.load(row) for row in rows]

        return self._read(f"read the tasks of run {run_id!r}", body)

    def update_task(self, run_id: str, task_id: str, **fields: object) -> None:
        """Set some fields of a task (names checked against `TaskRow`)."""
        assignments, params = TASKS.assignments(fields)
        if not fields:
            return

        def body(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                f"UPDATE tasks SET {assignments} WHERE run_id = ? AND id = ?",
                (*params, run_id, task_id),
            )
            if cursor.rowcount == 0:
                raise self._unknown_task(conn, run_id, task_id)

        self._write(f"update task {task_id!r} of run {run_id!r}", body)

    def transition(
        self,
        run_id: str,
        task_id: str,
        from_: Collection[TaskStatus],
        to: TaskStatus,
        *,
        event: tuple[str, Mapping[str, object]] | None = None,
        **fields: Any,  # Any: a caller's **dict must not be taken for `event`
    ) -> TaskRow | None:
        """Move a task to `to` (and set `fields`) only if its status is one of `from_`.

        A compare-and-set: of two racing processes (supervisor and in-pane wrapper)
        exactly one wins. The winner gets the task's new row, and its `event`
        (kind, data) is recorded in the same transaction; the loser gets None and
        records nothing.
        """
        if "status" in fields:
            msg = "transition() sets 'status' itself; pass the new status as `to`"
            raise ValueError(msg)
        assignments, params = TASKS.assignments({"status": to, **fields})
        allowed = [TASKS.columns["status"].encode("TaskRow", status) for status in from_]
        marks = ", ".join("?" for _ in allowed)
        encoded = EVENTS.columns["data"].encode("Event", dict(event[1])) if event else None

        def body(conn: sqlite3.Connection) -> TaskRow | None:
            cursor = conn.execute(
                f"UPDATE tasks SET {assignments} "
                f"WHERE run_id = ? AND id = ? AND status IN ({marks})",
                (*params, run_id, task_id, *allowed),
            )
            if cursor.rowcount == 0:
                self._require_task(conn, run_id, task_id)
                return None
            if event is not None:
                conn.execute(
                    "INSERT INTO events (run_id, task_id, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
                    (run_id, task_id, time.time(), event[0], encoded),
                )
            row = conn.execute(
                f"{TASKS.select} WHERE run_id = ? AND id = ?", (run_id, task_id)
            ).fetchone()
            return TASKS.load(row)

        return self._write(f"move task {task_id!r} of run {run_id!r} to {to}", body)

    # -- attempts -------------------------------------------------------------

    def add_attempt(self, attempt: Attempt) -> None:
        """Record the start of an attempt; recording it again restarts it (after a crash)."""
        sql, names = ATTEMPTS.insert_sql()
        # a restarted attempt keeps the cost its first run reported: that money is spent
        kept = (*ATTEMPTS.key, "cost_usd")
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in kept)
        sql += f" ON CONFLICT (run_id, task_id, attempt) DO UPDATE SET {updates}"
        params = ATTEMPTS.values(attempt, names)

        def body(conn: sqlite3.Connection) -> None:
            self._require_task(conn, attempt.run_id, attempt.task_id)
            conn.execute(sql, params)

        self._write(
            f"record attempt {attempt.attempt} of task {attempt.task_id!r} "
            f"of run {attempt.run_id!r}",
            body,
        )

    def record_cost(self, run_id: str, task_id: str, attempt: int, cost_usd: float) -> None:
        """The cost `attempt` of the task reports so far; the task's `cost_usd` becomes
        the sum over all its attempts (a retry does not forget what earlier ones spent)."""

        def body(conn: sqlite3.Connection) -> None:
            self._require_task(conn, run_id, task_id)
            conn.execute(
                "UPDATE attempts SET cost_usd = ? WHERE run_id = ? AND task_id = ? AND attempt = ?",
                (cost_usd, run_id, task_id, attempt),
            )
            conn.execute(
                "UPDATE tasks SET cost_usd = COALESCE((SELECT SUM(cost_usd) FROM attempts "
                "WHERE run_id = ? AND task_id = ?), 0) + CASE WHEN EXISTS (SELECT 1 FROM attempts "
                "WHERE run_id = ? AND task_id = ? AND attempt = ?) THEN 0 ELSE ? END "
                "WHERE run_id = ? AND id = ?",
                (run_id, task_id, run_id, task_id, attempt, cost_usd, run_id, task_id),
            )

        self._write(f"record the cost of task {task_id!r} of run {run_id!r}", body)

    def end_attempt(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        ended_at: float,
        exit_code: int | None,
        reason: str,
        ref: str | None,
    ) -> None:
        """Record how an attempt ended; UsageError if it was never started."""
        what = f"attempt {attempt} of task {task_id!r} of run {run_id!r}"

        def body(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE attempts SET ended_at = ?, exit_code = ?, reason = ?, ref = ? "
                "WHERE run_id = ? AND task_id = ? AND attempt = ?",
                (ended_at, exit_code, reason, ref, run_id, task_id, attempt),
            )
            if cursor.rowcount == 0:
                self._require_task(conn, run_id, task_id)
                msg = f"unknown {what}: it was never started"
                raise UsageError(msg)

        self._write(f"end {what}", body)

    def attempts(self, run_id: str, task_id: str | None = None) -> list[Attempt]:
        """The attempts of a run (or of one task), in the order they started."""

        def body(conn: sqlite3.Connection) -> list[Attempt]:
            if task_id is None:
                rows = conn.execute(
                    f"{ATTEMPTS.select} WHERE run_id = ? ORDER BY started_at, task_id, attempt",
                    (run_id,),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"{ATTEMPTS.select} WHERE run_id = ? AND task_id = ? ORDER BY attempt",
                    (run_id, task_id),
                ).fetchall()
            if not rows:
                if task_id is None:
                    self._require_run(conn, run_id)
                else:
                    self._require_task(conn, run_id, task_id)
            return [ATTEMPTS.load(row) for row in rows]

        return self._read(f"read the attempts of run {run_id!r}", body)

    # -- events ---------------------------------------------------------------

    def add_event(self, run_id: str, kind: str, task_id: str | None = None, **data: object) -> int:
        """Append an event (data stored as JSON; odd values as their str); returns its id.

        Ids grow in commit order, so a poller that remembers the last id it saw
        and asks for `events(run_id, after_id=...)` never misses one.
        """
        encoded = EVENTS.columns["data"].encode("Event", data)

        def body(conn: sqlite3.Connection) -> int:
            self._require_run(conn, run_id)
            cursor = conn.execute(
                "INSERT INTO events (run_id, task_id, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
                (run_id, task_id, time.time(), kind, encoded),
            )
            return int(cursor.lastrowid or 0)

        return self._write(f"record a {kind!r} event of run {run_id!r}", body)

    def events(self, run_id: str, after_id: int = 0, limit: int | None = None) -> list[Event]:
        """The events of a run with id above `after_id`, oldest first (at most `limit`)."""

        def body(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                f"{EVENTS.select} WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                (run_id, after_id, -1 if limit is None else limit),
            ).fetchall()
            if not rows:
                self._require_run(conn, run_id)
            return [EVENTS.load(row) for row in rows]

        return self._read(f"read the events of run {run_id!r}", body)

    # -- control requests -----------------------------------------------------

    def request(
        self,
        run_id: str,
        action: ControlAction,
        task_id: str | None = None,
        source: str = "cli",
    ) -> int:
        """Ask the supervisor to do `action` (on `task_id`); returns the request id."""
        encoded = CONTROLS.columns["action"].encode("ControlRequest", action)

        def body(conn: sqlite3.Connection) -> int:
            if task_id is None:
                self._require_run(conn, run_id)
            else:
                self._require_task(conn, run_id, task_id)
            cursor = conn.execute(
                "INSERT INTO controls (run_id, task_id, action, source, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, task_id, encoded, source, time.time()),
            )
            return int(cursor.lastrowid or 0)

        return self._write(f"request {action} in run {run_id!r}", body)

    def pending_requests(self, run_id: str) -> list[ControlRequest]:
        """The requests of a run not yet completed, oldest first."""

        def body(conn: sqlite3.Connection) -> list[ControlRequest]:
            rows = conn.execute(
                f"{CONTROLS.select} WHERE run_id = ? AND done_at IS NULL ORDER BY id", (run_id,)
            ).fetchall()
            if not rows:
                self._require_run(conn, run_id)
            return [CONTROLS.load(row) for row in rows]

        return self._read(f"read the pending requests of run {run_id!r}", body)

    def requests(self, run_id: str) -> list[ControlRequest]:
        """Every request of a run, done or not, oldest first."""

        def body(conn: sqlite3.Connection) -> list[ControlRequest]:
            rows = conn.execute(
                f"{CONTROLS.select} WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
            if not rows:
                self._require_run(conn, run_id)
            return [CONTROLS.load(row) for row in rows]

        return self._read(f"read the requests of run {run_id!r}", body)

    def complete_request(self, request_id: int, result: str) -> None:
        """Mark a request done with `result`; the first completion wins."""

        def body(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE controls SET done_at = ?, result = ? WHERE id = ? AND done_at IS NULL",
                (time.time(), result, request_id),
            )
            if cursor.rowcount:
                return
            if (
                conn.execute("SELECT 1 FROM controls WHERE id = ?", (request_id,)).fetchone()
                is None
            ):
                msg = f"unknown control request {request_id}"
                raise UsageError(msg)
            logger.debug(
                "request completed twice, first result kept", extra={"request": request_id}
            )

        self._write(f"complete control request {request_id}", body)

    # -- conflict predictions -------------------------------------------------

    def set_predictions(self, run_id: str, predictions: Sequence[Prediction]) -> None:
        """Replace every prediction of a run with `predictions`."""
        sql, names = PREDICTIONS.insert_sql()
        rows: list[list[object]] = []
        for prediction in predictions:
            if prediction.run_id != run_id:
                msg = (
                    f"prediction for task {prediction.task_id!r} belongs to run "
                    f"{prediction.run_id!r}, not {run_id!r}"
                )
                raise ValueError(msg)
            rows.append(PREDICTIONS.values(prediction, names))

        def body(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute("DELETE FROM predictions WHERE run_id = ?", (run_id,))
            conn.executemany(sql, rows)

        self._write(f"replace the conflict predictions of run {run_id!r}", body)

    def predictions(self, run_id: str) -> list[Prediction]:
        """The conflict predictions of a run, by task and other side."""

        def body(conn: sqlite3.Connection) -> list[Prediction]:
            rows = conn.execute(
                f"{PREDICTIONS.select} WHERE run_id = ? ORDER BY task_id, other", (run_id,)
            ).fetchall()
            if not rows:
                self._require_run(conn, run_id)
            return [PREDICTIONS.load(row) for row in rows]

        return self._read(f"read the conflict predictions of run {run_id!r}", body)
