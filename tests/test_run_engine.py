"""The run engine end to end: real git repositories, real tmux on a private socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan

pytestmark = pytest.mark.usefixtures("tmux_socket")

SIX_TASKS = """\
name: six
agent: shell
max_concurrency: 3
merge: {land: manual}
tasks:
  - id: schema
    prompt: |
      echo "progress 40%"; echo "create table t;" > schema.sql
      git add schema.sql && git commit -qm "schema: add table"
      echo "progress 100%"
  - id: models
    prompt: |
      echo models > models.py && git add models.py && git commit -qm "models: add"
  - id: ui
    prompt: |
      mkdir -p ui && echo ui > ui/app.js && git add ui && git commit -qm "ui: add app"
  - id: api
    depends_on: [schema, models]
    prompt: |
      test -f schema.sql && test -f models.py
      echo api > api.py && git add api.py && git commit -qm "api: add"
  - id: client
    depends_on: [api, ui]
    prompt: |
      test -f api.py && test -f ui/app.js
      echo client > client.js
  - id: docs
    after: [ui]
    prompt: |
      echo docs > DOCS.md && git add DOCS.md && git commit -qm "docs: add"
"""


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def test_six_task_dag_runs_headless_and_every_branch_holds_its_commit(repo: Path) -> None:
    """A 6-task DAG of shell tasks ends done, each branch with its task's commit."""
    write_plan(repo, SIX_TASKS)
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6/6 tasks done" in result.stdout
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    expected = {
        "schema": "schema: add table",
        "models": "models: add",
        "ui": "ui: add app",
        "api": "api: add",
        "docs": "docs: add",
    }
    for task_id, subject in expected.items():
        log = git(repo, "log", "--format=%s", f"limitless/{run.id}/{task_id}")
        assert subject in log.splitlines(), f"{task_id}: {log}"
    client_files = git(repo, "ls-tree", "-r", "--name-only", f"limitless/{run.id}/client")
    assert "client.js" in client_files.splitlines()  # left uncommitted, autocommitted
    assert rows["schema"].progress == 100.0
    assert git(repo, "status", "--porcelain") == "?? limitless.yaml"  # checkout untouched


