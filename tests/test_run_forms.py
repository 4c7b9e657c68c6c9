"""The seeds' command lines: `run "GOAL" --parallel --workers N --no-auto-merge`, --prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limitless.plan.model import Plan
from limitless.states import TaskStatus
from tests.engine_helpers import cli, latest_run, open_store, tasks_of

pytestmark = pytest.mark.usefixtures("tmux_socket")


def test_goal_as_first_argument_with_the_seeds_flags(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A goal text is planned (demo planner), saved outside the checkout and run as asked."""
    monkeypatch.setenv("LIMITLESS_DEMO_SPEED", "0")
    result = cli(
        repo,
        "run",
        "frontend, backend",
        "--planner",
        "demo",
        "--parallel",
        "--workers",
        "5",
        "--no-auto-merge",
        "--yes",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "plan saved as" in result.stderr
    waited = cli(repo, "wait", document["run"], "--timeout", "120")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    run = latest_run(repo)
    plan = Plan.from_json(run.plan_json)
    assert plan.max_concurrency == 5
    assert plan.merge.land == "manual"
    assert [task.id for task in plan.tasks] == ["frontend", "backend", "integration"]
    assert run.plan_path and ".git/limitless/plans/" in run.plan_path
    assert {row.status for row in tasks_of(repo, run.id).values()} == {TaskStatus.DONE}


def test_goal_without_yes_off_a_terminal_creates_nothing(repo: Path) -> None:
    """Without a terminal to confirm on, a goal needs --yes; nothing is planned or run."""
    result = cli(repo, "run", "--goal", "frontend, backend", "--planner", "demo")
    assert result.returncode == 2
    assert "pass --yes to start it without asking" in result.stderr
    with open_store(repo) as store:
        assert store.list_runs() == []


def test_prompt_is_a_one_task_run_and_prints_its_id(repo: Path) -> None:
    """`run --prompt TEXT --agent shell --json` → run id; `wait` → done; chainable."""
    result = cli(
        repo,
        "run",
        "--prompt",
        "echo hi > hi.txt; echo progress 100%",
        "--agent",
        "shell",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run"]
    assert run_id == "prompt-1"
    waited = cli(repo, "wait", run_id, "--timeout", "60", "--quiet")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    # --quiet: the outcome only, no "following run" header or progress lines
    assert waited.stdout.splitlines()[0].startswith(f"run {run_id} done:"), waited.stdout
    rows = tasks_of(repo, run_id)
    assert list(rows) == ["task"]
    assert rows["task"].status is TaskStatus.DONE
    assert rows["task"].agent == "shell"


def test_missing_plan_file_is_not_taken_for_a_goal(repo: Path) -> None:
    """`run missing.yaml` says the file is missing instead of planning it."""
    result = cli(repo, "run", "missing.yaml")
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr
    assert "--yes" not in result.stderr


def test_agent_without_prompt_is_refused(repo: Path) -> None:
    """--agent belongs to --prompt."""
    result = cli(repo, "run", "--agent", "shell")
    assert result.returncode == 2
    assert "--agent goes with --prompt" in result.stderr


def test_prompt_runs_with_an_agent_profile_of_the_users_config(
    repo: Path, isolated_env: Path
) -> None:
    """`run --prompt TEXT --agent mine` knows the config's own profile `mine`."""
    config = isolated_env / ".config" / "limitless" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("agents:\n  mine: {command: [bash, -e, '{prompt_file}']}\n")
    result = cli(repo, "run", "--prompt", "echo mine > mine.txt", "--agent", "mine", "--json")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run"]
    waited = cli(repo, "wait", run_id, "--timeout", "60", "--quiet")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert tasks_of(repo, run_id)["task"].agent == "mine"
    assert (repo / "mine.txt").read_text() == "mine\n"
