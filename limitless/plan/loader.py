"""The plan: a YAML file of tasks, agent profiles and policies, read into frozen values.

Reading goes text → YAML node tree (`yaml.compose`, so every value keeps its line
and column) → checked values → `Plan`. Every mistake found on the way becomes a
`Problem`; when there is at least one, `PlanError` lists them all, sorted by place.
The node tree is walked by hand rather than turned into Python objects first, so a
message can point at the exact key or value that is wrong.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from limitless.errors import PlanError, Problem
from limitless.plan.graph import find_cycles
from limitless.plan.model import (
    _AGENT_KEYS,
    _BUDGET_KEYS,
    _COMMIT_HOOKS,
    _LAND,
    _MERGE_KEYS,
    _ON_CONFLICT,
    _OVERLAP,
    _ROOT_KEYS,
    _STAGE_KEYS,
    _STRATEGIES,
    _TASK_KEYS,
    HOOK_EVENTS,
    MAX_CONCURRENCY,
    MAX_IDLE_SECONDS,
    MAX_PLAN_BYTES,
    MAX_PORTS,
    MAX_PRIORITY,
    MAX_RETRIES,
    SANDBOX_CHOICES,
    Budget,
    MergePolicy,
    Plan,
    Stage,
    Task,
)
from limitless.plan.stages import (
    _Draft,
    _expand,
)
from limitless.plan.yamlread import (
    _BAD_BRANCH,
    _compose,
    _decode,
    _file_error,
    _id_problem,
    _is_null,
    _kind,
    _read_plan_bytes,
    _Reader,
    _Section,
    _show,
    _too_big,
    _unknown,
    add_defaults,
)
from limitless.programs import ADAPTERS, APPROVE_CHOICES, DEFAULT_APPROVE
from limitless.programs.profiles import (
    CHANGES,
    AgentProfile,
    Changes,
)

# Public entry points


def load(
    path: str | Path,
    *,
    profiles: Mapping[str, AgentProfile] | None = None,
    defaults: Mapping[str, str] | None = None,
    defaults_source: str = "",
) -> Plan:
    """Read and check the plan file at `path`; PlanError lists every problem found.

    `profiles` are the agent profiles known before the plan's own `agents:`
    (default: the built-in ones; the user config adds its profiles there).
    `defaults`: top-level keys for the plan to take when it leaves them out (the user
    config's agent, layout, worktree_root); a problem with one names `defaults_source`.
    """
    plan_path = Path(path)
    source = str(path)
    text = _decode(_read_plan_bytes(plan_path, source), source)
    return _parse(
        text,
        source,
        plan_path.absolute().parent,
        plan_path.resolve(),
        profiles,
        defaults or {},
        defaults_source,
    )


def loads(
    text: str,
    *,
    source: str,
    base_dir: Path,
    profiles: Mapping[str, AgentProfile] | None = None,
    defaults: Mapping[str, str] | None = None,
    defaults_source: str = "",
) -> Plan:
    """Check plan `text`; `source` names it in problems, relative paths start at `base_dir`."""
    return _parse(text, source, base_dir, None, profiles, defaults or {}, defaults_source)


# Reading the file


def _parse(
    text: str,
    source: str,
    base_dir: Path,
    source_path: Path | None,
    profiles: Mapping[str, AgentProfile] | None = None,
    defaults: Mapping[str, str] | None = None,
    defaults_source: str = "",
) -> Plan:
    if len(text) > MAX_PLAN_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_PLAN_BYTES:
        raise _file_error(source, _too_big("the plan"))
    root, loader = _compose(text, source)
    add_defaults(root, defaults or {}, defaults_source or "defaults")
    reader = _Reader(source, base_dir.absolute(), loader)
    if profiles is not None:
        reader.profiles = dict(profiles)
    plan = _read_plan(reader, root, source_path)
    problems = sorted(dict.fromkeys(reader.problems), key=lambda p: (p.line, p.column))
    if problems or plan is None:
        raise PlanError(problems)
    return plan


def _read_plan(reader: _Reader, root: Node | None, source_path: Path | None) -> Plan | None:
    if root is None:
        reader.problems.append(
            Problem(reader.source, 1, 1, "the plan is empty; it needs at least a list of tasks")
        )
        return None
    if not isinstance(root, MappingNode):
        msg = f"a plan is a mapping of keys like name, agent and tasks, not {_kind(root)}"
        reader.fail(root, "", msg)
        return None
    sec = reader.section(root, "", _ROOT_KEYS)
    if sec is None:
        return None
    agents = _read_agents(reader, sec.get("agents"))
    known = sorted(agents)
    plan_agent = _agent_name(sec, "agent", "claude", known) or "claude"
    stages = _read_stages(reader, sec.get("stages"), known)
    drafts = _read_tasks(reader, sec, plan_agent, known)
    _check_references(reader, drafts)
    _join_named_epics(drafts)
    tasks = _expand(reader, drafts, stages)
    return Plan(
        name=_plan_name(sec, reader.base_dir),
        source=source_path,
        base=_base(sec),
        max_concurrency=sec.integer("max_concurrency", 4, 1, MAX_CONCURRENCY),
        agent=plan_agent,
        layout=sec.text("layout", "default"),
        worktree_root=_worktree_root(sec, reader.base_dir),
        setup=sec.texts("setup"),
        copy=sec.texts("copy"),
        link=sec.texts("link"),
        merge=_read_merge(reader, sec.get("merge"), known),
        agents=agents,
        budget=_read_budget(reader, sec.get("budget")),
        stages=stages,
        autocommit=sec.flag("autocommit", True),
        artifacts=sec.texts("artifacts"),
        overlap=sec.choice("overlap", "warn", _OVERLAP),
        ports=sec.integer("ports", 0, 0, MAX_PORTS),
        hooks=_read_hooks(reader, sec.get("hooks")),
        approve=sec.choice("approve", DEFAULT_APPROVE, APPROVE_CHOICES),
        idle_done_s=sec.duration("idle_done"),
        changes=_changes(sec),
        sandbox=sec.choice("sandbox", "none", SANDBOX_CHOICES),
        sandbox_hide=_sandbox_paths(sec, "sandbox_hide"),
        sandbox_write=_sandbox_paths(sec, "sandbox_write"),
        sandbox_network=sec.flag("sandbox_network", True),
        tasks=tasks,
        commit_hooks=sec.choice("commit_hooks", "run", _COMMIT_HOOKS),
        sparse=_read_sparse(sec),
    )


def _changes(sec: _Section) -> Changes | None:
    return sec.choice("changes", None, CHANGES) if sec.get("changes") is not None else None


def _read_sparse(sec: _Section) -> tuple[str, ...] | None:
    """`sparse`: folders (or globs, cut at their first wildcard) inside the repository."""
    node = sec.get("sparse")
    if node is None:
        return None
    entries = sec.texts("sparse")
    items = node.value if isinstance(node, SequenceNode) else []
    for index, entry in enumerate(entries):
        where = items[index] if index < len(items) else node
        parts = Path(entry).parts
        if Path(entry).is_absolute() or ".." in parts:
            msg = f"{_show(entry)} must be a folder inside the repository, relative to its top"
            sec.reader.fail(where, f"sparse[{index}]", msg)
    return entries


def _sandbox_paths(sec: _Section, key: str) -> tuple[str, ...]:
    """`sandbox_hide` / `sandbox_write`: absolute or `~/` paths (a folder when ending in /)."""
    node = sec.get(key)
    if node is None:
        return ()
    items: list[Node]
    if isinstance(node, ScalarNode):
        items = [node]
    else:
        items = sec.reader.sequence(node, sec.at(key), "a path or a list of paths") or []
    paths: list[str] = []
    for index, item in enumerate(items):
        where = sec.at(key) if item is node else f"{sec.at(key)}[{index}]"
        value = sec.reader.text(item, where)
        if value is None:
            continue
        if not (value.startswith("/") or value == "~" or value.startswith("~/")):
            sec.reader.fail(
                item, where, f"{_show(value)} is not an absolute path; write /path/to/it or ~/path"
            )
            continue
        paths.append(value)
    return tuple(paths)


def _plan_name(sec: _Section, base_dir: Path) -> str:
    node = sec.get("name")
    if node is not None:
        name = sec.reader.ident(node, "name", "plan name")
        return name if name and _id_problem(name) is None else "plan"
    guess = re.sub(r"[^A-Za-z0-9._-]+", "-", base_dir.name).strip("._-")[:64]
    return guess if guess and _id_problem(guess) is None else "plan"


def _base(sec: _Section) -> str | None:
    base = sec.optional_text("base")
    node = sec.get("base")
    if base is not None and node is not None and _BAD_BRANCH.search(base):
        sec.reader.fail(node, "base", f"{_show(base)} is not a valid git branch name")
        return None
    return base


def _worktree_root(sec: _Section, base_dir: Path) -> Path | None:
    raw = sec.optional_text("worktree_root")
    if raw is None:
        return None
    return Path(os.path.normpath(base_dir / os.path.expanduser(raw)))


def _agent_name(sec: _Section, key: str, default: str, known: Sequence[str]) -> str | None:
    node = sec.get(key)
    if node is None:
        return default
    name = sec.reader.text(node, sec.at(key))
    if name is None:
        return None
    sec.reader.known(node, sec.at(key), name, known, "agent profile")
    return name


def load_profiles(
    raw: Mapping[str, object], *, source: str, base_dir: Path
) -> dict[str, AgentProfile]:
    """Agent profiles given as data (the user config's `agents:`), checked by the rules a
    plan's `agents:` block is; PlanError lists the problems."""
    root, loader = _compose(yaml.safe_dump(dict(raw), sort_keys=False), source)
    reader = _Reader(source, base_dir.absolute(), loader)
    profiles = _read_agents(reader, root)
    if reader.problems:
        raise PlanError(sorted(dict.fromkeys(reader.problems), key=lambda p: (p.line, p.column)))
    return {name: profiles[name] for name in raw}


def _read_agents(reader: _Reader, node: Node | None) -> dict[str, AgentProfile]:
    profiles = dict(reader.profiles)
    triples = reader.items(node, "agents") if node is not None and not _is_null(node) else []
    for name, key_node, value_node in triples or []:
        reason = _id_problem(name)
        if reason is not None:
            reader.fail(key_node, "agents", f"agent profile name {_show(name)} {reason}")
            continue
        profile = _read_profile(reader, name, value_node)
        if profile is not None:
            profiles[name] = profile
    return profiles


def _read_profile(reader: _Reader, name: str, node: Node) -> AgentProfile | None:
    sec = reader.section(node, f"agents.{name}", _AGENT_KEYS)
    if sec is None:
        return None
    builtin = reader.profiles.get(name)
    if builtin is None:
        message = "missing command; a new agent profile needs command: [program, arguments...]"
        if sec.require("command", message) is None:
            return None
    template = builtin or AgentProfile(name=name, command=())
    return AgentProfile(
        name=name,
        command=sec.argv("command", template.command),
        model_args=sec.argv("model_args", template.model_args),
        interactive=sec.flag("interactive", template.interactive),
        env=sec.env("env", template.env),
        cost_regex=sec.regex("cost_regex", template.cost_regex, group=True),
        progress_regex=sec.regex("progress_regex", template.progress_regex, group=True),
        waiting_regex=sec.regex("waiting_regex", template.waiting_regex, group=False),
        session_regex=sec.regex("session_regex", template.session_regex, group=True),
        resume_command=sec.argv("resume_command", template.resume_command, frozenset({"session"})),
        rate_limit_regex=sec.regex("rate_limit_regex", template.rate_limit_regex, group=False),
        idle_seconds=sec.number("idle_seconds", template.idle_seconds, 0, MAX_IDLE_SECONDS),
        adapter=_adapter(sec, template.adapter),
        idle_done_s=_or(sec.duration("idle_done"), template.idle_done_s),
        changes=sec.choice("changes", template.changes, CHANGES),
    )


def _adapter(sec: _Section, default: str | None) -> str | None:
    node = sec.get("adapter")
    if node is None:
        return default
    if _is_null(node):
        return None
    name = sec.reader.text(node, sec.at("adapter"))
    if name is None:
        return default
    sec.reader.known(node, sec.at("adapter"), name, sorted(ADAPTERS), "agent adapter")
    return name if name in ADAPTERS else default


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _read_merge(reader: _Reader, node: Node | None, known: Sequence[str]) -> MergePolicy:
    sec = reader.section(node, "merge", _MERGE_KEYS)
    if sec is None:
        return MergePolicy()
    resolver = _agent_name(sec, "resolver", "", known) if sec.get("resolver") is not None else None
    return MergePolicy(
        strategy=sec.choice("strategy", "merge", _STRATEGIES),
        gate=sec.optional_text("gate"),
        on_conflict=sec.choice("on_conflict", "stop", _ON_CONFLICT),
        land=sec.choice("land", "auto", _LAND),
        resolver=resolver,
        resolver_timeout_s=sec.duration("resolver_timeout") or MergePolicy.resolver_timeout_s,
    )


def _read_budget(reader: _Reader, node: Node | None) -> Budget:
    sec = reader.section(node, "budget", _BUDGET_KEYS)
    if sec is None:
        return Budget()
    return Budget(
        max_cost_usd=sec.optional_number("max_cost_usd", 0, None),
        alert_at=sec.number("alert_at", 0.8, 0, 1),
    )


def _read_hooks(reader: _Reader, node: Node | None) -> dict[str, str]:
    sec = reader.section(node, "hooks", HOOK_EVENTS, what="hook event")
    if sec is None:
        return {}
    hooks = {event: sec.text(event, "") for event in HOOK_EVENTS if sec.get(event) is not None}
    return {event: command for event, command in hooks.items() if command}


def _read_stages(reader: _Reader, node: Node | None, known: Sequence[str]) -> tuple[Stage, ...]:
    if node is None or _is_null(node):
        return ()
    items = reader.sequence(node, "stages", "a list of stages")
    stages: list[Stage] = []
    first_seen: dict[str, Node] = {}
    for index, item in enumerate(items or []):
        path = f"stages[{index}]"
        sec = reader.section(item, path, _STAGE_KEYS)
        if sec is None:
            continue
        name_node = sec.require("name", "missing name; give the stage a name like 'review'")
        name = reader.ident(name_node, sec.at("name"), "stage name") if name_node else None
        if name is None or name_node is None:
            continue
        if name in first_seen:
            line = first_seen[name].start_mark.line + 1
            reader.fail(
                name_node,
                sec.at("name"),
                f"duplicate stage name {_show(name)}; the first one is at line {line}",
            )
            continue
        first_seen[name] = name_node
        agent = _agent_name(sec, "agent", "", known) if sec.get("agent") is not None else None
        stages.append(
            Stage(
                name,
                sec.text("prompt", "{prompt}"),
                agent or None,
                sec.optional_text("model"),
                _changes(sec),
            )
        )
    return tuple(stages)


def _read_tasks(
    reader: _Reader, sec: _Section, plan_agent: str, known: Sequence[str]
) -> list[_Draft]:
    node = sec.require("tasks", "missing key 'tasks'; a plan needs a list of tasks")
    if node is None:
        return []
    items = reader.sequence(node, "tasks", "a list of tasks")
    if items is None:
        return []
    if not items:
        reader.fail(node, "tasks", "the list is empty; a plan needs at least one task")
    drafts = (
        _read_task(reader, item, f"tasks[{i}]", plan_agent, known) for i, item in enumerate(items)
    )
    return [draft for draft in drafts if draft is not None]


def _read_task(
    reader: _Reader, node: Node, path: str, plan_agent: str, known: Sequence[str]
) -> _Draft | None:
    sec = reader.section(node, path, _TASK_KEYS)
    if sec is None:
        return None
    id_node = sec.require("id", "missing id; give the task a unique id like 'api'")
    task_id = (reader.ident(id_node, sec.at("id"), "task id") if id_node else None) or ""
    prompt, prompt_file = _read_prompt(reader, sec)
    epic_node = sec.get("epic")
    refs = [
        (key, target, target_node)
        for key in ("depends_on", "after")
        for target, target_node in _refs(reader, sec, key)
    ]
    task = Task(
        id=task_id,
        prompt=prompt,
        agent=_agent_name(sec, "agent", plan_agent, known) or plan_agent,
        depends_on=tuple(dict.fromkeys(target for key, target, _ in refs if key == "depends_on")),
        after=tuple(dict.fromkeys(target for key, target, _ in refs if key == "after")),
        files=sec.texts("files"),
        priority=sec.integer("priority", 0, -MAX_PRIORITY, MAX_PRIORITY),
        retries=sec.integer("retries", 0, 0, MAX_RETRIES),
        timeout_s=sec.duration("timeout"),
        epic=reader.ident(epic_node, sec.at("epic"), "epic name") if epic_node else None,
        estimate_s=sec.duration("estimate"),
        env=sec.env("env", {}),
        model=sec.optional_text("model"),
        exclusive=sec.flag("exclusive", False),
        ports=sec.integer("ports", 0, 0, MAX_PORTS) if sec.get("ports") is not None else None,
        prompt_file=prompt_file,
        approve=(
            sec.choice("approve", DEFAULT_APPROVE, APPROVE_CHOICES)
            if sec.get("approve") is not None
            else None
        ),
        idle_done_s=sec.duration("idle_done"),
        changes=_changes(sec),
        sandbox=(
            sec.choice("sandbox", "none", SANDBOX_CHOICES)
            if sec.get("sandbox") is not None
            else None
        ),
        sandbox_hide=_sandbox_paths(sec, "sandbox_hide"),
        sandbox_write=_sandbox_paths(sec, "sandbox_write"),
        sandbox_network=(
            sec.flag("sandbox_network", True) if sec.get("sandbox_network") is not None else None
        ),
    )
    staged = sec.flag("stages", True)
    return _Draft(task, path, node, id_node, refs, epic_node, staged)


def _refs(reader: _Reader, sec: _Section, key: str) -> Iterator[tuple[str, Node]]:
    """Task ids named by depends_on or after: one id or a list of them."""
    node = sec.get(key)
    if node is None or _is_null(node):
        return
    path = sec.at(key)
    items = (
        [node]
        if isinstance(node, ScalarNode)
        else reader.sequence(node, path, "a task id or a list of task ids")
    )
    for index, item in enumerate(items or []):
        item_path = path if item is node else f"{path}[{index}]"
        target = reader.text(item, item_path)
        if target is not None:
            yield target, item


def _read_prompt(reader: _Reader, sec: _Section) -> tuple[str, Path | None]:
    prompt_node, file_node = sec.get("prompt"), sec.get("prompt_file")
    if prompt_node is not None and file_node is not None:
        reader.fail(file_node, sec.path, "give prompt or prompt_file, not both")
        return "", None
    if prompt_node is not None:
        return reader.text(prompt_node, sec.at("prompt")) or "", None
    if file_node is not None:
        raw = reader.text(file_node, sec.at("prompt_file"))
        return (
            _read_prompt_file(reader, file_node, sec.at("prompt_file"), raw) if raw else ("", None)
        )
    if sec.node is not None:
        reader.fail(
            sec.node,
            sec.path,
            "missing prompt; give prompt (the text) or prompt_file (a file holding it)",
        )
    return "", None


def _read_prompt_file(reader: _Reader, node: Node, path: str, raw: str) -> tuple[str, Path | None]:
    """The text of a prompt file, which must lie inside the plan's folder (symlinks resolved)."""
    try:
        root = reader.base_dir.resolve()
        resolved = (reader.base_dir / raw).resolve()
        if not resolved.is_relative_to(root):
            reader.fail(
                node,
                path,
                f"{_show(raw)} is outside the plan's folder; keep prompt files inside it",
            )
            return "", None
        if resolved.is_dir():
            reader.fail(node, path, f"{_show(raw)} is a folder; name a file")
            return "", None
        with resolved.open("rb") as stream:
            data = stream.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        reader.fail(
            node, path, f"{_show(raw)} not found (relative paths start at the plan's folder)"
        )
        return "", None
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reader.fail(node, path, f"cannot read {_show(raw)}: {reason}")
        return "", None
    if len(data) > MAX_PLAN_BYTES:
        reader.fail(node, path, _too_big(_show(raw)))
        return "", None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        reader.fail(node, path, f"{_show(raw)} is not UTF-8 text; save it as UTF-8")
        return "", None
    if not text.strip() or "\0" in text:
        reader.fail(node, path, f"{_show(raw)} is empty or binary; write the task's prompt in it")
        return "", None
    return text, resolved


def _check_references(reader: _Reader, drafts: Sequence[_Draft]) -> None:
    """Duplicate ids, unknown or self dependencies, cycles."""
    first: dict[str, _Draft] = {}
    for draft in drafts:
        task_id = draft.task.id
        if not task_id or draft.id_node is None:
            continue
        if task_id in first:
            line = first[task_id].id_node.start_mark.line + 1  # type: ignore[union-attr]
            msg = f"duplicate task id {_show(task_id)}; the first one is at line {line}"
            reader.fail(draft.id_node, f"{draft.path}.id", msg)
        else:
            first[task_id] = draft
    edges: dict[str, list[str]] = {task_id: [] for task_id in first}
    ref_nodes: dict[tuple[str, str], Node] = {}
    for draft in drafts:
        for key, target, node in draft.refs:
            path = f"{draft.path}.{key}"
            if target == draft.task.id:
                verb = "depend on" if key == "depends_on" else "come after"
                reader.fail(node, path, f"task {_show(target)} cannot {verb} itself")
            elif target not in first:
                reader.fail(node, path, _unknown("task", target, list(first), label="known tasks"))
            elif key == "depends_on" and first.get(draft.task.id) is draft:
                edges[draft.task.id].append(target)
                ref_nodes.setdefault((draft.task.id, target), node)
    for cycle in find_cycles(edges):
        node = ref_nodes[(cycle[0], cycle[1])]
        path = f"{first[cycle[0]].path}.depends_on"
        reader.fail(node, path, f"cycle: {' -> '.join(cycle)}; remove one of these dependencies")


def _join_named_epics(drafts: Sequence[_Draft]) -> None:
    """Put a task whose id names an epic into that epic.

    Its worktree (named by epic, else id) is the epic's already; as a member it is
    also chained with the others, so the two never work in that worktree at once.
    """
    epics = {draft.task.epic for draft in drafts}
    for draft in drafts:
        if draft.task.epic is None and draft.task.id in epics:
            draft.task = dataclasses.replace(draft.task, epic=draft.task.id)
