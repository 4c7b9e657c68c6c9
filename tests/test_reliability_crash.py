"""Crashes and faults: kill -9 anywhere, lost worktrees and branches, a locked store, full disk.

Kill points come from `limitless.crashpoints`: LIMITLESS_TEST_CRASH_AT=<label>:<n>
makes the supervisor SIGKILL itself at the n-th pass of that point (once, thanks
to a marker file, so the supervisor `resume` starts runs through). A seeded random
sample of 50 points is drawn; a spread of 10 runs by default, the rest are slow.
After each kill, `limitless resume` must finish the run with every task done
exactly once, every commit on base, and base moved forward exactly once.
The warm processes of the fork server (the server, a wrapper's watcher, a pane's
client) are killed by the test itself while a task runs forked, with the same checks.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from limitless.crashpoints import CRASH_AT, CRASH_MARK
from limitless.errors import StoreError
from limitless.states import RunStatus, TaskStatus
from limitless.store import Store
from tests.conftest import git
from tests.engine_helpers import (
    LIMITLESS,
    cli,
    latest_run,
    open_store,
    tasks_of,
    wait_for,
    write_plan,
)

pytestmark = pytest.mark.usefixtures("tmux_socket")

TASKS = {
    "schema": (),
    "models": (),
    "ui": (),
    "api": ("schema", "models"),
}


def crash_plan(
    marker: Path, go: Path, tasks: dict[str, tuple[str, ...]] = TASKS, ui_retries: int = 0
) -> str:
    """Shell tasks that commit one file each; `ui` waits until the file `go` exists."""
    lines = [
        "name: crash",
        "agent: shell",
        "max_concurrency: 3",
        "merge: {gate: 'git diff --quiet HEAD', land: auto}",
        "tasks:",
    ]
    for task_id, deps in tasks.items():
        hold = f"while [ ! -f {go} ]; do sleep 0.1; done; " if task_id == "ui" else ""
        prompt = (
            f"echo {task_id} >> {marker}; {hold}echo {task_id} > {task_id}.txt; "
            f"git add {task_id}.txt && git commit -qm '{task_id}: add'"
        )
        retries = f", retries: {ui_retries}" if task_id == "ui" and ui_retries else ""
        lines.append(
            f'  - {{id: {task_id}, depends_on: [{", ".join(deps)}]{retries}, prompt: "{prompt}"}}'
        )
    return "\n".join(lines) + "\n"


MAX_TICK = 40  # tick points hold task `ui` back until the kill, so any n is reached


class KillPoint(NamedTuple):
    label: str
    n: int

    @property
    def test_id(self) -> str:
        return f"{self.label}-{self.n}"


# Each launch, merge and gate happens once per task, landing once; the loop ticks many
# times: every non-tick point, plus a seeded random choice of ticks. Every task but
# `api` is checked out: `api` takes over the worktree of a dependency (`hand_on`).
PER_TASK = ("respawn", "merge", "gate")
CHECKOUTS = len(TASKS) - 1
FIXED = [
    *(KillPoint("worktree", n) for n in range(1, CHECKOUTS + 1)),
    *(KillPoint(label, n) for label in PER_TASK for n in range(1, len(TASKS) + 1)),
    KillPoint("land", 1),
    KillPoint("landed", 1),
    KillPoint("hand_on", 1),  # `api` takes over a dependency's worktree
]
TICKS = [KillPoint("tick", n) for n in range(1, MAX_TICK + 1)]
SEED = 20240817


def seeded_sample(seed: int = SEED, size: int = 50) -> list[KillPoint]:
    rng = random.Random(seed)
    points = FIXED + rng.sample(TICKS, size - len(FIXED))
    rng.shuffle(points)
    return points


SAMPLE = seeded_sample()


# Points that found bugs stay in the default run: a launch into a slot whose pane
# already ran a task (its pane is dead, not idle) used to leave the task failed.
REGRESSIONS = [KillPoint("respawn", len(TASKS))]


def default_points(sample: list[KillPoint], size: int = 10) -> list[KillPoint]:
    """Known regressions, the first sampled point of every label, three early-to-middle ticks."""
    chosen: list[KillPoint] = list(REGRESSIONS)
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


# ---------------------------------------------------------------- the warm processes

# `ui` is held while the kill happens; `notes` waits for it, so it is launched after.
WARM_TASKS = {**TASKS, "notes": ("ui",)}


class WarmKill(NamedTuple):
    test_id: str
    victim: str  # "fork_server", "watcher" (of ui's wrapper) or "client" (ui's pane program)
    ui_runs: int  # a killed client hangs up on its wrapper, as a closed pane does: a retry
    """How many attempts of `ui` run: 1, or 2 when the kill ends its first attempt."""


WARM_KILLS = [
    WarmKill("fork-server", "fork_server", 1),
    WarmKill("watcher", "watcher", 1),
    WarmKill("client", "client", 2),
    # the supervisor, forked by `run`'s one-shot server, and the watcher between it and
    # the control pane's client
    WarmKill("supervisor", "supervisor", 1),
    WarmKill("supervisor-watcher", "supervisor_watcher", 1),
]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def warm_victim(
    victim: str, wrapper: psutil.Process, pane_pid: int, supervisor_pid: int
) -> psutil.Process:
    """The process to kill: the fork server, the watcher of `wrapper`, its pane's client,
    the supervisor or the supervisor's watcher."""
    if victim in ("supervisor", "supervisor_watcher"):
        supervisor = psutil.Process(supervisor_pid)
        assert "_supervise" in supervisor.cmdline()
        if victim == "supervisor":
            return supervisor
        watcher = supervisor.parent()
        assert watcher is not None and "client.py" not in " ".join(watcher.cmdline())
        return watcher
    if victim == "client":
        return psutil.Process(pane_pid)
    watcher = wrapper.parent()
    assert watcher is not None
    if victim == "watcher":
        return watcher
    server = watcher.parent()
    assert server is not None
    return server


