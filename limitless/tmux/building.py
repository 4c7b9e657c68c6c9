"""The commands that build a run's tmux session, and that add slot windows to it.

A session has a `control` window for the supervisor, agents windows holding the
slot panes, and a dashboard pane placed by its layout. Every window limitless
makes gets the same options and the `pane-died` hook that wakes the supervisor;
every pane's title is limitless's own (`@limitless-title`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from limitless.tmux.commands import env_flags, escape_format, printable, program, started
from limitless.tmux.layouts import (
    AGENTS_WINDOW,
    CONTROL_WINDOW,
    DASHBOARD_WINDOW,
    Layout,
    agents_window_name,
)
from limitless.tmux.panes import DEAD_PANE_FORMAT, PANE_BORDER_FORMAT, TITLE_OPTION
from limitless.tmux.wakeups import wake_hook, wake_option

HISTORY_LIMIT = 10_000


def session_target(name: str) -> str:
    """Session `name` as a tmux target, matched exactly (never by prefix)."""
    return f"={name}:"


def window_target(name: str, window: str) -> str:
    """Window `window` of session `name` as a tmux target, matched exactly."""
    return f"={name}:={window}"


def create_commands(
    name: str,
    *,
    layout: Layout,
    slots: int,
    cwd: Path,
    control_argv: list[str],
    dashboard_argv: list[str] | None,
    idle_argv: list[str],
    env: Mapping[str, str],
    wake_channel: str,
    width: int,
    height: int,
) -> list[list[list[str]]]:
    """The commands that build session `name`, in groups: the session with its options
    and hook, then one group per window. A group is never split across tmux calls, so
    a window's options are always set by the call that starts its panes."""
    target = session_target(name)
    directory = escape_format(str(cwd))
    idle = program(idle_argv, "idle_argv")
    control = program(control_argv, "control_argv")
    dashboard = program(dashboard_argv, "dashboard_argv") if dashboard_argv else None
    hook = wake_hook(target, wake_channel)

    new_session = ["new-session", "-d", "-s", name, "-n", CONTROL_WINDOW]
    size = ["-x", str(width), "-y", str(height)]
    commands: list[list[str]] = [
        [*new_session, *size, *env_flags(env), *started(directory, "control", control)],
        ["set-option", "-t", target, "destroy-unattached", "off"],
        ["set-option", "-t", target, "history-limit", str(HISTORY_LIMIT)],
        # the default 10 columns cut `[limitless-shop-1]` to `[limitless`
        ["set-option", "-t", target, "status-left-length", "40"],
        ["set-option", "-t", target, wake_option(wake_channel), "0"],
        *window_setup(name, CONTROL_WINDOW, hook),
        *title_commands(window_target(name, CONTROL_WINDOW), "control"),
    ]
    groups = [commands]

    def new_window(window: str, label: str, argv: list[str]) -> None:
        nonlocal commands
        commands = [
            ["new-window", "-d", "-t", target, "-n", window, *started(directory, label, argv)]
        ]
        commands.extend(window_setup(name, window, hook))
        groups.append(commands)

    def split(window: str, label: str, argv: list[str], flags: list[str]) -> None:
        commands.append(
            [
                "split-window",
                "-t",
                window_target(name, window),
                *flags,
                *started(directory, label, argv),
            ]
        )

    if dashboard and layout.dashboard == "window":
        new_window(DASHBOARD_WINDOW, "dashboard", dashboard)
        commands.extend(title_commands(window_target(name, DASHBOARD_WINDOW), "dashboard"))
    direction = "-v" if layout.slot_arrangement == "even-vertical" else "-h"
    number = 0
    for index, count in enumerate(layout.slots_per_window(slots)):
        window = agents_window_name(index)
        for position in range(count):
            number += 1
            if position == 0:
                new_window(window, "slot", idle)
            else:
                split(window, "slot", idle, [direction])
                # Re-arranging after each split keeps room for the next one.
                commands.append(
                    ["select-layout", "-t", window_target(name, window), layout.slot_arrangement]
                )
            # A split makes the new pane active: the window's active pane is this slot.
            commands.extend(title_commands(window_target(name, window), f"slot {number}"))
        if index == 0 and dashboard and layout.dashboard != "window":
            share = f"{layout.dashboard_size_percent}%"
            flags = ["-v" if layout.dashboard == "bottom" else "-h", "-f", "-l", share]
            split(window, "dashboard", dashboard, flags)
            commands.extend(title_commands(window_target(name, window), "dashboard"))
    first = DASHBOARD_WINDOW if dashboard and layout.dashboard == "window" else AGENTS_WINDOW
    commands.append(["select-window", "-t", window_target(name, first)])
    return groups


def slots_commands(
    name: str,
    *,
    existing: set[str],
    count: int,
    first_number: int,
    layout: Layout,
    cwd: Path,
    idle_argv: list[str],
    wake_channel: str,
) -> list[list[str]]:
    """The commands that add `count` slot panes to session `name` in new agents windows
    (named after those in `existing`), set up as a new session's windows are."""
    target = session_target(name)
    directory = escape_format(str(cwd))
    idle = program(idle_argv, "idle_argv")
    hook = wake_hook(target, wake_channel)
    direction = "-v" if layout.slot_arrangement == "even-vertical" else "-h"
    commands: list[list[str]] = []
    number = first_number
    index = 1
    existing = set(existing)
    for in_window in layout.slots_per_window(count):
        while agents_window_name(index) in existing:
            index += 1
        window = agents_window_name(index)
        existing.add(window)
        window_at = window_target(name, window)
        new_window = ["new-window", "-d", "-t", target, "-n", window]
        commands.append([*new_window, *started(directory, "slot", idle)])
        commands.extend(window_setup(name, window, hook))
        commands.extend(title_commands(window_at, f"slot {number}"))
        for _ in range(in_window - 1):
            number += 1
            commands.append(
                ["split-window", "-t", window_at, direction, *started(directory, "slot", idle)]
            )
            commands.append(["select-layout", "-t", window_at, layout.slot_arrangement])
            commands.extend(title_commands(window_at, f"slot {number}"))
        number += 1
    return commands


def window_setup(name: str, window: str, hook: str) -> list[list[str]]:
    """Options and the pane-died hook of every limitless window (never global ones).

    pane-died is a pane hook: tmux 3.3 keeps it in pane or window options
    only (`set-hook -t session` would land on the current window), so each
    window gets it.
    """
    target = window_target(name, window)
    return [
        *(
            ["set-option", "-w", "-t", target, option, value]
            for option, value in (
                ("remain-on-exit", "on"),
                ("pane-border-status", "top"),
                ("pane-border-format", PANE_BORDER_FORMAT),
                ("allow-rename", "off"),
                ("automatic-rename", "off"),
            )
        ),
        # -q: tmux 3.2 lacks the option; it then writes its own longer line
        ["set-option", "-q", "-w", "-t", target, "remain-on-exit-format", DEAD_PANE_FORMAT],
        ["set-hook", "-w", "-t", target, "pane-died", hook],
    ]


def title_commands(target: str, title: str) -> list[list[str]]:
    """Show `title` verbatim on the border of the pane `target` names."""
    clean = printable(title)
    return [
        ["select-pane", "-t", target, "-T", escape_format(clean)],
        ["set-option", "-p", "-t", target, TITLE_OPTION, clean],
    ]
