"""Run-engine features end to end: overlap, exclusive, waves, epics, copy/link, setup,
logs, kill, retry and cleanup — real git repositories, real tmux on a private socket."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from limitless.plan.loader import loads
from limitless.plan.overlap import globs_overlap, overlapping_pairs
from limitless.states import RunStatus, TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.test_run_engine import max_overlap


def intervals(repo: Path, run_id: str) -> dict[str, tuple[float, float]]:
    rows = tasks_of(repo, run_id)
    return {task_id: (row.started_at or 0.0, row.ended_at or 0.0) for task_id, row in rows.items()}


def disjoint(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[1] <= b[0] or b[1] <= a[0]


# ---------------------------------------------------------------- overlap (no tmux)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("apps/web/**", "apps/web/src/x.ts", True),
        ("apps/web/**", "apps/api/**", False),
        ("src/api", "src/api/routes.py", True),
        ("src/api", "src/apiary.py", False),
        ("server/routes/orders*", "server/routes/orders_test.py", True),
        ("server/routes/orders*", "server/routes/users.py", False),
        ("docs/*.md", "docs/**", True),
        ("README.md", "README.md", True),
        ("README.md", "CHANGES.md", False),
        ("./lib/", "lib/util.py", True),
    ],
)
def test_globs_overlap(first: str, second: str, expected: bool) -> None:
    assert globs_overlap(first, second) is expected
    assert globs_overlap(second, first) is expected


OVERLAP_PLAN = """\
name: scopes
agent: shell
tasks:
  - {id: web, prompt: "true", files: ["apps/web/**"]}
  - {id: web-tests, prompt: "true", files: ["apps/web/tests/*"]}
  - {id: api, prompt: "true", files: ["apps/api/**"]}
  - {id: web-polish, prompt: "true", files: ["apps/web/**"], depends_on: [web, web-tests]}
"""


def test_overlap_pairs_ignore_ordered_and_disjoint_tasks(tmp_path: Path) -> None:
    plan = loads(OVERLAP_PLAN, source="p.yaml", base_dir=tmp_path)
    pairs = [(pair.first, pair.second) for pair in overlapping_pairs(plan)]
    assert pairs == [("web", "web-tests")]


def test_validate_warns_about_overlapping_scopes(repo: Path) -> None:
    write_plan(repo, OVERLAP_PLAN)
    result = cli(repo, "validate")
    assert result.returncode == 0, result.stderr
    assert "warning: tasks 'web' (apps/web/**) and 'web-tests' (apps/web/tests/*)" in result.stderr
    assert "overlap: serialize" in result.stderr
    assert "ok — plan 'scopes', 4 tasks" in result.stdout


# ---------------------------------------------------------------- scheduling rules


@pytest.mark.usefixtures("tmux_socket")
def test_overlap_serialize_and_exclusive_keep_tasks_apart(repo: Path) -> None:
    """`overlap: serialize` never runs overlapping tasks together; an exclusive task runs alone."""
    write_plan(
        repo,
        """\
name: apart
agent: shell
max_concurrency: 3
overlap: serialize
tasks:
  - {id: a, prompt: "sleep 1; echo a > a.txt", files: ["src/**"]}
  - {id: b, prompt: "sleep 1; echo b > b.txt", files: ["src/core/*"]}
  - {id: c, prompt: "sleep 1; echo c > c.txt"}
  - {id: sweep, prompt: "sleep 1; echo s > s.txt", exclusive: true}
  - {id: d, prompt: "sleep 1; echo d > d.txt"}
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    spans = intervals(repo, latest_run(repo).id)
    assert disjoint(spans["a"], spans["b"]), spans
    for other in ("a", "b", "c", "d"):
        assert disjoint(spans["sweep"], spans[other]), (other, spans)
    assert max_overlap(list(spans.values())) >= 2, "the others still ran side by side"


