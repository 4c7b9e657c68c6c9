"""A fake interactive agent that says one thing and then sits silent at its prompt.

Each line typed is echoed back with a burst of output, so typing is activity,
and noted in `notes.txt` (left uncommitted, as an agent's work often is).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    print("ready for instructions", flush=True)
    for line in sys.stdin:
        print(f"on it: {line.strip()}", flush=True)
        with Path("notes.txt").open("a", encoding="utf-8") as notes:
            notes.write(line)
        print("done with that, ready again", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
