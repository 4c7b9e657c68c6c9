"""Goal text → plan, through a planner agent profile.

A planner is an agent profile (claude, codex, ... or one of the user's) that is
given a prompt stating the plan schema, the top levels of the repository's file
tree and the goal, and must print a plan as YAML (optionally in a fenced
block). Its answer goes through the plan loader; when that finds problems the
planner is asked once more with the problems listed. The built-in `demo`
planner needs no network: it turns a goal that lists parts ("frontend, backend,
database") into one task per part plus an integration task, and its answer goes
through the very same validation.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from limitless.errors import LimitlessError, PlanError, UsageError
from limitless.plan.loader import loads
from limitless.plan.model import Plan
from limitless.plan.userconfig import UserConfig
from limitless.programs.launch import agent_start
from limitless.programs.profiles import BUILTIN_PROFILES, AgentProfile

log = logging.getLogger(__name__)

DEMO_PLANNER = "demo"
MAX_ASKS = 2
PLANNER_TIMEOUT_S = 600.0
TREE_DEPTH = 2
TREE_LIMIT = 200
MAX_GOAL_CHARS = 20_000
_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox"})
_FENCE = re.compile(r"^[ \t]*```([A-Za-z]*)[ \t]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)

SCHEMA = """\
name: <short id>                # [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}
agent: {agent}                  # the agent profile every task uses
max_concurrency: <1..64>
tasks:
  - id: <unique id>             # same rule as name; names the git branch
    prompt: <what the agent must do, self-contained>
    depends_on: [<ids>]         # optional: tasks whose work this one builds on
    files: ["<glob>", ...]      # optional: the files this task should touch
    priority: <int>             # optional: higher starts first
    # a dependant may write {{deps_summary}} in its prompt to get its
    # dependencies' commits, diffstat and last output lines
