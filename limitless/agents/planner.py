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
from limitless.git.repo import find_repo
from limitless.git.status import dirty_files, head_sha
from limitless.plan.loader import loads
from limitless.plan.model import Plan
from limitless.plan.userconfig import UserConfig
from limitless.programs import PaneLine, Program, adapter
from limitless.programs.base import Approve
from limitless.programs.headless_run import run_headless
from limitless.programs.launch import AgentStart, agent_start
from limitless.programs.profiles import BUILTIN_PROFILES, AgentProfile

log = logging.getLogger(__name__)

DEMO_PLANNER = "demo"
MAX_ASKS = 2
PLANNER_TIMEOUT_S = 600.0
TREE_DEPTH = 2
TREE_LIMIT = 200
MAX_GOAL_CHARS = 20_000
PLANNER_APPROVE: Approve = "ask"
"""A planner reads the repository and answers: its edits and commands are refused."""
_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox"})
_PLAN_KEY = re.compile(r"(?m)^\s*tasks\s*:")
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
    """The planner failed to produce a valid plan; nothing was created. Exit 2 by default
    (no valid plan), 3 when the planner cannot start here, 1 when its run failed."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


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
        "You may read the repository to plan; change nothing in it (no edits, no commits,",
        "no commands that write): the tasks will do the work.",
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


def profile_asker(
    profile: AgentProfile,
    cwd: Path,
    timeout_s: float = PLANNER_TIMEOUT_S,
    on_line: Callable[[PaneLine], None] | None = None,
) -> Ask:
    """Ask a planner agent: run its argv (no shell) with the prompt, return its answer.

    A profile of a headless program limitless knows (claude, codex, gemini, opencode,
    aider) runs read-only (`approve: ask`: it may read the repository, its edits and
    commands are refused) and its answer is its final message, read from its events;
    its readable lines go to `on_line` as they come. Any other profile's answer is
    what it printed. Either way the checkout must be as it was: a planner that changed
    it is an error naming what changed (limitless does not undo it)."""
    program = adapter(profile.adapter)
    if profile.interactive or (program is not None and program.interactive):
        msg = (
            f"planner {profile.name!r} is an interactive profile (a TUI waiting for a user); "
            f"plan with a headless one, e.g. --planner {_headless_twin(profile.name)}"
        )
        raise PlannerError(msg, exit_code=2)

    def ask(prompt: str) -> str:
        before = _checkout_state(cwd)
        with tempfile.TemporaryDirectory(prefix="limitless-planner-") as folder:
            headless = program is not None and program.headless_stream
            extra = program.answer_only_args(Path(folder)) if headless and program else ()
            start = agent_start(
                profile,
                prompt,
                prompt_file=Path(folder) / "prompt.md",
                cwd=cwd,
                task="planner",
                approve=PLANNER_APPROVE if headless else None,
                # opencode works in $PWD rather than in its real folder
                extra_env={"PWD": str(cwd)},
                extra_args=extra,
            )
            if headless and program is not None:
                answer = _ask_headless(profile, program, start, timeout_s, on_line)
            else:
                answer = _ask_plain(profile, start, timeout_s)
        _check_unchanged(profile.name, cwd, before)
        return answer

    return ask


def _headless_twin(name: str) -> str:
    twin = name.removesuffix("-interactive")
    return twin if twin != name and twin in BUILTIN_PROFILES else "claude"


def _not_found(profile: AgentProfile, command: str, install: str = "") -> PlannerError:
    how = f"install it ({install})" if install else "install it"
    msg = (
        f"planner {profile.name!r}: command {command!r} not found on PATH; {how} "
        f"or pick another planner with --planner (offline: --planner {DEMO_PLANNER})"
    )
    return PlannerError(msg, exit_code=3)


def _ask_plain(profile: AgentProfile, start: AgentStart, timeout_s: float) -> str:
    """A planner limitless knows nothing about: what it printed on stdout is its answer."""
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
        raise _not_found(profile, argv[0]) from None
    except subprocess.TimeoutExpired:
        msg = f"planner {profile.name!r} gave no answer within {timeout_s:.0f}s"
        raise PlannerError(msg) from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        msg = f"planner {profile.name!r} exited with {result.returncode}: {tail or '(no output)'}"
        raise PlannerError(msg)
    return result.stdout


def _ask_headless(
    profile: AgentProfile,
    program: Program,
    start: AgentStart,
    timeout_s: float,
    on_line: Callable[[PaneLine], None] | None,
) -> str:
    """A headless program limitless knows: its final message, read from its events."""
    env = start.environ()
    who = f"planner {profile.name!r} ({program.display})"
    refusal = program.refusal(PLANNER_APPROVE, env, os.geteuid() == 0)
    if refusal is not None:
        raise PlannerError(f"{who} cannot run here: {refusal.message}", exit_code=3)
    try:
        end = run_headless(
            program,
            start.argv,
            cwd=start.cwd,
            env=env,
            approve=PLANNER_APPROVE,
            timeout_s=timeout_s,
            on_line=on_line,
        )
    except FileNotFoundError:
        raise _not_found(profile, start.argv[0], program.install) from None
    other = f"pick another --planner (offline: --planner {DEMO_PLANNER})"
    if end.timed_out:
        msg = f"{who} gave no answer within {timeout_s:.0f}s; try again later or {other}"
        raise PlannerError(msg, exit_code=1)
    facts = end.facts
    if end.rate_limit:
        msg = (
            f"{who} was refused by its model provider, after the program's own retries: "
            f"{_short(end.rate_limit)}; wait and try again, or {other}"
        )
        raise PlannerError(msg, exit_code=1)
    if facts.is_error:
        msg = (
            f"{who} ended on an error: {_short(facts.error)}; check that `{program.executable}` "
            f"works here (its API key and endpoint), or {other}"
        )
        raise PlannerError(msg, exit_code=1)
    answer = facts.final_text.strip()
    if not _PLAN_KEY.search(answer) and _PLAN_KEY.search(end.output):
        # a text program (aider): its reply is in what it printed, among its own lines
        answer = end.output.strip()
    if not answer and facts.denials:
        refused = ", ".join(facts.denials[:4])
        msg = (
            f"{who} gave no plan: it tried to change the repository and was refused "
            f"({refused}); a planner may only read. Try again, or {other}"
        )
        raise PlannerError(msg, exit_code=1)
    if end.exit_code != 0 or not answer:
        said = "; ".join(end.tail[-3:]) or "(no output)"
        what = f"exited with {end.exit_code}" if end.exit_code != 0 else "gave no answer"
        msg = f"{who} {what}: {_short(said)}; try again later or {other}"
        raise PlannerError(msg, exit_code=1)
    return answer


def _short(text: str, limit: int = 300) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


@dataclass(frozen=True)
class _CheckoutState:
    head: str
    files: dict[str, tuple[int, int]]  # changed or untracked path → (size, mtime_ns)


def _checkout_state(cwd: Path) -> _CheckoutState | None:
    """HEAD and the changed files of the checkout at `cwd` (None outside one)."""
    try:
        root = find_repo(cwd).root
        head = head_sha(root)
        dirty = dirty_files(root)
    except LimitlessError:
        return None
    files: dict[str, tuple[int, int]] = {}
    for name in dirty:
        try:
            stat = (root / name).stat()
            files[name] = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            files[name] = (-1, -1)
    return _CheckoutState(head, files)


def _check_unchanged(name: str, cwd: Path, before: _CheckoutState | None) -> None:
    """PlannerError when the checkout is not as it was before the planner ran."""
    if before is None:
        return
    after = _checkout_state(cwd)
    if after is None or after == before:
        return
    changed = sorted(
        path
        for path in {*before.files, *after.files}
        if before.files.get(path) != after.files.get(path)
    )
    what = []
    if after.head != before.head:
        what.append(f"HEAD moved from {before.head[:12]} to {after.head[:12]}")
    if changed:
        more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
        shown = ", ".join(changed[:8]) + more
        what.append(f"files changed: {shown}")
    msg = (
        f"planner {name!r} changed the checkout at {cwd} while planning ({'; '.join(what)}); "
        "a planner must only read. No plan was written and nothing was undone: look at "
        "`git status` (was something else editing this checkout?)"
    )
    raise PlannerError(msg)


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
    on_line: Callable[[PaneLine], None] | None = None,
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
            ask = profile_asker(profiles[planner], cwd, on_line=on_line)
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


def plan_goal(
    goal: str,
    planner_name: str | None,
    config: UserConfig,
    cwd: Path,
    on_line: Callable[[PaneLine], None] | None = None,
) -> PlannedGoal:
    """Plan `goal` with the chosen planner: `planner_name` (the flag), else the user
    config's planner, else its agent, else claude; the demo planner plans demo tasks.
    `on_line`: the planner program's readable lines as they come (headless programs)."""
    name = planner_name or config.planner or config.agent or "claude"
    profiles = {**BUILTIN_PROFILES, **config.agents}
    agent = "demo" if name == DEMO_PLANNER else (config.agent or "claude")
    return make_plan(goal, planner=name, cwd=cwd, profiles=profiles, agent=agent, on_line=on_line)


def save_plan(planned: PlannedGoal, path: Path, *, force: bool = False) -> Path:
    """Write the plan's YAML to `path` (refusing to overwrite unless `force`)."""
    if path.exists() and not force:
        msg = f"{path} exists already; pass --force to overwrite it, or name another -o FILE"
        raise UsageError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(planned.text, encoding="utf-8")
    return path