@pytest.mark.parametrize("kill", WARM_KILLS, ids=[k.test_id for k in WARM_KILLS])
def test_kill_9_of_a_warm_process_then_resume_finishes_the_run(
    repo: Path, tmux_socket: str, kill: WarmKill
) -> None:
    """kill -9 of the fork server, a watcher, a client, the supervisor or its watcher
    mid-run (a task running forked, another launched after): resume finishes, every
    task's commit on base, base moved once."""
    marker = repo.parent / "runs-of"
    go = repo.parent / "go"
    write_plan(repo, crash_plan(marker, go, WARM_TASKS, ui_retries=kill.ui_runs - 1))
    start = git(repo, "rev-parse", "main")
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def ui_running() -> bool:
        row = tasks_of(repo, run_id)["ui"]
        return row.status is TaskStatus.RUNNING and bool(row.pid) and "ui" in runs_of(marker)

    wait_for(ui_running, 60, "ui running")
    row = tasks_of(repo, run_id)["ui"]
    assert row.pid and row.pane_id
    pane_pid = int(tmux_out(tmux_socket, "display", "-p", "-t", row.pane_id, "#{pane_pid}"))
    wrapper = psutil.Process(row.pid)
    # cold, the pane's process is the wrapper (or its parent); forked, a watcher is
    assert pane_pid not in (wrapper.pid, wrapper.ppid()), "ui's wrapper started cold"
    supervisor_pid = latest_run(repo).supervisor_pid
    assert supervisor_pid is not None
    victim = warm_victim(kill.victim, wrapper, pane_pid, supervisor_pid)
    victim.kill()
    wait_for(lambda: gone(victim.pid), 30, f"the {kill.victim} gone")
    go.touch()

    resumed = cli(repo, "resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    waited = cli(repo, "wait", run_id, "--timeout", "90", "--quiet", timeout=120)
    run = latest_run(repo)
    rows = tasks_of(repo, run_id)
    detail = f"{waited.stdout}{waited.stderr}\n{run.reason}\n" + "\n".join(
        f"{r.id}: {r.status} {r.reason} {r.merge_status} {r.merge_reason}" for r in rows.values()
    )
    assert waited.returncode == 0, detail
    assert run.status is RunStatus.DONE, detail
    assert {r.status for r in rows.values()} == {TaskStatus.DONE}, detail
    expected = sorted([*WARM_TASKS, *["ui"] * (kill.ui_runs - 1)])
    assert runs_of(marker) == expected, "a task ran more often than its attempts, or never"
    assert rows["ui"].attempt == kill.ui_runs
    tip = git(repo, "rev-parse", "main")
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    for task_id in WARM_TASKS:
        assert f"{task_id}: add" in subjects, task_id
        assert git(repo, "merge-base", "--is-ancestor", rows[task_id].branch, "main") == ""
    assert run.merged_sha == tip
    assert reflog(repo, "main") == [tip, start], "base moved more than once, or not forward"
    assert git(repo, "status", "--porcelain") == "?? limitless.yaml"


def test_the_kill_points_are_a_seeded_sample_of_at_least_50() -> None:
    """50 distinct points, reproducible from the seed, every label in the default ten."""
    assert len(set(SAMPLE)) == 50
    assert seeded_sample() == SAMPLE
    assert len(DEFAULT) == 10
    assert {point.label for point in DEFAULT} == {point.label for point in SAMPLE}


# ---------------------------------------------------------------- other processes die


def tmux_out(socket: str, *args: str) -> str:
    result = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True)
    return result.stdout.strip()


