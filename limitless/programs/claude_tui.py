"""Claude Code's own TUI (`claude-interactive`): its screens, its first-run dialogs, its cost.

The real TUI runs in the slot pane (the wrapper's pty), so the user can step in
and type. The task's prompt is its initial prompt (one argv element after
`--`); `approve` picks `--permission-mode`. Its state comes from Claude Code's
hooks first (`limitless.agents.claude_hooks` installs them, `limitless.agents.hookrelay`
records them); what this module reads off the screen is the fallback, and the
only witness that a refused permission left it idle (no hook fires then).

Dialogs before the first prompt, answered so that an unattended task never
stalls (see docs/INTERNALS.md, "interactive agents"):

- the folder-trust question does not come: `CLAUDE_CODE_SANDBOXED=1` in the
  agent's environment counts the task's worktree as trusted for this process
  only (nothing is written to `~/.claude.json`); should it come anyway, it is
  answered "Yes, I trust this folder";
- "Detected a custom API key … use this API key?" is answered "Yes": the key
  limitless hands the agent is the one `claude -p` would use without asking;
- the Bypass Permissions warning (`approve: all`) does not come:
  `--settings {"skipDangerousModePermissionPrompt": true}` accepts it for this
  process only; should it come anyway, it is answered "Yes, I accept";
- onboarding (theme, login) cannot be done for the user: the task fails at
  once saying so, and `refusal` says it before the run when `~/.claude.json`
  shows it was never done.

Cost: the session transcripts (`transcript_path` of the hooks) hold every
model answer's `usage`; `transcript_cost` prices them per model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from limitless.programs.base import (
    Approve,
    DialogAnswer,
    Program,
    Refusal,
    ScreenState,
)
from limitless.programs.claude import CLAUDE, PERMISSION_MODES

# The per-process answer to the bypass warning (`approve: all`).
BYPASS_SETTINGS = json.dumps({"skipDangerousModePermissionPrompt": True}, separators=(",", ":"))

# --- the screen ----------------------------------------------------------------

BUSY = "esc to interrupt"  # the footer while a turn runs (any permission mode)
CHOICE = re.compile(r"^\s*❯\s*1\.\s")  # the selected first option of a dialog
DIALOG_FOOTER = re.compile(r"(?i)\besc to cancel\b|\benter to confirm\b|\benter to select\b")
QUESTION = re.compile(r"\?\s*$")
RULE = re.compile(r"^\s*─{10,}\s*$")
PROMPT = re.compile(r"^\s*❯(?:[\s\u00a0]|$)")
REJECTED = re.compile(r"User rejected (?:\w+ )?(?:update |write |to )?")


@dataclass(frozen=True)
class _Dialog:
    """A first-run question, recognised in the output lower-cased, all whitespace removed."""

    name: str
    markers: tuple[str, ...]  # every one must be present
    keys: bytes
    note: str
    fail: str = ""


ONBOARDING_FIX = (
    "Claude Code's first-run setup (theme, login) was never done for this user: run `claude` "
    "once in a terminal and finish it"
)
DIALOGS: tuple[_Dialog, ...] = (
    _Dialog(
        "trust",
        ("yes,itrustthisfolder", "no,exit"),
        b"\r",
        "answered Claude Code's folder-trust question for the task's worktree: Yes",
    ),
    _Dialog(
        "api key",
        ("detectedacustomapikey", "doyouwanttousethisapikey?"),
        b"1",
        "answered Claude Code's question about the API key in the environment: Yes (the key "
        "`claude -p` uses without asking; answer it once in `claude` to choose otherwise)",
    ),
    _Dialog(
        "bypass warning",
        ("bypasspermissionsmode", "yes,iaccept"),
        b"2",
        "accepted Claude Code's Bypass Permissions warning (the plan says `approve: all`)",
    ),
    _Dialog(
        "onboarding",
        ("unabletoconnecttoanthropicservices",),
        b"",
        "",
        fail=f"Claude Code stopped at 'Unable to connect to Anthropic services'; {ONBOARDING_FIX}",
    ),
    _Dialog(
        "onboarding",
        ("choosethetextstylethatlooksbestwithyourterminal",),
        b"",
        "",
        fail=f"Claude Code opened its onboarding; {ONBOARDING_FIX}",
    ),
    _Dialog(
        "login",
        ("notloggedin", "pleaserun/login"),
        b"",
        "",
        fail="Claude Code is not logged in ('Please run /login'): log in with `claude` once, or "
        "give the agent an ANTHROPIC_API_KEY (the profile's env)",
    ),
)


# --- prices --------------------------------------------------------------------


@dataclass(frozen=True)
class Prices:
    """USD per million tokens; cache writes cost 1.25× input (5 minutes) or 2× (1 hour)."""

    input: float
    output: float
    cache_read: float

    def cost(self, usage: Mapping[str, Any]) -> float:
        def count(key: str, source: Mapping[str, Any] = usage) -> int:
            value = source.get(key)
            return int(value) if isinstance(value, int | float) else 0

        written = count("cache_creation_input_tokens")
        split = usage.get("cache_creation")
        hour = count("ephemeral_1h_input_tokens", split) if isinstance(split, Mapping) else 0
        hour = min(hour, written)
        return (
            count("input_tokens") * self.input
            + count("output_tokens") * self.output
            + count("cache_read_input_tokens") * self.cache_read
            + (written - hour) * self.input * 1.25
            + hour * self.input * 2.0
        ) / 1_000_000


# Anthropic's list prices. Claude Code 2.1.197 prices a model it does not know
# as its default (opus); so does this table (its first match wins).
PRICES: tuple[tuple[str, Prices], ...] = (
    ("opus-4-1", Prices(15.0, 75.0, 1.50)),
    ("opus-4-0", Prices(15.0, 75.0, 1.50)),
    ("opus-4-2025", Prices(15.0, 75.0, 1.50)),  # claude-opus-4-20250514
    ("3-opus", Prices(15.0, 75.0, 1.50)),
    ("haiku-3-5", Prices(0.80, 4.0, 0.08)),
    ("3-5-haiku", Prices(0.80, 4.0, 0.08)),
    ("3-haiku", Prices(0.25, 1.25, 0.03)),
    ("haiku", Prices(1.0, 5.0, 0.10)),
    ("sonnet", Prices(3.0, 15.0, 0.30)),
    ("opus", Prices(5.0, 25.0, 0.50)),
)
DEFAULT_PRICES = Prices(5.0, 25.0, 0.50)


def prices_of(model: str | None) -> Prices:
    """The price list of `model` (`claude-opus-4-8`, `claude-sonnet-4-5-20250929`, ...)."""
    name = (model or "").lower()
    return next((prices for key, prices in PRICES if key in name), DEFAULT_PRICES)


def transcript_cost(paths: Iterable[Path]) -> float | None:
    """What the model answers recorded in these transcripts cost (None: none was readable).

    A transcript line of type `assistant` carries its answer's `message.usage`;
    an answer with several content blocks is written once per block with the
    same message id, so each id counts once (its last line: the final usage).
    Subagents' transcripts (`<session>/subagents/*.jsonl`) count too.
    """
    answers: dict[str, tuple[str | None, Mapping[str, Any]]] = {}
    seen = False
    for path in _with_subagents(paths):
        try:
            handle = path.open(encoding="utf-8", errors="replace")
        except OSError:
            continue
        seen = True
        with handle:
            for number, line in enumerate(handle):
                if '"usage"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line being written right now
                message = entry.get("message") if isinstance(entry, dict) else None
                if not isinstance(message, dict) or entry.get("type") != "assistant":
                    continue
                usage = message.get("usage")
                if not isinstance(usage, dict):
                    continue
                key = str(message.get("id") or f"{path}:{number}")
                model = message.get("model")
                answers[key] = (model if isinstance(model, str) else None, usage)
    if not seen:
        return None
    return sum(prices_of(model).cost(usage) for model, usage in answers.values())


def _with_subagents(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in dict.fromkeys(paths):
        found.append(path)
        folder = path.with_suffix("") / "subagents"
        if folder.is_dir():
            found += sorted(folder.glob("*.jsonl"))
    return found


# --- the adapter ---------------------------------------------------------------


class ClaudeInteractive(Program):
    """Claude Code's TUI in the slot pane (`claude-interactive` profile)."""

    name: ClassVar[str] = "claude-interactive"
    executable: ClassVar[str] = "claude"
    display: ClassVar[str] = "Claude Code"
    install: ClassVar[str] = CLAUDE.install
    tested_version: ClassVar[str] = CLAUDE.tested_version
    min_version: ClassVar[tuple[int, int, int]] = CLAUDE.min_version
    interactive: ClassVar[bool] = True
    prompt_after_dashes: ClassVar[bool] = True
    state_hooks: ClassVar[str | None] = "claude"
    close_keys: ClassVar[tuple[bytes, ...]] = (b"/exit", b"\r")
    busy_marker: ClassVar[str] = "esctointerrupt"

    def approve_args(self, approve: Approve, confined: bool = False) -> tuple[str, ...]:
        flags: tuple[str, ...] = ("--permission-mode", PERMISSION_MODES[approve])
        if approve == "all":
            flags += ("--settings", BYPASS_SETTINGS)
        return flags

    def command(
        self, argv: Sequence[str], approve: Approve, prompt: str, *, confined: bool = False
    ) -> list[str]:
        """Flags right after the program; the prompt last, after `--`, so that a prompt
        starting with `-` is not read as an option."""
        if not argv:
            return []
        rest, tail = self.prompt_last(argv, prompt)
        return [rest[0], *self.approve_args(approve, confined), *rest[1:], *tail]

    def refusal(self, approve: Approve, env: Mapping[str, str], is_root: bool) -> Refusal | None:
        refused = CLAUDE.refusal(approve, env, is_root)
        if refused is not None:
            return refused
        config = _config_file(env)
        if config is None:
            return None
        try:
            state = json.loads(config.read_text(encoding="utf-8") or "{}")
        except FileNotFoundError:
            state = {}
        except (OSError, ValueError):
            return None  # Claude Code may be writing it: let the task find out
        if isinstance(state, dict) and not state.get("hasCompletedOnboarding"):
            return Refusal(f"{ONBOARDING_FIX}, then start the run ({config} says so)")
        return None

    def environment(self) -> dict[str, str]:
        return {**CLAUDE.environment(), "CLAUDE_CODE_SANDBOXED": "1"}

    def screen(self, lines: Sequence[str]) -> ScreenState | None:
        """What the last screen lines show: a dialog (input), a turn running, the idle prompt."""
        if any(CHOICE.match(line) for line in lines) and any(
            DIALOG_FOOTER.search(line) for line in lines
        ):
            question = next((line.strip() for line in reversed(lines) if QUESTION.search(line)), "")
            shown = question or next(line.strip() for line in lines if CHOICE.match(line))
            return ScreenState("input", f"Claude Code asks: {shown}", shown)
        if any(BUSY in line for line in lines):
            return ScreenState("working", "a turn runs (esc to interrupt)")
        for index, line in enumerate(lines):
            if PROMPT.match(line) and _between_rules(lines, index):
                rejected = next((ln.strip() for ln in lines if REJECTED.search(ln)), "")
                why = f"at its prompt after: {rejected}" if rejected else "at its prompt"
                return ScreenState("idle", why, rejected, after_turn=bool(rejected))
        return None

    def startup_dialog(self, text: str) -> DialogAnswer | None:
        text = text.lower()
        for dialog in DIALOGS:
            if all(marker in text for marker in dialog.markers):
                return DialogAnswer(dialog.name, dialog.keys, dialog.note, dialog.fail)
        return None

    def transcript_cost(self, transcripts: Sequence[Path]) -> float | None:
        return transcript_cost(transcripts)


def _between_rules(lines: Sequence[str], index: int) -> bool:
    above = any(RULE.match(line) for line in lines[max(0, index - 2) : index])
    below = any(RULE.match(line) for line in lines[index + 1 : index + 3])
    return above and below


def _config_file(env: Mapping[str, str]) -> Path | None:
    """Where Claude Code keeps its user state (`~/.claude.json`) for this environment."""
    folder = env.get("CLAUDE_CONFIG_DIR") or env.get("HOME")
    return Path(folder).expanduser() / ".claude.json" if folder else None


CLAUDE_INTERACTIVE = ClaudeInteractive()
