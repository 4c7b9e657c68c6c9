"""Agent state from several signals: exit status, explicit signals, waiting_regex, idle time.

The supervisor calls `StateWatcher.tick()` every loop with what it saw; the
watcher moves tasks between `running` and `waiting` (seen on two polls running
before a change). (Stub: filled in by the real-agents issue.)
"""

from __future__ import annotations

from collections.abc import Mapping

from limitless.plan import Plan
from limitless.store import Store, TaskRow
from limitless.tmux import PaneState, TmuxSession


class StateWatcher:
    """Decides running ↔ waiting for the run's active tasks."""

    def __init__(self, store: Store, run_id: str, plan: Plan, tmux: TmuxSession) -> None:
        self.store = store
        self.run_id = run_id
        self.plan = plan
        self.tmux = tmux

    def tick(self, rows: Mapping[str, TaskRow], panes: Mapping[str, PaneState]) -> None:
        """Look at the active tasks' panes once; change states that held for two polls."""
