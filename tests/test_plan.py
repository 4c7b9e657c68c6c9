"""Tests of limitless.plan.loader: the plan format, its errors with locations, stage expansion."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limitless.errors import PlanError, UsageError
from limitless.plan import example as example_mod
from limitless.plan import loader as plan
from limitless.plan import model as model_mod
from limitless.programs.profiles import BUILTIN_PROFILES

PLANS = Path(__file__).parent / "plans"
OK_TASK = "tasks:\n  - id: a\n    prompt: do a\n"


def problems_of(text: str, base_dir: Path) -> list[str]:
    """The problems `loads` reports for `text`, as `plan.yaml:LINE:COL: message` lines."""
    with pytest.raises(PlanError) as caught:
        plan.loads(textwrap.dedent(text), source="plan.yaml", base_dir=base_dir)
    return [str(problem) for problem in caught.value.problems]


def test_example_plan_validates(tmp_path: Path) -> None:
    """EXAMPLE_PLAN, which `limitless init` writes, loads without problems."""
    example = plan.loads(example_mod.EXAMPLE_PLAN, source="limitless.yaml", base_dir=tmp_path)
    assert example.name == "shop"
    assert [task.id for task in example.tasks] == [
        "orders-api",
        "order-page",
        "currency-format",
        "order-e2e",
    ]
    assert example.task("order-e2e").depends_on == ("order-page", "currency-format")
    assert model_mod.Plan.from_json(example.to_json()) == example


def test_example_plan_loads_from_a_file(tmp_path: Path) -> None:
    """EXAMPLE_PLAN written to DEFAULT_PLAN_FILE loads through `load`, with its source."""
    path = tmp_path / model_mod.DEFAULT_PLAN_FILE
    path.write_text(example_mod.EXAMPLE_PLAN, encoding="utf-8")
    assert plan.load(path).source == path.resolve()


def test_full_plan() -> None:
    """A plan using every key reads into the values it spells out."""
    full = plan.load(PLANS / "full.yaml")
    assert full.name == "shop"
    assert full.source == (PLANS / "full.yaml").resolve()
    assert full.base == "main"
    assert full.max_concurrency == 3
    assert full.agent == "claude"
    assert full.layout == "grid"
    assert full.worktree_root == PLANS.parent / "shop.worktrees"
    assert full.setup == ("cp -n ../shop/.env .env", "npm ci")
    assert full.copy == (".env",)
    assert full.link == ("node_modules",)
    assert full.merge == model_mod.MergePolicy("merge", "pytest -q", "agent", "manual", "fixer")
    assert full.budget == model_mod.Budget(max_cost_usd=20.0, alert_at=0.5)
    assert full.stages == ()
    assert full.autocommit is False
    assert full.artifacts == ("reports/**",)
    assert full.overlap == "serialize"
    assert full.ports == 1
    assert full.hooks == {
        "on_task_failed": "echo failed",
        "on_run_done": 'notify-send "limitless done"',
    }
    assert full.tasks == (
        model_mod.Task(
            id="frontend",
            prompt="Set up React with Vite in apps/web",
            agent="claude",
            files=("apps/web/**",),
        ),
        model_mod.Task(
            id="backend",
            prompt="Set up a FastAPI app in server",
            agent="claude",
            env={"PORT": "8000"},
            epic="backend",  # api names it as its epic, so it joins that epic
        ),
        model_mod.Task(
            id="database",
            prompt="Create the orders and items tables with migrations",
            agent="claude",
            estimate_s=5400.0,
        ),
        model_mod.Task(
            id="api",
            prompt=(PLANS / "prompts" / "api.md").read_text(encoding="utf-8"),
            agent="claude",
            depends_on=("backend", "database"),
            after=("frontend",),
            priority=10,
            retries=2,
            timeout_s=1800.0,
            epic="backend",
            model="opus",
            ports=2,
            prompt_file=(PLANS / "prompts" / "api.md").resolve(),
        ),
        model_mod.Task(
            id="rename-everything",
            prompt="Rename the Order model to Purchase everywhere",
            agent="fixer",
            depends_on=("api",),
            exclusive=True,
            timeout_s=90.0,
            estimate_s=45.0,
        ),
    )


def test_full_plan_agent_profiles() -> None:
    """A plan profile named like a built-in changes only the fields it gives."""
    full = plan.load(PLANS / "full.yaml")
    claude = BUILTIN_PROFILES["claude"]
    assert full.agents["claude"] == dataclasses.replace(claude, interactive=True, idle_seconds=45.0)
    fixer = full.agents["fixer"]
    assert fixer.command == ("codex", "exec", "{prompt}")
    assert fixer.env == {"CODEX_QUIET": "1"}
    assert fixer.resume_command == ("codex", "resume", "{session}")
    assert fixer.rate_limit_regex is None  # null switches a default pattern off
    assert fixer.cost_regex == r"spent \$(\d+\.\d+)"
    assert full.agents["codex"] == BUILTIN_PROFILES["codex"]
    assert full.profile(full.task("rename-everything")) is fixer


def test_full_plan_round_trips_through_json() -> None:
    """to_json then from_json gives an equal Plan, prompt files inlined."""
    full = plan.load(PLANS / "full.yaml")
    again = model_mod.Plan.from_json(full.to_json())
    assert again == full
    assert again.task("api").prompt.startswith("Build the orders API")


def test_minimal_plan_defaults(tmp_path: Path) -> None:
    """A plan of one task gets the documented defaults; its name comes from the folder."""
    folder = tmp_path / "my shop"
    folder.mkdir()
    minimal = plan.loads(OK_TASK, source="plan.yaml", base_dir=folder)
    assert minimal == model_mod.Plan(
        name="my-shop",
        source=None,
        base=None,
        tasks=(model_mod.Task(id="a", prompt="do a", agent="claude"),),
    )
    assert minimal.agents == BUILTIN_PROFILES
    assert minimal.merge == model_mod.MergePolicy()
    assert minimal.tasks[0].worktree_key == "a"


def test_nulls_mean_not_given(tmp_path: Path) -> None:
    """`key:` with nothing after it keeps the default instead of being a wrong type."""
    text = "name:\nbase:\nmerge:\nbudget:\nhooks:\nagents:\nstages:\n" + OK_TASK + "    epic:\n"
    loaded = plan.loads(text, source="plan.yaml", base_dir=tmp_path)
    assert (loaded.base, loaded.merge, loaded.hooks, loaded.stages) == (
        None,
        model_mod.MergePolicy(),
        {},
        (),
    )
    assert loaded.tasks[0].epic is None


class Accepted(NamedTuple):
    test_id: str
    yaml: str
    field: str
    expected: object


ACCEPTED = [
    Accepted("regular-is-merge", "merge: {strategy: regular}\n", "strategy", "merge"),
    Accepted("squash", "merge: {strategy: squash}\n", "strategy", "squash"),
    Accepted("depends-on-one-string", "", "depends_on", ("b",)),
    Accepted("number-as-string", "name: 2024\n", "name", "2024"),
    Accepted("setup-one-string", "setup: npm ci\n", "setup", ("npm ci",)),
    Accepted("resolver-timeout", "merge: {resolver_timeout: 1h30m}\n", "resolver_timeout", 5400),
    Accepted("resolver-timeout-default", "", "resolver_timeout", 1800),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.test_id for c in ACCEPTED])
def test_accepted_spellings(case: Accepted, tmp_path: Path) -> None:
    """Alternative spellings the format accepts read as their canonical values."""
    text = case.yaml + "tasks:\n  - {id: a, prompt: x, depends_on: b}\n  - {id: b, prompt: y}\n"
    loaded = plan.loads(text, source="plan.yaml", base_dir=tmp_path)
    holders: dict[str, object] = {
        "strategy": loaded.merge.strategy,
        "depends_on": loaded.task("a").depends_on,
        "name": loaded.name,
        "setup": loaded.setup,
        "resolver_timeout": loaded.merge.resolver_timeout_s,
    }
    assert holders[case.field] == case.expected


class Duration(NamedTuple):
    test_id: str
    text: str
    seconds: float


DURATIONS = [
    Duration("bare-int", "90", 90.0),
    Duration("bare-float", "2.5", 2.5),
    Duration("seconds", "90s", 90.0),
    Duration("minutes", "30m", 1800.0),
    Duration("hours", "2h", 7200.0),
    Duration("hours-minutes", "1h30m", 5400.0),
    Duration("all-three", "1h2m3s", 3723.0),
    Duration("fraction", "1.5h", 5400.0),
]


@pytest.mark.parametrize("case", DURATIONS, ids=[c.test_id for c in DURATIONS])
def test_durations(case: Duration, tmp_path: Path) -> None:
    """timeout and estimate accept seconds and h/m/s durations."""
    text = f"tasks:\n  - {{id: a, prompt: x, timeout: {case.text}, estimate: '{case.text}'}}\n"
    task = plan.loads(text, source="plan.yaml", base_dir=tmp_path).task("a")
    assert (task.timeout_s, task.estimate_s) == (case.seconds, case.seconds)


class Mistake(NamedTuple):
    test_id: str
    yaml: str
    problems: list[str]


DURATION_HELP = "use a number of seconds or a duration like 90s, 30m, 2h or 1h30m"
KNOWN_AGENTS = (
    "known: aider, claude, claude-interactive, codex, codex-interactive, demo, gemini, opencode, "
    "shell"
)

MISTAKES = [
    Mistake(
        "yaml-syntax",
        "name: shop\ntasks: [a\nmerge: {}\n",
        [
            "plan.yaml:3:6: YAML syntax error: while parsing a flow sequence, "
            "expected ',' or ']', but got ':'"
        ],
    ),
    Mistake(
        "two-documents",
        OK_TASK + "---\nname: x\n",
        [
            "plan.yaml:4:1: YAML syntax error: expected a single document in the stream, "
            "but found another document"
        ],
    ),
    Mistake(
        "empty-file",
        "# nothing yet\n",
        ["plan.yaml:1:1: the plan is empty; it needs at least a list of tasks"],
    ),
    Mistake(
        "not-a-mapping",
        "- id: a\n  prompt: x\n",
        ["plan.yaml:1:1: a plan is a mapping of keys like name, agent and tasks, not a list"],
    ),
    Mistake(
        "unknown-key-near",
        "tsaks: []\n",
        [
            "plan.yaml:1:1: unknown key 'tsaks'; did you mean 'tasks'?",
            "plan.yaml:1:1: missing key 'tasks'; a plan needs a list of tasks",
        ],
    ),
    Mistake(
        "unknown-key-far",
        "merge: {wibble: 1}\n" + OK_TASK,
        [
            "plan.yaml:1:9: merge: unknown key 'wibble' (accepted: strategy, gate, "
            "on_conflict, land, resolver, resolver_timeout)"
        ],
    ),
    Mistake(
        "unknown-task-key",
        OK_TASK + "    promt: x\n",
        ["plan.yaml:4:5: tasks[0]: unknown key 'promt'; did you mean 'prompt'?"],
    ),
    Mistake(
        "merge-key",
        "base: &b {x: 1}\nmerge:\n  <<: *b\n" + OK_TASK,
        [
            "plan.yaml:1:7: base: expected a string, got a mapping",
            "plan.yaml:3:3: merge: YAML merge keys (<<) are not supported; write the keys out",
        ],
    ),
    Mistake(
        "duplicate-key",
        "name: a\nname: b\n" + OK_TASK,
        ["plan.yaml:2:1: duplicate key 'name'; the first one is at line 1"],
    ),
    Mistake(
        "wrong-type-number",
        "max_concurrency: many\n" + OK_TASK,
        ["plan.yaml:1:18: max_concurrency: expected a whole number, got a string"],
    ),
    Mistake(
        "wrong-type-list",
        "setup: {npm: ci}\n" + OK_TASK,
        ["plan.yaml:1:8: setup: expected a string or a list of strings, got a mapping"],
    ),
    Mistake(
        "wrong-type-list-item",
        OK_TASK + "    files: [src, [x]]\n",
        ["plan.yaml:4:18: tasks[0].files[1]: expected a string, got a list"],
    ),
    Mistake(
        "wrong-type-boolean-text",
        OK_TASK + "    model: yes\n",
        [
            "plan.yaml:4:12: tasks[0].model: expected a string (put it in quotes if it is "
            "text), got a boolean"
        ],
    ),
    Mistake(
        "wrong-type-flag",
        "autocommit: sometimes\n" + OK_TASK,
        ["plan.yaml:1:13: autocommit: expected true or false, got a string"],
    ),
    Mistake(
        "tasks-not-a-list",
        "tasks: {a: {prompt: x}}\n",
        ["plan.yaml:1:8: tasks: expected a list of tasks, got a mapping"],
    ),
    Mistake(
        "empty-tasks",
        "tasks: []\n",
        ["plan.yaml:1:8: tasks: the list is empty; a plan needs at least one task"],
    ),
    Mistake(
        "missing-tasks",
        "name: shop\n",
        ["plan.yaml:1:1: missing key 'tasks'; a plan needs a list of tasks"],
    ),
    Mistake(
        "task-not-a-mapping",
        "tasks:\n  - just do it\n",
        ["plan.yaml:2:5: tasks[0]: expected a mapping, got a string"],
    ),
    Mistake(
        "max-concurrency-range",
        "max_concurrency: 65\n" + OK_TASK,
        ["plan.yaml:1:18: max_concurrency: 65 is out of range; use a whole number from 1 to 64"],
    ),
    Mistake(
        "alert-at-range",
        "budget: {max_cost_usd: 0, alert_at: 1.5}\n" + OK_TASK,
        [
            "plan.yaml:1:24: budget.max_cost_usd: 0 is out of range; use a number above 0",
            "plan.yaml:1:37: budget.alert_at: 1.5 is out of range; use a number from 0 to 1",
        ],
    ),
    Mistake(
        "retries-range",
        OK_TASK + "    retries: -1\n    ports: 1000\n",
        [
            "plan.yaml:4:14: tasks[0].retries: -1 is out of range; use a whole number from 0 "
            "to 100",
            "plan.yaml:5:12: tasks[0].ports: 1000 is out of range; use a whole number from 0 "
            "to 100",
        ],
    ),
    Mistake(
        "bad-choice",
        "overlap: maybe\nmerge: {strategy: sqash, land: later}\n" + OK_TASK,
        [
            "plan.yaml:1:10: overlap: unknown value 'maybe' (accepted: warn, serialize)",
            "plan.yaml:2:19: merge.strategy: unknown value 'sqash'; did you mean 'squash'? "
            "(accepted: merge, squash, rebase, regular)",
            "plan.yaml:2:32: merge.land: unknown value 'later' (accepted: auto, manual)",
        ],
    ),
    Mistake(
        "bad-resolver-timeout",
        "merge: {resolver_timeout: soon}\n" + OK_TASK,
        [
            "plan.yaml:1:27: merge.resolver_timeout: bad duration 'soon'; use a number of "
            "seconds or a duration like 90s, 30m, 2h or 1h30m"
        ],
    ),
    Mistake(
        "duplicate-task-id",
        OK_TASK + "  - id: a\n    prompt: again\n",
        ["plan.yaml:4:9: tasks[1].id: duplicate task id 'a'; the first one is at line 2"],
    ),
    Mistake(
        "unknown-dependency",
        "tasks:\n  - {id: build, prompt: x}\n  - {id: test, prompt: y, depends_on: [biuld, zzz]}\n",
        [
            "plan.yaml:3:40: tasks[1].depends_on: unknown task 'biuld'; did you mean 'build'?",
            "plan.yaml:3:47: tasks[1].depends_on: unknown task 'zzz' (known tasks: build, test)",
        ],
    ),
    Mistake(
        "self-dependency",
        "tasks:\n  - {id: a, prompt: x, depends_on: a, after: [a]}\n",
        [
            "plan.yaml:2:36: tasks[0].depends_on: task 'a' cannot depend on itself",
            "plan.yaml:2:47: tasks[0].after: task 'a' cannot come after itself",
        ],
    ),
    Mistake(
        "cycle",
        "tasks:\n"
        "  - {id: a, prompt: x, depends_on: b}\n"
        "  - {id: b, prompt: x, depends_on: c}\n"
        "  - {id: c, prompt: x, depends_on: [a]}\n",
        [
            "plan.yaml:2:36: tasks[0].depends_on: cycle: a -> b -> c -> a; remove one of "
            "these dependencies"
        ],
    ),
    Mistake(
        "two-cycles",
        "tasks:\n"
        "  - {id: a, prompt: x, depends_on: b}\n"
        "  - {id: b, prompt: x, depends_on: a}\n"
        "  - {id: c, prompt: x, depends_on: d}\n"
        "  - {id: d, prompt: x, depends_on: c}\n",
        [
            "plan.yaml:2:36: tasks[0].depends_on: cycle: a -> b -> a; remove one of these "
            "dependencies",
            "plan.yaml:4:36: tasks[2].depends_on: cycle: c -> d -> c; remove one of these "
            "dependencies",
        ],
    ),
    Mistake(
        "wrong-type-references",
        "stages: {build: x}\ntasks:\n  - {id: a, prompt: x, depends_on: {b: 1}}\n",
        [
            "plan.yaml:1:9: stages: expected a list of stages, got a mapping",
            "plan.yaml:3:36: tasks[0].depends_on: expected a task id or a list of task ids, "
            "got a mapping",
        ],
    ),
    Mistake(
        "complex-key",
        "{[tasks]: x}\n",
        [
            "plan.yaml:1:1: missing key 'tasks'; a plan needs a list of tasks",
            "plan.yaml:1:2: a key must be a plain name, not a list",
        ],
    ),
    Mistake(
        "bad-profile-name",
        "agents:\n  my agent: {command: [x]}\n" + OK_TASK,
        [
            "plan.yaml:2:3: agents: agent profile name 'my agent' contains ' '; use letters, "
            "digits, '.', '_' and '-' only"
        ],
    ),
    Mistake(
        "prompt-and-prompt-file",
        OK_TASK + "    prompt_file: a.md\n",
        ["plan.yaml:4:18: tasks[0]: give prompt or prompt_file, not both"],
    ),
    Mistake(
        "no-prompt",
        "tasks:\n  - id: a\n    agent: codex\n",
        [
            "plan.yaml:2:5: tasks[0]: missing prompt; give prompt (the text) or prompt_file "
            "(a file holding it)"
        ],
    ),
    Mistake(
        "empty-prompt",
        "tasks:\n  - {id: a, prompt: '  '}\n",
        ["plan.yaml:2:21: tasks[0].prompt: must not be empty"],
    ),
    Mistake(
        "prompt-file-missing",
        "tasks:\n  - {id: a, prompt_file: prompts/a.md}\n",
        [
            "plan.yaml:2:26: tasks[0].prompt_file: 'prompts/a.md' not found (relative paths "
            "start at the plan's folder)"
        ],
    ),
    Mistake(
        "prompt-file-outside",
        "tasks:\n  - {id: a, prompt_file: ../secret.md}\n  - {id: b, prompt_file: /etc/hostname}\n",
        [
            "plan.yaml:2:26: tasks[0].prompt_file: '../secret.md' is outside the plan's folder; "
            "keep prompt files inside it",
            "plan.yaml:3:26: tasks[1].prompt_file: '/etc/hostname' is outside the plan's folder; "
            "keep prompt files inside it",
        ],
    ),
    Mistake(
        "missing-id",
        "tasks:\n  - prompt: x\n",
        ["plan.yaml:2:5: tasks[0]: missing id; give the task a unique id like 'api'"],
    ),
    Mistake(
        "unknown-agent",
        "agent: cluade\nstages: [{name: b, agent: gpt}]\nmerge: {resolver: nobody}\n"
        "tasks:\n  - {id: a, prompt: x, agent: aidr}\n",
        [
            "plan.yaml:1:8: agent: unknown agent profile 'cluade'; did you mean 'claude'? "
            f"({KNOWN_AGENTS})",
            f"plan.yaml:2:27: stages[0].agent: unknown agent profile 'gpt' ({KNOWN_AGENTS})",
            f"plan.yaml:3:19: merge.resolver: unknown agent profile 'nobody' ({KNOWN_AGENTS})",
            "plan.yaml:5:31: tasks[0].agent: unknown agent profile 'aidr'; did you mean "
            f"'aider'? ({KNOWN_AGENTS})",
        ],
    ),
    Mistake(
        "bad-duration",
        OK_TASK + "    timeout: 30 minutes\n    estimate: 1:30\n",
        [
            f"plan.yaml:4:14: tasks[0].timeout: bad duration '30 minutes'; {DURATION_HELP}",
            f"plan.yaml:5:15: tasks[0].estimate: bad duration '1:30'; {DURATION_HELP}",
        ],
    ),
    Mistake(
        "zero-duration",
        OK_TASK + "    timeout: 0s\n",
        ["plan.yaml:4:14: tasks[0].timeout: '0s' is no time at all; use a duration above 0"],
    ),
    Mistake(
        "bad-env",
        OK_TASK + "    env: {MY-VAR: x, DEBUG: true}\n",
        [
            "plan.yaml:4:11: tasks[0].env: 'MY-VAR' is not an environment variable name; "
            "use letters, digits and '_', not starting with a digit",
            "plan.yaml:4:29: tasks[0].env.DEBUG: expected a string (put it in quotes if it is "
            "text), "
            "got a boolean",
        ],
    ),
    Mistake(
        "bad-base",
        "base: 'my branch'\n" + OK_TASK,
        ["plan.yaml:1:7: base: 'my branch' is not a valid git branch name"],
    ),
    Mistake(
        "bad-hook",
        "hooks: {on_task_don: x, on_finish: y}\n" + OK_TASK,
        [
            "plan.yaml:1:9: hooks: unknown hook event 'on_task_don'; did you mean 'on_task_done'?",
            "plan.yaml:1:25: hooks: unknown hook event 'on_finish' (accepted: on_task_done, "
            "on_task_failed, on_waiting, on_merge_conflict, on_run_done)",
        ],
    ),
    Mistake(
        "profile-without-command",
        "agents:\n  mine: {interactive: true}\n" + OK_TASK,
        [
            "plan.yaml:2:9: agents.mine: missing command; a new agent profile needs command: "
            "[program, arguments...]"
        ],
    ),
    Mistake(
        "profile-bad-command",
        "agents:\n  mine: {command: []}\n  yours: {command: [run, '{promt}']}\n  theirs: "
        "{command: run}\n" + OK_TASK,
        [
            "plan.yaml:2:19: agents.mine.command: must not be empty; give the program and its "
            "arguments",
            "plan.yaml:3:20: agents.yours.command: unknown placeholder {promt} (accepted: "
            "{branch}, "
            "{model}, {prompt}, {prompt_file}, {python}, {task}, {worktree})",
            "plan.yaml:4:21: agents.theirs.command: expected a list of strings, got a string",
        ],
    ),
    Mistake(
        "profile-bad-regex",
        "agents:\n  claude: {cost_regex: '(', progress_regex: 'done', waiting_regex: '[', "
        "idle_seconds: -5}\n" + OK_TASK,
        [
            "plan.yaml:2:24: agents.claude.cost_regex: not a valid regular expression: "
            "missing ), unterminated subpattern at position 0",
            "plan.yaml:2:45: agents.claude.progress_regex: needs a (group) around the value "
            "it reads",
            "plan.yaml:2:68: agents.claude.waiting_regex: not a valid regular expression: "
            "unterminated character set at position 0",
            "plan.yaml:2:87: agents.claude.idle_seconds: -5 is out of range; use a number "
            "from 0 to 604800",
        ],
    ),
    Mistake(
        "profile-unknown-key",
        "agents:\n  claude: {comand: [x]}\n" + OK_TASK,
        ["plan.yaml:2:12: agents.claude: unknown key 'comand'; did you mean 'command'?"],
    ),
    Mistake(
        "duplicate-stage",
        "stages:\n  - {name: build}\n  - {name: build}\n  - {prompt: x}\n" + OK_TASK,
        [
            "plan.yaml:3:12: stages[1].name: duplicate stage name 'build'; the first one is "
            "at line 2",
            "plan.yaml:4:5: stages[2]: missing name; give the stage a name like 'review'",
        ],
    ),
    Mistake(
        "stage-name-clash",
        "stages: [{name: build}]\ntasks:\n  - {id: a, prompt: x}\n  - "
        "{id: a.build, prompt: y, stages: false}\n",
        [
            "plan.yaml:3:10: tasks[0].id: stage build of task 'a' is named 'a.build', "
            "like another task; rename one of them"
        ],
    ),
    Mistake(
        "nul-character",
        "name: shop\x00\n" + OK_TASK,
        [
            "plan.yaml:1:11: the plan holds the character U+0000, which YAML does not allow; "
            "remove it"
        ],
    ),
    Mistake(
        "nul-escape",
        OK_TASK + '    model: "o\\0"\n',
        ["plan.yaml:4:12: tasks[0].model: contains a NUL character, which no program can receive"],
    ),
    Mistake(
        "recursive-alias",
        "setup: &s [a, *s]\n" + OK_TASK,
        ["plan.yaml:1:15: YAML alias *s is inside the value it names; aliases cannot loop"],
    ),
    Mistake(
        "too-many-aliases",
        "setup: &s [x]\nartifacts: [" + ", ".join(["*s"] * 101) + "]\n" + OK_TASK,
        [f"plan.yaml:2:{13 + 4 * 100}: more than 100 YAML aliases; write the values out instead"],
    ),
    Mistake(
        "alias-bomb",
        "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 6))
        + OK_TASK,
        [
            "plan.yaml:5:45: the plan holds more than 100000 values (an alias counts each time "
            "it is used); make it smaller"
        ],
    ),
    Mistake(
        "deep-nesting",
        "setup: " + "[" * 70 + "]" * 70 + "\n" + OK_TASK,
        ["plan.yaml:1:71: the plan nests more than 64 levels deep"],
    ),
]


@pytest.mark.parametrize("case", MISTAKES, ids=[c.test_id for c in MISTAKES])
def test_mistakes(case: Mistake, tmp_path: Path) -> None:
    """Each kind of mistake is reported at its place with a message naming the fix."""
    assert problems_of(case.yaml, tmp_path) == case.problems


class BadId(NamedTuple):
    test_id: str
    value: str
    reason: str


BAD_IDS = [
    BadId("slash", "a/b", "contains '/'; use letters, digits, '.', '_' and '-' only"),
    BadId("parent", "../x", "must start with a letter or digit"),
    BadId("space", "my task", "contains ' '; use letters, digits, '.', '_' and '-' only"),
    BadId("leading-dash", "-x", "must start with a letter or digit"),
    BadId("non-ascii", "tâche", "contains 'â'; use letters, digits, '.', '_' and '-' only"),
    BadId("too-long", "a" * 65, "is longer than 64 characters"),
    BadId("double-dot", "a..b", "contains '..', which git refuses in branch names"),
    BadId("lock", "main.lock", "ends in '.lock', which git refuses in branch names"),
    BadId("trailing-dot", "v1.", "ends in '.', which git refuses in branch names"),
    BadId("con", "CON", "names the Windows device CON, which cannot be a folder name"),
    BadId("nul-lower", "nul", "names the Windows device NUL, which cannot be a folder name"),
    BadId("com1-ext", "com1.txt", "names the Windows device COM1, which cannot be a folder name"),
    BadId("lpt9", "Lpt9", "names the Windows device LPT9, which cannot be a folder name"),
]


@pytest.mark.parametrize("case", BAD_IDS, ids=[c.test_id for c in BAD_IDS])
def test_unsafe_task_ids(case: BadId, tmp_path: Path) -> None:
    """Task ids that cannot be git branch or folder names are refused with the reason."""
    text = f"tasks:\n  - id: {case.value!r}\n    prompt: x\n"
    shown = repr(case.value if len(case.value) <= 40 else case.value[:39] + "…")
    assert problems_of(text, tmp_path) == [
        f"plan.yaml:2:9: tasks[0].id: task id {shown} {case.reason}"
    ]


def test_unsafe_epic_stage_and_plan_names(tmp_path: Path) -> None:
    """Epic, stage and plan names follow the task id rule."""
    text = "name: a/b\nstages: [{name: re..view}]\n" + OK_TASK + "    epic: x.lock\n"
    assert problems_of(text, tmp_path) == [
        "plan.yaml:1:7: name: plan name 'a/b' contains '/'; use letters, digits, '.', '_' and "
        "'-' only",
        "plan.yaml:2:17: stages[0].name: stage name 're..view' contains '..', which git refuses "
        "in branch names",
        "plan.yaml:6:11: tasks[0].epic: epic name 'x.lock' ends in '.lock', which git refuses in "
        "branch names",
    ]


def test_valid_ids(tmp_path: Path) -> None:
    """Ids of letters, digits, '.', '_' and '-' up to 64 characters are accepted."""
    ids = ["a", "A1", "api.v2", "fix_login-page", "9", "x" * 64, "console", "COM10"]
    text = "tasks:\n" + "".join(f"  - {{id: '{i}', prompt: x}}\n" for i in ids)
    assert [t.id for t in plan.loads(text, source="plan.yaml", base_dir=tmp_path).tasks] == ids


def test_many_mistakes_reported_at_once() -> None:
    """A plan with many mistakes reports every one, in file order."""
    source = str(PLANS / "many_mistakes.yaml")
    with pytest.raises(PlanError) as caught:
        plan.load(source)
    assert [str(p) for p in caught.value.problems] == [
        f"{source}:2:18: max_concurrency: 100 is out of range; use a whole number from 1 to 64",
        f"{source}:3:8: agent: unknown agent profile 'cluade'; did you mean 'claude'? "
        f"({KNOWN_AGENTS})",
        f"{source}:5:13: merge.strategy: unknown value 'fast' (accepted: merge, squash, "
        "rebase, regular)",
        f"{source}:6:3: merge: unknown key 'on_confict'; did you mean 'on_conflict'?",
        f"{source}:7:20: budget.alert_at: 1.5 is out of range; use a number from 0 to 1",
        f"{source}:11:14: tasks[0].timeout: bad duration '30 minutes'; {DURATION_HELP}",
        f"{source}:14:18: tasks[1]: give prompt or prompt_file, not both",
        f"{source}:15:23: tasks[1].depends_on: unknown task 'databse' (known tasks: web, api, CON)",
        f"{source}:16:9: tasks[2].id: duplicate task id 'web'; the first one is at line 9",
        f"{source}:18:14: tasks[2].retries: -1 is out of range; use a whole number from 0 to 100",
        f"{source}:19:5: tasks[3]: missing prompt; give prompt (the text) or prompt_file (a "
        "file holding it)",
        f"{source}:19:9: tasks[3].id: task id 'CON' names the Windows device CON, which "
        "cannot be a "
        "folder name",
        f"{source}:20:17: tasks[3].depends_on: task 'CON' cannot depend on itself",
    ]
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]


def test_missing_plan_file(tmp_path: Path) -> None:
    """A missing plan file is one problem at line 1, column 1 of that path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(PlanError) as caught:
        plan.load(path)
    assert str(caught.value) == (
        f"{path}:1:1: plan file not found; write one with `limitless init` or name another file"
    )


