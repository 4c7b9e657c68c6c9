"""The SQLite store: every durable fact about runs, tasks, attempts, events, requests and
predictions, with migrations; read and written by many processes at once.

`rows` (one dataclass per table), `columns` (row <-> column conversion), `schema`
(migrations), `store` (the `Store`: connections, transactions, queries). Import
from the package: `from limitless.store import Store, TaskRow`.

May import: errors, states.
"""

from limitless.store.rows import Attempt, ControlRequest, Event, Prediction, Run, TaskRow
from limitless.store.schema import MIGRATIONS, SCHEMA_VERSION, Migration, migrate, schema_version
from limitless.store.store import DB_NAME, LOCK_TIMEOUT_S, Store

__all__ = [
    "DB_NAME",
    "LOCK_TIMEOUT_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Attempt",
    "ControlRequest",
    "Event",
    "Migration",
    "Prediction",
    "Run",
    "Store",
    "TaskRow",
    "migrate",
    "schema_version",
]
