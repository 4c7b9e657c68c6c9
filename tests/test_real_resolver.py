"""The merge phase's conflict resolver with the real Claude Code (`merge.on_conflict: agent`).

Two shell tasks rewrite the same line; the merge of the second conflicts and
the resolver — the built-in `claude` profile, headless, against the scripted
model — edits the conflicted file in the merge worktree. What a user sees is
checked: the text on main, the merge reason in the report, the resolver's
readable lines (its pane's, kept in a log).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from limitless.states import MergeStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan
from tests.realagents.costs import claude_cost
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.programs import program
from tests.realagents.script import Script, Usage, error, read, say, write

RUN_TIMEOUT = 180.0
RESOLVED = "left side\nright side\n"

PLAN = """\
name: fix
agent: shell
max_concurrency: 1
merge: {on_conflict: agent, resolver: claude}
tasks:
  - id: left
    prompt: |
      echo "left side" > README.md && git commit -qam "left: rewrite readme"
  - id: right
    after: [left]
    prompt: |
      echo "right side" > README.md && git commit -qam "right: rewrite readme"
"""


@pytest.fixture
def claude_env(
    claude_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """Claude Code's variables and PATH in the test's environment (`limitless run` passes
    them on to its panes); tmux on a private socket."""
    claude_agent.export(monkeypatch)
    return claude_agent


def _tmux_socket() -> str:
    return os.environ["LIMITLESS_TMUX_SOCKET"]


def _resolver_script(*steps: object) -> Script:
    return Script("resolver", list(steps), match="Resolve the git conflict")  # type: ignore[arg-type]


def test_claude_resolver_edits_the_conflict_and_the_result_lands(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """The resolver runs with `acceptEdits` (approve: edits): it reads and rewrites the
    conflicted file, limitless commits it, the resolved text lands on main and the report
    names the resolution and its cost; its pane showed readable lines, not JSON."""
    usages = [Usage(1200, 40), Usage(1500, 60), Usage(1700, 10)]
    model_server.add(
        _resolver_script(
            read("README.md", usage=usages[0]),
            write("README.md", RESOLVED, usage=usages[1]),
            say("Kept both sides.", usage=usages[2]),
        )
    )
    write_plan(repo, PLAN)
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    run = latest_run(repo)
    assert git(repo, "show", "main:README.md") == RESOLVED.strip()
    rows = tasks_of(repo, run.id)
    assert rows["right"].merge_status is MergeStatus.MERGED
    cost = claude_cost(None, usages)
    reason = f"conflict in README.md resolved by claude (${cost:.4f})"
    assert rows["right"].merge_reason == reason
    report = cli(repo, "report", run.id)
    assert reason in report.stdout, report.stdout
    # the permission flag a user expects, the prompt saying limitless commits
    first = model_server.main_requests("resolver")[0]
    assert "limitless stages them and commits itself" in first.user_text
    assert model_server.problems() == []
    # what the pane showed, kept beside the run: readable lines, no raw events
    with open_store(repo) as store:
        folder = store.run_dir(run.id) / "merge"
        events = [e for e in store.events(run.id) if e.kind == "resolver_done"]
    lines = (folder / "resolve-right-1.log").read_text()
    assert "· acceptEdits" in lines
    assert "→ Read README.md" in lines
    assert "✎ Write README.md" in lines
    assert "● Kept both sides." in lines
    assert "✓ finished" in lines
    assert '"type":' not in lines
    assert events and events[-1].data["exit_code"] == 0
    assert events[-1].data["cost_usd"] == pytest.approx(cost)
    slot = run.slot_panes.split(",")[0]
    screen = subprocess.run(
        ["tmux", "-L", _tmux_socket(), "capture-pane", "-p", "-J", "-S", "-", "-t", slot],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "✎ Write README.md" in screen, screen
    assert "✓ finished" in screen and '"type":' not in screen, screen


def test_resolver_cost_counts_in_the_run_and_its_budget_stops_the_next_resolver(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """What the resolver spends is the run's: the report's total names it, and once it
    reaches `budget.max_cost_usd` the next conflict gets no resolver: the merge stops
    there with the budget as the reason, and nothing lands."""
    usages = [Usage(1200, 40), Usage(1500, 60), Usage(1700, 10)]
    cost = claude_cost(None, usages)
    model_server.add(
        _resolver_script(
            read("README.md", usage=usages[0]),
            write("README.md", RESOLVED, usage=usages[1]),
            say("Kept both sides.", usage=usages[2]),
        )
    )
    third = """\
  - id: again
    after: [right]
    prompt: |
      echo "third side" > README.md && git commit -qam "again: rewrite readme"
