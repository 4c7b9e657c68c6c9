"""A bench figure: a value, its unit and the goal it is held to (or none: information)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One line of the table and of the JSON: `goal` None means shown for information only."""

    name: str
    value: float
    unit: str
    goal: str | None
    ok: bool

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "unit": self.unit,
            "goal": self.goal,
            "ok": self.ok,
        }


def at_most(name: str, value: float, unit: str, goal: float) -> Figure:
    return Figure(name, value, unit, f"<= {goal:g}", value <= goal)


def exactly(name: str, value: float, unit: str, goal: float) -> Figure:
    return Figure(name, value, unit, f"= {goal:g}", value == goal)


def info(name: str, value: float, unit: str) -> Figure:
    return Figure(name, value, unit, None, True)
