"""The one-line ticker of a pane too short for the task table."""

from __future__ import annotations

from rich.text import Text

from limitless.dashboard.model import Snapshot
from limitless.dashboard.widgets.quiet import Quiet
from limitless.fmt import STATUS_ICONS, STATUS_STYLES
from limitless.states import MergeStatus, TaskStatus
from limitless.views.status import label


class Ticker(Quiet):
    """One line for a pane too short for the table: the selected task (in reverse),
    the tasks worth watching, then how many others are in each state."""

    SEPARATOR = "  "

    def show(self, snapshot: Snapshot, selected: str | None) -> None:
        width = max(20, (self.size.width or 80) - 2)
        line = Text(no_wrap=True, overflow="ellipsis")
        watched = [
            task
            for task in snapshot.tasks
            if task.id == selected
            or task.status.active
            or task.merge_status in (MergeStatus.MERGING, MergeStatus.CONFLICT)
        ]
        # the selected one first, then the ones that need input
        watched.sort(key=lambda task: (task.id != selected, not task.needs_input))
        for task in watched:
            status = task.shown_status
            name = f"{STATUS_ICONS.get(status, '•')} {task.id}"
            if task.status is TaskStatus.RUNNING and task.progress is not None:
                name += f" {task.progress:.0f}%"
            elif task.status is TaskStatus.WAITING:
                name += f" {label(task.state)}"
            elif not task.status.active:
                name += f" {label(status)}"
            style = STATUS_STYLES.get(status, "")
            if line:
                line.append(self.SEPARATOR)
            line.append(name, style=f"{style} reverse" if task.id == selected else style)
        counts: dict[str, int] = {}
        for task in snapshot.tasks:
            if task not in watched:
                counts[task.shown_status] = counts.get(task.shown_status, 0) + 1
        # where the words do not fit, the table's icons: "✓ 3"
        in_words = line.cell_len + sum(
            len(f"  {n} {label(status)}") for status, n in counts.items()
        )
        for status, count in counts.items():
            if line:
                line.append(self.SEPARATOR)
            icon = STATUS_ICONS.get(status, "•").strip() or "•"
            shown = f"{count} {label(status)}" if in_words <= width else f"{icon}{count}"
            line.append(shown, style=STATUS_STYLES.get(status, "dim"))
        line.truncate(width, overflow="ellipsis")
        self.draw(line)
