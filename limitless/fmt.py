"""Text formats shared by every view: money (more to come as views share them).

Imports: nothing of limitless.
"""

from __future__ import annotations


def money(value: float) -> str:
    """`$12.40`, `$0.35`, and for the cents a real agent's task often costs, `$0.0042`."""
    if value >= 100:
        return f"${value:.0f}"
    if value >= 0.1 or value == 0:
        return f"${value:.2f}"
    return f"${value:.4f}"
