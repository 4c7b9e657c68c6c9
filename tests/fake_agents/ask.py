"""A fake interactive agent: works a little, asks a y/n question, then works on.

After the answer it prints a tick every 0.3 s (output that keeps changing, as a
working agent's does) until `--ticks` are printed, then exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    print("reading the code base", flush=True)
    sys.stdout.write("Apply the change to app.py? (y/n) ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    print(f"answer was {answer!r}; applying the change", flush=True)
    for n in range(args.ticks):
        print(f"editing, step {n}", flush=True)
        time.sleep(0.3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