def status_of(repo: Path, run_id: str, task_id: str) -> TaskStatus:
    return tasks_of(repo, run_id)[task_id].status


def runs_of(marker: Path) -> list[str]:
    return sorted(marker.read_text().split()) if marker.exists() else []


ORPHAN_SLEEP = "29.731"  # a number no other process on the machine sleeps for


def orphans() -> list[int]:
    """Processes still running the killed attempt's `sleep`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] == ["sleep", ORPHAN_SLEEP]:
            found.append(process.pid)
    return found


def test_kill_9_of_a_wrapper_fails_that_attempt_and_the_retry_finishes(repo: Path) -> None:
    """The wrapper of a running task is SIGKILLed: that attempt fails, the retry completes."""
    marker = repo.parent / "runs-of"
    flag = repo.parent / "first-attempt"
    write_plan(
        repo,
        f"""\
name: wrap
agent: shell
merge: {{land: manual}}
tasks:
  - {{id: quick, prompt: "echo quick >> {marker}; echo q > q.txt"}}
  - id: long
    retries: 1
    prompt: |
      echo long >> {marker}
      if [ ! -f {flag} ]; then touch {flag}; sleep {ORPHAN_SLEEP}; fi
      echo l > l.txt; git add l.txt; git commit -qm long
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stderr
    run_id = latest_run(repo).id

    def wrapper_pid() -> int:
        row = tasks_of(repo, run_id)["long"]
        return row.pid if row.status is TaskStatus.RUNNING and row.pid else 0

    wait_for(lambda: wrapper_pid() > 0 and runs_of(marker).count("long") == 1, 60, "long runs")
    wait_for(lambda: orphans() != [], 30, "the agent of attempt 1 sleeping")
    os.kill(wrapper_pid(), signal.SIGKILL)
    waited = cli(repo, "wait", run_id, "--timeout", "90", "--quiet", timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run_id)
    assert rows["long"].status is TaskStatus.DONE
    assert rows["long"].attempt == 2
    assert runs_of(marker) == ["long", "long", "quick"]  # the killed attempt, then the retry
    events = cli(repo, "events", run_id, "--json").stdout.splitlines()
    failures = [json.loads(line) for line in events if '"task_failed"' in line]
    assert [(event["task"], event["data"]["reason"]) for event in failures] == [
        ("long", "its wrapper died (killed by signal 9)")
    ]
    assert "long" in git(repo, "log", "--format=%s", rows["long"].branch).splitlines()
    assert rows["quick"].attempt == 1
    wait_for(lambda: not orphans(), 30, "the killed attempt's agent gone with its wrapper")