def test_plan_path_is_a_folder(tmp_path: Path) -> None:
    """Naming a folder instead of the plan file says so."""
    with pytest.raises(PlanError) as caught:
        plan.load(tmp_path)
    assert str(caught.value) == f"{tmp_path}:1:1: this is a folder; name the plan file inside it"


def test_plan_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported at their line and column."""
    path = tmp_path / "plan.yaml"
    path.write_bytes(b"name: shop\ntasks:\n  - {id: caf\xe9, prompt: x}\n")
    with pytest.raises(PlanError) as caught:
        plan.load(path)
    assert str(caught.value) == (
        f"{path}:3:13: the plan is not valid UTF-8 (byte 0xe9); save it as UTF-8"
    )


def test_plan_too_large(tmp_path: Path) -> None:
    """Plans over 1 MiB are refused before parsing, from a file or from text."""
    path = tmp_path / "plan.yaml"
    text = OK_TASK + "#" * (1024 * 1024)
    path.write_text(text, encoding="utf-8")
    message = "the plan is larger than 1 MiB (1048576 bytes); make it smaller"
    with pytest.raises(PlanError) as caught:
        plan.load(path)
    assert str(caught.value) == f"{path}:1:1: {message}"
    assert problems_of(text, tmp_path) == [f"plan.yaml:1:1: {message}"]


def test_prompt_file_is_read_and_inlined(tmp_path: Path) -> None:
    """prompt_file is read relative to the plan's folder; the text is kept, not re-read."""
    (tmp_path / "prompts").mkdir()
    prompt = tmp_path / "prompts" / "a.md"
    prompt.write_text("Fix {everything}\n", encoding="utf-8")
    (tmp_path / "limitless.yaml").write_text(
        "tasks:\n  - {id: a, prompt_file: prompts/a.md}\n", encoding="utf-8"
    )
    loaded = plan.load(tmp_path / "limitless.yaml")
    prompt.unlink()
    again = model_mod.Plan.from_json(loaded.to_json())
    assert again.task("a").prompt == "Fix {everything}\n"
    assert again.task("a").prompt_file == prompt.resolve()


