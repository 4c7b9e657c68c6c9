"""The selected task's facts: status reason, branch, diffstat, dirty files, conflicts."""

from __future__ import annotations

import re

from rich.text import Text

from limitless.dashboard.model import TaskView
from limitless.dashboard.widgets.cells import changes_text, plural, status_text
from limitless.dashboard.widgets.quiet import Quiet
from limitless.states import MergeStatus


class InfoView(Quiet):
    """The selected task's status reason, branch, diffstat, dirty files and conflicts."""

    def show(self, task: TaskView | None) -> None:
        if task is None:
            self.border_title = "task"
            self.draw("")
            return
        self.border_title = task.branch or task.id
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append_text(status_text(task.shown_status))
        if task.attempt:
            text.append(f"  attempt {task.attempt}", style="dim")
        if task.reason:
            text.append("\n")
            text.append(task.reason, style="italic")
        text.append("\n")
        text.append(f"↑{plural(task.ahead, 'commit')}  {plural(task.files_changed, 'file')}")
        if task.insertions or task.deletions:
            text.append("  ")
            text.append_text(changes_text(task))
        if task.head:
            text.append(f"  @{task.head[:10]}", style="dim")
        if task.dirty_files:
            shown = ", ".join(task.dirty_files[:4])
            more = f" +{len(task.dirty_files) - 4}" if len(task.dirty_files) > 4 else ""
            text.append(f"\n✎ uncommitted: {shown}{more}", style="yellow")
        if task.conflicts:
            text.append(f"\n⚠ predicted conflicts with {', '.join(task.conflicts)}", style="red")
        if task.merge_status is not MergeStatus.UNMERGED:
            text.append("\nmerge ", style="dim")
            text.append_text(status_text(str(task.merge_status)))
            if task.merge_reason:
                text.append(f" — {task.merge_reason}", style="italic")
        if task.diffstat:
            width = max(20, (self.content_size.width or 40))
            for line in diffstat_lines(task.diffstat, width):
                text.append("\n")
                text.append_text(line)
        self.draw(text)


_STAT_LINE = re.compile(r"^\s*(?P<path>.+?)\s+\|\s+(?P<count>\d+|Bin.*?)\s*(?P<bar>[+-]*)\s*$")


def diffstat_lines(diffstat: str, width: int) -> list[Text]:
    """`git diff --stat` redrawn for `width` cells: long paths lose their start, not the
    figures (`…/ProductGrid.tsx  13 ++++`); the summary line is kept as it is."""
    parsed: list[tuple[str, str, int, int] | str] = []
    for raw in diffstat.splitlines():
        match = _STAT_LINE.match(raw)
        if match is None:
            if raw.strip():
                parsed.append(raw.strip())
            continue
        bars = match["bar"]
        parsed.append((match["path"], match["count"], bars.count("+"), bars.count("-")))
    entries = [entry for entry in parsed if isinstance(entry, tuple)]
    bar_width = max(1, min(12, width // 4))
    count_width = max((len(entry[1]) for entry in entries if entry[1].isdigit()), default=1)
    longest = max((len(entry[0]) for entry in entries), default=0)
    path_width = max(6, min(longest, width - count_width - bar_width - 2))
    lines: list[Text] = []
    for entry in parsed:
        if isinstance(entry, str):
            summary = Text(entry, style="dim")
            summary.truncate(width, overflow="ellipsis")
            lines.append(summary)
            continue
        path, count, plus, minus = entry
        if plus + minus > bar_width:
            plus = round(plus * bar_width / (plus + minus))
            minus = bar_width - plus
        if len(path) > path_width:
            path = "…" + path[len(path) - path_width + 1 :]
        line = Text(path.ljust(path_width))
        if not count.isdigit():  # a binary file: "Bin 0 -> 10 bytes"
            line.append(f" {count}", style="dim")
            line.truncate(width, overflow="ellipsis")
            lines.append(line)
            continue
        line.append(f" {count.rjust(count_width)} ", style="bold")
        line.append("+" * plus, style="green")
        line.append("-" * minus, style="red")
        line.truncate(width, overflow="ellipsis")
        lines.append(line)
    return lines
