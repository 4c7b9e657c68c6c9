"""Claude Code hook settings that report an agent's state to limitless.

`install(worktree)` writes `<worktree>/.claude/settings.local.json` — the
worktree's local settings, never the user's global `~/.claude` — so that
Claude Code's own events run `limitless/agenthook.py` (the hook relay, see its
docstring for what each event means):

- `UserPromptSubmit`, `PreToolUse`, `PostToolUse`, `PostToolUseFailure`: working;
- `PermissionRequest`, `Notification` (a permission prompt or a question): needs input;
- `Stop`, `StopFailure`: the turn ended (idle; or done with `on_stop="done"`);
- `SessionStart`, `SessionEnd`: the session and its transcript, for the cost.

The wrapper installs them before a `claude-interactive` agent starts;
`limitless hooks install claude` does it by hand for a profile of one's own.
Settings already in the file are kept; hooks a previous install wrote (the
relay, or the `limitless signal` commands of older versions) are replaced, so
installing twice changes nothing. The file names paths of this machine, so it
never goes into a commit: the repository's `info/exclude` names it (no
`.gitignore` is added to the user's tree), or, if the repository tracks the
file, the worktree's index skips it.
"""

from __future__ import annotations

import itertools
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from limitless.agents import hookrelay as agenthook
from limitless.errors import UsageError
from limitless.git.exclude import keep_out_of_commits

SETTINGS_FILE = Path(".claude") / "settings.local.json"
OnStop = Literal["idle", "done"]
HOOK_TIMEOUT_S = 10
EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "Notification",
    "Stop",
    "StopFailure",
    "SessionEnd",
)


@dataclass(frozen=True)
class Installed:
    """What `install` wrote: the settings file, the events it hooks, how git ignores it."""

    path: Path
    events: tuple[str, ...]
    replaced: int  # hook entries of an earlier install that were replaced
    kept_out: str  # "excluded" (info/exclude) or "skip-worktree" (a tracked file)


def relay_command(
    on_stop: OnStop = "idle", *, python: str | None = None, relay: str | None = None
) -> str:
    """The shell command a hook runs: this interpreter, without site packages, on the relay
    (`python` and `relay`: their paths on another machine, limitless's install there)."""
    relay = relay or str(Path(agenthook.__file__).resolve())
    argv = [python or sys.executable, "-S", "-I", relay]
    if on_stop == "done":
        argv += ["--stop", "done"]
    return shlex.join(argv)


def _ours(entry: object) -> bool:
    """Whether a hook entry was written by limitless (the relay, or `limitless signal`)."""
    command = entry.get("command") if isinstance(entry, dict) else None
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    relays = ("hookrelay.py", "agenthook.py")  # agenthook.py: its name before 2026-12
    if any(Path(word).name in relays and "limitless" in word for word in words):
        return True
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
    settings: dict[str, object], on_stop: OnStop = "idle", *, command: str | None = None
) -> tuple[dict[str, object], int]:
    """`settings` with limitless's hooks in place of any earlier ones; (result, replaced).
    `command`: the hook's command (default: `relay_command(on_stop)`, this machine's)."""
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        msg = "the `hooks` of the Claude settings must be an object"
        raise UsageError(msg)
    result = dict(settings)
    new_hooks: dict[str, object] = {}
    replaced = 0
    for event in dict.fromkeys([*hooks, *EVENTS]):
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
        if event in EVENTS:
            ours = {
                "type": "command",
                "command": command or relay_command(on_stop),
                "timeout": HOOK_TIMEOUT_S,
            }
            kept.append({"hooks": [ours]})
        if kept:
            new_hooks[event] = kept
    result["hooks"] = new_hooks
    return result, replaced


def settings_for_host(worktree: Path, python: str, relay: str) -> str:
    """The settings file's text for the copy on another machine of `worktree` (same start
    commit, so the same tracked settings), with the relay of limitless's install there."""
    command = relay_command(python=python, relay=relay)
    settings, _ = merged_settings(_load(worktree / SETTINGS_FILE), command=command)
    return json.dumps(settings, indent=2) + "\n"


def install(worktree: Path, *, on_stop: OnStop = "idle") -> Installed:
    """Write limitless's Claude Code hooks into `worktree`'s local settings."""
    if not worktree.is_dir():
        msg = f"worktree {worktree} is not a folder; pass --worktree DIR of a task's worktree"
        raise UsageError(msg)
    path = worktree / SETTINGS_FILE
    settings, replaced = merged_settings(_load(path), on_stop)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".limitless.tmp")
    temporary.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    kept_out = keep_out_of_commits(worktree, SETTINGS_FILE.as_posix())
    return Installed(path=path, events=EVENTS, replaced=replaced, kept_out=kept_out)
