"""Group `sandbox`: what `sandbox: worktree` adds to each task, measured side by side.

One run of `limitless run` holds pairs of the same shell task, one with
`sandbox: worktree` and one with `sandbox: none`, alternating, one slot (so no
pair competes with itself). Each task stamps `$EPOCHREALTIME` as its first
instruction and as its last (into a marks folder the plan names in
`sandbox_write`, so the sandboxed ones can write it). The start-up of a task is
its `task_started` event (the wrapper has the task) to its first instruction;
the end is its last instruction to its `task_done` event (autocommit, and for a
sandboxed task the last copy of its commits out and the ref check). The figures
are the differences of the medians, sandboxed minus not. Beside it, bubblewrap
alone: `bwrap … true` against `true`, alternating, in this process.
"""

from __future__ import annotations

import shlex
import statistics
import subprocess
import time
from typing import TYPE_CHECKING

import yaml

from benchlib.harness import BenchError, Harness, read_marks

if TYPE_CHECKING:
    from benchlib.figures import Figure

STARTUP_GOAL_MS = 30.0


def _script(task_id: str, marks: str) -> str:
    stamp = shlex.quote(marks)
    return "\n".join(
        [
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task_id}.start",
            f"printf '%s\\n' {task_id} > {task_id}.txt",
            f"git add {task_id}.txt && git commit -q -m 'bench: {task_id}'",
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task_id}.end",
        ]
    )


def _bwrap_alone(pairs: int) -> tuple[float, float]:
    """Median seconds of `true` and of `bwrap <the sandbox's isolation> true`."""
    from limitless.agents.sandbox import BWRAP, ISOLATION

    boxed = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    boxed += [*ISOLATION, "--share-net", "--", "true"]
    plain: list[float] = []
    confined: list[float] = []
    for _ in range(pairs):
        for argv, samples in ((["true"], plain), (boxed, confined)):
            started = time.perf_counter()
            subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
            samples.append(time.perf_counter() - started)
    return statistics.median(plain), statistics.median(confined)


def measure(h: Harness, quick: bool) -> list[Figure]:
    """Per-task start-up and end cost of the sandbox, through `limitless run`."""
    from benchlib.figures import at_most, info
    from limitless.agents.sandbox import unavailable

    reason = unavailable()
    if reason is not None:
        raise BenchError(f"sandbox: {reason}")
    pairs = 5 if quick else 12
    repo = h.make_repo("sandbox")
    marks = h.marks_dir("sandbox")
    tasks = []
    for i in range(pairs):
        for mode in ("worktree", "none"):
            task_id = f"{mode[0]}{i:02d}"
            tasks.append({"id": task_id, "sandbox": mode, "prompt": _script(task_id, str(marks))})
    plan = {
        "name": "sandbox",
        "agent": "shell",
        "max_concurrency": 1,
        "sandbox_write": [f"{marks}/"],
        "tasks": tasks,
    }
    path = h.workdir / "plans" / "sandbox.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    result = h.run(repo, path, marks, "--no-merge")
    stamps = read_marks(marks)
    start: dict[str, list[float]] = {"worktree": [], "none": []}
    end: dict[str, list[float]] = {"worktree": [], "none": []}
    for task in tasks:
        task_id, mode = str(task["id"]), str(task["sandbox"])
        row = result.tasks[task_id]
        began = result.event("task_started", task_id)
        done = result.event("task_done", task_id)
        if began is None or done is None or task_id not in stamps.start:
            msg = (
                f"sandbox: task {task_id} ({mode}) did not run through: {row.reason or row.status}"
            )
            raise BenchError(msg)
        start[mode].append(stamps.start[task_id] - began.ts)
        end[mode].append(done.ts - stamps.end[task_id])
    h.cleanup(repo, result.run.id)
    startup = (statistics.median(start["worktree"]) - statistics.median(start["none"])) * 1000
    finish = (statistics.median(end["worktree"]) - statistics.median(end["none"])) * 1000
    plain, confined = _bwrap_alone(pairs * 2)
    for mode in ("worktree", "none"):
        h.say(f"  {mode}: start-up ms " + " ".join(f"{x * 1000:.0f}" for x in start[mode]))
    h.say(
        f"  start-up: sandboxed {statistics.median(start['worktree']) * 1000:.0f} ms, "
        f"not {statistics.median(start['none']) * 1000:.0f} ms; "
        f"end: sandboxed {statistics.median(end['worktree']) * 1000:.0f} ms, "
        f"not {statistics.median(end['none']) * 1000:.0f} ms"
    )
    return [
        at_most("sandbox.startup_per_task", startup, "ms", STARTUP_GOAL_MS),
        info("sandbox.end_per_task", finish, "ms"),
        info("sandbox.bwrap_alone", (confined - plain) * 1000, "ms"),
    ]
