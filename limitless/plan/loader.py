"""The plan: a YAML file of tasks, agent profiles and policies, read into frozen values.

Reading goes text → YAML node tree (`yaml.compose`, so every value keeps its line
and column) → checked values → `Plan`. Every mistake found on the way becomes a
`Problem`; when there is at least one, `PlanError` lists them all, sorted by place.
The node tree is walked by hand rather than turned into Python objects first, so a
message can point at the exact key or value that is wrong.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import yaml
from yaml.events import AliasEvent, Event, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from limitless.errors import PlanError, Problem, UsageError
from limitless.plan.graph import find_cycles
from limitless.programs import ADAPTERS, APPROVE_CHOICES, DEFAULT_APPROVE, Approve
from limitless.programs.profiles import (
    BUILTIN_PROFILES,
    CHANGES,
    PLACEHOLDERS,
    AgentProfile,
    Changes,
    unknown_placeholders,
)

DEFAULT_PLAN_FILE = "limitless.yaml"

MAX_PLAN_BYTES = 1024 * 1024  # plans and prompt files alike
MAX_ALIASES = 100
MAX_VALUES = 100_000  # YAML values after aliases are counted once per use
MAX_DEPTH = 64
MAX_CONCURRENCY = 64
MAX_RETRIES = 100
MAX_PORTS = 100
MAX_IDLE_SECONDS = 7 * 24 * 3600  # 0 turns idle detection off
MAX_PRIORITY = 1_000_000
MAX_REGEX_CHARS = 2000

SandboxMode = Literal["none", "worktree"]
SANDBOX_CHOICES: dict[str, SandboxMode] = {"none": "none", "worktree": "worktree"}
Strategy = Literal["merge", "squash", "rebase"]
OnConflict = Literal["stop", "skip", "agent"]
Land = Literal["auto", "manual"]
Overlap = Literal["warn", "serialize"]
CommitHooks = Literal["run", "skip"]

HOOK_EVENTS = ("on_task_done", "on_task_failed", "on_waiting", "on_merge_conflict", "on_run_done")

_STRATEGIES: dict[str, Strategy] = {
    "merge": "merge",
    "squash": "squash",
    "rebase": "rebase",
    "regular": "merge",
}
_ON_CONFLICT: dict[str, OnConflict] = {"stop": "stop", "skip": "skip", "agent": "agent"}
_LAND: dict[str, Land] = {"auto": "auto", "manual": "manual"}
_OVERLAP: dict[str, Overlap] = {"warn": "warn", "serialize": "serialize"}
_COMMIT_HOOKS: dict[str, CommitHooks] = {"run": "run", "skip": "skip"}

_ROOT_KEYS = (
    "name", "base", "max_concurrency", "agent", "layout", "worktree_root", "setup", "copy",
    "link", "merge", "agents", "budget", "stages", "autocommit", "artifacts", "overlap",
    "ports", "hooks", "approve", "idle_done", "changes", "commit_hooks", "sparse",
    "sandbox", "sandbox_hide", "sandbox_write", "sandbox_network", "tasks",
)  # fmt: skip
_TASK_KEYS = (
    "id", "prompt", "prompt_file", "agent", "depends_on", "after", "files", "priority",
    "retries", "timeout", "estimate", "epic", "env", "model", "exclusive", "ports", "stages",
    "approve", "idle_done", "changes",
    "sandbox", "sandbox_hide", "sandbox_write", "sandbox_network",
)  # fmt: skip
_MERGE_KEYS = ("strategy", "gate", "on_conflict", "land", "resolver", "resolver_timeout")
_AGENT_KEYS = (
    "command", "model_args", "interactive", "env", "cost_regex", "progress_regex",
    "waiting_regex", "session_regex", "resume_command", "rate_limit_regex", "idle_seconds",
    "adapter", "idle_done", "changes",
)  # fmt: skip
_BUDGET_KEYS = ("max_cost_usd", "alert_at")
_STAGE_KEYS = ("name", "prompt", "agent", "model", "changes")


@dataclass(frozen=True)
class MergePolicy:
    """How the merge phase brings task branches home."""

    strategy: Strategy = "merge"
    gate: str | None = None
    on_conflict: OnConflict = "stop"
    land: Land = "auto"
    resolver: str | None = None
    resolver_timeout_s: float = 1800.0
    """A resolver agent still going after this long is stopped; the merge stops there."""


@dataclass(frozen=True)
class Budget:
    """A spending limit for a run, from the costs agents report."""

    max_cost_usd: float | None = None
    alert_at: float = 0.8


@dataclass(frozen=True)
class Stage:
    """One step every staged task goes through; `prompt` may use {prompt} and {task}."""

    name: str
    prompt: str = "{prompt}"
    agent: str | None = None
    model: str | None = None
    changes: Changes | None = None


@dataclass(frozen=True)
class Task:
    """One unit of agent work, after stage expansion."""

    id: str
    prompt: str
    agent: str
    depends_on: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    priority: int = 0
    retries: int = 0
    timeout_s: float | None = None
    epic: str | None = None
    estimate_s: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    exclusive: bool = False
    ports: int | None = None
    prompt_file: Path | None = None
    stage: str | None = None
    origin: str = ""
    approve: Approve | None = None
    idle_done_s: float | None = None
    changes: Changes | None = None
    sandbox: SandboxMode | None = None
    sandbox_hide: tuple[str, ...] = ()
    sandbox_write: tuple[str, ...] = ()
    sandbox_network: bool | None = None

    @property
    def worktree_key(self) -> str:
        """The name of this task's worktree folder and branch: its epic, else its id."""
        return self.epic or self.id


