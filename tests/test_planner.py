"""Goal → plan: the demo planner offline, a planner fixed on the second ask, one that fails."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from limitless.agents import planner
from limitless.agents.planner import PlannerError, extract_yaml, goal_parts, make_plan
from limitless.programs.profiles import BUILTIN_PROFILES
from tests.engine_helpers import cli, open_store

GOOD = """\
name: shop
agent: shell
tasks:
  - id: api
    prompt: echo api
  - id: web
    depends_on: [api]
    prompt: echo web
"""
BAD = """\
name: shop
agent: shell
tasks:
  - id: api
    prompt: echo api
    depends_on: [nowhere]
"""

FAKE_PLANNER = """\
import sys
prompt = open(sys.argv[1], encoding="utf-8").read()
log = open(sys.argv[2], "a", encoding="utf-8")
log.write("ASK\\n" + prompt + "\\n")
mode = sys.argv[3]
fixed = "previous plan was refused" in prompt
if mode == "writes":
    open("notes.txt", "w").write("a planner must not write this")
if mode in ("fixes", "writes") and (fixed or mode == "writes"):
    print("Here is the corrected plan:\\n```yaml\\n" + {good!r} + "```")
else:
    print("```yaml\\n" + {bad!r} + "```")
"""


def write_fake_planner(home: Path, tmp_path: Path, mode: str) -> Path:
    """A planner profile `fake` in the user config, running a script that logs each ask."""
    script = tmp_path / "fake_planner.py"
    script.write_text(FAKE_PLANNER.format(good=GOOD, bad=BAD))
    asks = tmp_path / "asks.log"
    config = home / ".config" / "limitless" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        yaml.safe_dump(
            {
                "agents": {
                    "fake": {
                        "command": [sys.executable, str(script), "{prompt_file}", str(asks), mode]
                    }
                }
            }
        )
    )
    return asks


def test_demo_planner_writes_a_valid_plan_offline(repo: Path) -> None:
    """`limitless plan "frontend, backend, database" --planner demo -o p.yaml` works offline."""
    result = cli(repo, "plan", "frontend, backend, database", "--planner", "demo", "-o", "p.yaml")
    assert result.returncode == 0, result.stderr
    assert "wrote p.yaml: plan 'goal', 4 tasks, by planner demo" in result.stdout
    assert "integration  ← frontend, backend, database" in result.stdout
    validated = cli(repo, "validate", "p.yaml")
    assert validated.returncode == 0, validated.stderr
    data = yaml.safe_load((repo / "p.yaml").read_text())
    assert [task["id"] for task in data["tasks"]] == [
        "frontend",
        "backend",
        "database",
        "integration",
    ]
    assert data["tasks"][3]["depends_on"] == ["frontend", "backend", "database"]


def test_plan_refuses_to_overwrite_an_existing_file(repo: Path) -> None:
    """An existing -o file is kept unless --force."""
    (repo / "p.yaml").write_text("keep me\n")
    result = cli(repo, "plan", "a, b", "--planner", "demo", "-o", "p.yaml")
    assert result.returncode == 2
    assert "p.yaml exists already; pass --force" in result.stderr
    assert (repo / "p.yaml").read_text() == "keep me\n"


def test_bad_plan_is_fixed_on_the_second_ask(
    repo: Path, isolated_env: Path, tmp_path: Path
) -> None:
    """The planner's refused plan is sent back with its problems; the second answer is used."""
    asks = write_fake_planner(isolated_env, tmp_path, "fixes")
    result = cli(repo, "plan", "a shop with an api and a web", "--planner", "fake", "-o", "p.yaml")
    assert result.returncode == 0, result.stderr
    assert "fixed on ask 2" in result.stdout
    prompts = asks.read_text().split("ASK\n")[1:]
    assert len(prompts) == 2
    assert "Goal:\na shop with an api and a web" in prompts[0]
    assert "README.md" in prompts[0]  # the repository's file tree
    assert "depends_on" in prompts[0]  # the schema
    assert "unknown task 'nowhere'" in prompts[1] or "nowhere" in prompts[1]
    plan = yaml.safe_load((repo / "p.yaml").read_text())
    assert [task["id"] for task in plan["tasks"]] == ["api", "web"]


