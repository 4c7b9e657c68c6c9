"""The plan's values: `Plan`, `Task`, `Stage`, `MergePolicy`, `Budget`, the choices their
keys take, and the plan's JSON round trip (how a run stores its plan).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Literal, TypeVar

from limitless.errors import PlanError, Problem, UsageError
from limitless.programs import DEFAULT_APPROVE, Approve
from limitless.programs.profiles import (
    BUILTIN_PROFILES,
    AgentProfile,
    Changes,
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


T = TypeVar("T")


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
