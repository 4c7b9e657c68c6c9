"""The plain-script baseline: the same DAG run with git and tmux alone, no limitless.

For the same tasks (the same bash scripts), the same slots and the same start
order as a limitless run, a minimal scheduler in this process does what a
careful shell script would: `git worktree add` of a branch from base, a merge of
the dependencies' branches into it, `tmux respawn-pane` of a slot's pane with the
task's script, a `tmux wait-for` for its end, and a commit of what it left. Its
makespan (start → last task's end stamp) is what the per-task overhead of
limitless is compared with, side by side in one bench run.
"""

from __future__ import annotations

import queue
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import dags
from benchlib.harness import BenchError, BenchTask, Harness, read_marks
from limitless.tmux.session import socket_path


@dataclass(frozen=True)
class PlainResult:
    makespan: float  # baseline start to the last task's end stamp, seconds
    order: tuple[str, ...]  # the order the tasks were started in


class _Slots:
    """`count` panes of one tmux session on a server of its own, idle until respawned."""

    def __init__(self, h: Harness, name: str, count: int) -> None:
        self.h = h
        self.socket = f"{h.socket}-plain"
        self.session = name
        self.tmux("new-session", "-d", "-s", name, "-x", "200", "-y", "50", "sleep", "86400")
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        self.panes = [self.tmux("display-message", "-p", "-t", name, "#{pane_id}")]
        for _ in range(count - 1):
            pane = self.tmux(
                "new-window", "-d", "-P", "-F", "#{pane_id}", "-t", name, "sleep", "86400"
            )
            self.panes.append(pane)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.h.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            msg = f"tmux {' '.join(args[:2])} failed: {done.stderr.strip()}"
            raise BenchError(msg)
        return done.stdout.strip()

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            env=self.h.env,
            capture_output=True,
            check=False,
        )
        # tmux 3.3 leaves a killed server's socket file behind
        path = socket_path(self.socket, self.h.env)
        if path.is_socket():
            path.unlink(missing_ok=True)


def run(
    h: Harness,
    repo: Path,
    graph: dags.Graph,
    slots: int,
    order: list[str],
    tag: str,
) -> PlainResult:
    """Run `graph` on `slots` panes, starting ready tasks in `order` (first listed first)."""
    tasks = {n.id: BenchTask(n.id, n.seconds, n.deps) for n in graph.nodes}
    rank = {task_id: i for i, task_id in enumerate(order)}
    marks = h.marks_dir(f"plain-{tag}")
    root = h.workdir / "plain" / tag
    branch = {task_id: f"plain-{tag}/{task_id}" for task_id in tasks}
    pool = _Slots(h, f"plain-{tag}", slots)
    ended: queue.Queue[tuple[str, str]] = queue.Queue()
    free = list(pool.panes)
    done: set[str] = set()
    started: list[str] = []

    def waiter(task_id: str, pane: str) -> None:
        subprocess.run(
            ["tmux", "-L", pool.socket, "wait-for", f"plain-{tag}-{task_id}"],
            env=h.env,
            capture_output=True,
            check=False,
        )
        ended.put((task_id, pane))

    def start(task_id: str, pane: str) -> None:
        worktree = root / task_id
        h.git(repo, "worktree", "add", "-q", "-b", branch[task_id], str(worktree), "main")
        deps = tasks[task_id].deps
        if deps:
            h.git(worktree, "merge", "-q", "--no-edit", *(branch[d] for d in deps))
        signal = shlex.join(["tmux", "-L", pool.socket, "wait-for", "-S", f"plain-{tag}-{task_id}"])
        script = h.script(tasks[task_id], marks) + signal + "\n"
        pool.tmux("respawn-pane", "-k", "-t", pane, "-c", str(worktree), "bash", "-c", script)
        threading.Thread(target=waiter, args=(task_id, pane), daemon=True).start()

    def finish(task_id: str) -> None:
        worktree = root / task_id
        if h.git(worktree, "status", "--porcelain"):
            h.git(worktree, "add", "-A")
            h.git(worktree, "commit", "-q", "-m", f"leftovers of {task_id}")

    began = time.time()
    try:
        while len(done) < len(tasks):
            ready = sorted(
                (t for t in tasks if t not in started and all(d in done for d in tasks[t].deps)),
                key=lambda t: rank.get(t, len(rank)),
            )
            for task_id in ready[: len(free)]:
                started.append(task_id)
                start(task_id, free.pop(0))
            try:
                task_id, pane = ended.get(timeout=300)
            except queue.Empty as exc:
                msg = f"plain baseline {tag}: no task ended within 300 s"
                raise BenchError(msg) from exc
            finish(task_id)
            done.add(task_id)
            free.append(pane)
    finally:
        pool.close()
    stamps = read_marks(marks)
    missing = set(tasks) - set(stamps.end)
    if missing:
        msg = f"plain baseline {tag}: no end stamp from {', '.join(sorted(missing))}"
        raise BenchError(msg)
    makespan = max(stamps.end.values()) - began
    for task_id in tasks:
        h.git(repo, "worktree", "remove", "--force", str(root / task_id))
        h.git(repo, "branch", "-D", branch[task_id])
    return PlainResult(makespan, tuple(started))
