"""A fake interactive agent that says one thing and then sits silent at its prompt.

Each line typed is echoed back with a burst of output, so typing is activity.
"""

from __future__ import annotations

import sys


def main() -> int:
    print("ready for instructions", flush=True)
    for line in sys.stdin:
        print(f"on it: {line.strip()}", flush=True)
        print("done with that, ready again", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
