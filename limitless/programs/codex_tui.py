"""Codex's own TUI (`codex-interactive`): its flags, its screens, its first-run dialogs.

The real TUI runs in the slot pane (the wrapper's pty), so the user can step in
and type. The task's prompt is its initial prompt (one argv element after `--`).
Everything limitless needs is passed for this process only (`-c key=value`), so
the user's `config.toml` is not rewritten:

- `projects={"<worktree>"={trust_level="trusted"}}`: no "Trust this folder?" for
  the task's worktree;
- `notice.model_migrations={…}`: the "Meet GPT-6 …" offer of the tested
  version's catalog counts as seen (the model stays the one configured);
- `notify=[python, -S, -I, agenthook.py, --codex-notify]`: Codex runs the hook
  relay when a turn completes, which records the turn's end (idle) and the
  session file (its cost) for the task;
- `--no-daemon`: no shared background `codex app-server` is started (Codex runs
  one detached otherwise, and it outlives the pane; `-c` alone also keeps Codex
  embedded, with a warning). Should one carrying the task's variables remain,
  the wrapper ends it (`stray_markers`).

State: the notify relay says when a turn ended; the screen says when Codex asks
(an approval: needs input) and when a turn runs (`esc to interrupt`). Codex has
hooks too, but hooks given on the command line run only after a trust review
or with `--dangerously-bypass-hook-trust`, which would also run the hooks of the
repository's own `.codex/` unreviewed.

`approve`: `ask` → read-only sandbox, asking before each edit and each command
that needs more (`--ask-for-approval on-request`); `edits` → workspace-write,
asking for what the sandbox does not allow; `all` → no sandbox, no questions.

Cost: the session file (`codex_rollout`), priced per model as the headless profile.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from limitless.programs.base import Approve, DialogAnswer, Program, Refusal, ScreenState
from limitless.programs.codex import CODEX, codex_refusal
from limitless.programs.codex_rollout import read_rollout

APPROVE_ARGS: dict[Approve, tuple[str, ...]] = {
    "ask": ("--sandbox", "read-only", "--ask-for-approval", "on-request"),
    "edits": ("--sandbox", "workspace-write", "--ask-for-approval", "on-request"),
    "all": ("--dangerously-bypass-approvals-and-sandbox",),
}
# The model upgrades Codex 0.171 offers at start ("Meet GPT-6 Sol"), as already seen.
MODEL_MIGRATIONS = {
    "gpt-5.5": "gpt-6-sol",
    "gpt-5.6-sol": "gpt-6-sol",
    "gpt-5.6-terra": "gpt-6-sol",
    "gpt-5.6-luna": "gpt-6-luna",
}

# --- the screen ----------------------------------------------------------------

BUSY = "esc to interrupt"  # "◦ Working (3s • esc to interrupt)" while a turn runs
CHOICE = re.compile(r"^\s*[›>]\s*1\.\s")  # the selected first option of a question
DIALOG_FOOTER = re.compile(
    r"(?i)press enter to (?:confirm|continue)|\benter(?:/esc)? (?:confirm|continue)\b|"
    r"\besc to cancel\b"
)
DETAIL = re.compile(r"^\s*(?:\$ .+|Destination: .+)$")
IDLE_FOOTER = "for shortcuts"  # "← for agents · ? for shortcuts" under an empty prompt
# What a turn leaves above the prompt when it ends: "Worked for 4s • 14:51", or a "■"
# line ("■ Conversation interrupted …" after an approval was refused, an error). The
# prompt alone is no evidence: Codex shows it before its first turn starts too.
TURN_ENDED = re.compile(r"^\s*(?:─*\s*Worked for \S|■ )")


def _toml(value: object) -> str:
    """A TOML value for `-c`: JSON's strings, lists and numbers are TOML's too."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_toml(k)}={_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


# The hook relay (stdlib only, run as a file); not imported: programs/ imports no limitless
# module outside it.
RELAY = Path(__file__).resolve().parent.parent / "agents" / "hookrelay.py"


def notify_command(python: str = sys.executable, relay: str = str(RELAY)) -> list[str]:
    """The program Codex runs when a turn completes: the hook relay, fast (no site)."""
    return [python, "-S", "-I", relay, "--codex-notify"]


