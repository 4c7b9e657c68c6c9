"""Claude Code hook settings that report an agent's state to limitless.

`install(worktree)` writes `<worktree>/.claude/settings.local.json` — the
worktree's local settings, never the user's global `~/.claude` — so that
Claude Code's own events call `limitless signal`:

- `Stop` (Claude finished its turn): `waiting` (or `done` with `on_stop="done"`);
- `Notification` (Claude asks for a permission, or sat idle): `waiting`;
- `UserPromptSubmit` (the user answered): `working`.

Settings already in the file are kept; hooks a previous install wrote are
replaced, so installing twice changes nothing. A `.claude/.gitignore` keeps the
file out of the task's commits (it names paths of this machine).
"""

from __future__ import annotations

import itertools
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from limitless.errors import UsageError

SETTINGS_FILE = Path(".claude") / "settings.local.json"
GITIGNORE_FILE = Path(".claude") / ".gitignore"
OnStop = Literal["waiting", "done"]
HOOK_TIMEOUT_S = 30


@dataclass(frozen=True)
class Installed:
    """What `install` wrote: the settings file and the events it hooks."""

    path: Path
    events: tuple[str, ...]
    replaced: int  # hook entries of an earlier install that were replaced


def signal_command(kind: str, event: str) -> str:
    """The shell command a hook runs: this interpreter's `limitless signal KIND --hook`."""
    return shlex.join(
        [sys.executable, "-m", "limitless", "signal", kind, "--hook", f"claude-{event}"]
    )


def hook_signals(on_stop: OnStop = "waiting") -> dict[str, str]:
    """Claude Code event → the signal it sends."""
    return {"Stop": on_stop, "Notification": "waiting", "UserPromptSubmit": "working"}


def _ours(entry: object) -> bool:
    """Whether a hook entry was written by limitless (it runs `limitless signal`)."""
    command = entry.get("command") if isinstance(entry, dict) else None
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return any(
        Path(word).name == "limitless" and after == "signal"
        for word, after in itertools.pairwise(words)
    )


def _load(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError) as exc:
        msg = f"{path}: not valid JSON ({exc}); fix or remove it, then install the hooks again"
        raise UsageError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path}: the settings must be a JSON object; fix or remove it"
        raise UsageError(msg)
    return data


def merged_settings(
    settings: dict[str, object], on_stop: OnStop = "waiting"
) -> tuple[dict[str, object], int]:
    """`settings` with limitless's hooks in place of any earlier ones; (result, replaced)."""
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        msg = "the `hooks` of the Claude settings must be an object"
        raise UsageError(msg)
    result = dict(settings)
    new_hooks: dict[str, object] = dict(hooks)
    replaced = 0
    for event, kind in hook_signals(on_stop).items():
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            msg = f"the `hooks.{event}` of the Claude settings must be a list"
            raise UsageError(msg)
        kept: list[object] = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                entries = [entry for entry in group["hooks"] if not _ours(entry)]
                replaced += len(group["hooks"]) - len(entries)
                if entries:
                    kept.append({**group, "hooks": entries})
            else:
                kept.append(group)
        ours = {
            "hooks": [
                {
                    "type": "command",
                    "command": signal_command(kind, event),
                    "timeout": HOOK_TIMEOUT_S,
                }
            ]
        }
        new_hooks[event] = [*kept, ours]
    result["hooks"] = new_hooks
    return result, replaced


def install(worktree: Path, *, on_stop: OnStop = "waiting") -> Installed:
    """Write limitless's Claude Code hooks into `worktree`'s local settings."""
    if not worktree.is_dir():
        msg = f"worktree {worktree} is not a folder; pass --worktree DIR of a task's worktree"
        raise UsageError(msg)
    path = worktree / SETTINGS_FILE
    settings, replaced = merged_settings(_load(path), on_stop)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    _ignore(worktree / GITIGNORE_FILE)
    return Installed(path=path, events=tuple(hook_signals(on_stop)), replaced=replaced)


def _ignore(gitignore: Path) -> None:
    """Keep the local settings out of git (and this ignore file too, when we made it)."""
    if not gitignore.exists():
        gitignore.write_text(
            "# written by `limitless hooks install claude`\n.gitignore\nsettings.local.json\n",
            encoding="utf-8",
        )
        return
    lines = gitignore.read_text(encoding="utf-8").splitlines()
    if "settings.local.json" not in (line.strip() for line in lines):
        with gitignore.open("a", encoding="utf-8") as handle:
            handle.write("\nsettings.local.json\n")