"""

Ask = Callable[[str], str]


class PlannerError(LimitlessError):
    """The planner failed to produce a valid plan; nothing was created."""

    exit_code = 2


@dataclass(frozen=True)
class PlannedGoal:
    """A plan made from a goal: its YAML text, the checked Plan and how many asks it took."""

    text: str
    plan: Plan
    asks: int
    planner: str


def repo_tree(root: Path, depth: int = TREE_DEPTH, limit: int = TREE_LIMIT) -> list[str]:
    """The top levels of the file tree under `root` (folders end with `/`), at most `limit`."""
    lines: list[str] = []

    def walk(folder: Path, prefix: str, level: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if len(lines) >= limit:
                return
            is_dir = entry.is_dir(follow_symlinks=False)
            hidden = entry.name.startswith(".") and entry.name != ".github"
            if entry.name in _SKIPPED_DIRS or (is_dir and hidden):
                continue
            lines.append(f"{prefix}{entry.name}{'/' if is_dir else ''}")
            if is_dir and level + 1 < depth:
                walk(Path(entry.path), prefix + entry.name + "/", level + 1)

    walk(root, "", 0)
    if len(lines) >= limit:
        lines.append(f"... (more than {limit} entries; the list stops here)")
    return lines


def planner_prompt(goal: str, tree: Sequence[str], agent: str, problems: str = "") -> str:
    """The prompt a planner agent gets: schema, file tree, goal (and last time's problems)."""
    parts = [
        "You are the planner of limitless, a tool that runs many coding agents in parallel,",
        "one git worktree and branch per task, then merges the branches in dependency order.",
        "Split the goal below into tasks that can run in parallel where possible.",
        "Answer with the plan only, as YAML in one ```yaml fenced block, in this schema:",
        "",
        SCHEMA.format(agent=agent),
        "Repository files (top levels):",
        *(f"  {line}" for line in tree or ["(empty repository)"]),
        "",
        "Goal:",
        goal.strip(),
    ]
    if problems:
        parts += [
            "",
            "Your previous plan was refused by the plan checker with these problems;",
            "answer with a corrected plan:",
            problems,
        ]
    return "\n".join(parts) + "\n"


def extract_yaml(output: str) -> str:
    """The plan in a planner's answer: the first fenced block holding `tasks`, else all of it."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(output)]
    for _, body in blocks:
        if re.search(r"(?m)^tasks\s*:", body):
            return str(body)
    yaml_blocks = [body for lang, body in blocks if lang in ("", "yaml", "yml")]
    return str(yaml_blocks[0]) if yaml_blocks else output


def _slug(text: str, fallback: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip().lower()).strip("._-")[:40].strip("._-")
    return slug or fallback


def goal_parts(goal: str) -> list[str]:
    """The parts a goal lists: split on commas, semicolons, `and`, and list lines."""
    text = re.sub(r"(?i)\b(?:and|plus|with)\b", ",", goal)
    pieces = re.split(r"[,;\n]+|^\s*[-*]\s+", text, flags=re.MULTILINE)
    return [p.strip(" .:-*\t") for p in pieces if p and p.strip(" .:-*\t")]


def demo_planner(prompt: str) -> str:
    """The offline planner: one task per part the goal lists, plus an integration task."""
    goal = prompt.split("\nGoal:\n", 1)[-1].split("\n\nYour previous plan", 1)[0].strip()
    parts = goal_parts(goal) or [goal or "work"]
    ids: list[str] = []
    tasks: list[dict[str, object]] = []
    for index, part in enumerate(parts[:32]):
        task_id = _slug(part.split(":")[0], f"part-{index + 1}")
        while task_id in ids:
            task_id = f"{task_id}-{index + 1}"
        ids.append(task_id)
        tasks.append({"id": task_id, "prompt": f"Build the {part} part of: {goal}"})
    if len(ids) > 1:
        tasks.append(
            {
                "id": "integration",
                "depends_on": list(ids),
                "prompt": "Wire the parts together and check they work as one.\n{deps_summary}",
            }
        )
    plan = {"name": "goal", "agent": "demo", "max_concurrency": min(len(ids), 8), "tasks": tasks}
    return "```yaml\n" + yaml.safe_dump(plan, sort_keys=False, allow_unicode=True) + "```\n"


def profile_asker(profile: AgentProfile, cwd: Path, timeout_s: float = PLANNER_TIMEOUT_S) -> Ask:
    """Ask a planner agent: run its argv (no shell) with the prompt, return what it printed."""

    def ask(prompt: str) -> str:
        with tempfile.TemporaryDirectory(prefix="limitless-planner-") as folder:
            start = agent_start(
                profile, prompt, prompt_file=Path(folder) / "prompt.md", cwd=cwd, task="planner"
            )
            argv = start.argv
            try:
                result = subprocess.run(
                    argv,
                    cwd=start.cwd,
                    env=start.environ(),
                    capture_output=True,
                    text=True,
                    timeout=timeout_s,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            except FileNotFoundError:
                msg = (
                    f"planner {profile.name!r}: command {argv[0]!r} not found on PATH; install it "
                    f"or pick another planner with --planner (offline: --planner {DEMO_PLANNER})"
                )
                raise PlannerError(msg) from None
            except subprocess.TimeoutExpired:
                msg = f"planner {profile.name!r} gave no answer within {timeout_s:.0f}s"
                raise PlannerError(msg) from None
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            msg = (
                f"planner {profile.name!r} exited with {result.returncode}: {tail or '(no output)'}"
            )
            raise PlannerError(msg)
        return result.stdout

    return ask


def check_plan_text(text: str, base_dir: Path) -> Plan:
    """The plan in `text`, checked like a plan file (PlanError lists every problem)."""
    return loads(text, source="<planner output>", base_dir=base_dir)


def make_plan(
    goal: str,
    *,
    planner: str,
    cwd: Path,
    profiles: Mapping[str, AgentProfile],
    agent: str = "claude",
    ask: Ask | None = None,
) -> PlannedGoal:
    """Ask `planner` for a plan for `goal` (twice at most); PlannerError if none is valid."""
    goal = goal.strip()
    if not goal:
        raise UsageError("the goal is empty; say what to build, e.g. 'frontend, backend, database'")
    if len(goal) > MAX_GOAL_CHARS:
        msg = f"the goal is {len(goal)} characters; keep it under {MAX_GOAL_CHARS}"
        raise UsageError(msg)
    if ask is None:
        if planner == DEMO_PLANNER:
            ask = demo_planner
        elif planner in profiles:
            ask = profile_asker(profiles[planner], cwd)
        else:
            known = ", ".join(sorted({*profiles, DEMO_PLANNER}))
            msg = f"unknown planner {planner!r}; use one of: {known} (or add a profile)"
            raise UsageError(msg)
    tree = repo_tree(cwd)
    problems = ""
    last_text = ""
    for number in range(1, MAX_ASKS + 1):
        answer = ask(planner_prompt(goal, tree, agent, problems))
        last_text = extract_yaml(answer).strip() + "\n"
        try:
            plan = check_plan_text(last_text, cwd)
        except PlanError as exc:
            problems = "\n".join(str(p) for p in exc.problems)
            log.info("planner answer refused", extra={"ask": number, "problems": problems})
            continue
        return PlannedGoal(text=last_text, plan=plan, asks=number, planner=planner)
    shown = "\n".join(f"  {line}" for line in problems.splitlines()[:20])
    msg = (
        f"planner {planner!r} gave no valid plan in {MAX_ASKS} tries; nothing was created. "
        f"Problems with its last answer:\n{shown}\n"
        "Rephrase the goal, try another --planner, or write the plan by hand (`limitless init`)"
    )
    raise PlannerError(msg)


def plan_goal(goal: str, planner_name: str | None, config: UserConfig, cwd: Path) -> PlannedGoal:
    """Plan `goal` with the chosen planner: `planner_name` (the flag), else the user
    config's planner, else its agent, else claude; the demo planner plans demo tasks."""
    name = planner_name or config.planner or config.agent or "claude"
    profiles = {**BUILTIN_PROFILES, **config.agents}
    agent = "demo" if name == DEMO_PLANNER else (config.agent or "claude")
    return make_plan(goal, planner=name, cwd=cwd, profiles=profiles, agent=agent)


def save_plan(planned: PlannedGoal, path: Path, *, force: bool = False) -> Path:
    """Write the plan's YAML to `path` (refusing to overwrite unless `force`)."""
    if path.exists() and not force:
        msg = f"{path} exists already; pass --force to overwrite it, or name another -o FILE"
        raise UsageError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(planned.text, encoding="utf-8")
    return path
