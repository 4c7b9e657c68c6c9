"""Task output as text: pane lines without terminal escapes, and the last lines of a log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_BYTES = 16_384
"""How much of the end of a finished task's log is read for its last lines."""

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences and other control characters (tabs kept)."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


def last_lines_of(data: bytes, count: int) -> tuple[str, ...]:
    """The last `count` non-blank lines of terminal output, escapes stripped."""
    text = strip_ansi(data.decode("utf-8", errors="replace"))
    lines = [line.rstrip() for line in re.split(r"[\r\n]", text)]
    return tuple(line for line in lines if line.strip())[-count:]


@dataclass
class _LogSeen:
    size: int
    mtime: int
    tail: tuple[str, ...]


class LogTails:
    """The last lines of each task's log, read again only when the log changed."""

    def __init__(self) -> None:
        self._seen: dict[str, _LogSeen] = {}

    def tail(self, task_id: str, path: Path, count: int) -> tuple[str, ...]:
        """The last `count` lines of `path`, the log of `task_id`; () when there is none."""
        try:
            info = path.stat()
        except OSError:
            return ()
        seen = self._seen.get(task_id)
        if seen is not None and (seen.size, seen.mtime) == (info.st_size, info.st_mtime_ns):
            return seen.tail
        try:
            with path.open("rb") as handle:
                handle.seek(max(0, info.st_size - LOG_TAIL_BYTES))
                data = handle.read(LOG_TAIL_BYTES)
        except OSError:
            return ()
        tail = last_lines_of(data, count)
        self._seen[task_id] = _LogSeen(info.st_size, info.st_mtime_ns, tail)
        return tail