@pytest.mark.usefixtures("tmux_socket")
def test_waves_wait_for_the_whole_wave_and_deps_do_not(repo: Path) -> None:
    """`--schedule waves` starts a task only once its whole wave ended; deps starts it sooner."""
    plan = """\
name: wavy
agent: shell
max_concurrency: 2
tasks:
  - {id: long, prompt: "sleep 3; echo l > l.txt"}
  - {id: short, prompt: "echo s > s.txt"}
  - {id: next, depends_on: [short], prompt: "echo n > n.txt"}
"""
    write_plan(repo, plan)
    result = cli(repo, "run", "--headless", "--no-merge", "--schedule", "waves")
    assert result.returncode == 0, result.stdout + result.stderr
    waves = intervals(repo, latest_run(repo).id)
    assert waves["next"][0] >= waves["long"][1]

    result = cli(repo, "run", "--headless", "--no-merge", "--schedule", "deps")
    assert result.returncode == 0, result.stdout + result.stderr
    deps = intervals(repo, latest_run(repo).id)
    assert deps["next"][0] < deps["long"][1]


@pytest.mark.usefixtures("tmux_socket")
def test_epic_tasks_share_one_worktree_and_branch_in_order(repo: Path) -> None:
    write_plan(
        repo,
        """\
name: epic
agent: shell
tasks:
  - {id: first, epic: feature, prompt: "echo one > feature.txt"}
  - {id: second, epic: feature, prompt: "grep -q one feature.txt && echo two >> feature.txt"}
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["first"].worktree == rows["second"].worktree
    assert rows["first"].branch == rows["second"].branch == f"limitless/{run.id}/feature"
    assert rows["second"].started_at >= rows["first"].ended_at  # type: ignore[operator]
    content = git(repo, "show", f"{rows['second'].branch}:feature.txt")
    assert content.split() == ["one", "two"]


# ---------------------------------------------------------------- worktree contents


@pytest.mark.usefixtures("tmux_socket")
def test_copy_and_link_bring_ignored_files_and_setup_runs_in_the_worktree(repo: Path) -> None:
    (repo / ".gitignore").write_text(".env\nconfig.local\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore local files")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "config.local").write_text("local\n")
    write_plan(
        repo,
        """\
name: local
agent: shell
copy: [".env"]
link: ["config.local"]
setup: ["echo setup-ran > setup.out"]
tasks:
  - id: check
    prompt: |
      grep -q SECRET=1 .env
      test -L config.local && grep -q local config.local
      grep -q setup-ran setup.out
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["check"]
    worktree = Path(row.worktree or "")
    assert (worktree / "config.local").resolve() == (repo / "config.local").resolve()
    assert (worktree / ".env").read_text() == "SECRET=1\n"
    assert not (worktree / ".env").is_symlink()


@pytest.mark.usefixtures("tmux_socket")
def test_failing_setup_fails_the_task_with_command_and_exit_code(repo: Path) -> None:
    write_plan(
        repo,
        """\
name: badsetup
agent: shell
setup: ["true", "exit 7"]
tasks:
  - {id: never, prompt: "touch agent-ran"}
""",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["never"]
    assert row.status is TaskStatus.FAILED
    assert row.reason == "setup command `exit 7` exited with 7"
    assert not (Path(row.worktree or "") / "agent-ran").exists()
    explained = cli(repo, "explain", latest_run(repo).id, "never").stdout
    assert "none: the agent never started — setup command `exit 7` exited with 7" in explained
    assert "the agent exited" not in explained


# ---------------------------------------------------------------- run-time commands


@pytest.mark.usefixtures("tmux_socket")
def test_logs_print_what_the_agent_printed(repo: Path) -> None:
    write_plan(
        repo,
        "name: talk\nagent: shell\ntasks:\n"
        "  - id: talker\n"
        "    prompt: |\n"
        "      echo 'hello from the agent'\n"
        "      printf '\\033[1;32mgreen\\033[0m words\\n'\n"
        "      printf 'step 1\\rstep 2\\n'\n"
        "      echo second line\n",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = latest_run(repo).id
    logs = cli(repo, "logs", run_id, "talker")  # piped: plain lines
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert "hello from the agent" in lines
    assert "green words" in lines  # no escapes
    assert "step 2" in lines  # a line redrawn: what the terminal showed last
    assert "second line" in lines
    assert "\x1b" not in logs.stdout and "\r" not in logs.stdout
    missing = cli(repo, "logs", run_id, "nobody")
    assert missing.returncode == 2
    assert "nobody" in missing.stderr


@pytest.mark.usefixtures("tmux_socket")
def test_kill_stops_a_running_task_and_the_run_goes_on(repo: Path) -> None:
    write_plan(
        repo,
        """\
name: killable
agent: shell
max_concurrency: 2
tasks:
  - {id: forever, prompt: "echo started > started.txt; sleep 600"}
  - {id: quick, prompt: "echo q > q.txt"}
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def forever_running() -> bool:
        row = tasks_of(repo, run_id)["forever"]
        return row.status is TaskStatus.RUNNING and row.pid is not None

    wait_for(forever_running, 60, "forever to run")
    killed = cli(repo, "kill", run_id, "forever")
    assert killed.returncode == 0, killed.stdout + killed.stderr
    waited = cli(repo, "wait", run_id, "--timeout", "60")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    rows = tasks_of(repo, run_id)
    assert rows["forever"].status is TaskStatus.KILLED
    assert rows["quick"].status is TaskStatus.DONE
    saved = git(repo, "show", f"{rows['forever'].branch}:started.txt")
    assert saved == "started", "the killed task's uncommitted work was committed, not lost"
    with open_store(repo) as store:
        run = store.get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert not (Path(run.worktree_root) / run_id / "_merge").exists(), "--no-merge: no merge"


@pytest.mark.usefixtures("tmux_socket")
def test_merge_worktree_is_checked_out_while_the_last_task_works(repo: Path) -> None:
    """Once every task has started, the merge worktree is prepared; the merge starts at once."""
    release = repo.parent / "release"
    write_plan(
        repo,
        f"""\
name: ahead
agent: shell
max_concurrency: 2
tasks:
  - id: slow
    prompt: "while [ ! -e {release} ]; do sleep 0.1; done; echo s > s.txt"
  - {{id: quick, prompt: "echo q > q.txt"}}
""",
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)
    merge_worktree = Path(run.worktree_root) / run.id / "_merge"
    try:
        wait_for(lambda: (merge_worktree / ".git").exists(), 60, "the merge worktree")
        rows = tasks_of(repo, run.id)
        assert rows["slow"].status is TaskStatus.RUNNING
        assert [r.merge_status for r in rows.values()] == ["unmerged", "unmerged"]
        assert git(merge_worktree, "branch", "--show-current") == f"limitless/{run.id}/merged"
    finally:
        release.write_text("go")
    waited = cli(repo, "wait", run.id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert {"s.txt", "q.txt"} <= set(git(repo, "ls-tree", "--name-only", "main").split())


@pytest.mark.usefixtures("tmux_socket")
def test_retry_after_the_run_ended_resumes_it_and_finishes_the_task(repo: Path) -> None:
    marker = repo.parent / "allow"
    write_plan(
        repo,
        f"""\
name: again
agent: shell
tasks:
  - id: picky
    prompt: |
      test -f {marker} || {{ echo "marker missing" >&2; exit 4; }}
      echo ok > ok.txt
  - {{id: after-picky, depends_on: [picky], prompt: "test -f ok.txt"}}
""",
    )
    first = cli(repo, "run", "--headless", "--no-merge")
    assert first.returncode == 1, first.stdout + first.stderr
    run_id = latest_run(repo).id
    assert tasks_of(repo, run_id)["after-picky"].status is TaskStatus.BLOCKED

    marker.write_text("go")
    retried = cli(repo, "retry", run_id, "picky")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    waited = cli(repo, "wait", run_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run_id)
    assert rows["picky"].status is TaskStatus.DONE
    assert rows["picky"].attempt == 2
    assert rows["after-picky"].status is TaskStatus.DONE


@pytest.mark.usefixtures("tmux_socket")
def test_cleanup_removes_merged_work_and_keeps_unmerged_branches(repo: Path) -> None:
    write_plan(
        repo,
        """\
name: tidy
agent: shell
tasks:
  - {id: good, prompt: "echo g > g.txt"}
  - {id: bad, prompt: "echo b > b.txt && git add b.txt && git commit -qm 'bad: wip' && exit 1"}
""",
    )
    result = cli(repo, "run", "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    run_id = latest_run(repo).id
    assert (repo / "g.txt").exists(), "the done task landed on the base branch"
    rows = tasks_of(repo, run_id)
    good_tree, bad_tree = Path(rows["good"].worktree or ""), Path(rows["bad"].worktree or "")

    cleaned = cli(repo, "cleanup", run_id)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    branches = git(repo, "branch", "--list", f"limitless/{run_id}/*").split()
    assert f"limitless/{run_id}/good" not in branches
    assert f"limitless/{run_id}/bad" in branches, "unmerged work is kept"
    assert not good_tree.exists()
    assert not bad_tree.exists()
    assert git(repo, "log", "-1", "--format=%s", f"limitless/{run_id}/bad").strip() == "bad: wip"
    sessions = subprocess.run(
        ["tmux", "-L", _socket(), "has-session", "-t", f"limitless-{run_id}"],
        capture_output=True,
        check=False,
    )
    assert sessions.returncode != 0, "the run's tmux session is gone"

    forced = cli(repo, "cleanup", run_id, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert git(repo, "branch", "--list", f"limitless/{run_id}/*").strip() == ""


def _socket() -> str:
    import os

    return os.environ["LIMITLESS_TMUX_SOCKET"]


@pytest.mark.usefixtures("tmux_socket")
def test_two_repositories_with_the_same_plan_name_share_a_tmux_server(
    make_repo: Callable[..., Path],
) -> None:
    """Run ids count per repository; the second run skips the session name the first holds."""
    plan = "name: twin\nagent: shell\ntasks:\n  - {id: t, prompt: 'echo hi > hi.txt'}\n"
    first, second = make_repo("one"), make_repo("two")
    for repo in (first, second):
        write_plan(repo, plan)
        started = cli(repo, "run", "--detach", "--no-merge")
        assert started.returncode == 0, started.stdout + started.stderr
    run_one, run_two = latest_run(first), latest_run(second)
    assert run_one.id == "twin-1"
    assert run_two.id == "twin-2"
    assert run_one.tmux_session != run_two.tmux_session
    for repo, run in ((first, run_one), (second, run_two)):
        waited = cli(repo, "wait", run.id, "--timeout", "60")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert tasks_of(repo, run.id)["t"].status is TaskStatus.DONE


# ---------------------------------------------------------------- environment


def test_a_server_the_run_starts_holds_no_secret_in_its_command_line(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run starts its tmux server: the agent sees an API key, `ps` never shows it."""
    monkeypatch.setenv("API_TOKEN", "sk-secret-in-env-only")
    write_plan(
        repo,
        """\
name: env
agent: shell
tasks:
  - {id: token, prompt: 'printf "%s\\n" "$API_TOKEN" > token.txt'}
""",
    )
    assert cli(repo, "run", "--detach").returncode == 0
    shown = [
        " ".join(proc.info["cmdline"] or [])
        for proc in psutil.process_iter(["cmdline"])
        if tmux_socket in " ".join(proc.info["cmdline"] or [])
    ]
    assert shown and not [line for line in shown if "sk-secret" in line], shown
    waited = cli(repo, "wait", latest_run(repo).id, "--timeout", "60", "--quiet")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert git(repo, "show", "main:token.txt") == "sk-secret-in-env-only"


def test_agents_get_the_environment_limitless_run_was_started_in(
    repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tmux server that was already running (started without the variable) does not
    hide a variable exported since: the run's panes start with `limitless run`'s env."""
    started = subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "users-own", "sleep 600"],
        env={k: v for k, v in os.environ.items() if k != "API_TOKEN"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    monkeypatch.setenv("API_TOKEN", "exported-after-tmux-started")
    write_plan(
        repo,
        """\
name: env
agent: shell
tasks:
  - {id: token, prompt: 'printf "%s\\n" "$API_TOKEN" > token.txt'}
""",
    )
    finished = cli(repo, "run", "--headless")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:token.txt") == "exported-after-tmux-started"
