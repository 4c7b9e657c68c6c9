"""The area under the task table: the output tail beside the task's facts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from limitless.dashboard.model import TaskView
from limitless.dashboard.widgets.info import InfoView
from limitless.dashboard.widgets.tail import TailView


class Detail(Horizontal):
    """The area under the table: output tail on the left, facts on the right."""

    def compose(self) -> ComposeResult:
        yield TailView(id="tail")
        yield InfoView(id="info")

    def show(self, task: TaskView | None) -> None:
        self.query_one(TailView).show(task)
        self.query_one(InfoView).show(task)
