"""The header: who and what (run, plan, base, status, time); how far (bar, slots, cost)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text

from limitless.dashboard.model import Snapshot
from limitless.dashboard.widgets.cells import bar, money
from limitless.dashboard.widgets.quiet import Quiet
from limitless.fmt import RUN_LOOKS, duration


@dataclass(frozen=True)
class HeaderNote:
    """A notice the header shows until `until` (monotonic), in a pane too short for toasts."""

    text: str
    severity: str
    until: float


NOTE_STYLES = {"error": "bold red", "warning": "bold yellow", "information": "bold cyan"}


class HeaderBar(Quiet):
    """Two lines: who and what (run, plan, base, status, time); how far (bar, slots, cost)."""

    def show(self, snapshot: Snapshot, problem: str = "", notice: HeaderNote | None = None) -> None:
        width = max(40, (self.size.width or 80) - 2)
        status = str(snapshot.status)
        first = Text(no_wrap=True, overflow="ellipsis")
        if width >= 100:
            first.append("◆ limitless ", style="bold magenta")
        first.append(snapshot.run_id, style="bold")
        first.append("  plan " if width >= 100 else "  ", style="dim")
        first.append(snapshot.plan_name)
        first.append("  base " if width >= 100 else " → ", style="dim")
        first.append(snapshot.base)
        first.append("  ")
        look = RUN_LOOKS.get(status)
        first.append(f"{look.icon if look else '•'} {status}", style=look.style if look else "")
        first.append("  ⏱ ", style="dim")
        first.append(duration(snapshot.summary.wall_s))
        fraction = snapshot.summary.done / snapshot.summary.total if snapshot.summary.total else 0.0
        second = Text(no_wrap=True, overflow="ellipsis")
        second.append_text(bar(fraction, max(8, min(30, width // 6)), "green"))
        second.append(f" {snapshot.summary.done}/{snapshot.summary.total} done", style="bold")
        second.append("  slots ", style="dim")
        second.append(f"{snapshot.slots_used}/{snapshot.summary.slots}")
        if snapshot.host_slots and width >= 100:
            for host in snapshot.host_slots:
                second.append(f" {host.name} ", style="dim")
                second.append(f"{host.used}/{host.slots}")
        if snapshot.summary.cost_usd is not None:
            second.append("  cost ", style="dim")
            second.append(money(snapshot.summary.cost_usd))
        if snapshot.summary.done:  # before any task ends it only says the run is young
            second.append("  speedup ", style="dim")
            second.append(f"{snapshot.summary.speedup:.1f}×", style="bold cyan")
        clock = Text(time.strftime("%H:%M:%S", time.localtime(snapshot.at)), style="dim")
        note = problem or "; ".join(snapshot.problems)
        style = "italic red"
        if not note and snapshot.base_moved_to and not snapshot.finished:
            note = f"⚠ stale base: {snapshot.base} moved to {snapshot.base_moved_to[:8]}"
            style = "yellow"
        if not note:
            note, style = snapshot.reason, "italic"
        said = None
        if notice is not None:
            said = Text(notice.text, style=NOTE_STYLES.get(notice.severity, "bold"))
        if (self.size.height or 2) < 2:  # a tiny pane: one line says how far too
            first.append(f"  {snapshot.summary.done}/{snapshot.summary.total} done", style="bold")
            if said is not None:  # the notice instead of the clock, alone if need be
                self.draw(said if first.cell_len + 12 > width else _spread(first, said, width))
                return
            self.draw(_spread(first, clock, width))
            return
        right = said if said is not None and not problem else Text(note, style=style)
        lines = [
            _spread(first, clock, width),
            _spread(second, right, width),
        ]
        self.draw(Text("\n").join(lines))


def _spread(left: Text, right: Text, width: int) -> Text:
    """`left`, then `right` flush right in what is left of `width` (cut, or dropped)."""
    line = left.copy()
    line.truncate(width, overflow="ellipsis")
    room = width - line.cell_len - 2
    if room >= 4 and right.plain:
        right = right.copy()
        right.truncate(room, overflow="ellipsis")
        line.append(" " * (width - line.cell_len - right.cell_len))
        line.append_text(right)
    return line
