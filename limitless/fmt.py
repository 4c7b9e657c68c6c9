"""Text formats shared by every view: durations, times, money.

Imports: nothing of limitless.
"""

from __future__ import annotations

from datetime import UTC, datetime


def money(value: float) -> str:
    """`$12.40`, `$0.35`, and for the cents a real agent's task often costs, `$0.0042`."""
    if value >= 100:
        return f"${value:.0f}"
    if value >= 0.1 or value == 0:
        return f"${value:.2f}"
    return f"${value:.4f}"


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


def iso(ts: float | None) -> str | None:
    """An epoch time as ISO-8601 UTC (`2026-11-23T10:31:28Z`), or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