"""
    plan = PLAN.replace("tasks:\n", f"budget: {{max_cost_usd: {cost / 2:.6f}}}\ntasks:\n")
    write_plan(repo, plan + third)
    base = git(repo, "rev-parse", "main")
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert git(repo, "rev-parse", "main") == base
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["right"].merge_status is MergeStatus.MERGED
    assert rows["again"].merge_status is MergeStatus.CONFLICT
    assert f"budget spent: ${cost:.4f} of ${cost / 2:.2f} (budget.max_cost_usd)" in (
        rows["again"].merge_reason
    ), rows["again"].merge_reason
    assert "no resolver started" in rows["again"].merge_reason
    with open_store(repo) as store:
        events = store.events(run.id)
    started = [e.task_id for e in events if e.kind == "resolver_started"]
    assert started == ["right"], "the second resolver must not start"
    alerts = [e.data for e in events if e.kind == "budget_alert"]
    assert len(alerts) == 1 and alerts[0]["cost_usd"] == pytest.approx(cost, abs=1e-6), alerts
    assert len(model_server.main_requests("resolver")) == len(usages)
    assert model_server.problems() == []
    data = json.loads(cli(repo, "report", run.id, "--format", "json").stdout)
    assert data["run"]["total_cost_usd"] == pytest.approx(cost)
    assert data["run"]["resolver_cost_usd"] == pytest.approx(cost)
    text = cli(repo, "report", run.id).stdout
    assert f"(resolvers ${cost:.4f})" in text, text


def test_codex_resolver_edits_in_its_sandbox_and_the_result_lands(
    codex_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """Codex as the resolver (`--sandbox workspace-write`, approve: edits) writes the file
    in the merge worktree; limitless commits it and the resolved text lands on main."""
    codex_agent.export(monkeypatch)
    model_server.add(_resolver_script(write("README.md", RESOLVED), say("Kept both sides.")))
    write_plan(repo, PLAN.replace("resolver: claude", "resolver: codex"))
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    run = latest_run(repo)
    assert git(repo, "show", "main:README.md") == RESOLVED.strip()
    reason = tasks_of(repo, run.id)["right"].merge_reason
    assert reason.startswith("conflict in README.md resolved by codex ($"), reason
    metadata = model_server.main_requests("resolver")[0].headers["x-codex-turn-metadata"]
    assert "workspace-write" in metadata
    with open_store(repo) as store:
        lines = (store.run_dir(run.id) / "merge" / "resolve-right-1.log").read_text()
    assert "✎ add README.md" in lines and "● Kept both sides." in lines, lines


@pytest.mark.parametrize("name", ["gemini", "opencode", "aider"])
def test_other_headless_resolvers_edit_and_the_result_lands(
    name: str,
    request: pytest.FixtureRequest,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """gemini-cli (auto_edit), opencode (edits allowed) and aider (--yes-always, its own
    commits off: git refuses them during a merge) resolve too; limitless commits."""
    agent: AgentSetup = request.getfixturevalue(f"{name}_agent")
    agent.export(monkeypatch)
    model_server.add(_resolver_script(write("README.md", RESOLVED), say("Kept both sides.")))
    write_plan(repo, PLAN.replace("resolver: claude", f"resolver: {name}"))
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    run = latest_run(repo)
    assert git(repo, "show", "main:README.md") == RESOLVED.strip()
    reason = tasks_of(repo, run.id)["right"].merge_reason
    assert reason.startswith(f"conflict in README.md resolved by {name}"), reason
    with open_store(repo) as store:
        lines = (store.run_dir(run.id) / "merge" / "resolve-right-1.log").read_text()
    assert "README.md" in lines and "Unable to commit" not in lines, lines
    assert model_server.problems() == []


def test_claude_resolver_api_error_stops_the_merge_with_its_words(
    claude_env: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The resolver's provider fails for good: the merge stops at the task, base untouched,
    the reason is Claude Code's own error and names the resolver's lines."""
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")
    model_server.add(_resolver_script(error(529, times=None), say("never")))
    base = git(repo, "rev-parse", "main")
    write_plan(repo, PLAN)
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["right"].merge_status is MergeStatus.CONFLICT
    reason = rows["right"].merge_reason
    assert "the resolver claude failed: Claude Code: API Error: 529" in reason, reason
    assert "resolve-right-1.log" in reason
    assert git(repo, "rev-parse", "main") == base


def test_claude_resolver_that_only_reads_leaves_the_markers_and_is_refused(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """A resolver that leaves the markers (it only reads): refused, base untouched."""
    model_server.add(_resolver_script(read("README.md"), say("I looked at it.")))
    base = git(repo, "rev-parse", "main")
    write_plan(repo, PLAN)
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    run = latest_run(repo)
    data = json.loads(cli(repo, "report", run.id, "--format", "json").stdout)
    right = next(task for task in data["tasks"] if task["id"] == "right")
    assert right["merge_status"] == "conflict"
    assert "the resolver left conflict markers in README.md" in right["merge_reason"]
    assert git(repo, "rev-parse", "main") == base


def test_missing_resolver_command_is_refused_before_the_run(repo: Path, tmux_socket: str) -> None:
    """A resolver whose command is not on PATH: `run` refuses it (exit 3), nothing made."""
    write_plan(
        repo,
        PLAN.replace("resolver: claude}", "resolver: fixer}")
        + 'agents:\n  fixer: {command: ["no-such-resolver-here", "{prompt}"]}\n',
    )
    finished = cli(repo, "run", "--headless")
    assert finished.returncode == 3, finished.stdout + finished.stderr
    assert "the conflict resolver's command 'no-such-resolver-here'" in finished.stderr
    assert "(merge.resolver: fixer) is not on PATH" in finished.stderr
    with open_store(repo) as store:
        assert store.latest_run() is None


def test_resolver_claude_with_approve_all_as_root_is_refused_by_validate(
    agent_path: str, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan's `approve: all` is the resolver's too: as root Claude Code would refuse
    its bypass mode, so `validate` says so before anything runs."""
    program("claude")
    if os.geteuid() != 0:
        pytest.skip("Claude Code refuses its bypass mode only as root")
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    write_plan(repo, "approve: all\n" + PLAN)
    result = cli(repo, "validate")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "refuses `approve: all`" in result.stdout + result.stderr
    assert "(the conflict resolver, claude)" in result.stdout + result.stderr
