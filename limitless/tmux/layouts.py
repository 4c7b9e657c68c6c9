"""Layouts: how a run's slot panes and its dashboard are placed in its tmux session.

A layout is a small YAML file (`limitless/layouts/*.yaml`, or a path) read into a
frozen `Layout`, with file:line:col problems for what is wrong in it. The windows
of a session are named here too: `control`, `agents`, `agents-2`, ..., `dashboard`.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal, get_args

import yaml

from limitless.errors import PlanError, Problem, UsageError

CONTROL_WINDOW = "control"
AGENTS_WINDOW = "agents"
DASHBOARD_WINDOW = "dashboard"


SlotArrangement = Literal["even-horizontal", "even-vertical", "tiled"]
DashboardPlace = Literal["bottom", "right", "window"]
SLOT_ARRANGEMENTS: tuple[str, ...] = get_args(SlotArrangement)
DASHBOARD_PLACES: tuple[str, ...] = get_args(DashboardPlace)
PANES_PER_WINDOW_RANGE = (1, 16)
DASHBOARD_PERCENT_RANGE = (10, 90)
LAYOUT_KEYS = (
    "description",
    "slot_arrangement",
    "panes_per_window",
    "dashboard",
    "dashboard_size_percent",
)


@dataclass(frozen=True)
class Layout:
    """How slots and the dashboard are placed in a run's tmux session.

    `slot_arrangement` is the tmux layout of the slots of one agents window;
    `dashboard` puts the dashboard full width at the `bottom` or full height on
    the `right` of the first agents window (taking `dashboard_size_percent` of
    it), or in a `window` of its own.
    """

    name: str
    description: str = ""
    slot_arrangement: SlotArrangement = "even-horizontal"
    panes_per_window: int = 4
    dashboard: DashboardPlace = "bottom"
    dashboard_size_percent: int = 30

    def slots_per_window(self, slots: int) -> list[int]:
        """How many slots each agents window holds, in window order."""
        full, rest = divmod(slots, self.panes_per_window)
        return [self.panes_per_window] * full + ([rest] if rest else [])

    def window_names(self, slots: int) -> list[str]:
        """The agents windows' names for `slots` slots: agents, agents-2, ..."""
        return [agents_window_name(i) for i in range(len(self.slots_per_window(slots)))]


def agents_window_name(index: int) -> str:
    """The name of the agents window number `index` (from 0): agents, agents-2, ..."""
    return AGENTS_WINDOW if index == 0 else f"{AGENTS_WINDOW}-{index + 1}"


def _layout_dir() -> Traversable:
    return importlib.resources.files("limitless").joinpath("layouts")


