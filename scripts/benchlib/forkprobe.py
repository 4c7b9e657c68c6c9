"""A stand-in for `limitless _exec` up to the wrapper's main(): the same imports, then a stamp.

`python -m benchlib.forkprobe STAMP [HOLD]` (cold) or the same command through the
fork server: on entry it writes `<epoch seconds> <pid>` to STAMP, then waits until
HOLD exists (so its memory can be read), and exits 0.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import limitless.agents.wrapper
import limitless.cli.main  # noqa: F401


def main(args: list[str]) -> int:
    entered = time.time()
    Path(args[0]).write_text(f"{entered} {os.getpid()}\n")
    if len(args) > 1:
        hold = Path(args[1])
        deadline = time.monotonic() + 60
        while not hold.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
