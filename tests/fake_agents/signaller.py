"""A fake agent that reports its own state with `limitless signal`, as hooks would.

It signals `waiting` with a note and waits for a line; then signals `working`,
prints for a while and, with `--done`, signals `done` and waits to be ended.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def signal(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "limitless", "signal", *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--done", action="store_true")
    args = parser.parse_args()
    print("planning", flush=True)
    signal("waiting", "need a decision on the schema")
    answer = sys.stdin.readline().strip()
    signal("working")
    print(f"got {answer!r}", flush=True)
    if args.done:
        signal("done", "all finished")
    for n in range(600):
        time.sleep(0.1)
        if n % 10 == 0:
            print(f"still here {n}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
