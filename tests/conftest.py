"""Shared fixtures: an isolated environment, real git repositories, a private tmux server.

Tests never touch the user's tmux server or git configuration: HOME is a
temporary folder, SHELL is /bin/sh, TMUX is unset, and every tmux call goes to a
socket named `limitless-test-<random>` that the fixture kills at the end (it is
the only server these tests start, so the only one they kill).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from limitless.tmux.session import socket_path
from tests.realagents.fixtures import (  # noqa: F401  (fixtures of the real-agent harness)
    agent_path,
    aider_agent,
    claude_agent,
    codex_agent,
    gemini_agent,
    model_server,
    opencode_agent,
    reap_agents,
)
from tests.sshhosts import fleet  # noqa: F401  (the real-sshd hosts of tests/test_hosts_*)

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Limitless Test",
    "GIT_AUTHOR_EMAIL": "test@limitless.invalid",
    "GIT_COMMITTER_NAME": "Limitless Test",
    "GIT_COMMITTER_EMAIL": "test@limitless.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pin HOME, SHELL and git identity; drop variables that leak the caller's tmux or git."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("SHELL", "/bin/sh")
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    for name in (
        "TMUX",
        "TMUX_PANE",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "LIMITLESS_RUN",
        "LIMITLESS_TASK",
        "LIMITLESS_TMUX_SOCKET",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` and return its stdout (stripped); raise on failure."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        msg = f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}"
        raise AssertionError(msg)
    return result.stdout.strip()


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a real git repository with one commit on `main` (files optional)."""

    def factory(name: str = "repo", files: dict[str, str] | None = None) -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for rel, text in (files or {"README.md": "# test repo\n"}).items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial commit")
        return repo

    return factory


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    """A real git repository with one commit on `main`."""
    return make_repo()


@pytest.fixture
def tmux_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private tmux socket name, exported as LIMITLESS_TMUX_SOCKET; its server dies after."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    name = f"limitless-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("LIMITLESS_TMUX_SOCKET", name)
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)
    remove_socket_file(name)


def remove_socket_file(name: str) -> None:
    """tmux 3.3 leaves the socket file of a killed server behind: remove ours."""
    path = socket_path(name)
    if path.is_socket():
        path.unlink(missing_ok=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LIMITLESS_SLOW"):
        return
    skip_slow = pytest.mark.skip(reason="slow: set LIMITLESS_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
