"""Group `hosts`: what a task on another machine costs against one on this machine.

One run of `limitless run` over `local` (one slot) and a loopback host (one slot) on a
real sshd started here (tests/sshhosts: generated keys, its own HOME and root), with
pairs of the same shell task pinned alternately to each, side by side. Each task
stamps `$EPOCHREALTIME` first and last into a marks folder (the loopback host shares
this filesystem, so the remote agent writes it too). Start latency is the
supervisor's `task_launched` event to the first instruction; the end is the last
instruction to `task_done` (for the host: commit there, fetch back, fast-forward).
Git sync per remote task: `task_placed.sync_s` (push base + branch, worktree there,
prompt copied) and `task_fetched.seconds`; for a local task the checkout of its
worktree (`worktree_checked_out.seconds`). Loopback hides bandwidth and latency.
"""

from __future__ import annotations

import shlex
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from benchlib.harness import BenchError, Harness, read_marks

if TYPE_CHECKING:
    from benchlib.figures import Figure


def _script(task_id: str, marks: str) -> str:
    stamp = shlex.quote(marks)
    return "\n".join(
        [
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task_id}.start",
            f"printf '%s\\n' {task_id} > {task_id}.txt",
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task_id}.end",
        ]
    )


def measure(h: Harness, quick: bool) -> list[Figure]:
    """Start latency and git sync per task, loopback host against a local slot."""
    from benchlib.figures import info

    try:
        from tests.sshhosts import Fleet, make_user_key, unavailable
    except ImportError as exc:
        raise BenchError(f"hosts: the test sshd harness is not importable ({exc})") from exc
    reason = unavailable()
    if reason is not None:
        raise BenchError(f"hosts: {reason}")
    pairs = 4 if quick else 10
    repo = h.make_repo("hosts")
    marks = h.marks_dir("hosts")
    folder = Path(tempfile.mkdtemp(prefix="lb-", dir="/tmp"))  # short: control sockets
    fleet = Fleet(folder, folder / "s", make_user_key(folder))
    try:
        fleet.serve(repo)
        box = fleet.add("box1").host(slots=1)
        tasks = []
        for i in range(pairs):
            for where in ("local", "box1"):
                task_id = f"{where[0]}{i:02d}"
                tasks.append({"id": task_id, "host": where, "prompt": _script(task_id, str(marks))})
        plan = {
            "name": "hosts",
            "agent": "shell",
            "hosts": [
                {"name": "local", "slots": 1},
                {
                    "name": box.name,
                    "ssh": box.ssh,
                    "port": box.port,
                    "identity": box.identity,
                    "slots": 1,
                },
            ],
            "tasks": tasks,
        }
        path = h.workdir / "plans" / "hosts.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        result = h.run(repo, path, marks, "--no-merge")
        stamps = read_marks(marks)
        start: dict[str, list[float]] = {"local": [], "box1": []}
        end: dict[str, list[float]] = {"local": [], "box1": []}
        sync: dict[str, list[float]] = {"local": [], "box1": [], "fetch": []}
        for task in tasks:
            task_id, where = str(task["id"]), str(task["host"])
            launched = result.event("task_launched", task_id)
            done = result.event("task_done", task_id)
            if launched is None or done is None or task_id not in stamps.start:
                row = result.tasks[task_id]
                msg = f"hosts: task {task_id} ({where}) did not run through: {row.reason}"
                raise BenchError(msg)
            start[where].append(stamps.start[task_id] - launched.ts)
            end[where].append(done.ts - stamps.end[task_id])
            if where == "local":
                checkout = result.event("worktree_checked_out", task_id)
                if checkout is not None:
                    sync["local"].append(float(str(checkout.data.get("seconds", 0))))
            else:
                placed = result.event("task_placed", task_id)
                fetched = result.event("task_fetched", task_id)
                if placed is not None:
                    sync["box1"].append(float(str(placed.data.get("sync_s", 0))))
                if fetched is not None:
                    sync["fetch"].append(float(str(fetched.data.get("seconds", 0))))
        h.cleanup(repo, result.run.id)
    finally:
        fleet.close()
        shutil.rmtree(folder, ignore_errors=True)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000 if values else 0.0

    for where in ("local", "box1"):
        h.say(f"  {where}: start ms " + " ".join(f"{x * 1000:.0f}" for x in start[where]))
    h.say(
        f"  start: host {ms(start['box1']):.0f} ms, local {ms(start['local']):.0f} ms; "
        f"end: host {ms(end['box1']):.0f} ms, local {ms(end['local']):.0f} ms; "
        f"sync: push+worktree {ms(sync['box1']):.0f} ms, fetch {ms(sync['fetch']):.0f} ms, "
        f"local checkout {ms(sync['local']):.0f} ms"
    )
    return [
        info("hosts.start_latency.host", ms(start["box1"]), "ms"),
        info("hosts.start_latency.local", ms(start["local"]), "ms"),
        info("hosts.end.host", ms(end["box1"]), "ms"),
        info("hosts.end.local", ms(end["local"]), "ms"),
        info("hosts.git_sync.push_and_worktree", ms(sync["box1"]), "ms"),
        info("hosts.git_sync.fetch_back", ms(sync["fetch"]), "ms"),
        info("hosts.local_checkout", ms(sync["local"]), "ms"),
    ]