def test_prompt_file_symlink_out_of_the_folder(tmp_path: Path) -> None:
    """A prompt file that is a symlink leading outside the plan's folder is refused."""
    outside = tmp_path / "secret.md"
    outside.write_text("secret\n", encoding="utf-8")
    folder = tmp_path / "repo"
    folder.mkdir()
    os.symlink(outside, folder / "p.md")
    os.symlink(tmp_path, folder / "up")
    text = "tasks:\n  - {id: a, prompt_file: p.md}\n  - {id: b, prompt_file: up/secret.md}\n"
    assert problems_of(text, folder) == [
        "plan.yaml:2:26: tasks[0].prompt_file: 'p.md' is outside the plan's folder; "
        "keep prompt files inside it",
        "plan.yaml:3:26: tasks[1].prompt_file: 'up/secret.md' is outside the plan's folder; "
        "keep prompt files inside it",
    ]


def test_prompt_file_folder_empty_or_binary(tmp_path: Path) -> None:
    """A prompt file that is a folder, empty, or not UTF-8 is a problem at its value."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    (tmp_path / "latin.md").write_bytes(b"caf\xe9\n")
    text = (
        "tasks:\n  - {id: a, prompt_file: dir}\n  - {id: b, prompt_file: empty.md}\n"
        "  - {id: c, prompt_file: latin.md}\n"
    )
    assert problems_of(text, tmp_path) == [
        "plan.yaml:2:26: tasks[0].prompt_file: 'dir' is a folder; name a file",
        "plan.yaml:3:26: tasks[1].prompt_file: 'empty.md' is empty or binary; write the task's "
        "prompt in it",
        "plan.yaml:4:26: tasks[2].prompt_file: 'latin.md' is not UTF-8 text; save it as UTF-8",
    ]


def test_relative_worktree_root(tmp_path: Path) -> None:
    """worktree_root is resolved against the plan's folder."""
    text = "worktree_root: ../trees\n" + OK_TASK
    loaded = plan.loads(text, source="plan.yaml", base_dir=tmp_path / "repo")
    assert loaded.worktree_root == tmp_path / "trees"


