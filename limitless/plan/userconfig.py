"""The user's configuration: `$XDG_CONFIG_HOME/limitless/config.yaml`.

It gives defaults the plan may override: the default agent, model, layout,
worktree root and planner, extra agent profiles, and `max_active_agents` — a
cap on agents running at once across every run on this machine.

```yaml
agent: codex
model: o3
layout: grid
worktree_root: ~/worktrees
planner: claude
max_active_agents: 6
agents:
  mine: {command: ["my-agent", "{prompt_file}"]}
```

The plan wins: a key the plan sets is taken from the plan. `effective_settings`
says where each value came from, for `limitless config show`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from limitless.errors import PlanError, UsageError
from limitless.plan.loader import load, load_profiles, loads
from limitless.plan.model import Plan
from limitless.programs.profiles import BUILTIN_PROFILES, AgentProfile

CONFIG_ENV = "LIMITLESS_CONFIG"
KEYS = ("agent", "model", "layout", "worktree_root", "planner", "max_active_agents", "agents")
MAX_ACTIVE_AGENTS = 1024
# plan keys the config gives a default for, and the plan's own default
PLAN_DEFAULTS: dict[str, object] = {
    "agent": "claude",
    "layout": "default",
    "worktree_root": None,
}


@dataclass(frozen=True)
class UserConfig:
    """What the user's config file says (every field None when it does not say it)."""

    path: Path
    exists: bool = False
    agent: str | None = None
    model: str | None = None
    layout: str | None = None
    worktree_root: str | None = None
    planner: str | None = None
    max_active_agents: int | None = None
    agents: Mapping[str, AgentProfile] = field(default_factory=dict)
    agents_raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from (`plan FILE`, `config FILE`, `default`)."""

    key: str
    value: object
    source: str


def config_path() -> Path:
    """`$LIMITLESS_CONFIG`, else `$XDG_CONFIG_HOME/limitless/config.yaml` (~/.config)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "limitless" / "config.yaml"


