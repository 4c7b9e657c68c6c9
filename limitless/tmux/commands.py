"""tmux command lines: several commands run by one client, and text made safe for tmux.

Text from tasks never reaches tmux's parsers: commands are argv elements, an
element ending in `;` (which tmux would take as a command separator) is sent
as `\\;`, and text that tmux expands as a format (titles, messages, start
directories) has every `#` doubled. A command line stays under tmux's size limit:
`pack` puts whole groups of commands into as few calls as fit.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

# tmux refuses a command line longer than its message size (16 KiB, "command too
# long"); create() stays well below it, one call whenever it fits.
MAX_CALL_BYTES = 12_000

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def escape_format(text: str) -> str:
    """`text` with every `#` doubled, so tmux shows it instead of expanding it."""
    return text.replace("#", "##")


def printable(text: str) -> str:
    """`text` with control characters (which tmux refuses in titles) as spaces."""
    return _CONTROL_CHARS.sub(" ", text)


def _arg(value: str) -> str:
    """One argv element as tmux must receive it: a final `;` escaped as `\\;`."""
    return value[:-1] + "\\;" if value.endswith(";") else value


def chain(commands: Sequence[Sequence[str]]) -> list[str]:
    """The argv of several tmux commands run by one client, in order."""
    argv: list[str] = []
    for position, command in enumerate(commands):
        if position:
            argv.append(";")
        argv.extend(_arg(part) for part in command)
    return argv


def program(argv: Sequence[str], what: str) -> list[str]:
    """`argv` made safe to give tmux as a program: tmux runs a single element
    through `sh -c`, so that case is routed through `env` to be exec'd as is."""
    if not argv:
        msg = f"{what} must name a program to run, got an empty argv"
        raise ValueError(msg)
    return ["env", "--", argv[0]] if len(argv) == 1 else list(argv)


def env_flags(env: Mapping[str, str]) -> list[str]:
    """`-e NAME=VALUE` flags that give a new pane `env`."""
    flags: list[str] = []
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            msg = f"environment variable name {name!r} is not valid; use letters, digits and _"
            raise ValueError(msg)
        flags += ["-e", f"{name}={value}"]
    return flags


def started(directory: str, label: str, argv: list[str]) -> list[str]:
    """Flags and program of a command that starts a pane and prints `label <pane id>`."""
    return ["-c", directory, "-P", "-F", f"{label} #{{pane_id}}", "--", *argv]


def shown(argv: Sequence[str], limit: int = 400) -> str:
    """A command line as an error message shows it (cut at `limit` characters)."""
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_bytes(commands: Sequence[Sequence[str]]) -> int:
    """The length of the command line that runs `commands`."""
    return sum(len(part.encode()) + 1 for part in chain(commands))


def pack(groups: Sequence[Sequence[list[str]]]) -> list[list[list[str]]]:
    """Whole groups of commands packed, in order, into as few tmux calls as fit."""
    batches: list[list[list[str]]] = []
    size = 0
    for group in groups:
        group_size = call_bytes(group) + 2
        if not batches or size + group_size > MAX_CALL_BYTES:
            batches.append([])
            size = 0
        batches[-1].extend(group)
        size += group_size
    return batches


class ChainFailed(Exception):
    """A sectioned chain stopped at one command; the sections before it are complete."""

    def __init__(self, sections: list[str], index: int, stderr: str) -> None:
        super().__init__(stderr)
        self.sections = sections
        self.index = index
        self.stderr = stderr