@dataclass(frozen=True)
class Plan:
    """A whole plan, checked, with built-in agent profiles merged in and stages expanded."""

    name: str
    source: Path | None
    base: str | None
    max_concurrency: int = 4
    agent: str = "claude"
    layout: str = "default"
    worktree_root: Path | None = None
    setup: tuple[str, ...] = ()
    copy: tuple[str, ...] = ()
    link: tuple[str, ...] = ()
    merge: MergePolicy = field(default_factory=MergePolicy)
    agents: Mapping[str, AgentProfile] = field(default_factory=lambda: dict(BUILTIN_PROFILES))
    budget: Budget = field(default_factory=Budget)
    stages: tuple[Stage, ...] = ()
    autocommit: bool = True
    artifacts: tuple[str, ...] = ()
    overlap: Overlap = "warn"
    ports: int = 0
    hooks: Mapping[str, str] = field(default_factory=dict)
    approve: Approve = DEFAULT_APPROVE
    idle_done_s: float | None = None
    changes: Changes | None = None
    sandbox: SandboxMode = "none"
    sandbox_hide: tuple[str, ...] = ()
    sandbox_write: tuple[str, ...] = ()
    sandbox_network: bool = True
    tasks: tuple[Task, ...] = ()
    commit_hooks: CommitHooks = "run"
    """Whether commits limitless makes run the repository's commit hooks."""
    sparse: tuple[str, ...] | None = None
    """Cone folders always checked out; set, a task with `files` gets a sparse worktree."""

    @cached_property
    def _by_id(self) -> dict[str, Task]:
        return {task.id: task for task in self.tasks}

    def task(self, task_id: str) -> Task:
        """The task called `task_id`; UsageError naming the known ones if there is none."""
        try:
            return self._by_id[task_id]
        except KeyError:
            msg = f"plan {self.name!r} has no task {task_id!r}; its tasks are: " + ", ".join(
                self._by_id
            )
            raise UsageError(msg) from None

    def profile(self, task: Task) -> AgentProfile:
        """The agent profile that runs `task`."""
        try:
            return self.agents[task.agent]
        except KeyError:
            msg = f"task {task.id!r} names agent profile {task.agent!r}, unknown to this plan"
            raise UsageError(msg) from None

    def approve_of(self, task: Task) -> Approve:
        """The permission policy `task` runs with: its own, else the plan's."""
        return task.approve or self.approve

    def idle_done_of(self, task: Task) -> float:
        """Seconds an interactive agent's finished turn waits before the task is done."""
        for value in (task.idle_done_s, self.idle_done_s):
            if value is not None:
                return value
        return self.profile(task).idle_done_s

    def changes_required(self, task: Task) -> bool:
        """Whether an attempt of `task` that changes nothing is a failure."""
        stage = next((s for s in self.stages if s.name == task.stage), None)
        choice = (stage.changes if stage else None) or task.changes or self.changes
        if choice is None and stage is not None and stage is not self.stages[0]:
            choice = "optional"  # a later stage (a review, a check) may rightly change nothing
        return (choice or self.profile(task).changes) == "required"

    def to_json(self) -> str:
        """The whole plan as JSON; `from_json` turns it back into an equal Plan."""
        return json.dumps(dataclasses.asdict(self), default=str, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """The Plan that `to_json` wrote; fields missing from older JSON get their defaults."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _stored_plan_error(f"not JSON ({exc})") from None
        return _from_jsonable(cls, data, "plan")


# Public entry points


def load(path: str | Path, *, profiles: Mapping[str, AgentProfile] | None = None) -> Plan:
    """Read and check the plan file at `path`; PlanError lists every problem found.

    `profiles` are the agent profiles known before the plan's own `agents:`
    (default: the built-in ones; the user config adds its profiles there).
    """
    plan_path = Path(path)
    source = str(path)
    text = _decode(_read_plan_bytes(plan_path, source), source)
    return _parse(text, source, plan_path.absolute().parent, plan_path.resolve(), profiles)


def loads(
    text: str,
    *,
    source: str,
    base_dir: Path,
    profiles: Mapping[str, AgentProfile] | None = None,
) -> Plan:
    """Check plan `text`; `source` names it in problems, relative paths start at `base_dir`."""
    return _parse(text, source, base_dir, None, profiles)


# Reading the file


def _file_error(source: str, message: str, line: int = 1, column: int = 1) -> PlanError:
    return PlanError([Problem(source, line, column, message)])


def _read_plan_bytes(path: Path, source: str) -> bytes:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        msg = "plan file not found; write one with `limitless init` or name another file"
        raise _file_error(source, msg) from None
    except IsADirectoryError:
        raise _file_error(source, "this is a folder; name the plan file inside it") from None
    except OSError as exc:
        raise _file_error(source, f"cannot read the plan file: {exc.strerror}") from None
    if len(data) > MAX_PLAN_BYTES:
        raise _file_error(source, _too_big("the plan")) from None
    return data


def _too_big(what: str) -> str:
    return f"{what} is larger than 1 MiB ({MAX_PLAN_BYTES} bytes); make it smaller"


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        msg = f"the plan is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        raise _file_error(source, msg, line, column) from None


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index` in `text`."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


# Composing YAML safely


class _Position(Protocol):
    """Where a YAML event or node starts (0-based); pyyaml has two Mark classes."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


class _Refused(Exception):
    """Raised while composing YAML that could hang or exhaust memory if walked."""

    def __init__(self, mark: _Position | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses alias bombs, recursive aliases and very deep nesting.

    Aliases share nodes, so composing is cheap; it is walking the tree that would
    multiply. So values are counted as they are composed, an alias counting every
    value it stands for, and composing stops as soon as the count passes MAX_VALUES.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._aliases = 0
        self._depth = 0
        self._values = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}  # id(anchored node) -> values it holds

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = typing.cast(Callable[[], Event], self.peek_event)()
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                msg = f"more than {MAX_ALIASES} YAML aliases; write the values out instead"
                raise _Refused(event.start_mark, msg)
            if event.anchor in self._open_anchors:
                msg = (
                    f"YAML alias *{event.anchor} is inside the value it names; aliases cannot loop"
                )
                raise _Refused(event.start_mark, msg)
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event)
            return node
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"the plan nests more than {MAX_DEPTH} levels deep")
        self._count(1, event)
        before = self._values
        anchor = event.anchor if isinstance(event, NodeEvent) else None
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        if anchor is not None:
            self._sizes[id(node)] = self._values - before + 1
        return node

    def _count(self, values: int, event: Event) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            msg = (
                f"the plan holds more than {MAX_VALUES} values (an alias counts each time "
                "it is used); make it smaller"
            )
            raise _Refused(event.start_mark, msg)


