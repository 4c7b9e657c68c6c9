"""Panes as tmux reports them: the values read from `list-panes` and `capture-pane`, the
pane ids printed while a session is built, and the title limitless shows on a border.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from limitless.errors import TmuxError

logger = logging.getLogger(__name__)

TITLE_OPTION = "@limitless-title"
# The border shows our title (a pane option that programs cannot overwrite with
# escape sequences, unlike the pane title) and, once the pane died, its status.
EFFECTIVE_TITLE = f"#{{?#{{{TITLE_OPTION}}},#{{{TITLE_OPTION}}},#{{pane_title}}}}"
PANE_BORDER_FORMAT = (
    f" {EFFECTIVE_TITLE}"
    "#{?pane_dead, [exited#{?pane_dead_status, #{pane_dead_status},}"
    "#{?pane_dead_signal, signal #{pane_dead_signal},}],} "
)

# The line tmux writes under a program that ended (remain-on-exit), short enough for a
# narrow pane: "ended: exit 0 · 21:03". tmux 3.2, without the option, writes its own
# "Pane is dead (status 0, <date>)".
DEAD_PANE_FORMAT = (
    "ended: #{?#{!=:#{pane_dead_signal},},signal #{pane_dead_signal},"
    "exit #{pane_dead_status}} · #{t/p:pane_dead_time}"
)

_PANE_ID = re.compile(r"%\d+")
_DEAD_LINE = re.compile(r"Pane is dead( \(.*\))?|ended: (exit|signal) \d* · .*")


@dataclass(frozen=True)
class SessionPanes:
    """The pane ids (`%3`) of a new session: control, the slots in order, the dashboard."""

    control: str
    slots: tuple[str, ...]
    dashboard: str | None


@dataclass(frozen=True)
class PaneState:
    """One pane as tmux sees it. `title` is limitless's title, else the pane's own.

    `pid` is None once the pane is dead; `dead_status` is the exit code of a
    process that exited, `dead_signal` the signal that killed one. `left` and
    `top` are the pane's position in its window, in cells.
    """

    pane_id: str
    window_name: str
    window_index: int
    index: int
    dead: bool
    dead_status: int | None
    pid: int | None
    title: str
    current_command: str
    width: int
    height: int
    active: bool
    window_id: str = ""
    left: int = 0
    top: int = 0
    dead_signal: int | None = None
    window_active: bool = False


@dataclass(frozen=True)
class Snapshot:
    """Every pane's state and the last lines of the panes that were read, from one call."""

    panes: tuple[PaneState, ...]
    lines: Mapping[str, list[str]] = field(default_factory=dict)


def check_pane(pane_id: str) -> str:
    """`pane_id` if it is a pane id (`%3`); ValueError otherwise."""
    if not _PANE_ID.fullmatch(pane_id):
        msg = f"pane id {pane_id!r} is not valid; pane ids look like %3"
        raise ValueError(msg)
    return pane_id


_PANE_FIELDS = (
    "pane_id",
    "window_id",
    "window_name",
    "window_index",
    "pane_index",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "pane_pid",
    "pane_current_command",
    "pane_width",
    "pane_height",
    "pane_left",
    "pane_top",
    "pane_active",
    "window_active",
)
_RECORD = "\x1e"
_FIELD = "\x1f"
PANE_FORMAT = (
    _RECORD + _FIELD.join(f"#{{{name}}}" for name in _PANE_FIELDS) + _FIELD + EFFECTIVE_TITLE
)
"""The `list-panes -F` format that `parse_panes` reads."""


def _int_or_none(text: str) -> int | None:
    return int(text) if text.strip().lstrip("-").isdigit() else None


def parse_panes(output: str) -> list[PaneState]:
    """The panes in the output of `list-panes -F PANE_FORMAT`."""
    states: list[PaneState] = []
    for record in output.split(_RECORD)[1:]:
        parts = record.removesuffix("\n").split(_FIELD, len(_PANE_FIELDS))
        if len(parts) != len(_PANE_FIELDS) + 1:
            logger.warning("pane record skipped", extra={"record": record})
            continue
        f = dict(zip(_PANE_FIELDS, parts, strict=False))
        dead = f["pane_dead"] == "1"
        states.append(
            PaneState(
                pane_id=f["pane_id"],
                window_name=f["window_name"],
                window_index=int(f["window_index"]),
                index=int(f["pane_index"]),
                dead=dead,
                dead_status=_int_or_none(f["pane_dead_status"]) if dead else None,
                pid=None if dead else _int_or_none(f["pane_pid"]),
                title=parts[-1],
                current_command=f["pane_current_command"],
                width=int(f["pane_width"]),
                height=int(f["pane_height"]),
                active=f["pane_active"] == "1",
                window_id=f["window_id"],
                left=int(f["pane_left"]),
                top=int(f["pane_top"]),
                dead_signal=_int_or_none(f["pane_dead_signal"]) if dead else None,
                window_active=f["window_active"] == "1",
            )
        )
    return states


def capture_command(pane_id: str, lines: int) -> list[str]:
    """The command that prints the last `lines` lines of `pane_id` (wrapped lines joined)."""
    return ["capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{lines}"]


def last_lines(text: str, lines: int) -> list[str]:
    """The last `lines` non-empty lines of a capture, tmux's note under an ended program dropped."""
    kept = [line.rstrip() for line in text.split("\n")]
    kept = [line for line in kept if line.strip()]
    if kept and _DEAD_LINE.fullmatch(kept[-1]):
        kept.pop()
    return kept[-lines:]


def parse_created(printed: list[str], slots: int) -> SessionPanes:
    """SessionPanes from create()'s `-P` output: "control %0 slot %1 ... dashboard %5"."""
    labelled = list(zip(printed[::2], printed[1::2], strict=False))
    control = [pane for label, pane in labelled if label == "control"]
    slot_panes = tuple(pane for label, pane in labelled if label == "slot")
    dashboard = [pane for label, pane in labelled if label == "dashboard"]
    panes = [*control, *slot_panes, *dashboard]
    if (
        len(control) != 1
        or len(slot_panes) != slots
        or not all(_PANE_ID.fullmatch(pane) for pane in panes)
    ):
        msg = f"tmux printed unexpected pane ids while creating the session: {printed!r}"
        raise TmuxError(msg)
    return SessionPanes(control[0], slot_panes, dashboard[0] if dashboard else None)
