"""A run over this machine and two hosts on real sshds (loopback), through `limitless run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan
from tests.sshhosts import Fleet, SshHost

pytestmark = pytest.mark.usefixtures("tmux_socket")


def host_line(box: SshHost, slots: int) -> str:
    host = box.host()
    return (
        f"  - {{name: {host.name}, ssh: {host.ssh}, port: {host.port}, "
        f"identity: {host.identity}, slots: {slots}}}"
    )


def fleet_plan(box1: SshHost, box2: SshHost) -> str:
    return "\n".join(
        [
            "name: fleet",
            "agent: shell",
            "hosts:",
            "  - {name: local, slots: 1}",
            host_line(box1, 2),
            host_line(box2, 2),
            "tasks:",
            "  - {id: one, host: box1, prompt: 'echo one > one.txt; echo progress 50%'}",
            "  - {id: two, host: box2, prompt: 'echo two > two.txt'}",
            "  - {id: three, host: local, prompt: 'echo three > three.txt'}",
            "  - id: join",
            "    host: box2",
            "    depends_on: [one, two]",
            "    prompt: 'cat one.txt two.txt > both.txt'",
            "  - id: top",
            "    host: box1",
            "    depends_on: [join, three]",
            "    prompt: 'cat both.txt three.txt > all.txt; echo \"$LIMITLESS_HOST\" > where.txt'",
            "  - {id: free, prompt: 'echo free > free.txt'}",
            "",
        ]
    )


def test_six_tasks_over_local_and_two_hosts_merge_into_base(fleet: Fleet, repo: Path) -> None:
    """Each task runs where its pin says; dependants see their dependencies' work (pushed
    to the host); the merged tree on main is right; the hosts' worktrees are under their
    root; `status --json` names each task's host."""
    fleet.serve(repo)
    box1, box2 = fleet.add("box1"), fleet.add("box2")
    write_plan(repo, fleet_plan(box1, box2))
    git(repo, "add", "limitless.yaml")
    git(repo, "commit", "-qm", "plan")
    result = cli(repo, "run", "--headless", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert {task: row.status for task, row in rows.items()} == dict.fromkeys(rows, "done")
    placed = {task: row.host for task, row in rows.items()}
    assert {k: v for k, v in placed.items() if k != "free"} == {
        "one": "box1",
        "two": "box2",
        "three": "local",
        "join": "box2",
        "top": "box1",
    }
    assert placed["free"] in ("local", "box1", "box2")
    assert git(repo, "show", "main:all.txt").splitlines() == ["one", "two", "three"]
    assert git(repo, "show", "main:where.txt") == "box1"
    assert git(repo, "show", "main:free.txt") == "free"
    for box, tasks in ((box1, ("one", "top")), (box2, ("two", "join"))):
        root = box.home / "limitless"
        for task in tasks:
            assert (root / "worktrees" / run.id / task / ".git").is_file()
    status = json.loads(cli(repo, "status", run.id, "--json").stdout)
    assert {task["id"]: task["host"] for task in status["tasks"]} == placed
    with open_store(repo) as store:
        shown = store.log_path(run.id, "one").read_text()
    assert "progress 50%" in shown and "on box1:" in shown  # the host's output came back
