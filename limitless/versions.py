"""The tools limitless needs, how new they must be, and how their versions are read.

One home for the minimum versions (`MIN_GIT`, `MIN_TMUX`, `MIN_PYTHON`) and for
reading a version: `parse_version` reads a banner (`git version 2.39.5`,
`tmux 3.3a`, `Python 3.11.4`) and is pure, so a banner read elsewhere (over ssh
on a remote host) is read the same way; `tool_version` runs a tool's version
command here. `limitless doctor`, the checks before a run and tmux all ask here.

Imports only the standard library (a core module).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

Version = tuple[int, int]
"""(major, minor)."""

NEWEST: Version = (99, 0)
"""What a development build reads as: newer than any release."""

PROBE_TIMEOUT_S = 10.0

_NUMBERS = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True)
class Tool:
    """A program limitless runs: the command that prints its version, and the oldest it needs."""

    name: str
    argv: tuple[str, ...]
    minimum: Version

    @property
    def wanted(self) -> str:
        """The minimum as people write it: "2.38"."""
        return dotted(self.minimum)


GIT = Tool("git", ("git", "--version"), (2, 38))
"""2.38 for `git merge-tree --write-tree` (conflict prediction)."""
TMUX = Tool("tmux", ("tmux", "-V"), (3, 2))
PYTHON = Tool("python", ("python3", "--version"), (3, 11))

MIN_GIT = GIT.minimum
MIN_TMUX = TMUX.minimum
MIN_PYTHON = PYTHON.minimum


def dotted(version: Version) -> str:
    """`(2, 38)` as "2.38"."""
    return ".".join(map(str, version))


def parse_version(text: str) -> Version | None:
    """The (major, minor) a version banner names; None when it names none.

    The first `major.minor` in it counts (`git version 2.39.5 (Apple Git-154)`
    -> (2, 39), `tmux next-3.4` -> (3, 4)). A build from git ("tmux master") and
    OpenBSD's base tmux ("tmux openbsd-7.4") are newer than any release: NEWEST.
    """
    words = text.split()
    if any(word == "master" or word.startswith("openbsd-") for word in words):
        return NEWEST
    found = _NUMBERS.search(text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def tool_version(argv: Sequence[str]) -> tuple[str, Version | None]:
    """(banner, version) of the tool `argv` asks; ("", None) when it cannot be run.

    The banner is what it printed (stdout, else stderr); the version is None
    when the command failed or its banner names none.
    """
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "", None
    banner = (result.stdout or result.stderr).strip()
    if result.returncode != 0:
        return banner, None
    return banner, parse_version(banner)


def installed(tool: Tool) -> Version | None:
    """The version of `tool` installed here, or None when it is missing or unreadable."""
    return tool_version(tool.argv)[1]


def git_version() -> Version | None:
    """The installed git's (major, minor), or None when git is missing or unreadable."""
    return installed(GIT)


def tmux_version() -> Version | None:
    """The installed tmux's (major, minor), or None when tmux is missing or unreadable."""
    return installed(TMUX)
