"""Port leases: free ports, unique among running tasks, released at the end; the agents cap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from limitless.run.ports import LeaseBook, lease_book_path, port_env, port_is_free
from tests.engine_helpers import cli, latest_run, tasks_of, wait_for, write_plan


def test_two_leases_never_share_a_port_and_ports_were_free(tmp_path: Path) -> None:
    """Each lease gets distinct ports that could be bound when leased."""
    book = LeaseBook(tmp_path / "leases.json")
    first = book.acquire("r/a", ports=3)
    second = book.acquire("r/b", ports=3)
    assert first is not None and second is not None
    assert len(set(first.ports) | set(second.ports)) == 6
    assert all(port_is_free(port) for port in (*first.ports, *second.ports))
    assert book.acquire("r/a", ports=3) == first  # held: the same ports again
    book.release("r/a")
    assert set(book.active()) == {"r/b"}


def test_cap_counts_live_leases_and_dead_holders_are_dropped(tmp_path: Path) -> None:
    """max_active refuses a lease over the cap; a dead holder's lease no longer counts."""
    book = LeaseBook(tmp_path / "leases.json")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert book.acquire("gone/t", pid=int(dead.stdout)) is not None
    assert book.acquire("r/a", max_active=1) is not None
    assert book.acquire("r/b", max_active=1) is None
    assert set(book.active()) == {"r/a"}


def test_port_env_names() -> None:
    """LIMITLESS_PORT_i, PORT (the first) and a compose project name."""
    env = port_env((4001, 4002), "shop-3", "API.v2")
    assert env == {
        "LIMITLESS_PORT_0": "4001",
        "LIMITLESS_PORT_1": "4002",
        "PORT": "4001",
        "COMPOSE_PROJECT_NAME": "limitless-shop-3-api-v2",
    }


PORTS_PLAN = """\
name: ports
agent: shell
max_concurrency: 2
ports: 2
setup:
  - >-
    env | grep -E '^(PORT|LIMITLESS_PORT_[0-9]|COMPOSE_PROJECT_NAME)=' | sort
    > $LIMITLESS_STATE_DIR/setup-$LIMITLESS_TASK.env
tasks:
  - id: one
    prompt: &wait |
      env | grep -E '^(PORT|LIMITLESS_PORT_[0-9]|COMPOSE_PROJECT_NAME)=' | sort \\
        > "$LIMITLESS_STATE_DIR/agent-$LIMITLESS_TASK.env"
      touch "$LIMITLESS_STATE_DIR/here-$LIMITLESS_TASK"
      for i in $(seq 1 300); do
        test -f "$LIMITLESS_STATE_DIR/here-one" && test -f "$LIMITLESS_STATE_DIR/here-two" && exit 0
        sleep 0.1
      done
      exit 1
  - id: two
    prompt: *wait
"""


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.mark.usefixtures("tmux_socket")
def test_two_concurrent_tasks_get_distinct_ports_in_setup_and_agent(repo: Path) -> None:
    """Two tasks running at once see different LIMITLESS_PORT_* and PORT; leases end with them."""
    write_plan(repo, PORTS_PLAN)
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    assert {row.status for row in tasks_of(repo, run.id).values()} == {"done"}
    state = repo / ".git" / "limitless"
    envs = {task: _env_file(state / f"agent-{task}.env") for task in ("one", "two")}
    for task, env in envs.items():
        assert env["PORT"] == env["LIMITLESS_PORT_0"]
        assert env["COMPOSE_PROJECT_NAME"] == f"limitless-{run.id}-{task}"
        assert _env_file(state / f"setup-{task}.env") == env  # setup saw the same lease
    ports_one = {envs["one"]["LIMITLESS_PORT_0"], envs["one"]["LIMITLESS_PORT_1"]}
    ports_two = {envs["two"]["LIMITLESS_PORT_0"], envs["two"]["LIMITLESS_PORT_1"]}
    assert len(ports_one) == 2 and len(ports_two) == 2
    assert not ports_one & ports_two
    book = json.loads(lease_book_path().read_text()) if lease_book_path().exists() else {}
    assert not [key for key in book if f"::{run.id}/" in key]  # released at the end


def test_leasing_ports_a_process_already_uses_keeps_them(tmp_path: Path) -> None:
    """`keep`: the ports an adopted task's process has are leased again as they are,
    unless another live lease holds one (that one is replaced by a free port)."""
    book = LeaseBook(tmp_path / "leases.json")
    other = book.acquire("r/other", ports=1)
    assert other is not None
    kept = book.acquire("r/a", ports=2, keep=(54321, 54322))
    assert kept is not None and kept.ports == (54321, 54322)
    clash = book.acquire("r/b", ports=2, keep=(other.ports[0], 54323))
    assert clash is not None
    assert clash.ports[1] == 54323
    assert clash.ports[0] not in (other.ports[0], 54321, 54322)


@pytest.mark.usefixtures("tmux_socket")
def test_a_task_adopted_after_a_supervisor_crash_keeps_its_ports(repo: Path) -> None:
    """kill -9 of the supervisor, then resume: the still-running task keeps its lease."""
    go = repo.parent / "go"
    write_plan(
        repo,
        f"""\
name: keep-ports
agent: shell
ports: 2
tasks:
  - id: server
    prompt: |
      env | grep -E '^LIMITLESS_PORT_[0-9]=' | sort > "$LIMITLESS_STATE_DIR/server.env"
      for i in $(seq 1 600); do test -f {go} && exit 0; sleep 0.1; done
      exit 1
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)
    env_file = repo / ".git" / "limitless" / "server.env"
    wait_for(lambda: env_file.exists() and env_file.read_text().count("\n") == 2, 60, "the agent")
    ports = tuple(int(value) for value in _env_file(env_file).values())
    supervisor = latest_run(repo).supervisor_pid
    assert supervisor
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(supervisor), 30, "the supervisor gone")
    resumed = cli(repo, "resume", run.id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    def leased() -> tuple[int, ...] | None:
        book = LeaseBook().active()
        return next(
            (lease.ports for key, lease in book.items() if key.endswith(f"::{run.id}/server")), None
        )

    wait_for(lambda: leased() is not None, 30, "the adopted task's lease")
    assert leased() == ports
    go.touch()
    waited = cli(repo, "wait", run.id, "--timeout", "60", "--quiet", timeout=90)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert tasks_of(repo, run.id)["server"].attempt == 1  # adopted, not run again