def available_layouts() -> list[str]:
    """The names of the layouts shipped with limitless, sorted."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _layout_dir().iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    )


def load_layout(name_or_path: str | Path) -> Layout:
    """A built-in layout by name (`default`, `grid`, ...) or a layout file by path.

    Raises UsageError for an unknown name or a missing file and PlanError,
    listing every located problem, for a file that is not a valid layout.
    """
    text = str(name_or_path)
    is_path = (
        isinstance(name_or_path, Path)
        or "/" in text
        or os.sep in text
        or text.endswith((".yaml", ".yml"))
    )
    if is_path:
        path = Path(name_or_path)
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            msg = f"layout file {path} does not exist; give a path to a .yaml file or a name"
            raise UsageError(msg) from None
        except OSError as exc:
            msg = f"cannot read layout file {path}: {exc.strerror or exc}"
            raise UsageError(msg) from exc
        return parse_layout(content, source=str(path), name=path.stem)
    resource = _layout_dir().joinpath(f"{text}.yaml")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text) or not resource.is_file():
        known = ", ".join(available_layouts())
        msg = f"unknown layout {text!r}; built-in layouts: {known}; or give a path to a .yaml file"
        raise UsageError(msg)
    return parse_layout(resource.read_text(encoding="utf-8"), source=str(resource), name=text)


def parse_layout(text: str, *, source: str, name: str) -> Layout:
    """A Layout from YAML `text`; `source` names the file in error messages."""
    problems: list[Problem] = []

    def problem(node: yaml.Node | None, message: str) -> None:
        line, column = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        problems.append(Problem(source, line, column, message))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PlanError(
            [Problem(source, line, column, f"not valid YAML: {exc.problem or exc.context}")]
        ) from None
    if root is None:
        problem(None, 'the layout file is empty; expected keys such as "panes_per_window: 4"')
        raise PlanError(problems)
    if not isinstance(root, yaml.MappingNode):
        problem(root, f"a layout must be a mapping of keys to values, got {_describe(root)}")
        raise PlanError(problems)

    values: dict[str, object] = {}
    seen: dict[str, yaml.Node] = {}
    for key_node, value_node in root.value:
        key = _scalar(key_node)
        if not isinstance(key, str):
            problem(key_node, f"layout keys must be names, got {_describe(key_node)}")
            continue
        if key in seen:
            first = seen[key].start_mark.line + 1
            problem(key_node, f'duplicate key "{key}" (first given on line {first})')
            continue
        seen[key] = key_node
        if key not in LAYOUT_KEYS:
            close = difflib.get_close_matches(key, LAYOUT_KEYS, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            problem(
                key_node,
                f'unknown key "{key}"; {hint}a layout accepts: {", ".join(LAYOUT_KEYS)}',
            )
            continue
        error = _check_layout_value(key, value_node)
        if error is not None:
            problem(value_node, error)
        else:
            values[key] = _scalar(value_node)
    if problems:
        raise PlanError(problems)
    layout = Layout(name=name)
    return Layout(
        name=name,
        description=str(values.get("description", layout.description)),
        slot_arrangement=_as_arrangement(values.get("slot_arrangement", layout.slot_arrangement)),
        panes_per_window=_as_int(values.get("panes_per_window", layout.panes_per_window)),
        dashboard=_as_place(values.get("dashboard", layout.dashboard)),
        dashboard_size_percent=_as_int(
            values.get("dashboard_size_percent", layout.dashboard_size_percent)
        ),
    )


def _check_layout_value(key: str, node: yaml.Node) -> str | None:
    """The message for a bad value of `key`, or None when it is fine."""
    value = _scalar(node)
    if key == "description":
        if not isinstance(value, str):
            return f"description must be a string, got {_describe(node)}"
        return None
    if key in ("slot_arrangement", "dashboard"):
        accepted = SLOT_ARRANGEMENTS if key == "slot_arrangement" else DASHBOARD_PLACES
        if not isinstance(value, str) or value not in accepted:
            return f"{key} must be one of {', '.join(accepted)}; got {_describe(node)}"
        return None
    low, high = PANES_PER_WINDOW_RANGE if key == "panes_per_window" else DASHBOARD_PERCENT_RANGE
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return f"{key} must be a whole number from {low} to {high}; got {_describe(node)}"
    return None


def _scalar(node: yaml.Node) -> object:
    """The Python value of a scalar node; a sentinel for mappings and lists."""
    if not isinstance(node, yaml.ScalarNode):
        return _NOT_SCALAR
    return yaml.SafeLoader("").construct_object(node)


_NOT_SCALAR = object()


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = _scalar(node)
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f'the string "{value}"'
    return str(value)


def _as_int(value: object) -> int:
    if not isinstance(value, int):
        msg = f"expected a whole number, got {value!r}"
        raise TypeError(msg)
    return value


def _as_arrangement(value: object) -> SlotArrangement:
    for choice in get_args(SlotArrangement):
        if value == choice:
            return choice  # type: ignore[no-any-return]
    msg = f"expected a slot arrangement, got {value!r}"
    raise TypeError(msg)


def _as_place(value: object) -> DashboardPlace:
    for choice in get_args(DashboardPlace):
        if value == choice:
            return choice  # type: ignore[no-any-return]
    msg = f"expected a dashboard place, got {value!r}"
    raise TypeError(msg)