def _compose(text: str, source: str) -> tuple[Node | None, _Loader]:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(text, source, exc) from None
    try:
        return loader.get_single_node(), loader
    except _Refused as exc:
        raise PlanError([_problem(source, exc.mark, exc.message)]) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(text, source, exc) from None
    except yaml.MarkedYAMLError as exc:
        details = ", ".join(part for part in (exc.context, exc.problem) if part)
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # where the unclosed quote or bracket opened, not the end
        raise PlanError([_problem(source, mark, f"YAML syntax error: {details}")]) from None
    except yaml.YAMLError as exc:
        raise _file_error(source, f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()


def _reader_error(text: str, source: str, exc: yaml.reader.ReaderError) -> PlanError:
    line, column = _position(text, exc.position)
    character = exc.character if isinstance(exc.character, int) else 0
    msg = f"the plan holds the character U+{character:04X}, which YAML does not allow; remove it"
    return _file_error(source, msg, line, column)


def _problem(source: str, mark: _Position | None, message: str) -> Problem:
    if mark is None:
        return Problem(source, 1, 1, message)
    return Problem(source, mark.line + 1, mark.column + 1, message)


# Small wording helpers


def _show(value: str) -> str:
    """`value` quoted for a message, shortened when long."""
    return repr(value if len(value) <= 40 else value[:39] + "…")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown(
    what: str,
    value: str,
    choices: Sequence[str],
    *,
    list_all: bool = False,
    label: str = "accepted",
) -> str:
    """'unknown key 'x'; did you mean 'y'?' with the accepted choices when nothing is close."""
    message = f"unknown {what} {_show(value)}"
    close = difflib.get_close_matches(value, choices, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if list_all or not close:
        shown = list(choices[:20]) + (["…"] if len(choices) > 20 else [])
        message += f" ({label}: {', '.join(shown)})"
    return message


_ID_CHARS = re.compile(r"[A-Za-z0-9._-]")
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(1, 10)}
    | {f"LPT{n}" for n in range(1, 10)}
)


