"""User configuration: XDG location, plan over config over default, `config show` sources."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from limitless.errors import PlanError, UsageError
from limitless.plan import userconfig
from tests.engine_helpers import cli, latest_run, open_store, write_plan


def write_config(home: Path, text: str) -> Path:
    path = home / ".config" / "limitless" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_show_names_where_each_value_came_from(repo: Path, isolated_env: Path) -> None:
    """The plan wins over the config; the config over the built-in default."""
    config = write_config(
        isolated_env,
        "agent: shell\nlayout: grid\nmodel: small\nmax_active_agents: 3\n"
        "agents:\n  mine: {command: [my-agent, '{prompt_file}']}\n",
    )
    write_plan(repo, "layout: columns\ntasks: [{id: a, prompt: x}]\n")
    result = cli(repo, "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    settings = {s["key"]: (s["value"], s["source"]) for s in json.loads(result.stdout)["settings"]}
    assert settings["agent"] == ("shell", f"config {config}")
    assert settings["layout"] == ("columns", "plan limitless.yaml")
    assert settings["worktree_root"] == (None, "default")
    assert settings["model"] == ("small", f"config {config}")
    assert settings["max_active_agents"] == (3, f"config {config}")
    assert settings["agents.mine"][1] == f"config {config}"
    text = cli(repo, "config", "show")
    assert re.search(r"^  layout +columns +from plan limitless.yaml$", text.stdout, re.M)
    assert "from plan limitless.yaml" in text.stdout


def test_plan_loaded_with_config_defaults(tmp_path: Path, isolated_env: Path) -> None:
    """Keys the plan leaves out come from the config; problems keep the plan's line numbers."""
    config = userconfig.load_config(
        write_config(isolated_env, "agent: mine\nmodel: m1\nagents:\n  mine: {command: [x]}\n")
    )
    plan_path = tmp_path / "p.yaml"
    plan_path.write_text("tasks:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y, model: m2}\n")
    plan = userconfig.load_plan(plan_path, config)
    assert [(t.agent, t.model) for t in plan.tasks] == [("mine", "m1"), ("mine", "m2")]
    plan_path.write_text("agent: shell\ntasks:\n  - {id: a, prompt: x, depends_on: [zz]}\n")
    with pytest.raises(UsageError) as caught:
        userconfig.load_plan(plan_path, config)
    assert f"{plan_path}:3:" in str(caught.value)


def test_config_profiles_join_the_plans_own_agents(tmp_path: Path, isolated_env: Path) -> None:
    """A plan with its own `agents:` still sees the config's profiles; its own win on a clash."""
    config = userconfig.load_config(
        write_config(
            isolated_env,
            "agents:\n  mine: {command: [mine, '{prompt}']}\n"
            "  both: {command: [from-config, '{prompt}']}\n",
        )
    )
    plan_path = tmp_path / "p.yaml"
    plan_path.write_text(
        "agents:\n  both: {command: [from-plan, '{prompt}']}\n"
        "tasks:\n  - {id: a, prompt: x, agent: mine}\n  - {id: b, prompt: y, agent: both}\n"
    )
    plan = userconfig.load_plan(plan_path, config)
    assert plan.profile(plan.task("a")).command[0] == "mine"
    assert plan.profile(plan.task("b")).command[0] == "from-plan"


def test_validate_and_graph_see_the_configs_profiles(repo: Path, isolated_env: Path) -> None:
    """A plan whose agent only the config defines validates and draws, as `run` reads it."""
    write_plan(repo, "agent: mine\ntasks:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y}\n")
    refused = cli(repo, "validate")
    assert refused.returncode == 2
    assert "limitless.yaml:1:8: agent: unknown agent profile 'mine'" in refused.stderr
    write_config(isolated_env, "agents:\n  mine: {command: [mine, '{prompt}']}\n")
    accepted = cli(repo, "validate")
    assert accepted.returncode == 0, accepted.stderr
    assert "ok — plan" in accepted.stdout
    drawn = cli(repo, "graph", "--format", "json")
    assert drawn.returncode == 0, drawn.stderr
    assert sorted(node["id"] for node in json.loads(drawn.stdout)["tasks"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour: red\n", "unknown key 'colour'"),
        ("max_active_agents: 0\n", "max_active_agents must be a whole number 1..1024"),
        ("agent: nobody\n", "agent 'nobody' is no agent profile"),
        ("agents:\n  new: {interactive: true}\n", "agents.new: missing command"),
        ("- a list\n", "the config is a mapping"),
    ],
    ids=["unknown-key", "bad-cap", "unknown-agent", "bad-profile", "not-a-mapping"],
)
def test_bad_config_is_named_with_the_fix(isolated_env: Path, text: str, message: str) -> None:
    """Every config mistake names the file and what is accepted."""
    path = write_config(isolated_env, text)
    with pytest.raises(UsageError, match=message) as caught:
        userconfig.load_config()
    assert str(path) in str(caught.value)


@pytest.mark.usefixtures("tmux_socket")
def test_max_active_agents_caps_agents_across_runs(repo: Path, isolated_env: Path) -> None:
    """With max_active_agents: 1 a plan allowing 3 at once never runs two together."""
    write_config(isolated_env, "max_active_agents: 1\n")
    write_plan(
        repo,
        "name: capped\nagent: shell\nmax_concurrency: 3\n"
        "tasks:\n  - {id: a, prompt: sleep 1}\n  - {id: b, prompt: sleep 1}\n"
        "  - {id: c, prompt: sleep 1}\n",
    )
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        attempts = sorted(store.attempts(run.id), key=lambda a: a.started_at)
    assert len(attempts) == 3
    for earlier, later in itertools.pairwise(attempts):
        assert earlier.ended_at is not None and later.started_at >= earlier.ended_at


def test_the_configs_defaults_fill_only_the_keys_a_plan_leaves_out(
    tmp_path: Path, isolated_env: Path
) -> None:
    """agent, layout and worktree_root from the config reach the plan as its values where
    the plan says nothing; a plan's own key wins; the plan's line numbers are untouched."""
    config = userconfig.load_config(
        write_config(isolated_env, "agent: shell\nlayout: grid\nworktree_root: /tmp/wt\n")
    )
    plan_path = tmp_path / "p.yaml"
    plan_path.write_text("layout: columns\ntasks:\n  - {id: a, prompt: x}\n")
    plan = userconfig.load_plan(plan_path, config)
    assert (plan.agent, plan.layout, plan.worktree_root) == ("shell", "columns", Path("/tmp/wt"))
    assert plan.source == plan_path.resolve()
    plan_path.write_text("layout: columns\ntasks:\n  - {id: a, prompt: x, retries: -1}\n")
    with pytest.raises(PlanError) as caught:
        userconfig.load_plan(plan_path, config)
    assert [(p.file, p.line) for p in caught.value.problems] == [(str(plan_path), 3)]