def test_kill_9_of_the_dashboard_leaves_the_run_going(repo: Path, tmux_socket: str) -> None:
    """The dashboard is only a viewer: killing it changes nothing; resume says who supervises."""
    go = repo.parent / "go"
    write_plan(
        repo,
        f"""\
name: dash
agent: shell
merge: {{land: manual}}
tasks:
  - {{id: a, prompt: "while [ ! -f {go} ]; do sleep 0.1; done; echo a > a.txt"}}
  - {{id: b, depends_on: [a], prompt: "echo b > b.txt"}}
""",
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)
    assert run.dashboard_pane
    wait_for(
        lambda: (
            tmux_out(tmux_socket, "display", "-p", "-t", run.dashboard_pane, "#{pane_pid}") != ""
        ),
        30,
        "dashboard pane",
    )
    pid = int(tmux_out(tmux_socket, "display", "-p", "-t", run.dashboard_pane, "#{pane_pid}"))
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
        30,
        "dashboard gone",
    )
    resumed = cli(repo, "resume", run.id)
    assert resumed.returncode == 0, resumed.stderr
    assert "is being supervised already" in resumed.stdout
    go.touch()
    waited = cli(repo, "wait", run.id, "--timeout", "90", "--quiet", timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert {row.status for row in tasks_of(repo, run.id).values()} == {TaskStatus.DONE}


def test_killing_the_tmux_server_then_resume_finishes(repo: Path, tmux_socket: str) -> None:
    """The whole tmux server dies mid-run: resume rebuilds the session; done work stays done."""
    marker = repo.parent / "runs-of"
    flag = repo.parent / "second-time"
    write_plan(
        repo,
        f"""\
name: server
agent: shell
max_concurrency: 2
merge: {{land: manual}}
tasks:
  - {{id: quick, prompt: "echo quick >> {marker}; echo q > q.txt"}}
  - id: slow
    retries: 1
    prompt: |
      echo slow >> {marker}
      if [ ! -f {flag} ]; then touch {flag}; sleep 60; fi
      echo s > s.txt
  - {{id: after, depends_on: [quick], prompt: "echo after >> {marker}; echo a > a.txt"}}
""",
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run_id = latest_run(repo).id
    wait_for(
        lambda: status_of(repo, run_id, "after") is TaskStatus.DONE and flag.exists(),
        60,
        "quick and after done while slow sleeps",
    )
    subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], check=False)
    wait_for(lambda: tmux_out(tmux_socket, "list-sessions") == "", 30, "the tmux server gone")
    resumed = cli(repo, "resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "made anew" in resumed.stdout
    waited = cli(repo, "wait", run_id, "--timeout", "90", "--quiet", timeout=120)
    rows = tasks_of(repo, run_id)
    assert waited.returncode == 0, waited.stdout + waited.stderr + str(rows)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    assert runs_of(marker) == ["after", "quick", "slow", "slow"]


# ---------------------------------------------------------------- things removed by hand


def test_a_worktree_and_a_branch_removed_by_hand_lose_nothing_else(repo: Path) -> None:
    """After a run: one worktree rm -rf'd, one branch deleted; merge still lands all three."""
    write_plan(
        repo,
        """\
name: byhand
agent: shell
tasks:
  - {id: a, prompt: "echo a > a.txt && git add a.txt && git commit -qm 'a: add'"}
  - {id: b, prompt: "echo b > b.txt && git add b.txt && git commit -qm 'b: add'"}
  - {id: c, prompt: "echo c > c.txt && git add c.txt && git commit -qm 'c: add'"}
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = latest_run(repo).id
    rows = tasks_of(repo, run_id)
    b_commit = git(repo, "rev-parse", rows["b"].branch)
    subprocess.run(["rm", "-rf", rows["a"].worktree], check=True)
    git(repo, "update-ref", "-d", f"refs/heads/{rows['b'].branch}")
    merged = cli(repo, "merge", run_id)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert {"a: add", "b: add", "c: add"} <= set(subjects)  # b from its recorded head commit
    assert git(repo, "merge-base", "--is-ancestor", b_commit, "main") == ""
    rows = tasks_of(repo, run_id)
    assert {row.merge_status for row in rows.values()} == {"merged"}


def test_a_failed_task_whose_worktree_was_deleted_by_hand_is_retried(repo: Path) -> None:
    """rm -rf of a failed task's worktree, then `limitless retry`: remade, done, work kept."""
    flag = repo.parent / "failed-once"
    write_plan(
        repo,
        f"""\
name: gone
agent: shell
merge: {{land: manual}}
tasks:
  - id: flaky
    prompt: |
      echo try > try.txt && git add try.txt && git commit -qm "flaky: first try"
      if [ ! -f {flag} ]; then touch {flag}; exit 4; fi
      echo ok > ok.txt
""",
    )
    first = cli(repo, "run", "--headless", "--no-merge")
    assert first.returncode == 1, first.stdout + first.stderr
    run_id = latest_run(repo).id
    row = tasks_of(repo, run_id)["flaky"]
    assert row.status is TaskStatus.FAILED
    first_try = git(repo, "rev-parse", row.branch)
    subprocess.run(["rm", "-rf", row.worktree], check=True)
    retried = cli(repo, "retry", run_id, "flaky")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    waited = cli(repo, "wait", run_id, "--timeout", "90", "--quiet", timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    row = tasks_of(repo, run_id)["flaky"]
    assert (row.status, row.attempt) == (TaskStatus.DONE, 2)
    assert Path(row.worktree, "ok.txt").exists()
    kept = git(repo, "for-each-ref", "--format=%(objectname)", "refs/limitless/")
    on_branch = subprocess.run(
        ["git", "merge-base", "--is-ancestor", first_try, row.branch], cwd=repo, check=False
    )
    assert first_try in kept.split() or on_branch.returncode == 0, "first attempt's commit lost"


# ---------------------------------------------------------------- the store


def hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding an exclusive lock on the store for `seconds`."""
    script = (
        "import sqlite3, sys, time\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "conn.execute('COMMIT')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_store_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    """A store locked for 2 s: writes wait and succeed; nothing surfaces to the user."""
    with Store.open(tmp_path / "state") as store:
        store.next_run_id("x")
        holder = hold_lock(store.path, 2.0)
        try:
            assert store.next_run_id("x") == "x-2"
        finally:
            holder.wait(30)


def test_a_store_locked_too_long_gives_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    """A lock held past the timeout: StoreError (exit 3) naming the file and the cause."""
    with Store.open(tmp_path / "state", lock_timeout_s=1.0) as store:
        store.next_run_id("x")
        holder = hold_lock(store.path, 6.0)
        try:
            with pytest.raises(StoreError) as caught:
                store.next_run_id("x")
        finally:
            holder.wait(30)
        assert caught.value.exit_code == 3
        assert f"{store.path}: the database stayed locked for 1 s" in str(caught.value)
        assert "another process holds it" in str(caught.value)
        assert store.next_run_id("x") == "x-2"  # the first number was kept, none was lost


def test_a_write_error_on_the_store_gives_a_clear_message_and_loses_nothing(
    repo: Path, tmux_socket: str
) -> None:
    """A full disk (simulated by a file size limit): `run` fails clearly before making anything."""
    write_plan(
        repo,
        "name: full\nagent: shell\nmerge: {land: manual}\n"
        "tasks:\n  - {id: a, prompt: 'echo a > a.txt'}\n",
    )
    first = cli(repo, "run", "--headless", "--no-merge")
    assert first.returncode == 0, first.stdout + first.stderr
    state = repo / ".git" / "limitless"
    # Hold the database open through the second run, its WAL holding a frame: the last
    # connection of the first run may have closed already (then SQLite removed the WAL),
    # and the limit must stop the second run's first write to the database.
    holder = sqlite3.connect(state / "state.db", isolation_level=None)
    version = holder.execute("PRAGMA user_version").fetchone()[0]
    holder.execute(f"PRAGMA user_version = {int(version)}")  # the same value: one WAL frame
    limit = min((state / "state.db").stat().st_size, (state / "state.db-wal").stat().st_size)
    branches = git(repo, "branch", "--list")
    sessions = tmux_out(tmux_socket, "list-sessions", "-F", "#S")

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    second = subprocess.run(
        [*LIMITLESS, "run", "--headless", "--no-merge"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_files,
        check=False,
    )
    assert second.returncode == 3, second.stdout + second.stderr
    assert f"limitless: error: {state / 'state.db'}: failed to" in second.stderr
    assert "disk I/O error" in second.stderr or "disk is full" in second.stderr
    holder.close()
    assert git(repo, "branch", "--list") == branches
    assert tmux_out(tmux_socket, "list-sessions", "-F", "#S") == sessions
    with open_store(repo) as store:
        runs = store.list_runs()
    assert [run.id for run in runs] == ["full-1"]
    assert tasks_of(repo, "full-1")["a"].status is TaskStatus.DONE


def test_a_full_disk_under_the_task_log_loses_no_work(repo: Path) -> None:
    """The task log hits ENOSPC (/dev/full): the task still ends, says why, keeps its commit."""
    go = repo.parent / "go"
    write_plan(
        repo,
        f"""\
name: fulllog
agent: shell
merge: {{land: manual}}
tasks:
  - {{id: hold, prompt: "while [ ! -f {go} ]; do sleep 0.1; done; echo h > h.txt"}}
  - id: victim
    depends_on: [hold]
    prompt: "echo some output; echo v > v.txt; git add v.txt; git commit -qm 'victim: add'"
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stderr
    run_id = latest_run(repo).id
    with open_store(repo) as store:
        log = store.log_path(run_id, "victim")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.symlink_to("/dev/full")
    go.touch()
    waited = cli(repo, "wait", run_id, "--timeout", "90", "--quiet", timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    row = tasks_of(repo, run_id)["victim"]
    assert row.status is TaskStatus.DONE
    assert row.reason == f"the task log {log} could not be written: No space left on device"
    assert "victim: add" in git(repo, "log", "--format=%s", row.branch).splitlines()


# ---------------------------------------------------------------- two runs at once


def test_two_runs_on_the_same_repository_at_once_both_finish(repo: Path) -> None:
    """Two `limitless run` started together: distinct runs, both land, nothing mixed up."""
    write_plan(
        repo,
        """\
name: twin
agent: shell
max_concurrency: 2
tasks:
  - id: a
    prompt: 'echo a > "a-$LIMITLESS_RUN.txt" && git add -A && git commit -qm "a of $LIMITLESS_RUN"'
  - {id: b, depends_on: [a], prompt: 'echo b > "b-$LIMITLESS_RUN.txt"'}
""",
    )
    git(repo, "add", "limitless.yaml")
    git(repo, "commit", "-qm", "plan")
    start = git(repo, "rev-parse", "main")
    both = [
        subprocess.Popen(
            [*LIMITLESS, "run", "--headless"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=180)[0] for process in both]
    assert [process.returncode for process in both] == [0, 0], "\n---\n".join(outputs)
    with open_store(repo) as store:
        runs = sorted(run.id for run in store.list_runs())
    assert runs == ["twin-1", "twin-2"]
    files = git(repo, "ls-tree", "--name-only", "main").splitlines()
    for run_id in runs:
        assert {f"a-{run_id}.txt", f"b-{run_id}.txt"} <= set(files), files
        assert {row.status for row in tasks_of(repo, run_id).values()} == {TaskStatus.DONE}
    assert git(repo, "merge-base", "--is-ancestor", start, "main") == ""
    assert len(reflog(repo, "main")) == 4  # initial, plan, one landing per run
