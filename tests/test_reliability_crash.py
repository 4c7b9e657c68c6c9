"""Crashes and faults: kill -9 anywhere, lost worktrees and branches, a locked store, full disk.

Kill points come from `limitless.crashpoints`: LIMITLESS_TEST_CRASH_AT=<label>:<n>
makes the supervisor SIGKILL itself at the n-th pass of that point (once, thanks
to a marker file, so the supervisor `resume` starts runs through). A seeded random
sample of 50 points is drawn; a spread of 10 runs by default, the rest are slow.
After each kill, `limitless resume` must finish the run with every task done
exactly once, every commit on base, and base moved forward exactly once.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from limitless.crashpoints import CRASH_AT, CRASH_MARK
from limitless.states import RunStatus, TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, tasks_of, wait_for, write_plan

pytestmark = pytest.mark.usefixtures("tmux_socket")

TASKS = {
    "schema": (),
    "models": (),
    "ui": (),
    "api": ("schema", "models"),
    "client": ("api", "ui"),
    "docs": ("ui",),
}


def crash_plan(marker: Path, go: Path) -> str:
    """Six shell tasks that commit one file each; `ui` waits until the file `go` exists."""
    lines = [
        "name: crash",
        "agent: shell",
        "max_concurrency: 3",
        "merge: {gate: 'git diff --quiet HEAD', land: auto}",
        "tasks:",
    ]
    for task_id, deps in TASKS.items():
        hold = f"while [ ! -f {go} ]; do sleep 0.1; done; " if task_id == "ui" else ""
        prompt = (
            f"echo {task_id} >> {marker}; {hold}echo {task_id} > {task_id}.txt; "
            f"git add {task_id}.txt && git commit -qm '{task_id}: add'"
        )
        lines.append(f'  - {{id: {task_id}, depends_on: [{", ".join(deps)}], prompt: "{prompt}"}}')
    return "\n".join(lines) + "\n"


MAX_TICK = 40  # tick points hold task `ui` back until the kill, so any n is reached


class KillPoint(NamedTuple):
    label: str
    n: int

    @property
    def test_id(self) -> str:
        return f"{self.label}-{self.n}"


# Each worktree, launch, merge and gate happens once per task, landing once; the loop
# ticks many times: every non-tick point, plus a seeded random choice of ticks.
PER_TASK = ("worktree", "respawn", "merge", "gate")
FIXED = [
    *(
        KillPoint(label, n)
        for label in ("worktree", "respawn", "merge", "gate")
        for n in range(7)[1:]
    ),
    KillPoint("land", 1),
    KillPoint("landed", 1),
]
TICKS = [KillPoint("tick", n) for n in range(1, MAX_TICK + 1)]
SEED = 20240817


def seeded_sample(seed: int = SEED, size: int = 50) -> list[KillPoint]:
    rng = random.Random(seed)
    points = FIXED + rng.sample(TICKS, size - len(FIXED))
    rng.shuffle(points)
    return points


SAMPLE = seeded_sample()


def default_points(sample: list[KillPoint], size: int = 10) -> list[KillPoint]:
    """The first sampled point of every label, three early-to-middle ticks, then the next."""
    chosen: list[KillPoint] = []
    for point in sample:
        if point.label != "tick" and point.label not in {p.label for p in chosen}:
            chosen.append(point)
    ticks = sorted((p for p in sample if p.label == "tick"), key=lambda p: p.n)
    chosen += [ticks[0], ticks[len(ticks) // 4], ticks[len(ticks) // 2]]
    chosen += [p for p in sample if p not in chosen and p.label != "tick"][: size - len(chosen)]
    return chosen


DEFAULT = default_points(SAMPLE)
CASES = [
    pytest.param(point, id=point.test_id, marks=() if point in DEFAULT else pytest.mark.slow)
    for point in SAMPLE
]


def reflog(repo: Path, branch: str) -> list[str]:
    return git(repo, "reflog", "show", "--format=%H", f"refs/heads/{branch}").splitlines()


def crashed_pid(mark: Path) -> int:
    return int(mark.read_text().split("pid ")[1])


def supervisor_gone(pid: int) -> bool:
    """The killed supervisor is gone (a reaped pid may already belong to another process)."""
    try:
        process = psutil.Process(pid)
        return process.status() == psutil.STATUS_ZOMBIE or "_supervise" not in process.cmdline()
    except psutil.Error:
        return True


@pytest.mark.parametrize("point", CASES)
def test_kill_9_of_the_supervisor_then_resume_finishes_the_run(
    repo: Path, point: KillPoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 at a kill point; resume finishes: tasks ran once, commits kept, base moved once."""
    marker = repo.parent / "runs-of"
    mark = repo.parent / "crashed"
    go = repo.parent / "go"
    write_plan(repo, crash_plan(marker, go))
    if point.label != "tick":
        go.touch()  # later points need every task to end; ticks come while `ui` waits
    start = git(repo, "rev-parse", "main")
    monkeypatch.setenv(CRASH_AT, f"{point.label}:{point.n}")
    monkeypatch.setenv(CRASH_MARK, str(mark))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def crashed_or_ended() -> bool:
        return mark.exists() or latest_run(repo).status.finished

    wait_for(crashed_or_ended, 90, f"the kill point {point.test_id}")
    assert mark.exists(), f"{point.test_id} was never reached: {latest_run(repo).reason}"
    pid = crashed_pid(mark)
    wait_for(lambda: supervisor_gone(pid), 30, "the killed supervisor gone")
    go.touch()

    resumed = cli(repo, "resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    waited = cli(repo, "wait", run_id, "--timeout", "60", "--quiet", timeout=90)
    run = latest_run(repo)
    rows = tasks_of(repo, run_id)
    detail = f"{waited.stdout}{waited.stderr}\n{run.reason}\n" + "\n".join(
        f"{r.id}: {r.status} {r.reason} {r.merge_status} {r.merge_reason}" for r in rows.values()
    )
    assert waited.returncode == 0, detail
    assert run.status is RunStatus.DONE, detail
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}, detail
    assert sorted(marker.read_text().split()) == sorted(TASKS), "a task ran twice or never"
    tip = git(repo, "rev-parse", "main")
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    for task_id in TASKS:
        assert f"{task_id}: add" in subjects, task_id
        branch = rows[task_id].branch
        assert git(repo, "merge-base", "--is-ancestor", branch, "main") == ""
    assert run.merged_sha == tip
    assert reflog(repo, "main") == [tip, start], "base moved more than once, or not forward"
    assert git(repo, "status", "--porcelain") == "?? limitless.yaml"


def test_the_kill_points_are_a_seeded_sample_of_at_least_50() -> None:
    """50 distinct points, reproducible from the seed, every label in the default ten."""
    assert len(set(SAMPLE)) == 50
    assert seeded_sample() == SAMPLE
    assert len(DEFAULT) == 10
    assert {point.label for point in DEFAULT} == {point.label for point in SAMPLE}


def kill_tree_of(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), 30, f"pid {pid} gone")