def test_planner_that_keeps_failing_gives_a_clear_error_and_creates_nothing(
    repo: Path, isolated_env: Path, tmp_path: Path
) -> None:
    """Two refused answers: exit 2, the problems named, no plan file, no run."""
    asks = write_fake_planner(isolated_env, tmp_path, "bad")
    result = cli(repo, "plan", "a shop", "--planner", "fake", "-o", "p.yaml")
    assert result.returncode == 2
    assert "planner 'fake' gave no valid plan in 2 tries; nothing was created" in result.stderr
    assert "nowhere" in result.stderr
    assert not (repo / "p.yaml").exists()
    assert asks.read_text().count("ASK\n") == 2
    run = cli(repo, "run", "a shop", "--planner", "fake", "--yes", "--json")
    assert run.returncode == 2
    assert run.stdout == ""
    with open_store(repo) as store:
        assert store.list_runs() == []


def test_planner_that_changes_the_checkout_is_an_error(
    repo: Path, isolated_env: Path, tmp_path: Path
) -> None:
    """A planner must only read: one that writes a file fails, naming it; no plan file."""
    write_fake_planner(isolated_env, tmp_path, "writes")
    result = cli(repo, "plan", "a shop", "--planner", "fake", "-o", "p.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "planner 'fake' changed the checkout at" in result.stderr
    assert "files changed: notes.txt" in result.stderr
    assert "a planner must only read" in result.stderr
    assert not (repo / "p.yaml").exists()


def test_unknown_planner_is_named_with_the_known_ones(repo: Path) -> None:
    """A planner that is no profile is refused before anything runs."""
    result = cli(repo, "plan", "x", "--planner", "nope")
    assert result.returncode == 2
    assert "unknown planner 'nope'; use one of:" in result.stderr
    assert "demo" in result.stderr


def test_missing_planner_command_says_how_to_go_offline(tmp_path: Path) -> None:
    """A planner whose program is not installed: a PlannerError naming --planner demo."""
    profile = BUILTIN_PROFILES["claude"]
    profiles = {"claude": type(profile)(name="claude", command=("no-such-planner-xyz", "{prompt}"))}
    with pytest.raises(PlannerError, match="--planner demo"):
        make_plan("a, b", planner="claude", cwd=tmp_path, profiles=profiles)


class Extract(NamedTuple):
    test_id: str
    output: str
    expected: str


EXTRACTS = [
    Extract("plain", "tasks: []\n", "tasks: []\n"),
    Extract("fenced", "Sure!\n```yaml\ntasks: []\n```\nbye", "tasks: []\n"),
    Extract(
        "second-fence", "```sh\nls\n```\n```yml\nname: x\ntasks: []\n```", "name: x\ntasks: []\n"
    ),
]


@pytest.mark.parametrize("case", EXTRACTS, ids=[c.test_id for c in EXTRACTS])
def test_extract_yaml(case: Extract) -> None:
    """The plan is taken from the fenced block that holds tasks."""
    assert extract_yaml(case.output) == case.expected


def test_goal_parts_split_lists() -> None:
    """Commas, `and` and list lines separate a goal's parts."""
    assert goal_parts("frontend, backend and database") == ["frontend", "backend", "database"]
    assert goal_parts("- ui\n- api\n") == ["ui", "api"]


def test_make_plan_asks_through_the_same_validation(tmp_path: Path) -> None:
    """An injected planner answer goes through the plan loader (cycle refused twice)."""
    cyclic = textwrap.dedent(
        """\
        tasks:
          - {id: a, prompt: x, depends_on: [b], agent: shell}
          - {id: b, prompt: y, depends_on: [a], agent: shell}
        """
    )
    calls: list[str] = []

    def ask(prompt: str) -> str:
        calls.append(prompt)
        return cyclic

    with pytest.raises(PlannerError, match=r"a -> b -> a|b -> a -> b"):
        make_plan("a and b", planner="x", cwd=tmp_path, profiles={}, ask=ask)
    assert len(calls) == planner.MAX_ASKS
