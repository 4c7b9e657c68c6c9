"""The dashboard's data model, without textual: `Monitor.poll()` makes one `Snapshot`.

snapshot (the values drawn), monitor (one poll: store, tmux, processes, git), and
one module per source it reads cheaply: processes, gitwatch (over heads), tails,
notices. Imports: errors, states, plan, store, git, tmux, views; never textual.
"""

from __future__ import annotations

from limitless.dashboard.model.heads import head_token
from limitless.dashboard.model.monitor import BASE, Monitor, conflicts_by_task, estimated_progress
from limitless.dashboard.model.notices import budget_text
from limitless.dashboard.model.snapshot import Notice, PollStats, Snapshot, TaskView
from limitless.dashboard.model.tails import last_lines_of, strip_ansi

__all__ = [
    "BASE",
    "Monitor",
    "Notice",
    "PollStats",
    "Snapshot",
    "TaskView",
    "budget_text",
    "conflicts_by_task",
    "estimated_progress",
    "head_token",
    "last_lines_of",
    "strip_ansi",
]
