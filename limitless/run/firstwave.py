"""The first wave's worktrees, checked out by `limitless run` while its session and
supervisor start.

A run's first agents wait for their worktrees, and the supervisor can only start
checking them out once the tmux session, the control pane and the supervisor itself are
up (~150 ms after the run's rows exist). So `run` forks a detached process the moment
the rows exist, which checks out the worktrees of the tasks the supervisor will start
first (as `prepare_worktree` would) while the session is being made.

The hand-over is through files in `<run dir>/first-wave/`: for each task, a lock file
the process holds (flock, taken before the fork) while it works, and once its worktree
is ready a `<task>.json` with what `prepare_worktree` returned. The supervisor's
preparation of that task (`take`) waits for the lock, takes the record and goes on
from it, or, without a record (the process failed or was killed), prepares the worktree
itself as always: a checkout cut short is finished by `prepare_worktree`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from limitless.forkserver.server import quiet_stdio
from limitless.git import worktrees
from limitless.git.sparse import task_cone
from limitless.plan.graph import Dag
from limitless.plan.model import Plan
from limitless.store import Run, TaskRow

log = logging.getLogger(__name__)

FOLDER = "first-wave"
WORKERS = 4  # as the supervisor's pool: checkouts are parallel inside git already
TAKE_WAIT_S = 300.0


def first_wave(plan: Plan, dag: Dag, slots: int) -> list[str]:
    """The tasks the supervisor starts first: tasks without dependencies in its start
    order, one per slot, each with a worktree of its own (not an epic's or a stage's)."""
    roots = [t.id for t in plan.tasks if not dag.dependencies(t.id) and t.worktree_key == t.id]
    shared = {t.worktree_key for t in plan.tasks if t.worktree_key != t.id}
    return [task_id for task_id in dag.ready_order(roots) if task_id not in shared][:slots]


def start(
    run: Run, plan: Plan, rows: Sequence[TaskRow], folder: Path, state_dir: Path
) -> int | None:
    """Fork the process that checks out the worktrees of `rows` (see the module). Its
    pid, or None when this process runs threads already (a fork would be unsafe): the
    supervisor then checks them out itself."""
    if not rows or threading.active_count() != 1:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    locks: list[int] = []
    for row in rows:
        fd = os.open(folder / f"{row.id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        locks.append(fd)
    pid = os.fork()
    if pid:
        for fd in locks:  # the child's copies hold the locks now
            os.close(fd)
        return pid
    code = 0
    try:
        os.setsid()
        quiet_stdio()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for row, fd in zip(rows, locks, strict=True):
                pool.submit(_check_out, run, plan, row, folder, state_dir, fd)
    except BaseException:
        code = 1
    os._exit(code)


def _check_out(
    run: Run, plan: Plan, row: TaskRow, folder: Path, state_dir: Path, lock: int
) -> None:
    try:
        prepared = worktrees.prepare_worktree(
            Path(run.repo_root),
            path=Path(row.worktree),
            branch=row.branch,
            base_sha=run.base_sha,
            copy=plan.copy,
            link=plan.link,
            lock_dir=state_dir,
            hooks=plan.commit_hooks == "run",
            sparse=task_cone(plan, plan.task(row.id)),
        )
        record = asdict(prepared)
        record["path"] = str(prepared.path)
        written = folder / f"{row.id}.json.new"
        written.write_text(json.dumps(record), encoding="utf-8")
        written.replace(folder / f"{row.id}.json")
    except Exception as exc:
        log.info("first-wave checkout left to the supervisor", extra={"error": str(exc)})
    finally:
        os.close(lock)


def take(folder: Path, task_id: str) -> worktrees.PreparedWorktree | None:
    """The worktree `run` checked out for `task_id`, once its process is done with it;
    None when it made none (then the caller prepares it)."""
    lock_path = folder / f"{task_id}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        deadline = time.monotonic() + TAKE_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.005)
        record_path = folder / f"{task_id}.json"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            record_path.unlink()
        record["path"] = Path(record["path"])
        record["merged"] = tuple(record["merged"])
        return worktrees.PreparedWorktree(**record)
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(fd)