def _id_problem(value: str) -> str | None:
    """Why `value` cannot be an id (ids become git branch and folder names), or None."""
    if not value:
        return "is empty"
    if not (value[0].isascii() and value[0].isalnum()):
        return "must start with a letter or digit"
    bad = next((char for char in value if not _ID_CHARS.fullmatch(char)), None)
    if bad is not None:
        return f"contains {bad!r}; use letters, digits, '.', '_' and '-' only"
    if len(value) > 64:
        return "is longer than 64 characters"
    if ".." in value:
        return "contains '..', which git refuses in branch names"
    if value.endswith(".lock"):
        return "ends in '.lock', which git refuses in branch names"
    if value.endswith("."):
        return "ends in '.', which git refuses in branch names"
    device = value.split(".", 1)[0].upper()
    if device in _WINDOWS_DEVICES:
        return f"names the Windows device {device}, which cannot be a folder name"
    return None


_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock$|^@$")

_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def _parse_duration(text: str) -> float | None:
    """Seconds in `90`, `90s`, `30m`, `2h`, `1h30m` or `1.5h`; None if it is none of those."""
    if _SECONDS.fullmatch(text):
        return float(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    hours, minutes, seconds = (float(match.group(g) or 0) for g in ("h", "m", "s"))
    return hours * 3600 + minutes * 60 + seconds


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"  # a plain `<<`
_VALUE = "tag:yaml.org,2002:value"  # a plain `=`
_TEXT_TAGS = (_STR, _INT, _FLOAT, _TIMESTAMP, _MERGE, _VALUE)
_KINDS = {
    _STR: "a string",
    _INT: "a whole number",
    _FLOAT: "a number",
    _BOOL: "a boolean",
    _NULL: "nothing (null)",
    _TIMESTAMP: "a date",
}


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _KINDS.get(node.tag, f"a value tagged {node.tag}")


def _number(node: Node) -> str:
    """A number as written in the file, shortened when long."""
    text = str(node.value)
    return text if len(text) <= 20 else text[:19] + "…"


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


# The node walker


@dataclass
class _Reader:
    """Walks the YAML node tree; every check that fails adds a Problem and reading goes on."""

    source: str
    base_dir: Path
    loader: _Loader
    problems: list[Problem] = field(default_factory=list)
    profiles: dict[str, AgentProfile] = field(default_factory=lambda: dict(BUILTIN_PROFILES))
    """Agent profiles known before the plan's own `agents:` section."""

    def fail(self, node: Node, path: str, message: str) -> None:
        text = f"{path}: {message}" if path else message
        self.problems.append(_problem(self.source, node.start_mark, text))

    def wrong_type(self, node: Node, path: str, expected: str) -> None:
        self.fail(node, path, f"expected {expected}, got {_kind(node)}")

    def items(self, node: Node, path: str) -> list[tuple[str, Node, Node]] | None:
        """A mapping's (key, key node, value node) triples; duplicate keys are problems."""
        if not isinstance(node, MappingNode):
            self.wrong_type(node, path, "a mapping")
            return None
        seen: dict[str, Node] = {}
        result: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, path, f"a key must be a plain name, not {_kind(key_node)}")
                continue
            key = str(key_node.value)
            if key_node.tag == _MERGE:
                self.fail(
                    key_node, path, "YAML merge keys (<<) are not supported; write the keys out"
                )
                continue
            if key in seen:
                first = seen[key].start_mark
                where = f"line {first.line + 1}" if first else "earlier"
                self.fail(
                    key_node, path, f"duplicate key {_show(key)}; the first one is at {where}"
                )
                continue
            seen[key] = key_node
            result.append((key, key_node, value_node))
        return result

    def section(
        self, node: Node | None, path: str, allowed: Sequence[str], what: str = "key"
    ) -> _Section | None:
        """The values of a mapping whose keys must be among `allowed`."""
        if node is None:
            return _Section(self, path, None, {})
        triples = self.items(node, path)
        if triples is None:
            return None
        values: dict[str, Node] = {}
        for key, key_node, value_node in triples:
            if key not in allowed:
                self.fail(key_node, path, _unknown(what, key, allowed))
            else:
                values[key] = value_node
        return _Section(self, path, node, values)

    def sequence(self, node: Node, path: str, expected: str) -> list[Node] | None:
        if isinstance(node, SequenceNode):
            return list(node.value)
        self.wrong_type(node, path, expected)
        return None

    def text(self, node: Node, path: str, *, empty_ok: bool = False) -> str | None:
        """A string value; numbers and dates are taken as the text written in the file."""
        if not isinstance(node, ScalarNode) or node.tag not in _TEXT_TAGS:
            hint = (
                " (put it in quotes if it is text)" if _is_null(node) or node.tag == _BOOL else ""
            )
            self.wrong_type(node, path, "a string" + hint)
            return None
        value = str(node.value)
        if "\0" in value:
            self.fail(node, path, "contains a NUL character, which no program can receive")
            return None
        if not value.strip() and not empty_ok:
            self.fail(node, path, "must not be empty")
            return None
        return value

    def texts(self, node: Node, path: str) -> tuple[str, ...]:
        """One string or a list of strings."""
        if isinstance(node, ScalarNode) and not _is_null(node) and node.tag != _BOOL:
            value = self.text(node, path)
            return () if value is None else (value,)
        items = self.sequence(node, path, "a string or a list of strings")
        if items is None:
            return ()
        values = (self.text(item, f"{path}[{i}]") for i, item in enumerate(items))
        return tuple(value for value in values if value is not None)

    def integer(self, node: Node, path: str, low: int, high: int) -> int | None:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            self.wrong_type(node, path, "a whole number")
            return None
        try:
            value = self.loader.construct_yaml_int(node)
        except ValueError:
            value = high + 1
        if not low <= value <= high:
            self.fail(
                node,
                path,
                f"{_number(node)} is out of range; use a whole number from {low} to {high}",
            )
            return None
        return value

    def number(self, node: Node, path: str, low: float, high: float | None) -> float | None:
        """A finite number from `low` to `high`, or above `low` when `high` is None."""
        if not isinstance(node, ScalarNode) or node.tag not in (_INT, _FLOAT):
            self.wrong_type(node, path, "a number")
            return None
        try:
            value = float(self.loader.construct_yaml_float(node))
        except (ValueError, OverflowError):
            value = math.inf
        in_range = value > low if high is None else low <= value <= high
        if not (math.isfinite(value) and in_range):
            accepted = f"above {low:g}" if high is None else f"from {low:g} to {high:g}"
            self.fail(node, path, f"{_number(node)} is out of range; use a number {accepted}")
            return None
        return value

    def flag(self, node: Node, path: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.wrong_type(node, path, "true or false")
            return None
        return self.loader.construct_yaml_bool(node)

    def duration(self, node: Node, path: str) -> float | None:
        accepted = "a number of seconds or a duration like 90s, 30m, 2h or 1h30m"
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
            self.wrong_type(node, path, accepted)
            return None
        seconds = _parse_duration(str(node.value))
        if seconds is None or not math.isfinite(seconds):
            self.fail(node, path, f"bad duration {_show(node.value)}; use {accepted}")
            return None
        if seconds <= 0:
            self.fail(node, path, f"{_show(node.value)} is no time at all; use a duration above 0")
            return None
        return seconds

    def env(self, node: Node, path: str) -> dict[str, str]:
        triples = self.items(node, path) if not _is_null(node) else []
        result: dict[str, str] = {}
        for name, key_node, value_node in triples or []:
            if not _ENV_NAME.fullmatch(name):
                self.fail(
                    key_node,
                    path,
                    f"{_show(name)} is not an environment variable name; use letters, digits "
                    "and '_', not starting with a digit",
                )
            value = self.text(value_node, _join(path, name), empty_ok=True)
            if value is not None:
                result[name] = value
        return result

    def ident(self, node: Node, path: str, label: str) -> str | None:
        """A task id, epic or stage name, which must be safe as a git branch and folder name.

        An unsafe one is a problem but still returned, so that references to it
        are not reported as unknown too.
        """
        value = self.text(node, path, empty_ok=True)
        reason = None if value is None else _id_problem(value)
        if value is not None and reason is not None:
            self.fail(node, path, f"{label} {_show(value)} {reason}")
        return value

    def known(self, node: Node, path: str, name: str, choices: Sequence[str], what: str) -> None:
        if name not in choices:
            self.fail(
                node, path, _unknown(what, name, sorted(choices), list_all=True, label="known")
            )


T = TypeVar("T")


@dataclass
class _Section:
    """A checked mapping: typed getters that fall back to a default after a problem."""

    reader: _Reader
    path: str
    node: Node | None
    values: dict[str, Node]

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def get(self, key: str) -> Node | None:
        """The value of `key`; None when it is missing or null (`key:` with nothing after)."""
        node = self.values.get(key)
        return None if node is None or _is_null(node) else node

    def _read(self, key: str, default: T, read: Callable[[Node, str], T | None]) -> T:
        node = self.get(key)
        if node is None:
            return default
        value = read(node, self.at(key))
        return default if value is None else value

    def text(self, key: str, default: str) -> str:
        return self._read(key, default, self.reader.text)

    def optional_text(self, key: str) -> str | None:
        node = self.get(key)
        if node is None or _is_null(node):
            return None
        return self.reader.text(node, self.at(key))

    def texts(self, key: str) -> tuple[str, ...]:
        return self._read(key, (), self.reader.texts)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        return self._read(key, default, lambda n, p: self.reader.integer(n, p, low, high))

    def number(self, key: str, default: float, low: float, high: float | None) -> float:
        return self._read(key, default, lambda n, p: self.reader.number(n, p, low, high))

    def optional_number(self, key: str, low: float, high: float | None) -> float | None:
        node = self.get(key)
        if node is None or _is_null(node):
            return None
        return self.reader.number(node, self.at(key), low, high)

    def flag(self, key: str, default: bool) -> bool:
        return self._read(key, default, self.reader.flag)

    def duration(self, key: str) -> float | None:
        node = self.get(key)
        return None if node is None else self.reader.duration(node, self.at(key))

    def env(self, key: str, default: Mapping[str, str]) -> Mapping[str, str]:
        node = self.get(key)
        return default if node is None else self.reader.env(node, self.at(key))

    def choice(self, key: str, default: T, options: Mapping[str, T]) -> T:
        node = self.get(key)
        if node is None:
            return default
        value = self.reader.text(node, self.at(key))
        if value is None:
            return default
        if value not in options:
            self.reader.fail(
                node, self.at(key), _unknown("value", value, list(options), list_all=True)
            )
            return default
        return options[value]

    def argv(
        self, key: str, default: tuple[str, ...], extra: frozenset[str] = frozenset()
    ) -> tuple[str, ...]:
        """An argv template: a list of strings with known {placeholders} only."""
        node = self.get(key)
        if node is None:
            return default
        path = self.at(key)
        items = self.reader.sequence(node, path, "a list of strings")
        if items is None:
            return default
        if not items and key == "command":
            self.reader.fail(node, path, "must not be empty; give the program and its arguments")
            return default
        parts = [
            self.reader.text(item, f"{path}[{i}]", empty_ok=True) for i, item in enumerate(items)
        ]
        argv = tuple(part for part in parts if part is not None)
        unknown = [name for name in unknown_placeholders(argv) if name not in extra]
        if unknown:
            accepted = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS | extra))
            self.reader.fail(
                node, path, f"unknown placeholder {{{unknown[0]}}} (accepted: {accepted})"
            )
        return argv

    def regex(self, key: str, default: str | None, *, group: bool) -> str | None:
        """A regular expression that compiles; with `group`, it must capture what it reads."""
        node = self.values.get(key)
        if node is None:
            return default
        if _is_null(node):
            return None
        path = self.at(key)
        pattern = self.reader.text(node, path)
        if pattern is None:
            return default
        if len(pattern) > MAX_REGEX_CHARS:
            self.reader.fail(node, path, f"longer than {MAX_REGEX_CHARS} characters; shorten it")
            return default
        try:
            compiled = re.compile(pattern)
        except (re.error, OverflowError) as exc:
            self.reader.fail(node, path, f"not a valid regular expression: {exc}")
            return default
        except RecursionError:  # the parser of `re` recurses once per nested group
            self.reader.fail(node, path, "not a valid regular expression: nested too deeply")
            return default
        if group and compiled.groups < 1:
            self.reader.fail(node, path, "needs a (group) around the value it reads")
            return default
        return pattern

    def require(self, key: str, message: str) -> Node | None:
        node = self.get(key)
        if node is None and self.node is not None:
            self.reader.fail(self.node, self.path, message)
        return node


