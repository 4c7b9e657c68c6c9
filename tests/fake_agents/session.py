"""A fake interactive agent with a conversation that can be resumed.

Started fresh, it prints its session id, leaves a file and fails (exit 3).
Started with `--resume ID`, it says so, checks the earlier work is still there,
adds a file and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SESSION = "5f0c2a1e-0000-4000-8000-00000000c0de"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resume", default=None)
    args = parser.parse_args()
    if args.resume is None:
        print(f"session id: {SESSION}", flush=True)
        Path("first.txt").write_text("first attempt\n", encoding="utf-8")
        print("connection lost", flush=True)
        return 3
    print(f"resumed conversation {args.resume}", flush=True)
    kept = Path("first.txt").exists()
    Path("second.txt").write_text(f"resumed {args.resume}; first kept: {kept}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