STAGED = """\
stages:
  - {name: build}
  - {name: review, agent: codex, model: o3, prompt: "Review {task}: {prompt}"}
tasks:
  - id: api
    prompt: Build the {api}
    model: opus
    estimate: 1h
  - id: web
    prompt: Build the web
    depends_on: api
    after: [docs]
    epic: front
  - id: docs
    prompt: Write docs
    stages: false
    depends_on: [web]
"""


def test_stage_expansion(tmp_path: Path) -> None:
    """Staged tasks become one task per stage, chained in one epic; dependants follow."""
    staged = plan.loads(STAGED, source="plan.yaml", base_dir=tmp_path)
    assert staged.stages == (
        model_mod.Stage("build"),
        model_mod.Stage("review", "Review {task}: {prompt}", "codex", "o3"),
    )
    assert staged.tasks == (
        model_mod.Task(
            id="api.build",
            prompt="Build the {api}",
            agent="claude",
            epic="api",
            model="opus",
            estimate_s=1800.0,
            stage="build",
            origin="api",
        ),
        model_mod.Task(
            id="api.review",
            prompt="Review api: Build the {api}",
            agent="codex",
            depends_on=("api.build",),
            epic="api",
            model="o3",
            estimate_s=1800.0,
            stage="review",
            origin="api",
        ),
        model_mod.Task(
            id="web.build",
            prompt="Build the web",
            agent="claude",
            depends_on=("api.review",),
            after=("docs",),
            epic="front",
            stage="build",
            origin="web",
        ),
        model_mod.Task(
            id="web.review",
            prompt="Review web: Build the web",
            agent="codex",
            depends_on=("web.build",),
            epic="front",
            model="o3",
            stage="review",
            origin="web",
        ),
        model_mod.Task(id="docs", prompt="Write docs", agent="claude", depends_on=("web.review",)),
    )
    assert [t.worktree_key for t in staged.tasks] == ["api", "api", "front", "front", "docs"]
    assert model_mod.Plan.from_json(staged.to_json()) == staged


