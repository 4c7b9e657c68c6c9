"""`View`: a full-screen view over the dashboard, drawn again on every poll."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.screen import Screen

from limitless.dashboard.model import Monitor, Snapshot


class View(Screen[None]):
    """A full-screen view over the dashboard; `escape` goes back, the app's keys still work."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.close_view", "back")]

    def __init__(
        self, monitor: Monitor, task_id: str | None, snapshot: Snapshot | None = None
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.task_id = task_id
        self.first = snapshot

    def on_mount(self) -> None:
        """Draw the snapshot the view was opened with now (the next poll may be a second away)."""
        self.prepare()
        if self.first is not None:
            self.show(self.first)

    def prepare(self) -> None:
        """Set up what `show` needs (runs once, after compose, before the first `show`)."""

    def show(self, snapshot: Snapshot) -> None:
        """Called on every poll while the view is open."""
