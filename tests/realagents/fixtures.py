"""Pytest fixtures of the real-agent harness (imported by tests/conftest.py).

- `model_server`: a started `ModelServer` on 127.0.0.1:<free port>, stopped
  after the test (nothing listens afterwards). Add scripts with
  `model_server.add(Script(...))`.
- `agent_path`: PATH with `.agents/npm/node_modules/.bin` and
  `.agents/aider-venv/bin` first, set for the test; returns it.
- `claude_agent`, `codex_agent`, `aider_agent`, `opencode_agent`,
  `gemini_agent`: an `AgentSetup` for that program against `model_server`
  in the test's HOME (skips, naming why, when the program is not installed).
  `codex_agent` gets a CODEX_HOME outside /tmp, removed after the test.
- `reap_agents` (autouse): after each test, kills whatever a test started
  with `AgentSetup.start`/`run` and left running (with its process group).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realagents.homes import (
    AgentSetup,
    aider_setup,
    claude_setup,
    codex_home_dir,
    codex_setup,
    gemini_setup,
    opencode_setup,
    reap_started,
)
from tests.realagents.modelserver import ModelServer
from tests.realagents.programs import agent_path as _agent_path
from tests.realagents.programs import program


@pytest.fixture(autouse=True)
def reap_agents() -> Iterator[None]:
    """Programs a test started and left running are killed when it ends."""
    yield
    reap_started()


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A scripted model server for the test; stopped (port closed) when it ends."""
    server = ModelServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def agent_path(monkeypatch: pytest.MonkeyPatch) -> str:
    """PATH with the agent programs' folders first, for this test."""
    path = _agent_path(os.environ.get("PATH", ""))
    monkeypatch.setenv("PATH", path)
    return path


def _home() -> Path:
    return Path(os.environ["HOME"])


@pytest.fixture
def claude_agent(model_server: ModelServer) -> AgentSetup:
    """Claude Code against `model_server`, in the test's HOME."""
    program("claude")
    return claude_setup(model_server, _home())


@pytest.fixture
def codex_agent(model_server: ModelServer) -> Iterator[AgentSetup]:
    """Codex against `model_server`, with a CODEX_HOME outside /tmp."""
    program("codex")
    with codex_home_dir() as codex_home:
        yield codex_setup(model_server, codex_home, home=_home())


@pytest.fixture
def aider_agent(model_server: ModelServer) -> AgentSetup:
    """aider against `model_server`, in the test's HOME."""
    program("aider")
    return aider_setup(model_server, _home())


@pytest.fixture
def opencode_agent(model_server: ModelServer) -> AgentSetup:
    """opencode against `model_server`, in the test's HOME."""
    program("opencode")
    return opencode_setup(model_server, _home())


@pytest.fixture
def gemini_agent(model_server: ModelServer) -> AgentSetup:
    """gemini-cli against `model_server`, in the test's HOME."""
    program("gemini")
    return gemini_setup(model_server, _home())
