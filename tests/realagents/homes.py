"""Homes for the real agent programs: config files and environment to run offline.

Each `*_setup(server, home, ...)` writes what its program reads at start into
`home` (the test's HOME; Codex's own CODEX_HOME lives outside /tmp) and
returns an `AgentSetup`: the executable, the environment variables the
program needs (to pass to it, or to `limitless run`, whose agents inherit the
environment) and the flags it needs on its command line, if any.

    setup = claude_setup(server, home, trust=[repo])
    subprocess.run(setup.argv("-p", prompt), env=setup.environ(), cwd=repo)
    setup.export(monkeypatch)      # or: put the variables into os.environ

The programs, what each needs to start without asking anything and without
reaching the vendor (observed on this machine, see README.md):

- claude: `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY` (approved in
  `~/.claude.json`, so the interactive TUI does not ask), `hasCompletedOnboarding`
  (without it the TUI stops at "Unable to connect to Anthropic services"),
  `DISABLE_AUTOUPDATER`, `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`,
  `DISABLE_TELEMETRY`; folders in `trust` get `hasTrustDialogAccepted`.
- codex: `CODEX_HOME/config.toml` with a `responses` provider at the server
  and its key in `env_key`; model `gpt-5.5` (a model codex knows, so it offers
  its `apply_patch` tool and prints no "model metadata not found" item).
- aider: `OPENAI_API_BASE`, `OPENAI_API_KEY`, `LITELLM_LOCAL_MODEL_COST_MAP`,
  its flags as `AIDER_*` variables, and a model-price cache in
  `~/.aider/caches` (else it fetches the price list from GitHub at start).
- opencode: `~/.config/opencode/opencode.json` with an
  `@ai-sdk/openai-compatible` provider; `OPENCODE_DISABLE_*` to stay offline.
- gemini: `GOOGLE_GEMINI_BASE_URL` + `GEMINI_API_KEY` + `~/.gemini/settings.json`
  choosing the `gemini-api-key` auth type (the base URL alone selects a
  "gateway" auth that print mode refuses: "Invalid auth method selected."),
  `GEMINI_CLI_TRUST_WORKSPACE=true`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.realagents.modelserver import ModelServer
from tests.realagents.programs import agent_path, agents_dir, find

ANTHROPIC_KEY = "sk-ant-limitless-test-0123456789abcdefghij"
OPENAI_KEY = "sk-limitless-test-key"
GEMINI_KEY = "limitless-test-gemini-key"
CODEX_KEY_VAR = "LIMITLESS_FAKE_OPENAI_KEY"
CODEX_MODEL = "gpt-5.5"
AIDER_MODEL = "openai/limitless-fake"
OPENCODE_MODEL = "limitless-fake"


@dataclass(frozen=True)
class AgentSetup:
    """How to run one program against the server: executable, variables, flags."""

    program: str
    executable: Path | None  # None when the program is not installed (see `missing`)
    home: Path
    env: dict[str, str] = field(default_factory=dict)  # variables to add
    args: tuple[str, ...] = ()  # flags to put before the test's own arguments
    missing: str | None = None

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A full environment: `base` (default os.environ), these variables, agent PATH."""
        merged = dict(os.environ if base is None else base)
        merged.update(self.env)
        merged["PATH"] = agent_path(merged.get("PATH", ""))
        return merged

    def argv(self, *args: str) -> list[str]:
        """The command line: executable, the setup's flags, then `args`."""
        if self.executable is None:
            pytest.skip(self.missing or f"{self.program} is not installed")
        return [str(self.executable), *self.args, *args]

    def start(self, *args: str, cwd: Path, env: Mapping[str, str] | None = None) -> RunningAgent:
        """Start the program (its own process group, stdin closed); see `RunningAgent`."""
        argv = self.argv(*args)
        environ = self.environ()
        # opencode takes its working directory from $PWD, not from the process's
        # cwd: without this it works in whatever folder the test was started from.
        environ["PWD"] = str(cwd)
        environ.update(env or {})
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        agent = RunningAgent(argv, process, started)
        _STARTED.append(agent)
        return agent

    def run(
        self,
        *args: str,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Finished:
        """Run the program to its end (killed, with its group, after `timeout` s)."""
        return self.start(*args, cwd=cwd, env=env).wait(timeout)

    def export(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Put the variables (and the agent PATH) into os.environ for the test."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PATH", agent_path(os.environ.get("PATH", "")))


@dataclass(frozen=True)
class Finished:
    """A program run that ended: exit code, output, and when it started and ended."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    started: float  # time.monotonic(), comparable with RecordedRequest.at
    ended: float

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def json_lines(self) -> list[dict[str, Any]]:
        """The stdout lines that are JSON objects (stream-json, codex --json)."""
        found: list[dict[str, Any]] = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    found.append(value)
        return found

    def describe(self) -> str:
        """For assertion messages: the command, exit code and the output's tails."""
        return (
            f"{' '.join(self.argv)} -> {self.returncode} in {self.elapsed:.1f} s\n"
            f"stdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"
        )


@dataclass
class RunningAgent:
    """A started program. `wait()` ends it (and whatever it started) by its deadline."""

    argv: list[str]
    process: subprocess.Popen[str]
    started: float

    def wait(self, timeout: float = 60.0) -> Finished:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            stdout, stderr = self.process.communicate()
            stderr += f"\n[harness] killed after {timeout} s"
        finally:
            self.kill_group()
        return Finished(
            self.argv, self.process.returncode, stdout, stderr, self.started, time.monotonic()
        )

    def kill(self) -> None:
        """Kill the program and its process group (only what this test started)."""
        self.kill_group()
        if self.process.poll() is None:
            self.process.kill()

    def kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# Every program started through AgentSetup.start/run, so that a test's leftovers
# can be killed when it ends (the `reap_agents` fixture).
_STARTED: list[RunningAgent] = []


def reap_started() -> list[list[str]]:
    """Kill the started programs still running (and their groups); return their argv."""
    leftovers = [agent.argv for agent in _STARTED if agent.process.poll() is None]
    for agent in _STARTED:
        agent.kill()
        if agent.process.poll() is None:
            agent.process.wait(timeout=10)
    _STARTED.clear()
    return leftovers


def _setup(program: str, home: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> AgentSetup:
    found = find(program)
    return AgentSetup(program, found.path, home, {"HOME": str(home), **env}, args, found.missing)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def claude_setup(
    server: ModelServer,
    home: Path,
    *,
    trust: Iterable[Path] = (),
    model: str | None = None,
    accept_bypass: bool = False,
) -> AgentSetup:
    """Claude Code: env for the server, `~/.claude.json` past onboarding, key approved.

    `trust`: folders whose trust dialog counts as accepted (for the TUI; trust
    follows a repository's main checkout). `model` sets ANTHROPIC_MODEL.
    `accept_bypass`: `--dangerously-skip-permissions` works as root (IS_SANDBOX=1)
    and its one-time warning is answered.
    """
    state: dict[str, Any] = {
        "hasCompletedOnboarding": True,
        "numStartups": 1,
        "customApiKeyResponses": {"approved": [ANTHROPIC_KEY[-20:]], "rejected": []},
        "projects": {
            str(Path(p).resolve()): {"hasTrustDialogAccepted": True, "allowedTools": []}
            for p in trust
        },
    }
    _write_json(home / ".claude.json", state)
    env = {
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    if model:
        env["ANTHROPIC_MODEL"] = model
    if accept_bypass:
        _write_json(home / ".claude" / "settings.json", {"skipDangerousModePermissionPrompt": True})
        env["IS_SANDBOX"] = "1"
    return _setup("claude", home, env)


def codex_setup(
    server: ModelServer,
    codex_home: Path,
    *,
    home: Path | None = None,
    model: str = CODEX_MODEL,
    trust: Iterable[Path] = (),
    approval_policy: str | None = None,
    sandbox_mode: str | None = None,
    request_max_retries: int | None = None,
    stream_max_retries: int | None = None,
) -> AgentSetup:
    """Codex: `CODEX_HOME/config.toml` with a provider at the server (CODEX_HOME must
    not be under /tmp: use `codex_home_dir()`)."""
    codex_home.mkdir(parents=True, exist_ok=True)
    lines = [
        f'model = "{model}"',
        'model_provider = "limitless-fake"',
        "check_for_update_on_startup = false",
    ]
    if approval_policy:
        lines.append(f'approval_policy = "{approval_policy}"')
    if sandbox_mode:
        lines.append(f'sandbox_mode = "{sandbox_mode}"')
    lines += [
        "",
        "[model_providers.limitless-fake]",
        'name = "limitless fake model"',
        f'base_url = "{server.url}/v1"',
        'wire_api = "responses"',
        f'env_key = "{CODEX_KEY_VAR}"',
    ]
    if request_max_retries is not None:
        lines.append(f"request_max_retries = {request_max_retries}")
    if stream_max_retries is not None:
        lines.append(f"stream_max_retries = {stream_max_retries}")
    for folder in trust:
        lines += ["", f'[projects."{Path(folder).resolve()}"]', 'trust_level = "trusted"']
    (codex_home / "config.toml").write_text("\n".join(lines) + "\n")
    env = {"CODEX_HOME": str(codex_home), CODEX_KEY_VAR: OPENAI_KEY}
    return _setup("codex", home or Path(os.environ.get("HOME", str(codex_home))), env)


@contextmanager
def codex_home_dir() -> Iterator[Path]:
    """A fresh CODEX_HOME outside /tmp (under the agents folder), removed afterwards.

    Codex refuses to make its sandbox helper under the temporary folder
    ("Refusing to create helper binaries under temporary dir").
    """
    root = agents_dir() / "homes"
    path = root / f"codex-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def aider_setup(server: ModelServer, home: Path, *, model: str = AIDER_MODEL) -> AgentSetup:
    """aider: the OpenAI-compatible endpoint, its flags as AIDER_* variables.

    Run it as `setup.argv("--message", prompt, "file.txt")`; it edits in the
    `whole` format, answers yes to everything and commits its edits.
    """
    # A non-empty price list younger than a day stops aider fetching one from GitHub.
    name = model.split("/", 1)[-1]
    cache = home / ".aider" / "caches" / "model_prices_and_context_window.json"
    _write_json(
        cache,
        {
            name: {
                "max_input_tokens": 128000,
                "max_output_tokens": 8192,
                "input_cost_per_token": 0.000001,
                "output_cost_per_token": 0.000002,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        },
    )
    os.utime(cache, (time.time(), time.time()))
    env = {
        "OPENAI_API_BASE": f"{server.url}/v1",
        "OPENAI_API_KEY": OPENAI_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "AIDER_MODEL": model,
        "AIDER_EDIT_FORMAT": "whole",
        "AIDER_YES_ALWAYS": "true",
        "AIDER_SHOW_MODEL_WARNINGS": "false",
        "AIDER_SHOW_RELEASE_NOTES": "false",
        "AIDER_CHECK_UPDATE": "false",
        "AIDER_ANALYTICS_DISABLE": "true",
        "AIDER_GITIGNORE": "false",
    }
    return _setup("aider", home, env)


def opencode_setup(
    server: ModelServer, home: Path, *, permission: str = "allow", model: str = OPENCODE_MODEL
) -> AgentSetup:
    """opencode: a provider at the server in `~/.config/opencode/opencode.json`."""
    config_home = home / ".config"
    config = {
        "$schema": "https://opencode.ai/config.json",
        "model": f"limitless/{model}",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "limitless": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "limitless fake model",
                "options": {"baseURL": f"{server.url}/v1", "apiKey": OPENAI_KEY},
                "models": {model: {"name": "limitless fake model"}},
            }
        },
        "permission": {"edit": permission, "bash": permission},
    }
    _write_json(config_home / "opencode" / "opencode.json", config)
    env = {
        "XDG_CONFIG_HOME": str(config_home),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    }
    return _setup("opencode", home, env)


def gemini_setup(server: ModelServer, home: Path) -> AgentSetup:
    """gemini-cli: Gemini API at the server (`-y`/`--approval-mode yolo` lets it write)."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    _write_json(home / ".gemini" / "settings.json", settings)
    env = {
        "GOOGLE_GEMINI_BASE_URL": server.url,
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
    }
    return _setup("gemini", home, env)
