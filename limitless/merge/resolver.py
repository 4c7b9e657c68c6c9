"""A conflict resolver in one of the run's slot panes (`merge.on_conflict: agent`).

`slot_runner(store, run)` gives the merge phase its `run_in_slot` callback when
the run's tmux session is alive: the resolver's argv runs, exec'd without a
shell, in a slot pane (all tasks have ended, so every slot is free) through
`python -m limitless.merge.resolver EXIT_FILE -- ARGV...`. That wrapper runs the
agent on the pane's terminal, so the user can watch it and step in, and writes
its exit code to EXIT_FILE; the merge phase waits for that file, or for the
pane to die without writing it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from limitless.errors import LimitlessError
from limitless.states import RESOLVER_TIMED_OUT
from limitless.store import Run, Store
from limitless.tmux.pane_programs import pane_env, resolver_argv, resolver_stopped_argv
from limitless.tmux.session import TmuxSession

log = logging.getLogger(__name__)

POLL_S = 0.2
STOP_GRACE_S = 5.0
PANE_CHECK_S = 2.0
LOST = 125
"""The exit code reported when the pane died without the wrapper writing one."""
TIMED_OUT = RESOLVER_TIMED_OUT


def slot_runner(
    store: Store, run: Run, *, env: dict[str, str] | None = None, timeout_s: float | None = None
) -> Callable[[list[str], Path, str], int] | None:
    """A `run_in_slot` for `run`, or None when it has no live session with slot panes.

    A resolver still going after `timeout_s` is stopped (its pane respawned, which
    hangs up on everything it started there) and TIMED_OUT returned."""
    slots = [pane for pane in run.slot_panes.split(",") if pane]
    if not slots:
        return None
    tmux = TmuxSession(run.tmux_socket, run.id)
    try:
        if not tmux.exists():
            return None
        alive = {pane.pane_id for pane in tmux.panes()}
    except LimitlessError as exc:
        log.info("no slot for a resolver", extra={"run": run.id, "error": str(exc)})
        return None
    free = [pane for pane in slots if pane in alive]
    if not free:
        return None
    pane_id = free[0]
    env_of_pane = {**(env or {}), **pane_env(run.id, run.tmux_socket)}
    folder = store.run_dir(run.id) / "merge"
    counter = [0]

    def run_in_slot(argv: list[str], cwd: Path, title: str) -> int:
        counter[0] += 1
        folder.mkdir(parents=True, exist_ok=True)
        exit_file = folder / f"resolver-{os.getpid()}-{counter[0]}.exit"
        exit_file.unlink(missing_ok=True)
        tmux.respawn(pane_id, resolver_argv(exit_file, argv), cwd=cwd, env=env_of_pane)
        with contextlib.suppress(LimitlessError):
            tmux.set_title(pane_id, title)
        log.info("resolver started", extra={"run": run.id, "pane": pane_id, "title": title})
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        code = wait_for_exit(tmux, pane_id, exit_file, deadline)
        if code == TIMED_OUT and _read_exit(exit_file) is None:
            with contextlib.suppress(LimitlessError):
                tmux.respawn(pane_id, resolver_stopped_argv(), cwd=cwd, env=env_of_pane)
                tmux.set_title(pane_id, f"{title} · stopped at its time limit")
        return code

    return run_in_slot


def foreground_runner(
    env: dict[str, str], timeout_s: float | None = None
) -> Callable[[list[str], Path, str], int]:
    """A `run_in_slot` that runs the resolver in this process's terminal, and waits
    (at most `timeout_s`: then it is killed and TIMED_OUT returned)."""

    def run_here(argv: list[str], cwd: Path, title: str) -> int:
        print(f"--- {title}: {argv[0]} in {cwd} ---", flush=True)
        try:
            process = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env})
        except FileNotFoundError:
            print(f"resolver: {argv[0]}: command not found", file=sys.stderr)
            return 127
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # asked first: a wrapper (headless_run) passes it on to the agent it runs
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            print(f"--- {title}: stopped at its time limit ---", flush=True)
            return TIMED_OUT
        print(f"--- {title}: exited with {code} ---", flush=True)
        return 128 - code if code < 0 else code

    return run_here


def wait_for_exit(
    tmux: TmuxSession, pane_id: str, exit_file: Path, deadline: float | None = None
) -> int:
    """The code written to `exit_file`; LOST if the pane dies (or goes) without one,
    TIMED_OUT at `deadline` (a `time.monotonic()` value)."""
    last_check = time.monotonic()
    while True:
        code = _read_exit(exit_file)
        if code is not None:
            return code
        if deadline is not None and time.monotonic() >= deadline:
            return TIMED_OUT
        time.sleep(POLL_S)
        if time.monotonic() - last_check < PANE_CHECK_S:
            continue
        last_check = time.monotonic()
        try:
            pane = next((p for p in tmux.panes() if p.pane_id == pane_id), None)
        except LimitlessError:
            pane = None
        if pane is None or pane.dead:
            code = _read_exit(exit_file)
            return LOST if code is None else code


def _read_exit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def main(args: Sequence[str]) -> int:
    """`python -m limitless.merge.resolver EXIT_FILE -- ARGV...`: run ARGV, record its exit code."""
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m limitless.merge.resolver EXIT_FILE -- ARGV...", file=sys.stderr)
        return 2
    exit_file = Path(args[0])
    argv = list(args[2:])
    try:
        code = subprocess.run(argv, check=False).returncode
    except FileNotFoundError:
        print(f"resolver: {argv[0]}: command not found", file=sys.stderr)
        code = 127
    except KeyboardInterrupt:
        code = 130
    if code < 0:
        code = 128 - code
    print(f"\nresolver exited with {code}")
    partial = exit_file.with_name(exit_file.name + ".tmp")
    partial.write_text(f"{code}\n")
    partial.replace(exit_file)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