def test_scheduling_is_dependency_driven_and_bounded(repo: Path) -> None:
    """A task freed by a fast dependency starts while a slow task still runs; never > limit."""
    write_plan(
        repo,
        """\
name: sched
agent: shell
max_concurrency: 2
tasks:
  - id: slow
    prompt: |
      # ends only once `last` ran: a barrier between waves would deadlock here
      for i in $(seq 1200); do
        [ -f "$LIMITLESS_WORKTREE/../last-ran" ] && exit 0
        sleep 0.1
      done
      exit 1
  - {id: fast, prompt: "true"}
  - {id: after-fast, depends_on: [fast], prompt: "true"}
  - {id: last, depends_on: [after-fast], prompt: 'touch "$LIMITLESS_WORKTREE/../last-ran"'}
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        attempts = store.attempts(run.id)
    rows = tasks_of(repo, run.id)
    slow_end = rows["slow"].ended_at
    assert slow_end is not None
    assert (rows["after-fast"].started_at or 0) < slow_end
    assert (rows["last"].started_at or 0) < slow_end
    intervals = [(a.started_at, a.ended_at or a.started_at) for a in attempts]
    assert len(intervals) == 4
    assert max_overlap(intervals) <= 2


def test_failure_blocks_only_dependants_and_retries_happen(repo: Path) -> None:
    """A failing task is retried, then blocks its dependants; the rest goes on."""
    write_plan(
        repo,
        """\
name: fail
agent: shell
max_concurrency: 2
tasks:
  - id: flaky
    retries: 1
    prompt: |
      flag="$LIMITLESS_WORKTREE/../flaky-ran"
      if [ ! -f "$flag" ]; then touch "$flag"; exit 3; fi
      echo ok > ok.txt
  - {id: broken, retries: 1, prompt: "echo broken >&2; exit 5"}
  - {id: child, depends_on: [broken], prompt: "true"}
  - {id: grandchild, depends_on: [child], prompt: "true"}
  - {id: free, prompt: "echo free > free.txt"}
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = tasks_of(repo, latest_run(repo).id)
    assert rows["flaky"].status is TaskStatus.DONE
    assert rows["flaky"].attempt == 2
    assert rows["broken"].status is TaskStatus.FAILED
    assert rows["broken"].attempt == 2
    assert rows["broken"].reason == "agent exited with 5"
    assert rows["child"].status is TaskStatus.BLOCKED
    assert rows["grandchild"].status is TaskStatus.BLOCKED
    assert rows["child"].reason == "blocked: broken failed"
    assert rows["free"].status is TaskStatus.DONE
    assert "not done: broken, child, grandchild" in result.stdout


def test_timeout_kills_the_whole_process_tree(repo: Path) -> None:
    """A task past its timeout fails, and its children and grandchildren are gone."""
    pids = repo.parent / "pids"
    write_plan(
        repo,
        f"""\
name: slowpoke
agent: shell
tasks:
  - id: hang
    timeout: 2s
    prompt: |
      sleep 300 &
      echo $! >> {pids}
      sh -c 'sleep 300 & echo $! >> {pids}; wait' &
      echo $! >> {pids}
      wait
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["hang"]
    assert row.status is TaskStatus.FAILED
    assert row.reason == "timed out after 2s; process tree killed"
    recorded = [int(line) for line in pids.read_text().split()]
    assert len(recorded) == 3
    wait_for(lambda: not any(psutil.pid_exists(pid) for pid in recorded), 10, "children gone")


HOSTILE_PROMPT = (
    "Fix it $(touch pwned) `touch pwned2` ; touch pwned3 && echo 'single' \"double\" \\\n"
    "second line with #{pane_id} #(touch pwned4) and a tab\there\n"
)


def test_prompt_with_shell_metacharacters_arrives_byte_for_byte(repo: Path) -> None:
    """The prompt reaches the agent as one argv element; nothing in it executes."""
    write_plan(
        repo,
        "name: hostile\n"
        "agents:\n"
        "  echoer:\n"
        "    command: [python3, -c, \"import sys; open('got.txt','w').write(sys.argv[1])\","
        " '{prompt}']\n"
        "tasks:\n"
        "  - id: echo\n"
        "    agent: echoer\n"
        f"    prompt: {json.dumps(HOSTILE_PROMPT)}\n",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    worktree = Path(tasks_of(repo, run.id)["echo"].worktree)
    assert git(worktree, "show", "HEAD:got.txt") + "\n" == HOSTILE_PROMPT
    for name in ("pwned", "pwned2", "pwned3", "pwned4"):
        assert not (worktree / name).exists()
        assert not (repo / name).exists()


def test_kill_9_of_the_supervisor_then_resume_finishes_without_rerunning(repo: Path) -> None:
    """kill -9 of the supervisor mid-run; `resume` adopts and finishes; done tasks stay done."""
    marker = repo.parent / "runs-of"
    write_plan(
        repo,
        f"""\
name: crash
agent: shell
max_concurrency: 2
tasks:
  - {{id: quick, prompt: "echo quick >> {marker}; echo q > q.txt"}}
  - {{id: long, prompt: "echo long >> {marker}; sleep 3; echo l > l.txt"}}
  - {{id: next, depends_on: [quick], prompt: "echo next >> {marker}; sleep 2"}}
  - {{id: final, depends_on: [long, next], prompt: "echo final >> {marker}"}}
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)

    def quick_done() -> bool:
        return tasks_of(repo, run.id)["quick"].status is TaskStatus.DONE

    wait_for(quick_done, 30, "quick done")
    pid = latest_run(repo).supervisor_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), 10, "supervisor gone")
    resumed = cli(repo, "resume", "--detach")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed run" in resumed.stdout
    waited = cli(repo, "wait", run.id, "--timeout", "60", "--quiet")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    assert all(row.attempt == 1 for row in rows.values())
    assert sorted(marker.read_text().split()) == ["final", "long", "next", "quick"]


