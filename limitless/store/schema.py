"""The store's schema: the forward migrations in order, the version they produce, and
applying them (all at once, under the write lock).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import StoreError

logger = logging.getLogger(__name__)


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
    Migration(
        6,
        "where a task and each attempt ran (hosts), and a run's ssh control folder",
        (
            "ALTER TABLE tasks ADD COLUMN host TEXT",
            "ALTER TABLE attempts ADD COLUMN host TEXT",
            "ALTER TABLE runs ADD COLUMN control_dir TEXT NOT NULL DEFAULT ''",
        ),
    ),
    Migration(
        7,
        "what the merge phase's resolver agents reported spending (in the run's cost)",
        ("ALTER TABLE runs ADD COLUMN resolver_cost_usd REAL",),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


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
        rollback(conn)
        raise
    if found < target:
        logger.info("database migrated", extra={"db": str(path), "from": found, "to": target})
    return found


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction, if any; a failure here only gets logged."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        logger.debug("rollback failed", exc_info=True)
