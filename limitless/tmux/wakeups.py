"""Wake-ups: a process of a run (the supervisor) sleeps until another (a wrapper, a
pane's death) signals its channel.

tmux's `wait-for -S` is a toggle, not a counter: two signals with no waiter
cancel out, and a waiter killed on timeout swallows the next signal. So every
signal made here (the session's `pane-died` hook and `signal_commands`) also
bumps a counter in the session option `@limitless-wake-<channel>`, and a waiter
only blocks in `wait-for` while that counter still holds the value it last saw.
No wake-up is lost; a spurious one can happen, so callers re-read their state.
"""

from __future__ import annotations

import re
import shlex

WAKE_OPTION_PREFIX = "@limitless-wake-"

_CHANNEL = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def check_channel(channel: str) -> str:
    """`channel` if tmux takes it as a wait-for channel; ValueError otherwise."""
    if not _CHANNEL.fullmatch(channel):
        msg = f"wake channel {channel!r} is not valid; use 1 to 200 letters, digits, ., - and _"
        raise ValueError(msg)
    return channel


def wake_option(channel: str) -> str:
    """The session option that counts the signals of `channel`."""
    return WAKE_OPTION_PREFIX + check_channel(channel)


def wake_hook(session_target: str, channel: str) -> str:
    """The pane-died hook: bump the wake counter, then signal the channel."""
    option = wake_option(channel)
    return (
        f"set-option -F -t '{session_target}' {option} '#{{e|+:#{{{option}}},1}}' ; "
        f"wait-for -S {channel}"
    )


def signal_commands(session_target: str, channel: str) -> list[list[str]]:
    """Bump the counter of `channel`, then signal it."""
    option = wake_option(channel)
    return [
        ["set-option", "-F", "-t", session_target, option, f"#{{e|+:#{{{option}}},1}}"],
        ["wait-for", "-S", channel],
    ]


def wait_commands(session_target: str, channel: str, seen: str | None) -> list[list[str]]:
    """Wait for `channel` unless its counter moved past `seen` (the value the last wait
    printed; None: wait in any case), then print the counter."""
    option = wake_option(channel)
    wait_command = ["wait-for", channel]
    first = (
        wait_command
        if seen is None
        else [
            "if-shell",
            "-F",
            "-t",
            session_target,
            f"#{{==:#{{{option}}},{seen}}}",
            shlex.join(wait_command),
        ]
    )
    return [first, ["display-message", "-p", "-t", session_target, f"#{{{option}}}"]]