class CodexInteractive(Program):
    """Codex's TUI in the slot pane (`codex-interactive` profile)."""

    name: ClassVar[str] = "codex-interactive"
    executable: ClassVar[str] = "codex"
    display: ClassVar[str] = "Codex"
    install: ClassVar[str] = CODEX.install
    tested_version: ClassVar[str] = CODEX.tested_version
    min_version: ClassVar[tuple[int, int, int]] = CODEX.min_version
    interactive: ClassVar[bool] = True
    prompt_after_dashes: ClassVar[bool] = True
    close_keys: ClassVar[tuple[bytes, ...]] = (b"/exit", b"\r")
    busy_marker: ClassVar[str] = "esctointerrupt"
    stray_markers: ClassVar[tuple[str, ...]] = ("app-server",)
    state_paths: ClassVar[tuple[str, ...]] = CODEX.state_paths

    def approve_args(self, approve: Approve, confined: bool = False) -> tuple[str, ...]:
        """`confined`: inside limitless's sandbox Codex's own cannot start (nested
        bubblewrap), so `edits` asks no sandbox of Codex; limitless's confines it."""
        if confined and approve == "edits":
            return ("--sandbox", "danger-full-access", "--ask-for-approval", "on-request")
        return APPROVE_ARGS[approve]

    def command(
        self, argv: Sequence[str], approve: Approve, prompt: str, *, confined: bool = False
    ) -> list[str]:
        """The profile's argv with the permission flags and the per-process settings after
        it; the prompt last, after `--`. The trusted folder is the one `-C` names."""
        rest, tail = self.prompt_last(argv, prompt)
        settings: list[str] = []
        if "-C" in rest[:-1]:
            folder = rest[rest.index("-C") + 1]
            settings += ["-c", f"projects={_toml({folder: {'trust_level': 'trusted'}})}"]
        settings += [
            "-c",
            f"notice.model_migrations={_toml(MODEL_MIGRATIONS)}",
            "-c",
            f"notify={_toml(notify_command())}",
        ]
        return [*rest, *self.approve_args(approve, confined), *settings, *tail]

    def refusal(self, approve: Approve, env: Mapping[str, str], is_root: bool) -> Refusal | None:
        return codex_refusal(self, approve, env)

    def on_host(self, argv: Sequence[str], python: str, relay: str) -> list[str]:
        """The notify program there: the relay of limitless's install on that host."""
        here = f"notify={_toml(notify_command())}"
        there = f"notify={_toml(notify_command(python, relay))}"
        return [there if part == here else part for part in argv]

    def screen(self, lines: Sequence[str]) -> ScreenState | None:
        """A question (an approval, a dialog), a turn running, or the idle prompt."""
        choice = next((index for index, line in enumerate(lines) if CHOICE.match(line)), None)
        if choice is not None and any(DIALOG_FOOTER.search(line) for line in lines):
            asked = [ln.strip() for ln in lines[:choice] if "?" in ln]
            question = asked[-1][: asked[-1].index("?") + 1] if asked else ""
            shown = question or lines[choice].strip().lstrip("›> ")
            detail = next((ln.strip() for ln in lines if DETAIL.match(ln)), "")
            reason = f"Codex asks: {shown}" + (f" ({detail})" if detail else "")
            return ScreenState("input", reason, shown)
        if any(BUSY in line for line in lines):
            return ScreenState("working", "a turn runs (esc to interrupt)")
        ended = next((line.strip() for line in reversed(lines) if TURN_ENDED.match(line)), "")
        if ended and any(IDLE_FOOTER in line for line in lines):
            reason = f"at its prompt after: {ended.lstrip('─ ')}"
            return ScreenState("idle", reason, ended, after_turn=True)
        return None

    def startup_dialog(self, text: str) -> DialogAnswer | None:
        text = text.lower()
        for dialog in DIALOGS:
            if all(marker in text for marker in MARKERS[dialog.name]):
                return dialog
        return None

    def transcript_cost(self, transcripts: Sequence[Path]) -> float | None:
        """The session files' usage, priced per model (None when a model has no price)."""
        total = 0.0
        seen = False
        for path in dict.fromkeys(transcripts):
            rollout = read_rollout(path)
            if rollout is None:
                continue
            if rollout.cost_usd is None:
                return None
            seen = True
            total += rollout.cost_usd
        return total if seen else None


LOGIN_FIX = (
    "Codex is not logged in ('Sign in with ChatGPT'): run `codex login` once, or give it an "
    "API key (OPENAI_API_KEY, or your provider's env_key, in the profile's env)"
)
# Recognised in the output lower-cased with all whitespace removed (the driver's text).
DIALOGS: tuple[DialogAnswer, ...] = (
    DialogAnswer(
        "trust",
        b"1",
        "answered Codex's folder-trust question for the task's worktree: Trust and continue",
    ),
    DialogAnswer(
        "model upgrade",
        b"2",
        "answered Codex's offer of a newer model: Use existing model",
    ),
    DialogAnswer(
        "hooks review",
        b"3",
        "answered Codex's hook review: Continue without trusting (the new hooks do not run; "
        "review them in `codex` to trust them)",
    ),
    DialogAnswer("login", b"", "", fail=LOGIN_FIX),
)
MARKERS: dict[str, tuple[str, ...]] = {
    "trust": ("trustthisfolder?", "1.trustandcontinue"),
    "model upgrade": ("1.trynewmodel", "2.useexistingmodel"),
    "hooks review": ("hooksneedreview", "3.continuewithouttrusting"),
    "login": ("welcometocodex", "signinwithchatgpt"),
}


CODEX_INTERACTIVE = CodexInteractive()
