"""limitless.hosts.sync against a real sshd: base and branches out, a task's branch back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from limitless.hosts.ssh import run
from limitless.hosts.sync import fetch, make_worktree, push
from tests.sshhosts import Fleet

IDENTITY = ["-c", "user.name=Host Agent", "-c", "user.email=agent@host.invalid"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_commit_made_on_the_host_comes_back_as_a_branch(fleet: Fleet, repo: Path) -> None:
    """Push base and a dependency branch, work in a worktree there, fetch the task branch back."""
    box = fleet.add("box1")
    host = box.host()
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "-c", "limitless/r1/dep")
    (repo / "dep.txt").write_text("dependency\n")
    git(repo, "add", "dep.txt")
    git(repo, "commit", "-q", "-m", "dep")
    git(repo, "switch", "-q", "-")
    clone = push(host, fleet.state_dir, repo, run_id="r1", base=base, branches=["limitless/r1/dep"])
    assert clone == str(box.home / "limitless" / "repo.git")
    path = make_worktree(
        host,
        fleet.state_dir,
        run_id="r1",
        task="api",
        branch="limitless/r1/api",
        start="limitless/r1/dep",
    )
    assert path == str(box.home / "limitless" / "worktrees" / "r1" / "api")
    script = 'echo api > api.txt && git add api.txt && git "$@" commit -q -m "api work"'
    assert (
        run(host, fleet.state_dir, ["sh", "-c", f'cd "$0" && {script}', path, *IDENTITY]).code == 0
    )
    commit = fetch(host, fleet.state_dir, repo, branch="limitless/r1/api")
    assert git(repo, "log", "--format=%s", "-3", commit).splitlines() == [
        "api work",
        "dep",
        git(repo, "log", "-1", "--format=%s", base),
    ]
    assert git(repo, "show", f"{commit}:api.txt") == "api"
    assert box.handshakes() == 1
