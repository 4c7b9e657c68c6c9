"""A test hook: die by SIGKILL at a named point of the supervisor's work.

`LIMITLESS_TEST_CRASH_AT=<label>:<n>` makes the n-th call of `crashpoint(label)`
in a process kill that process at once, as `kill -9` would. With
`LIMITLESS_TEST_CRASH_MARK=<file>` it fires only in the first process that
creates that file, so the supervisor `limitless resume` starts (which inherits
the same environment from tmux) runs through. Unset, every call costs one
dictionary lookup and does nothing.
"""

from __future__ import annotations

import os
import signal
import threading

CRASH_AT = "LIMITLESS_TEST_CRASH_AT"
CRASH_MARK = "LIMITLESS_TEST_CRASH_MARK"

_lock = threading.Lock()
_counts: dict[str, int] = {}


def crashpoint(label: str) -> None:
    """SIGKILL this process if LIMITLESS_TEST_CRASH_AT names this call of `label`."""
    spec = os.environ.get(CRASH_AT)
    if not spec:
        return
    wanted, _, number = spec.rpartition(":")
    if wanted != label:
        return
    with _lock:
        _counts[label] = count = _counts.get(label, 0) + 1
        if str(count) != number or not _claim(f"{label}:{count} pid {os.getpid()}\n"):
            return
        os.kill(os.getpid(), signal.SIGKILL)


def _claim(note: str) -> bool:
    """Create the mark with `note` in it, unless another process did first. The note is
    written to a private file that is then hard-linked into place, so a reader never sees
    the mark empty (a test reads it the moment it appears)."""
    mark = os.environ.get(CRASH_MARK)
    if not mark:
        return True
    private = f"{mark}.{os.getpid()}"
    with open(private, "w", encoding="utf-8") as stream:
        stream.write(note)
    try:
        os.link(private, mark)
    except OSError:
        return False
    finally:
        os.unlink(private)
    return True
