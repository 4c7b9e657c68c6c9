"""The goal planner with the real headless programs (`limitless plan GOAL --planner P`).

The planner program runs read-only against the scripted model server; its
final message (read from its events) is the plan. What a user sees is checked:
the plan file, the exit code and message, and a checkout left as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import git
from tests.engine_helpers import cli
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, error, read, say, write

GOAL = "frontend, backend"
PLAN_ANSWER = """\
Here is the plan.

```yaml
name: shop
agent: claude
max_concurrency: 2
tasks:
  - id: frontend
    prompt: Build the frontend.
  - id: backend
    prompt: Build the backend.
  - id: integration
    depends_on: [frontend, backend]
    prompt: "Wire them together.\\n{deps_summary}"
```
"""


def _planner_script(*steps: object) -> Script:
    """A conversation the planner's prompt starts (its goal section names the goal)."""
    return Script("planner", list(steps), match=f"Goal:\n{GOAL}")  # type: ignore[arg-type]


def _status(repo: Path) -> str:
    return git(repo, "status", "--porcelain", "--untracked-files=all")


def test_claude_planner_writes_a_valid_plan_and_changes_nothing(
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`limitless plan "frontend, backend" --planner claude -o p.yaml`: Claude Code reads
    the repository, tries to write (refused: the planner is read-only) and answers with a
    ```yaml block; p.yaml is that plan, valid, and the checkout is as it was."""
    claude_agent.export(monkeypatch)
    model_server.add(
        _planner_script(
            read("README.md"),
            write("notes.txt", "a planner must not write this\n"),
            say(PLAN_ANSWER),
        )
    )
    head, status = git(repo, "rev-parse", "HEAD"), _status(repo)
    result = cli(repo, "plan", GOAL, "--planner", "claude", "-o", "p.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote p.yaml: plan 'shop', 3 tasks, by planner claude" in result.stdout
    assert "integration  ← frontend, backend" in result.stdout
    # its readable lines came as it planned (not its raw JSON events)
    assert "planner │ → Read README.md" in result.stderr
    assert "planner │ ✎ Write notes.txt" in result.stderr
    assert '"type":' not in result.stderr
    plan = yaml.safe_load((repo / "p.yaml").read_text())
    assert [task["id"] for task in plan["tasks"]] == ["frontend", "backend", "integration"]
    assert cli(repo, "validate", "p.yaml").returncode == 0
    # read-only: the write was refused, nothing in the checkout moved but the plan file
    assert not (repo / "notes.txt").exists()
    assert git(repo, "rev-parse", "HEAD") == head
    assert _status(repo) == "\n".join(filter(None, [status, "?? p.yaml"]))
    first = model_server.main_requests("planner")[0]
    assert "change nothing in it" in first.user_text
    denied = model_server.main_requests("planner")[2].last_tool_result
    assert denied is not None and "haven't granted it" in str(denied)
    assert model_server.problems() == []


def test_claude_planner_api_error_is_a_clear_failure(
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lasting 429 after Claude Code's own retries: exit 1, a message naming the planner
    and what to do, and no plan file."""
    claude_agent.export(monkeypatch)
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")
    model_server.add(_planner_script(error(429, times=None), say(PLAN_ANSWER)))
    result = cli(repo, "plan", GOAL, "--planner", "claude", "-o", "p.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "planner 'claude' (Claude Code) was refused by its model provider" in result.stderr
    assert "429" in result.stderr
    assert "wait and try again, or pick another --planner" in result.stderr
    assert not (repo / "p.yaml").exists()


def test_claude_planner_bad_request_names_the_error(
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API error that is no rate limit (400): exit 1, Claude Code's own words."""
    claude_agent.export(monkeypatch)
    model_server.add(_planner_script(error(400, times=None), say(PLAN_ANSWER)))
    result = cli(repo, "plan", GOAL, "--planner", "claude", "-o", "p.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "planner 'claude' (Claude Code) ended on an error: API Error: 400" in result.stderr
    assert "check that `claude` works here" in result.stderr
    assert not (repo / "p.yaml").exists()


def test_codex_planner_writes_a_valid_plan_read_only(
    codex_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Codex in its read-only sandbox: a write is refused, its last message is the plan."""
    codex_agent.export(monkeypatch)
    model_server.add(
        _planner_script(write("notes.txt", "a planner must not write this\n"), say(PLAN_ANSWER))
    )
    status = _status(repo)
    result = cli(repo, "plan", GOAL, "--planner", "codex", "-o", "p.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote p.yaml: plan 'shop', 3 tasks, by planner codex" in result.stdout
    assert not (repo / "notes.txt").exists()
    assert _status(repo) == "\n".join(filter(None, [status, "?? p.yaml"]))
    sandbox = model_server.main_requests("planner")[0].headers.get("x-codex-turn-metadata", "")
    assert "read-only" in sandbox


def test_codex_planner_rate_limit_is_a_clear_failure(
    codex_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Codex gives up on a 429 at once: exit 1, the planner and the provider's refusal named."""
    codex_agent.export(monkeypatch)
    model_server.add(_planner_script(error(429, times=None), say(PLAN_ANSWER)))
    result = cli(repo, "plan", GOAL, "--planner", "codex", "-o", "p.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "planner 'codex' (Codex) was refused by its model provider" in result.stderr
    assert "429 Too Many Requests" in result.stderr
    assert not (repo / "p.yaml").exists()


@pytest.mark.parametrize("name", ["gemini", "opencode", "aider"])
def test_other_headless_planners_write_a_valid_plan_read_only(
    name: str,
    request: pytest.FixtureRequest,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gemini-cli, opencode and aider plan too: read-only, their answer is the plan, the
    checkout is as it was (aider in its ask mode, its histories kept out of the checkout)."""
    agent: AgentSetup = request.getfixturevalue(f"{name}_agent")
    agent.export(monkeypatch)
    steps = [say(PLAN_ANSWER)] if name == "aider" else [read("README.md"), say(PLAN_ANSWER)]
    model_server.add(_planner_script(*steps))
    status = _status(repo)
    result = cli(repo, "plan", GOAL, "--planner", name, "-o", "p.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote p.yaml: plan 'shop', 3 tasks, by planner {name}" in result.stdout
    assert _status(repo) == "\n".join(filter(None, [status, "?? p.yaml"]))
    first = model_server.main_requests("planner")[0]
    if name == "gemini":  # its default approval mode offers read-only tools only
        tools = str(first.body.get("tools") if isinstance(first.body, dict) else "")
        assert "'read_file'" in tools and "'write_file'" not in tools
    if name == "aider":  # ask mode: the model is told to answer, not to edit
        assert "Answer questions about the supplied code" in str(first.body)
    assert model_server.problems() == []


def test_opencode_planner_refused_a_write_says_so(
    opencode_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """opencode ends its run when a write is turned down: exit 1, the refusal named."""
    opencode_agent.export(monkeypatch)
    model_server.add(_planner_script(write("notes.txt", "nope\n"), say(PLAN_ANSWER)))
    result = cli(repo, "plan", GOAL, "--planner", "opencode", "-o", "p.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "planner 'opencode' (opencode) gave no plan" in result.stderr
    assert "was refused (Write(notes.txt)); a planner may only read" in result.stderr
    assert not (repo / "notes.txt").exists() and not (repo / "p.yaml").exists()


def test_interactive_profile_is_refused_as_planner(repo: Path) -> None:
    """A TUI profile would wait for a user: refused at once, the headless twin named."""
    result = cli(repo, "plan", GOAL, "--planner", "claude-interactive", "-o", "p.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "plan with a headless one, e.g. --planner claude" in result.stderr
    assert not (repo / "p.yaml").exists()


SHELL_PLAN = """\
```yaml
name: notes
agent: shell
max_concurrency: 2
tasks:
  - id: frontend
    prompt: "echo front > front.txt && git add front.txt && git commit -qm front"
  - id: backend
    prompt: "echo back > back.txt && git add back.txt && git commit -qm back"
```
"""


def test_run_goal_with_the_claude_planner_runs_the_plan(
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """`limitless run --goal "frontend, backend" --planner claude --yes`: Claude Code plans
    (read-only), the plan runs, its work lands on main."""
    claude_agent.export(monkeypatch)
    model_server.add(_planner_script(say(SHELL_PLAN)))
    result = cli(repo, "run", "--goal", GOAL, "--planner", "claude", "--yes", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "planner │ ✓ finished" in result.stderr
    assert git(repo, "show", "main:front.txt") == "front"
    assert git(repo, "show", "main:back.txt") == "back"


def test_missing_planner_program_names_its_install_command(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--planner claude` without Claude Code on PATH: exit 3, the install command named."""
    git_dir = str(Path(shutil.which("git") or "/usr/bin/git").parent)
    if shutil.which("claude", path=git_dir):
        pytest.skip(f"claude is installed in {git_dir}")
    monkeypatch.setenv("PATH", git_dir)
    result = cli(repo, "plan", GOAL, "--planner", "claude", "-o", "p.yaml")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "planner 'claude': command 'claude' not found on PATH" in result.stderr
    assert "npm install -g @anthropic-ai/claude-code@" in result.stderr
    assert "--planner demo" in result.stderr
    assert not (repo / "p.yaml").exists()
