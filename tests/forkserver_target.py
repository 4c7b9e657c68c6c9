"""A program for tests/test_forkserver.py to start through the fork server, or cold.

`python -m tests.forkserver_target OUT [--exit N] [--until FILE] [--timeout S]`
writes one JSON line to OUT describing what it sees (forked or cold, its
terminal, session, handlers, descriptors, environment), then one line per
signal it receives (SIGWINCH with the new size), waits until FILE exists (or
a SIGHUP/SIGTERM), and exits with N.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path
from types import FrameType

import psutil


def window_size(fd: int) -> list[int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return [rows, cols]


def what_i_see() -> dict[str, object]:
    return {
        "forked": "limitless.forkserver.child" in sys.modules,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "isatty": [os.isatty(0), os.isatty(1), os.isatty(2), sys.stdout.isatty()],
        "size": window_size(1),
        "cwd": os.getcwd(),
        "marker": os.environ.get("FORKSERVER_MARKER"),
        "umask": os.umask(os.umask(0)),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "sigint_default": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        "sigpipe_ignored": signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
        "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "random": random.random(),
        "argv0": sys.argv[0],
        "cmdline": [word for word in psutil.Process().cmdline() if word],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--until", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    ended: list[int] = []

    def note(line: dict[str, object]) -> None:
        with args.out.open("a") as out:
            out.write(json.dumps(line) + "\n")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        line: dict[str, object] = {"signal": signal.Signals(signum).name}
        if signum == signal.SIGWINCH:
            line["size"] = window_size(1)
        else:
            ended.append(signum)
        note(line)

    note(what_i_see())
    for number in (signal.SIGWINCH, signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, on_signal)
    print(f"target running, pid {os.getpid()}", flush=True)
    deadline = time.monotonic() + args.timeout
    while args.until is not None and not args.until.exists() and not ended:
        if time.monotonic() > deadline:
            return 99
        time.sleep(0.02)
    if ended:
        return 128 + ended[0]
    return args.exit


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