def test_stage_cycle_is_named_by_plan_ids(tmp_path: Path) -> None:
    """Cycles in a staged plan are named with the ids the plan spells."""
    text = (
        "stages: [{name: build}, {name: check}]\n"
        "tasks:\n  - {id: a, prompt: x, depends_on: b}\n  - {id: b, prompt: y, depends_on: a}\n"
    )
    assert problems_of(text, tmp_path) == [
        "plan.yaml:3:36: tasks[0].depends_on: cycle: a -> b -> a; remove one of these dependencies"
    ]


def test_task_and_profile_lookup(tmp_path: Path) -> None:
    """Plan.task and Plan.profile find what exists and name what does not."""
    loaded = plan.loads(OK_TASK, source="plan.yaml", base_dir=tmp_path)
    assert loaded.profile(loaded.task("a")) == BUILTIN_PROFILES["claude"]
    with pytest.raises(UsageError, match=r"has no task 'b'; its tasks are: a"):
        loaded.task("b")
    stray = model_mod.Task(id="z", prompt="x", agent="nobody")
    with pytest.raises(UsageError, match="agent profile 'nobody'"):
        loaded.profile(stray)


class Damaged(NamedTuple):
    test_id: str
    text: str
    message: str


DAMAGED = [
    Damaged("not-json", "{", "<stored plan>:1:1: not JSON"),
    Damaged("not-object", "[]", "<stored plan>:1:1: stored plan is damaged: plan is not an object"),
    Damaged(
        "wrong-field",
        '{"name": "a", "source": null, "base": null, "max_concurrency": "4"}',
        "<stored plan>:1:1: stored plan is damaged: plan.max_concurrency has an unexpected "
        "value '4'",
    ),
]


