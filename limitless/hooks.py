"""Plan hooks: shell commands run on run events (task done/failed, waiting, conflict, run done).

The supervisor calls `HookRunner.tick()` every loop and `close()` at the end of
the run. A failing hook is logged as an event and shown, never fatal.
(Stub: filled in by the reports issue.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from limitless.store import Store


class HookRunner:
    """Runs the plan's hooks for the run's new events, without blocking the caller."""

    def __init__(self, store: Store, run_id: str, hooks: Mapping[str, str], cwd: Path) -> None:
        self.store = store
        self.run_id = run_id
        self.hooks = dict(hooks)
        self.cwd = cwd

    def tick(self) -> None:
        """Start the hooks of events recorded since the last tick."""

    def close(self, timeout: float = 30.0) -> None:
        """Run the hooks of the last events, then wait (up to `timeout`) for running ones."""
