"""The forms a run is asked for in: a plan file, a goal a planner turns into a plan, or
one prompt run as a one-task plan.
"""

from __future__ import annotations

import time
from pathlib import Path

from limitless.errors import UsageError
from limitless.plan.model import Plan
from limitless.plan.userconfig import UserConfig


def is_goal(arg: str) -> bool:
    """A first argument that names no existing file and does not look like one is a goal."""
    path = Path(arg)
    if path.exists():
        return False
    return path.suffix.lower() not in (".yaml", ".yml", ".json") or any(c.isspace() for c in arg)


def prompt_plan(prompt: str, agent: str | None, config: UserConfig) -> Plan:
    """The plan of a one-task run: `run --prompt TEXT [--agent NAME]`."""
    import yaml

    from limitless.plan import userconfig

    if not prompt.strip():
        raise UsageError("--prompt is empty; say what the agent must do")
    document: dict[str, object] = {"name": "prompt"}
    if agent:
        document["agent"] = agent
    document["tasks"] = [{"id": "task", "prompt": prompt}]
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return userconfig.load_plan_text(text, Path.cwd(), config, source="--prompt")


def goal_plan_path(state_dir: Path, plan_name: str) -> Path:
    """Where the plan made for a goal run is kept: the store's `plans/` folder, named by
    the plan and the time, never overwriting another."""
    folder = state_dir / "plans"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{plan_name}-{stamp}.yaml"
    number = 1
    while path.exists():
        number += 1
        path = folder / f"{plan_name}-{stamp}-{number}.yaml"
    return path