def load_config(path: Path | None = None) -> UserConfig:
    """Read and check the user config; a missing file is an empty config."""
    path = path or config_path()
    if not path.exists():
        return UserConfig(path=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the limitless config: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UsageError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return UserConfig(path=path, exists=True)
    if not isinstance(data, dict):
        msg = f"{path}: the config is a mapping of keys ({', '.join(KEYS)}), not a list or text"
        raise UsageError(msg)
    unknown = sorted(str(key) for key in data if key not in KEYS)
    if unknown:
        msg = f"{path}: unknown key {unknown[0]!r}; the config knows: {', '.join(KEYS)}"
        raise UsageError(msg)

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{path}: {key} must be a non-empty string, not {value!r}")
        return value

    active = data.get("max_active_agents")
    if active is not None and (
        isinstance(active, bool)
        or not isinstance(active, int)
        or not 1 <= active <= MAX_ACTIVE_AGENTS
    ):
        msg = (
            f"{path}: max_active_agents must be a whole number "
            f"1..{MAX_ACTIVE_AGENTS}, not {active!r}"
        )
        raise UsageError(msg)
    agents_raw = data.get("agents") or {}
    if not isinstance(agents_raw, dict):
        raise UsageError(f"{path}: agents must be a mapping of profile name to profile")
    agents = _check_agents(path, agents_raw)
    known = {*BUILTIN_PROFILES, *agents}
    for key in ("agent", "planner"):
        name = text(key)
        if name is not None and name not in known | ({"demo"} if key == "planner" else set()):
            msg = f"{path}: {key} {name!r} is no agent profile; known: {', '.join(sorted(known))}"
            raise UsageError(msg)
    return UserConfig(
        path=path,
        exists=True,
        agent=text("agent"),
        model=text("model"),
        layout=text("layout"),
        worktree_root=text("worktree_root"),
        planner=text("planner"),
        max_active_agents=active,
        agents=agents,
        agents_raw=agents_raw,
    )


def _check_agents(path: Path, raw: Mapping[str, Any]) -> dict[str, AgentProfile]:
    """The config's agent profiles, checked by the plan loader's own rules."""
    if not raw:
        return {}
    try:
        return load_profiles(raw, source=str(path), base_dir=path.parent)
    except PlanError as exc:
        first = exc.problems[0].message if exc.problems else "invalid"
        msg = f"{path}: agents: {first}"
        raise UsageError(msg) from None


def plan_defaults(config: UserConfig) -> dict[str, str]:
    """The config's values for the plan keys it gives defaults for (the plan's own win)."""
    return {
        key: str(value)
        for key in ("agent", "layout", "worktree_root")
        if (value := getattr(config, key)) is not None
    }


def apply_model(plan: Plan, config: UserConfig) -> Plan:
    """Tasks without a model get the config's model."""
    if not config.model:
        return plan
    tasks = tuple(
        task if task.model else dataclasses.replace(task, model=config.model) for task in plan.tasks
    )
    return dataclasses.replace(plan, tasks=tasks)


def known_profiles(config: UserConfig) -> dict[str, AgentProfile]:
    """The profiles a plan may name before its own `agents:` (which win): the built-in
    ones and the config's."""
    return {**BUILTIN_PROFILES, **config.agents}


def load_plan(path: Path, config: UserConfig | None = None) -> Plan:
    """Load the plan at `path` with the user's config as defaults (the plan wins)."""
    config = config if config is not None else load_config()
    if not path.exists():
        return load(path)  # the loader's own message for a missing plan
    plan = load(
        path,
        profiles=known_profiles(config),
        defaults=plan_defaults(config),
        defaults_source=str(config.path),
    )
    return apply_model(plan, config)


def load_plan_text(text: str, base_dir: Path, config: UserConfig, source: str) -> Plan:
    """Like `load_plan`, for plan text that is not (yet) in a file."""
    plan = loads(
        text,
        source=source,
        base_dir=base_dir,
        profiles=known_profiles(config),
        defaults=plan_defaults(config),
        defaults_source=str(config.path),
    )
    return apply_model(plan, config)


def effective_settings(config: UserConfig, plan_path: Path | None) -> list[Setting]:
    """The merged settings and where each came from: plan over config over default."""
    present: set[str] = set()
    plan_data: dict[str, Any] = {}
    if plan_path is not None and plan_path.exists():
        try:
            loaded = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            loaded = None
        if isinstance(loaded, dict):
            plan_data = {str(k): v for k, v in loaded.items()}
            present = set(plan_data)
    plan_src = f"plan {plan_path}"
    config_src = f"config {config.path}"
    settings: list[Setting] = []
    for key, default in PLAN_DEFAULTS.items():
        if key in present:
            settings.append(Setting(key, plan_data[key], plan_src))
        elif getattr(config, key) is not None:
            settings.append(Setting(key, getattr(config, key), config_src))
        else:
            settings.append(Setting(key, default, "default"))
    settings.append(
        Setting("model", config.model, config_src)
        if config.model
        else Setting("model", None, "default (the agent's own)")
    )
    settings.append(
        Setting("planner", config.planner, config_src)
        if config.planner
        else Setting("planner", config.agent or "claude", "default (the default agent)")
    )
    settings.append(
        Setting("max_active_agents", config.max_active_agents, config_src)
        if config.max_active_agents
        else Setting("max_active_agents", None, "default (no cap across runs)")
    )
    plan_agents = plan_data.get("agents") if isinstance(plan_data.get("agents"), dict) else {}
    for name in sorted({*BUILTIN_PROFILES, *config.agents, *(plan_agents or {})}):
        if plan_agents and name in plan_agents:
            source = plan_src
        elif name in config.agents and "agents" not in present:
            source = config_src
        else:
            source = "built-in"
        if name not in BUILTIN_PROFILES and source == "built-in":
            continue
        settings.append(Setting(f"agents.{name}", "profile", source))
    return settings