# Building the plan from the nodes


@dataclass
class _Draft:
    """A task as written, before stage expansion, with the nodes its checks point at."""

    task: Task
    path: str
    node: Node
    id_node: Node | None
    refs: list[tuple[str, str, Node]]  # (field, task id, node) for depends_on and after
    epic_node: Node | None
    staged: bool


def _parse(
    text: str,
    source: str,
    base_dir: Path,
    source_path: Path | None,
    profiles: Mapping[str, AgentProfile] | None = None,
) -> Plan:
    if len(text) > MAX_PLAN_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_PLAN_BYTES:
        raise _file_error(source, _too_big("the plan"))
    root, loader = _compose(text, source)
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


_STAGE_FIELDS = re.compile(r"\{(prompt|task)\}")


def _stage_prompt(template: str, task: Task) -> str:
    """Fill {prompt} and {task} in one pass, so braces in the prompt stay as written."""
    return _STAGE_FIELDS.sub(lambda m: task.prompt if m.group(1) == "prompt" else task.id, template)


def _expand(reader: _Reader, drafts: Sequence[_Draft], stages: Sequence[Stage]) -> tuple[Task, ...]:
    """One task per stage for staged tasks, chained in one epic; others keep their shape."""
    if not stages:
        return tuple(draft.task for draft in drafts)
    last = {d.task.id: f"{d.task.id}.{stages[-1].name}" for d in drafts if d.staged}

    def renamed(ids: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(last.get(task_id, task_id) for task_id in ids)

    tasks: list[Task] = []
    for draft in drafts:
        task = draft.task
        if not draft.staged:
            tasks.append(
                dataclasses.replace(
                    task, depends_on=renamed(task.depends_on), after=renamed(task.after)
                )
            )
            continue
        chained = dataclasses.replace(
            task, depends_on=renamed(task.depends_on), after=renamed(task.after)
        )
        tasks.extend(stage_chain(chained, stages))
    _check_expanded_ids(reader, drafts, tasks)
    return tuple(tasks)


def stage_chain(task: Task, stages: Sequence[Stage]) -> list[Task]:
    """`task` as one task per stage (`<id>.<stage>`), chained in one epic and worktree:
    the first stage waits for what the task waits for, each next one for the one before."""
    # A staged task's estimate covers all its stages, so each stage takes a share.
    share = task.estimate_s / len(stages) if task.estimate_s is not None else None
    chain: list[Task] = []
    previous: str | None = None
    for stage in stages:
        stage_id = f"{task.id}.{stage.name}"
        chain.append(
            dataclasses.replace(
                task,
                id=stage_id,
                prompt=_stage_prompt(stage.prompt, task),
                agent=stage.agent or task.agent,
                model=stage.model or task.model,
                depends_on=task.depends_on if previous is None else (previous,),
                after=task.after if previous is None else (),
                epic=task.epic or task.id,
                estimate_s=share,
                stage=stage.name,
                origin=task.id,
            )
        )
        previous = stage_id
    return chain


def stage_ends(plan: Plan) -> dict[str, str]:
    """For each staged task as written, the id of its last stage (what depends on it waits for)."""
    if not plan.stages:
        return {}
    last = plan.stages[-1].name
    return {task.origin: task.id for task in plan.tasks if task.origin and task.stage == last}


def _check_expanded_ids(reader: _Reader, drafts: Sequence[_Draft], tasks: Sequence[Task]) -> None:
    plain = {d.task.id for d in drafts if not d.staged}
    for draft in drafts:
        if not draft.staged or draft.id_node is None:
            continue
        for task in tasks:
            if task.origin == draft.task.id and task.id in plain:
                msg = (
                    f"stage {task.stage} of task {_show(draft.task.id)} is named {_show(task.id)}, "
                    "like another task; rename one of them"
                )
                reader.fail(draft.id_node, f"{draft.path}.id", msg)


# JSON back into values


def _stored_plan_error(message: str) -> PlanError:
    return PlanError([Problem("<stored plan>", 1, 1, message)])


class _Mismatch(Exception):
    pass


@cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _from_jsonable(cls: Callable[..., T], data: object, where: str) -> T:
    try:
        return cls(**_fields_from(cls, data, where))
    except _Mismatch as exc:
        raise _stored_plan_error(f"stored plan is damaged: {exc}") from None


def _fields_from(cls: object, data: object, where: str) -> dict[str, object]:
    if not isinstance(cls, type) or not isinstance(data, dict):
        raise _Mismatch(f"{where} is not an object")
    hints = _hints(cls)
    values: dict[str, object] = {}
    for item in dataclasses.fields(cls):
        if item.name in data:
            values[item.name] = _value_from(
                hints[item.name], data[item.name], f"{where}.{item.name}"
            )
    return values


def _is_exactly(hint: object, value: object) -> bool:
    """JSON gives bool for bool, int for int, str for str; a bool is no int here."""
    return type(value) is hint


def _value_from(hint: object, value: object, where: str) -> object:
    """`value` from JSON as the type `hint` names; _Mismatch when it is not one."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            try:
                return _value_from(arg, value, where)
            except _Mismatch:
                continue
    elif origin is Literal:
        if value in args:
            return value
    elif origin is tuple and isinstance(value, list):
        return tuple(_value_from(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    elif origin in (Mapping, dict) and isinstance(value, dict):
        return {
            str(key): _value_from(args[1], item, f"{where}.{key}") for key, item in value.items()
        }
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint(**_fields_from(hint, value, where))
    elif hint is Path and isinstance(value, str):
        return Path(value)
    elif hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, str | int | bool) and _is_exactly(hint, value):
        return value
    raise _Mismatch(f"{where} has an unexpected value {value!r}")


EXAMPLE_PLAN = """\
# limitless plan: each task runs in its own git worktree and tmux pane.
#   limitless validate   check this file
#   limitless graph      draw the tasks and their dependencies
#   limitless run        start the agents (watch, detach with C-b d, re-attach later)

name: shop                        # runs are called shop-1, shop-2, ...
# base: main                      # branch to start from and land on (default: the current one)
max_concurrency: 3                # agents running at once (1..64)
agent: claude                     # default agent profile for the tasks; built-in ones are
                                  #   claude, codex, gemini, aider, opencode, shell and demo
# worktree_root: ../shop.worktrees   # default: <repo>/../<repo-name>.worktrees
# sandbox: worktree              # run agents under bubblewrap: they write their worktree only
# sandbox_write: ["~/.npm/"]      # ...and these (agent programs' own state is allowed already)

setup:                            # run in every new worktree before its agent starts
  - npm ci
copy: [".env"]                    # gitignored files copied from your checkout into each worktree

merge:
  strategy: merge                 # merge | squash | rebase
  gate: npm test                  # run after each merge; a merge that fails it is undone
  on_conflict: stop               # stop | skip | agent (an agent resolves the conflict)
  # resolver_timeout: 30m         # with agent: a resolver still going then is stopped
  land: auto                      # auto (fast-forward the base branch) | manual

budget:
  max_cost_usd: 20                # spending limit for the run, from what agents report
  alert_at: 0.8                   # warn at 80% of it

# agents:                         # your own agent profiles, or changes to built-in ones
#   claude:
#     command: ["claude", "-p", "{prompt}", "--permission-mode", "acceptEdits"]
#   reviewer:
#     command: ["codex", "exec", "{prompt}"]

# stages:                         # run every task as a chain of steps in one worktree
#   - {name: build, prompt: "{prompt}"}
#   - {name: review, agent: codex, prompt: "Review the work on {task} and fix what is wrong"}

# hooks:
#   on_run_done: notify-send "limitless run finished"

tasks:
  - id: orders-api
    prompt: |
      Add GET /api/orders/:id to server/routes/orders.ts. It returns one order with
      its line items, or 404. Cover both cases in server/routes/orders.test.ts.
    files: ["server/routes/orders*"]    # declared scope: overlaps are reported
    estimate: 20m                       # used to find the critical path

  - id: order-page
    prompt: |
      Add an order detail page at web/src/pages/OrderPage.tsx that loads
      /api/orders/:id and shows the items and the total. Link to it from the order list.
    depends_on: orders-api              # waits for orders-api; its branch is merged in first
    files: ["web/src/pages/**"]
    estimate: 30m

  - id: currency-format
    prompt: |
      Replace the ad-hoc price formatting in web/src with one formatPrice() helper
      in web/src/lib/money.ts that uses Intl.NumberFormat. Add unit tests.
    priority: 5                         # higher starts first when slots are scarce
    retries: 1                          # try once more if the agent fails
    timeout: 45m

  - id: order-e2e
    prompt: |
      Write a Playwright test in e2e/orders.spec.ts that opens an order page and
      checks the items and the formatted total.
    depends_on: [order-page, currency-format]
    # prompt_file: prompts/order-e2e.md   # instead of prompt: a file next to this plan
"""