def test_the_supervisor_is_forked_warm_by_run_and_the_start_server_is_gone(
    repo: Path, tmux_socket: str
) -> None:
    """`run` forks a one-shot server from itself; the control pane runs the fork client,
    which has it fork the supervisor (no second interpreter start-up). `ps` shows the
    supervisor as `_supervise --run R`, the server ends after that one fork, and the run
    finishes."""
    write_plan(
        repo,
        "name: warm\nagent: shell\ntasks:\n"
        '  - {id: wait, prompt: "while [ ! -e go ]; do sleep 0.1; done; echo w > w.txt"}\n',
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)
    assert run.supervisor_pid is not None
    shown = subprocess.run(
        ["tmux", "-L", tmux_socket, "display-message", "-p", "-t", run.control_pane,
         "#{pane_pid}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pane_process = psutil.Process(int(shown.stdout))
    assert any(word.endswith("forkserver/client.py") for word in pane_process.cmdline())
    supervisor = psutil.Process(run.supervisor_pid)
    assert supervisor.pid != pane_process.pid
    assert "_supervise" in supervisor.cmdline() and run.id in supervisor.cmdline()
    with open_store(repo) as store:
        forks = store.state_dir / "forks"
    wait_for(lambda: not any(forks.glob("start-*.sock")), 20, "the start server to end")
    worktree = Path(tasks_of(repo, run.id)["wait"].worktree)
    wait_for(lambda: worktree.is_dir(), 30, "the task's worktree")
    (worktree / "go").write_text("")
    waited = cli(repo, "wait", run.id, "--timeout", "60", "--quiet")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert git(repo, "show", "main:w.txt") == "w"


def test_a_server_run_starts_reads_esc_then_a_key_as_two_keys_and_a_users_keeps_its_own(
    repo: Path, tmux_socket: str
) -> None:
    """tmux's default escape-time (500 ms) turns Esc then `l` into Alt+l for the dashboard:
    a server `run` starts waits 10 ms; a server the user already ran keeps its setting."""

    def escape_time() -> str:
        shown = subprocess.run(
            ["tmux", "-L", tmux_socket, "show-options", "-s", "-v", "escape-time"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return shown.stdout.strip()

    write_plan(repo, "name: esc\nagent: shell\ntasks:\n  - {id: a, prompt: 'true'}\n")
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stderr
    assert escape_time() == "10"
    assert cli(repo, "wait", latest_run(repo).id, "--quiet").returncode == 0
    user_setting = ["tmux", "-L", tmux_socket, "set-option", "-s", "escape-time", "300"]
    subprocess.run(user_setting, check=True)
    again = cli(repo, "run", "--detach", "--no-merge")
    assert again.returncode == 0, again.stderr
    assert escape_time() == "300"
    assert cli(repo, "wait", latest_run(repo).id, "--quiet").returncode == 0


class BadInput:
    def __init__(self, test_id: str, plan: str | None, args: tuple[str, ...], code: int, says: str):
        self.test_id, self.plan, self.args, self.code, self.says = test_id, plan, args, code, says


BAD_INPUTS = [
    BadInput(
        "invalid-plan",
        "name: x\ntasks:\n  - {id: a, prompt: hi, depends_on: [ghost]}\n",
        ("run", "--headless"),
        2,
        "limitless.yaml:3:",
    ),
    BadInput(
        "missing-base",
        "name: x\nbase: nope\nagent: shell\ntasks:\n  - {id: a, prompt: 'true'}\n",
        ("run", "--headless"),
        2,
        "base branch 'nope' does not exist",
    ),
    BadInput(
        "concurrency-out-of-range",
        "name: x\nagent: shell\ntasks:\n  - {id: a, prompt: 'true'}\n",
        ("run", "--headless", "--max-concurrency", "0"),
        2,
        "--max-concurrency 0 is out of range; use 1..64",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.test_id for case in BAD_INPUTS])
def test_bad_input_is_refused_and_creates_nothing(repo: Path, case: BadInput) -> None:
    """A bad plan, base or flag: exit 2, a message naming the problem, and nothing made."""
    assert case.plan is not None
    write_plan(repo, case.plan)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "plan")
    branches_before = git(repo, "branch", "--list")
    result = cli(repo, *case.args)
    assert result.returncode == case.code, result.stdout + result.stderr
    assert case.says in result.stderr
    assert git(repo, "branch", "--list") == branches_before
    assert not (repo.parent / f"{repo.name}.worktrees").exists()
    assert not (repo / ".git" / "limitless" / "state.db").exists()
    tmux = subprocess.run(
        ["tmux", "-L", os.environ["LIMITLESS_TMUX_SOCKET"], "list-sessions"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "limitless-" not in tmux.stdout


def test_outside_a_git_repository_exits_3(tmp_path: Path) -> None:
    """`run` outside a git repository is an environment error, exit 3."""
    folder = tmp_path / "plain"
    folder.mkdir()
    write_plan(folder, "name: x\nagent: shell\ntasks:\n  - {id: a, prompt: 'true'}\n")
    result = cli(folder, "run", "--headless")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not inside a git repository" in result.stderr
