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
Then the dashboard's CPU with 20 agents held on two loopback hosts (goal: the local
goal, 5 % of a core), and what each task's wrapper here spends (attach, log polls).
"""

from __future__ import annotations

import shlex
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import yaml

from benchlib.harness import (
    BenchError,
    BenchTask,
    Harness,
    cpu_seconds,
    dashboard_process,
    read_marks,
    wait_until,
)

if TYPE_CHECKING:
    from benchlib.figures import Figure
    from tests.sshhosts import Fleet


def _script(task_id: str, marks: str) -> str:
    stamp = shlex.quote(marks)
    return "\n".join(
        [
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task_id}.start",
            f"printf '%s\\n' {task_id} > {task_id}.txt",
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task_id}.end",
        ]
    )


DASHBOARD_AGENTS = 20


def _dashboard_over_hosts(h: Harness, fleet: Fleet, quick: bool) -> tuple[float, float, float]:
    """CPU (% of a core) and peak RSS (MB) of the dashboard pane while 20 agents hold on two
    loopback hosts (10 each), and the mean CPU of their wrappers here (the ssh attach and
    the log polling are theirs)."""
    window = 10.0 if quick else 30.0
    repo = h.make_repo("hosts-dash")
    fleet.serve(repo)
    boxes = [fleet.add(name).host(slots=10) for name in ("box2", "box3")]
    release = h.workdir / "release-hosts-dashboard"
    tasks = [BenchTask(f"a{i:02d}", 0, hold_file=release) for i in range(DASHBOARD_AGENTS)]
    path, marks = h.write_plan("hosts-dash", tasks, concurrency=DASHBOARD_AGENTS)
    plan = yaml.safe_load(path.read_text())
    del plan["max_concurrency"]
    plan["hosts"] = [{"name": "local", "slots": 1}] + [
        {"name": b.name, "ssh": b.ssh, "port": b.port, "identity": b.identity, "slots": 10}
        for b in boxes
    ]
    for index, task in enumerate(plan["tasks"]):
        task["host"] = boxes[index % 2].name
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    run_id, wall = h.start(repo, path, "--no-merge")
    try:
        wait_until(
            lambda: len(read_marks(marks).start) == DASHBOARD_AGENTS, 300, "20 agents on hosts"
        )
        with h.store(repo) as store:
            run = store.get_run(run_id)
            pids = [row.pid for row in store.get_tasks(run_id) if row.pid]
        proc = dashboard_process(h, run.dashboard_pane)
        wrappers = [psutil.Process(pid) for pid in pids]
        cpu0, t0 = cpu_seconds(proc), time.monotonic()
        wrap0 = sum(cpu_seconds(p) for p in wrappers)
        peak = proc.memory_info().rss
        while time.monotonic() - t0 < window:
            time.sleep(0.5)
            peak = max(peak, proc.memory_info().rss)
        spent = time.monotonic() - t0
        cpu = (cpu_seconds(proc) - cpu0) / spent * 100
        per_wrapper = (sum(cpu_seconds(p) for p in wrappers) - wrap0) / spent * 100 / len(pids)
        if read_marks(marks).end:
            raise BenchError("hosts: agents ended while the dashboard was being measured")
    finally:
        release.touch()
    code = h.wait(repo, run_id, 300)
    result = h.collect(repo, run_id, marks, code, wall)
    bad = [t.id for t in result.tasks.values() if str(t.status) != "done"]
    if bad:
        raise BenchError(f"hosts: tasks {', '.join(bad)} did not end done")
    h.cleanup(repo, run_id)
    return cpu, peak / 2**20, per_wrapper


def measure(h: Harness, quick: bool) -> list[Figure]:
    """Start latency and git sync per task, loopback host against a local slot."""
    from benchlib.figures import at_most, info

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
        cpu, peak, wrappers = _dashboard_over_hosts(h, fleet, quick)
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
    h.say(
        f"  dashboard with {DASHBOARD_AGENTS} agents over two hosts: {cpu:.1f}% of a core, "
        f"{peak:.0f} MB; the wrappers here: {wrappers:.1f}% of a core each"
    )
    return [
        at_most("hosts.dashboard.cpu", cpu, "% of a core", 5),
        info("hosts.dashboard.memory", peak, "MB"),
        info("hosts.wrapper.cpu_per_remote_task", wrappers, "% of a core"),
        info("hosts.start_latency.host", ms(start["box1"]), "ms"),
        info("hosts.start_latency.local", ms(start["local"]), "ms"),
        info("hosts.end.host", ms(end["box1"]), "ms"),
        info("hosts.end.local", ms(end["local"]), "ms"),
        info("hosts.git_sync.push_and_worktree", ms(sync["box1"]), "ms"),
        info("hosts.git_sync.fetch_back", ms(sync["fetch"]), "ms"),
        info("hosts.local_checkout", ms(sync["local"]), "ms"),
    ]