@pytest.mark.parametrize("case", DAMAGED, ids=[c.test_id for c in DAMAGED])
def test_from_json_damaged(case: Damaged) -> None:
    """A damaged stored plan raises PlanError saying what is wrong."""
    with pytest.raises(PlanError) as caught:
        model_mod.Plan.from_json(case.text)
    assert str(caught.value).startswith(case.message)


def test_from_json_fills_new_fields_with_defaults() -> None:
    """JSON from an older limitless, lacking newer fields, reads with their defaults."""
    old = model_mod.Plan.from_json(
        '{"name": "a", "source": null, "base": "main",'
        ' "tasks": [{"id": "t", "prompt": "p", "agent": "demo"}]}'
    )
    assert old == model_mod.Plan(
        name="a",
        source=None,
        base="main",
        tasks=(model_mod.Task(id="t", prompt="p", agent="demo"),),
    )


# Property tests: whatever the input, loads either returns a Plan or raises PlanError.

ROOT_KEYS = ["name", "agent", "tasks", "stages", "merge", "agents", "budget", "hooks", "ports"]
TASK_KEYS = ["id", "prompt", "prompt_file", "depends_on", "after", "timeout", "epic", "env"]
WORDS = ["a", "b", "api", "claude", "demo", "30m", "1h30m", "{prompt}", "..", "CON", "x.lock"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.sampled_from(WORDS)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
)
yamlish = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(ROOT_KEYS + TASK_KEYS) | st.text(max_size=6), inner, max_size=5
        )
    ),
    max_leaves=25,
)
task_like = st.dictionaries(st.sampled_from(TASK_KEYS), yamlish, max_size=6)
plan_like = st.fixed_dictionaries(
    {"tasks": st.lists(task_like, max_size=4)},
    optional={key: yamlish for key in ROOT_KEYS if key != "tasks"},
)
yaml_chars = st.text(st.sampled_from(list("-:[]{}&*!|>'\"#%@`,? \n\tab0{}.\\~")), max_size=120)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def loads_or_plan_error(text: str) -> None:
    """Load `text`; a PlanError is fine as long as every problem has a place."""
    try:
        plan.loads(text, source="fuzz.yaml", base_dir=PLANS)
    except PlanError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1


