"""The last lines of the selected task's pane, or of its log once it ended."""

from __future__ import annotations

from rich.text import Text

from limitless.dashboard.model import TaskView
from limitless.dashboard.widgets.quiet import Quiet


class TailView(Quiet):
    """The last lines of the selected task's pane (or log, once it ended)."""

    def show(self, task: TaskView | None) -> None:
        if task is None:
            self.border_title = "output"
            self.draw(Text("no task selected", style="dim"))
            return
        where = f"pane {task.pane_id}" if task.active and task.pane_id else "log"
        self.border_title = f"{task.id} · {where}"
        height = max(1, self.size.height or 8)
        lines = task.tail[-height:]
        if not lines:
            self.draw(Text("no output yet", style="dim"))
            return
        self.draw(Text("\n".join(lines), no_wrap=True, overflow="ellipsis"))
