"""Text formats shared by every view: durations, times, money, and the look of a status.

Imports: nothing of limitless.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime


def money(value: float, width: int | None = None) -> str:
    """`$12.40`, `$0.35`, and for the cents a real agent's task often costs, `$0.0042`;
    with `width`, as many of those decimals as fit (`$0.004`)."""
    if value >= 100:
        return f"${value:.0f}"
    if value >= 0.1 or value == 0:
        return f"${value:.2f}"
    decimals = 4 if width is None else max(2, min(4, width - 3))
    return f"${value:.{decimals}f}"


def duration(seconds: float | None) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    if seconds is None:
        return "-"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{(total % 3600) // 60:02d}m"


def plan_duration(seconds: float) -> str:
    """A duration as a plan spells one, for estimates: `45s`, `1m30s`, `30m`, `2h`, `1h05m`,
    `2.5s` — what a plan's `estimate:` accepts back. A measured time is `duration`'s job:
    there `30m00s` says the seconds were counted and `42s` hides the fraction."""
    whole = round(seconds)
    if abs(seconds - whole) > 1e-9:
        return f"{round(float(seconds), 3)}s"
    if whole < 60:
        return f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes or secs else f"{hours}h"
    return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"


def iso(ts: float | None) -> str | None:
    """An epoch time as ISO-8601 UTC with milliseconds (`2026-11-23T10:31:28.042Z`), or None.

    The store keeps fractional seconds; every machine-readable time (`status --json`,
    events, reports) carries the milliseconds, so two tasks started in the same second
    still order, and a hand-off of a few tens of milliseconds can be measured."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return moment.removesuffix("+00:00") + "Z"


def clock_ms(ts: float) -> str:
    """A local wall-clock time with milliseconds (`10:31:28.042`), for an event log line."""
    return datetime.fromtimestamp(ts).time().isoformat(timespec="milliseconds")


# --------------------------------------------------------------------- the palette


@dataclass(frozen=True)
class Look:
    """How a status looks wherever it is shown: one hue per status, in every medium."""

    icon: str
    style: str
    """A rich style: the dashboard, `status`, the follower."""
    colour: str = ""
    """A hex colour: the HTML report's timeline and text."""
    mermaid: str = ""
    """A mermaid node style (fill, stroke): `plan graph --format mermaid`."""


STATUS_LOOKS: dict[str, Look] = {
    # a task's state (its status, or needs_input / idle for those kinds of waiting)
    "pending": Look("·", "dim", "#9a9a9a", "fill:#f8f9fa,stroke:#adb5bd"),
    "ready": Look("○", "cyan", "#3a8fb7", "fill:#e7f5ff,stroke:#1c7ed6"),
    "running": Look("▶", "bold yellow", "#d9a400", "fill:#fff3bf,stroke:#f08c00"),
    "needs_input": Look("?", "bold magenta", "#a347c4", "fill:#f3d9fa,stroke:#a347c4"),
    "idle": Look("◌", "yellow", "#c9a227", "fill:#fff9db,stroke:#c9a227"),
    "waiting": Look("…", "magenta", "#a347c4", "fill:#f3d9fa,stroke:#a347c4"),
    "done": Look("✓", "green", "#2e9d4f", "fill:#d3f9d8,stroke:#2b8a3e"),
    "failed": Look("✗", "bold red", "#d0363b", "fill:#ffe3e3,stroke:#c92a2a"),
    "blocked": Look("⊘", "red", "#b06a6a", "fill:#fff5f5,stroke:#b06a6a"),
    "killed": Look("☠", "red", "#8a1c1f", "fill:#ffe3e3,stroke:#8a1c1f"),
    # a task's merge status, once merging began
    "unmerged": Look(" ", "dim"),
    "merging": Look("⇄", "bold cyan"),
    "merged": Look("◆", "bold green"),
    "conflict": Look("⚠", "bold red"),
    "gate_failed": Look("⚠", "bold red"),
    "skipped": Look("↷", "dim yellow"),
}
"""Every status a task shows, task states first, then merge statuses."""

RUN_LOOKS: dict[str, Look] = {
    "running": Look("▶", "bold yellow"),
    "merging": Look("⇄", "bold cyan"),
    "done": Look("✓", "bold green"),
    "failed": Look("✗", "bold red"),
    "aborted": Look("☠", "bold red"),
}
"""A run's status, as the dashboard's header shows it."""

STATUS_ICONS: dict[str, str] = {status: look.icon for status, look in STATUS_LOOKS.items()}
STATUS_STYLES: dict[str, str] = {status: look.style for status, look in STATUS_LOOKS.items()}
STATUS_COLOURS: dict[str, str] = {
    status: look.colour for status, look in STATUS_LOOKS.items() if look.colour
}
MERMAID_STYLES: dict[str, str] = {
    status: look.mermaid for status, look in STATUS_LOOKS.items() if look.mermaid
}


def terminal_columns() -> int:
    """The width of the terminal on stdout (a pane), or 0 without one."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 0


_ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def visible_length(text: str) -> int:
    """How many columns `text` takes, its colour codes left out."""
    return len(_ANSI_CODE.sub("", text))


def wrap_words(text: str, width: int) -> list[str]:
    """`text` cut at spaces into lines of at most `width` visible columns (colour codes
    kept with their words), later lines indented two more than the first. A terminal wraps a long
    line mid-word instead; a word longer than a line is left whole for it. `width` < 10:
    the text as it is."""
    if width < 10 or visible_length(text) <= width:
        return [text]
    body = text.lstrip(" ")
    indent = " " * (len(text) - len(body))
    more = indent + "  "
    lines: list[str] = []
    line = indent
    for word in body.split(" "):
        if not word:
            continue
        joined = f"{line} {word}" if line.strip() else f"{line}{word}"
        if visible_length(joined) > width and line.strip():
            lines.append(line)
            line = f"{more}{word}"
        else:
            line = joined
    lines.append(line)
    return lines
