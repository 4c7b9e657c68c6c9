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
"""

from __future__ import annotations

import difflib
import json
import logging
import random
import sqlite3
import time
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from enum import Enum
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from limitless.errors import StoreError, UsageError
from limitless.states import ControlAction, MergeStatus, RunStatus, TaskStatus, Waiting

logger = logging.getLogger(__name__)

DB_NAME = "state.db"
LOCK_TIMEOUT_S = 30.0


@dataclass
class Run:
    """One execution of a plan (a row of `runs`)."""

    id: str
    plan_name: str
    plan_path: str | None
    plan_json: str
    repo_root: str
    base: str
    base_sha: str
    worktree_root: str
    status: RunStatus = RunStatus.RUNNING
    created_at: float = 0.0
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    supervisor_pid: int | None = None
    tmux_socket: str | None = None
    tmux_session: str = ""
    max_concurrency: int = 4
    schedule: str = "deps"
    no_merge: bool = False
    merge_strategy: str = "merge"
    layout: str = "default"
    merged_sha: str | None = None
    landed: bool = False
    slot_panes: str = ""  # tmux pane ids of the slots, comma-separated, slot order
    control_pane: str = ""  # the pane of the supervisor
    dashboard_pane: str = ""


@dataclass
class TaskRow:
    """The live state of one task of a run (a row of `tasks`)."""

    run_id: str
    id: str
    position: int
    agent: str
    branch: str
    worktree: str
    status: TaskStatus = TaskStatus.PENDING
    attempt: int = 0
    exit_code: int | None = None
    reason: str = ""
    start_sha: str | None = None
    head_sha: str | None = None
    pane_id: str | None = None
    pid: int | None = None
    slot: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    not_before: float | None = None
    progress: float | None = None
    cost_usd: float | None = None
    commits: int = 0
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    setup_done: bool = False
    session_id: str | None = None
    last_signal: str | None = None
    last_signal_at: float | None = None
    waiting_reason: str = ""
    waiting_kind: Waiting = Waiting.OTHER
    """What a waiting task waits for: input (a question), idle (its turn ended), other."""
    idle_done_at: float | None = None
    """When an idle interactive agent is closed and its task done, unless the user types first."""
    merge_status: MergeStatus = MergeStatus.UNMERGED
    merge_order: int | None = None
    merge_reason: str = ""
    conflict_files: list[str] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass(frozen=True)
class Attempt:
    """One try at running a task (a row of `attempts`); `ref` keeps its work if any."""

    run_id: str
    task_id: str
    attempt: int
    started_at: float
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    ref: str | None = None
    cost_usd: float | None = None
    """What the agent of this attempt reported spending (the task's `cost_usd` sums them)."""


@dataclass(frozen=True)
class Event:
    """One entry of a run's append-only log (a row of `events`); `data` is JSON."""

    id: int
    run_id: str
    task_id: str | None
    ts: float
    kind: str
    data: dict[str, object]


@dataclass(frozen=True)
class ControlRequest:
    """A request (kill, retry, mark done, merge) for the supervisor (a row of `controls`)."""

    id: int
    run_id: str
    task_id: str | None
    action: ControlAction
    source: str
    created_at: float
    done_at: float | None = None
    result: str | None = None


@dataclass(frozen=True)
class Prediction:
    """A conflict git predicts between task `task_id` and `other` ("" = base)."""

    run_id: str
    task_id: str
    other: str
    files: tuple[str, ...]
    updated_at: float


# --- schema ------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One forward step of the schema: `version` is the schema version it produces."""

    version: int
    summary: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, tasks, attempts, events, control requests, counters",
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                plan_name TEXT NOT NULL,
                plan_path TEXT,
                plan_json TEXT NOT NULL,
                repo_root TEXT NOT NULL,
                base TEXT NOT NULL,
                base_sha TEXT NOT NULL,
                worktree_root TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'running',
                created_at REAL NOT NULL,
                ended_at REAL,
                exit_code INTEGER,
                reason TEXT NOT NULL DEFAULT '',
                supervisor_pid INTEGER,
                tmux_socket TEXT,
                tmux_session TEXT NOT NULL DEFAULT '',
                max_concurrency INTEGER NOT NULL DEFAULT 4,
                schedule TEXT NOT NULL DEFAULT 'deps',
                no_merge INTEGER NOT NULL DEFAULT 0,
                merge_strategy TEXT NOT NULL DEFAULT 'merge',
                layout TEXT NOT NULL DEFAULT 'default'
            )""",
            """CREATE TABLE tasks (
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                id TEXT NOT NULL,
                position INTEGER NOT NULL,
                agent TEXT NOT NULL,
                branch TEXT NOT NULL,
                worktree TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending',
                attempt INTEGER NOT NULL DEFAULT 0,
                exit_code INTEGER,
                reason TEXT NOT NULL DEFAULT '',
                start_sha TEXT,
                head_sha TEXT,
                pane_id TEXT,
                pid INTEGER,
                slot INTEGER,
                started_at REAL,
                ended_at REAL,
                progress REAL,
                cost_usd REAL,
                commits INTEGER NOT NULL DEFAULT 0,
                files_changed INTEGER NOT NULL DEFAULT 0,
                insertions INTEGER NOT NULL DEFAULT 0,
                deletions INTEGER NOT NULL DEFAULT 0,
                merge_status TEXT NOT NULL DEFAULT 'unmerged',
                PRIMARY KEY (run_id, id)
            )""",
            """CREATE TABLE attempts (
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                started_at REAL NOT NULL,
                ended_at REAL,
                exit_code INTEGER,
                reason TEXT NOT NULL DEFAULT '',
                ref TEXT,
                PRIMARY KEY (run_id, task_id, attempt),
                FOREIGN KEY (run_id, task_id) REFERENCES tasks(run_id, id) ON DELETE CASCADE
            )""",
            """CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                task_id TEXT,
                ts REAL NOT NULL,
                kind TEXT NOT NULL,
                data TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX events_by_run ON events(run_id, id)",
            """CREATE TABLE controls (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                task_id TEXT,
                action TEXT NOT NULL,
                source TEXT NOT NULL,
                created_at REAL NOT NULL,
                done_at REAL,
                result TEXT
            )""",
            "CREATE INDEX controls_pending ON controls(run_id, id) WHERE done_at IS NULL",
            """CREATE TABLE counters (
                name TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "conflict predictions; scheduling, signal and merge columns of tasks; landing of runs",
        (
            """CREATE TABLE predictions (
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                task_id TEXT NOT NULL,
                other TEXT NOT NULL,
                files TEXT NOT NULL DEFAULT '[]',
                updated_at REAL NOT NULL,
                PRIMARY KEY (run_id, task_id, other)
            )""",
            "ALTER TABLE runs ADD COLUMN merged_sha TEXT",
            "ALTER TABLE runs ADD COLUMN landed INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN not_before REAL",
            "ALTER TABLE tasks ADD COLUMN setup_done INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE tasks ADD COLUMN session_id TEXT",
            "ALTER TABLE tasks ADD COLUMN last_signal TEXT",
            "ALTER TABLE tasks ADD COLUMN last_signal_at REAL",
            "ALTER TABLE tasks ADD COLUMN waiting_reason TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE tasks ADD COLUMN merge_order INTEGER",
            "ALTER TABLE tasks ADD COLUMN merge_reason TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE tasks ADD COLUMN conflict_files TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE tasks ADD COLUMN duration_s REAL NOT NULL DEFAULT 0.0",
        ),
    ),
    Migration(
        3,
        "the tmux panes of a run (slots, supervisor, dashboard)",
        (
            "ALTER TABLE runs ADD COLUMN slot_panes TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE runs ADD COLUMN control_pane TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE runs ADD COLUMN dashboard_pane TEXT NOT NULL DEFAULT ''",
        ),
    ),
    Migration(
        4,
        "the cost each attempt reported (a task's cost is their sum)",
        ("ALTER TABLE attempts ADD COLUMN cost_usd REAL",),
    ),
    Migration(
        5,
        "what a waiting task waits for (needs input, idle) and when an idle one is done",
        (
            "ALTER TABLE tasks ADD COLUMN waiting_kind TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE tasks ADD COLUMN idle_done_at REAL",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


# --- row <-> column conversion -----------------------------------------------

_Kind = Literal["str", "int", "float", "bool", "enum", "list", "tuple", "dict", "any"]

# What each kind of column accepts from callers, and how to name it in a message.
_ACCEPTS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a str"),
    "int": ((int,), "an int"),
    "float": ((int, float), "a number"),
    "bool": ((bool, int), "a bool"),
    "list": ((list, tuple), "a list"),
    "tuple": ((list, tuple), "a tuple"),
    "dict": ((dict,), "a dict"),
}


@dataclass(frozen=True)
class _Column:
    """How one dataclass field is written to and read from its column."""

    name: str
    kind: _Kind
    optional: bool
    enum: type[Enum] | None = None

    def encode(self, owner: str, value: object) -> object:
        """The SQLite value for `value`; ValueError/TypeError naming the field if it is wrong."""
        if value is None:
            if not self.optional:
                msg = f"{owner} field {self.name!r} cannot be None"
                raise ValueError(msg)
            return None
        if self.enum is not None:
            try:
                return self.enum(value).value
            except ValueError:
                accepted = ", ".join(str(member.value) for member in self.enum)
                msg = f"{owner} field {self.name!r} got {value!r}; accepted: {accepted}"
                raise ValueError(msg) from None
        accepts = _ACCEPTS.get(self.kind)
        if accepts is not None:
            types_, expected = accepts
            if not isinstance(value, types_) or (isinstance(value, bool) and self.kind != "bool"):
                msg = f"{owner} field {self.name!r} takes {expected}, got {type(value).__name__}"
                raise TypeError(msg)
        if self.kind == "bool":
            return 1 if value else 0
        if self.kind in ("list", "tuple", "dict"):
            return json.dumps(value, sort_keys=True, default=str)
        return value

    def decode(self, value: object) -> object:
        """The field value for a SQLite value read back."""
        if value is None:
            return None
        if self.enum is not None:
            return self.enum(value)
        if self.kind == "bool":
            return bool(value)
        if self.kind == "float" and isinstance(value, int):
            return float(value)
        if self.kind in ("list", "tuple", "dict") and isinstance(value, str):
            loaded = json.loads(value)
            return tuple(loaded) if self.kind == "tuple" else loaded
        return value


def _column(name: str, hint: object) -> _Column:
    """Describe the column of field `name` from its type hint."""
    optional = False
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else object
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _Column(name, "enum", optional, hint)
    simple: dict[object, _Kind] = {
        str: "str",
        int: "int",
        float: "float",
        bool: "bool",
        list: "list",
        tuple: "tuple",
        dict: "dict",
    }
    return _Column(name, simple.get(typing.get_origin(hint) or hint, "any"), optional)


R = TypeVar("R")


class _Table(Generic[R]):
    """A table whose columns are exactly the fields of the row dataclass `row`."""

    def __init__(self, name: str, row: type[R], key: tuple[str, ...], generated: str = "") -> None:
        hints = typing.get_type_hints(row)
        self.name = name
        self.row = row
        self.key = key
        self.generated = generated  # a column SQLite assigns on insert ("" = none)
        self.columns = {f.name: _column(f.name, hints[f.name]) for f in dataclass_fields(row)}  # type: ignore[arg-type]
        self.select = f"SELECT {', '.join(self.columns)} FROM {name}"

    def load(self, row: sqlite3.Row) -> R:
        values = {name: column.decode(row[name]) for name, column in self.columns.items()}
        return self.row(**values)

    def insert_sql(self) -> tuple[str, list[str]]:
        names = [name for name in self.columns if name != self.generated]
        marks = ", ".join("?" for _ in names)
        return f"INSERT INTO {self.name} ({', '.join(names)}) VALUES ({marks})", names

    def values(self, row: R, names: Sequence[str]) -> list[object]:
        owner = self.row.__name__
        return [self.columns[name].encode(owner, getattr(row, name)) for name in names]

    def assignments(self, updates: Mapping[str, object]) -> tuple[str, list[object]]:
        """`col = ?, ...` and its parameters; names are checked against the fields."""
        owner = self.row.__name__
        parts: list[str] = []
        params: list[object] = []
        for name, value in updates.items():
            column = self.columns.get(name)
            if column is None:
                near = difflib.get_close_matches(name, list(self.columns), n=1)
                hint = (
                    f"; did you mean {near[0]!r}?"
                    if near
                    else f"; fields: {', '.join(self.columns)}"
                )
                msg = f"unknown {owner} field {name!r}{hint}"
                raise ValueError(msg)
            if name in self.key or name == self.generated:
                msg = f"{owner} field {name!r} is part of the key and cannot be updated"
                raise ValueError(msg)
            parts.append(f"{column.name} = ?")
            params.append(column.encode(owner, value))
        return ", ".join(parts), params


RUNS = _Table("runs", Run, ("id",))
TASKS = _Table("tasks", TaskRow, ("run_id", "id"))
ATTEMPTS = _Table("attempts", Attempt, ("run_id", "task_id", "attempt"))
EVENTS = _Table("events", Event, ("id",), generated="id")
CONTROLS = _Table("controls", ControlRequest, ("id",), generated="id")
PREDICTIONS = _Table("predictions", Prediction, ("run_id", "task_id", "other"))
TABLES: tuple[_Table[Any], ...] = (RUNS, TASKS, ATTEMPTS, EVENTS, CONTROLS, PREDICTIONS)


# --- migrations --------------------------------------------------------------


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 = empty)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> int:
    """Bring the database of `conn` (autocommit mode) up to `target`; return the old version.

    Runs every missing migration in order inside one `BEGIN IMMEDIATE`
    transaction, so two processes opening a fresh database cannot both migrate:
    the second waits for the lock, then sees the new version and does nothing.
    """
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        msg = (
            f"{path} has schema version {found}, but this limitless knows only up to "
            f"{SCHEMA_VERSION}: it was written by a newer limitless; upgrade limitless"
        )
        raise StoreError(msg)
    if found >= target:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)
        for migration in MIGRATIONS:
            if found < migration.version <= target:
                for statement in migration.statements:
                    conn.execute(statement)
        if found < target:
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    if found < target:
        logger.info("database migrated", extra={"db": str(path), "from": found, "to": target})
    return found


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction, if any; a failure here only gets logged."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        logger.debug("rollback failed", exc_info=True)


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
                _rollback(self._conn)
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
                _rollback(conn)
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
            _rollback(conn)
            raise
        else:
            try:
                self._guard("commit a transaction", lambda: conn.execute("COMMIT"))
            except StoreError:
                _rollback(conn)
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
