"""The small drawings every widget uses: a status with its icon, a bar, a progress, counts."""

from __future__ import annotations

import time

from rich.text import Text

from limitless import fmt
from limitless.dashboard.model import TaskView
from limitless.fmt import STATUS_ICONS, STATUS_STYLES
from limitless.views.status import label

_EIGHTHS = " ▏▎▍▌▋▊▉"


def status_text(status: str) -> Text:
    """`▶ running`, `? needs input`, coloured by status."""
    return Text(
        f"{STATUS_ICONS.get(status, '•')} {label(status)}", style=STATUS_STYLES.get(status, "")
    )


def bar(fraction: float, width: int, style: str = "green") -> Text:
    """A bar of `width` cells filled to `fraction` (eighths of a cell), the rest dim."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    filled = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    text = Text(filled, style=style)
    text.append("░" * (width - len(filled)), style="grey35")
    return text


def progress_text(task: TaskView, width: int = 4) -> Text:
    """`███▌ 62%` (the agent's figure) or the same dimmed (an estimate); blank if unknown;
    `✓ in 24s` for an idle agent whose task is done then unless the user types."""
    if task.idle_done_at is not None and task.state == "idle":
        left = max(0.0, task.idle_done_at - time.time())
        return Text(f"✓ in {left:.0f}s", style=STATUS_STYLES["idle"])
    if task.progress is None:
        return Text("")
    style = "dim " + STATUS_STYLES.get(str(task.status), "") if task.progress_estimated else ""
    text = bar(task.progress / 100, width, style or STATUS_STYLES.get(str(task.status), "green"))
    text.append(f" {task.progress:3.0f}%", style="dim" if task.progress_estimated else "")
    return text


def plural(count: int, word: str) -> str:
    """`1 file`, `3 files`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def megabytes(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1024:
        return f"{value / 1024:.1f}G"
    return f"{value:.0f}M"


def money(value: float | None, width: int | None = None) -> str:
    return "" if value is None else fmt.money(value, width)


def changes_text(task: TaskView) -> Text:
    if not (task.insertions or task.deletions):
        return Text("")
    return Text.assemble((f"+{task.insertions}", "green"), " ", (f"−{task.deletions}", "red"))