@PROPERTY_SETTINGS
@given(st.one_of(st.text(), yaml_chars))
def test_arbitrary_text_raises_only_plan_error(text: str) -> None:
    """Any text at all either loads or raises PlanError with located problems."""
    loads_or_plan_error(text)


@PROPERTY_SETTINGS
@given(st.one_of(plan_like, yamlish))
def test_arbitrary_yaml_raises_only_plan_error(data: object) -> None:
    """Any YAML data, plan-shaped or not, either loads or raises PlanError."""
    loads_or_plan_error(yaml.safe_dump(data, allow_unicode=True))


def test_idle_seconds_zero_turns_idle_detection_off(tmp_path: Path) -> None:
    text = (
        "name: quiet\nagents:\n  tui: {command: [tui, '{prompt}'], interactive: true, "
        "idle_seconds: 0}\ntasks:\n  - {id: t, prompt: p, agent: tui}\n"
    )
    loaded = plan.loads(text, source="p.yaml", base_dir=tmp_path)
    assert loaded.agents["tui"].idle_seconds == 0


def test_a_stored_plan_is_parsed_once_per_text(tmp_path: Path) -> None:
    """plan_of/dag_of give the same values for the same stored text, new ones for new text."""
    from types import SimpleNamespace

    from limitless.plan.stored import dag_of, plan_of

    first = plan.loads("tasks: [{id: a, prompt: x, agent: shell}]", source="p", base_dir=tmp_path)
    run = SimpleNamespace(plan_json=first.to_json())
    assert plan_of(run) == first
    assert plan_of(run) is plan_of(SimpleNamespace(plan_json=first.to_json()))
    assert dag_of(run) is dag_of(run) and dag_of(run).ids == ("a",)
    grown = plan.loads(
        "tasks: [{id: a, prompt: x, agent: shell}, {id: b, prompt: y, agent: shell, "
        "depends_on: [a]}]",
        source="p",
        base_dir=tmp_path,
    )
    run.plan_json = grown.to_json()
    assert dag_of(run).ids == ("a", "b") and dag_of(run).dependencies("b") == ("a",)
