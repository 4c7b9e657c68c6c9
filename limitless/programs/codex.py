"""Codex (`codex`): `codex exec --json`, its JSON events read as they come.

`codex exec --json [FLAGS] -- PROMPT` prints one JSON event a line on stdout:
`thread.started` (`thread_id`), `turn.started`, `item.started` / `item.updated` /
`item.completed` (items `command_execution`, `file_change`, `agent_message`,
`reasoning`, `todo_list`, `mcp_tool_call`, `web_search`, `error`), a top-level
`error` (`Reconnecting... 1/5 (…)` while it retries the model), and a last
`turn.completed` (`usage`) or `turn.failed` (`error.message`). Its log goes to
stderr, which the wrapper's pty mixes in.

`approve` maps to Codex's sandbox (headless Codex never asks: `codex exec` forces
the approval policy `never`): `ask` → `--sandbox read-only`, `edits` →
`--sandbox workspace-write` (writes inside the worktree; commands run in the
sandbox, without network, and cannot write `.git`, so a commit is refused),
`all` → `--dangerously-bypass-approvals-and-sandbox`. A refused write is not
an event: Codex tells the model and exits 0. The refusals are read from its log
(`patch rejected`, `reject command`, and with `RUST_LOG` raised for
`codex_sandboxing`, `recorded sandbox violation`) and named from the session
file (`codex_rollout`), so the task fails saying what was refused.

The sandbox is bubblewrap (Codex ships its own) in a new user namespace; where
those cannot be made every sandboxed write and command fails. `refusal` tries
it before the run (`codex sandbox`), for the modes that use it.

Inside limitless's `sandbox: worktree` Codex's sandbox cannot start: a user
namespace made inside bubblewrap's cannot map its ids ("bwrap: setting up uid
map: Operation not permitted", every flag combination tried), and Codex's
Landlock-only pipeline (`--enable use_legacy_landlock`) refuses to run without
bubblewrap ("filesystem-restricted execution requires bubblewrap"). So there
`command(..., confined=True)` maps `edits` to `--sandbox danger-full-access`:
limitless's sandbox already keeps Codex to its worktree and its own branch, and
its commands may now commit. `ask` stays `--sandbox read-only`, which then
refuses every command, reads included: nothing is written, the task fails
naming what was refused. (Until the wrapper passes `confined`, a `worktree`
task under `edits` fails that way too: every edit and command refused.)

State: everything Codex writes under HOME is in `~/.codex/` (`state_paths`:
writable in the sandbox; without it Codex stops at once, "failed to initialize
in-process app-server client: Read-only file system"); a `CODEX_HOME` elsewhere
must be named in the plan's `sandbox_write`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from limitless.programs.base import Approve, EventStream, PaneLine, Program, Refusal
from limitless.programs.codex_rollout import (
    Rollout,
    TokenUsage,
    codex_home,
    find_rollouts,
    prices_of,
    read_rollout,
)

SANDBOX_ARGS: dict[Approve, tuple[str, ...]] = {
    "ask": ("--sandbox", "read-only"),
    "edits": ("--sandbox", "workspace-write"),
    "all": ("--dangerously-bypass-approvals-and-sandbox",),
}
# Inside limitless's sandbox, where Codex's own cannot start (see the module's docstring).
CONFINED_ARGS: dict[Approve, tuple[str, ...]] = {
    **SANDBOX_ARGS,
    "edits": ("--sandbox", "danger-full-access"),
}
APPROVE_HINTS: dict[Approve, str] = {
    "ask": "`approve: edits` lets Codex write in the worktree, `approve: all` runs it "
    "without its sandbox",
    "edits": "`approve: all` runs Codex without its sandbox (git commits, network, files "
    "outside the worktree)",
    "all": "Codex refused them itself",
}
# All Codex 0.171 was seen writing under HOME: installation_id, sessions/Y/M/D/rollout-*.jsonl,
# state_5.sqlite and its other databases, tmp/arg0-linux (its helper programs), skills/, locks.
STATE_PATHS = ("~/.codex/",)
SANDBOX_LOG = "codex_sandboxing=warn"  # its log target that names a sandbox's refusal
RATE_LIMIT = re.compile(
    r"(?i)(\b429\b|too many requests|rate[ _-]?limit|usage limit|quota exceeded|\b529\b|"
    r"overloaded|high demand)"
)
LOG_LINE = re.compile(r"^\S+Z\s+(ERROR|WARN|INFO|DEBUG|TRACE)\s+([\w:]+):\s*(.*)$")
VIOLATION = re.compile(r"recorded sandbox violation:.*?\breason=(\S+)")
SHELL = re.compile(r"(?:^|/)(?:ba|z|da|k)?sh$")
TEXT_LINES = 12
PROBE_TIMEOUT_S = 20.0


class Codex(Program):
    """Codex in exec mode (`codex` profile)."""

    name: ClassVar[str] = "codex"
    executable: ClassVar[str] = "codex"
    display: ClassVar[str] = "Codex"
    install: ClassVar[str] = "npm install -g @openai/codex@0.171.0"
    tested_version: ClassVar[str] = "0.171.0"
    # The log lines and session records read here are those of 0.171; older
    # versions print other events (and had other sandbox flags).
    min_version: ClassVar[tuple[int, int, int]] = (0, 171, 0)
    headless_stream: ClassVar[bool] = True
    prompt_after_dashes: ClassVar[bool] = True
    state_paths: ClassVar[tuple[str, ...]] = STATE_PATHS

    def approve_args(self, approve: Approve, confined: bool = False) -> tuple[str, ...]:
        """`confined`: the task runs in limitless's sandbox, where Codex's own cannot start."""
        return CONFINED_ARGS[approve] if confined else SANDBOX_ARGS[approve]

    def approve_hint(self, approve: Approve) -> str | None:
        return APPROVE_HINTS[approve]

    def environment(self) -> dict[str, str]:
        # Codex's log level, raised for its sandbox's refusals only (the commands it runs
        # inherit it: a RUST_LOG of the user's is kept, with that one target added).
        mine = os.environ.get("RUST_LOG", "").strip()
        return {"RUST_LOG": f"{mine},{SANDBOX_LOG}" if mine else f"error,{SANDBOX_LOG}"}

    def refusal(self, approve: Approve, env: Mapping[str, str], is_root: bool) -> Refusal | None:
        return codex_refusal(self, approve, env)

    def stream(self, worktree: Path, env: Mapping[str, str] | None = None) -> EventStream:
        return CodexStream(worktree, codex_home(env or {}))


def codex_refusal(program: Program, approve: Approve, env: Mapping[str, str]) -> Refusal | None:
    """Why Codex cannot run here as `approve` asks: a CODEX_HOME that is not there, or a
    sandbox (`ask`, `edits`) that cannot start."""
    configured = env.get("CODEX_HOME")
    if configured and not Path(configured).expanduser().is_dir():
        return Refusal(
            f"CODEX_HOME is {configured}, which is not a folder; Codex stops at once "
            "('failed to resolve CODEX_HOME'): create it, or unset CODEX_HOME"
        )
    if approve == "all":
        return None
    executable = program.locate(env.get("PATH"))
    if executable is None:
        return None  # reported as missing
    failure = sandbox_failure(executable, configured or "", env.get("HOME", ""))
    if not failure:
        return None
    return Refusal(
        f"Codex's sandbox cannot start here (`codex sandbox` said: {failure}), and "
        f"`approve: {approve}` runs Codex inside it; every write and command would fail. "
        "Allow unprivileged user namespaces (sysctl user.max_user_namespaces, "
        "kernel.unprivileged_userns_clone, or the AppArmor userns restriction), or use "
        "`approve: all` where the machine itself is the sandbox"
    )


@functools.lru_cache(maxsize=8)
def sandbox_failure(executable: str, configured_home: str, home: str) -> str:
    """What Codex's own sandbox says when a no-op cannot run in it ("" when it can)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": home or "/"}
    if configured_home:
        env["CODEX_HOME"] = configured_home
    try:
        result = subprocess.run(
            [executable, "sandbox", "-P", ":read-only", "-C", "/", "--", "true"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {PROBE_TIMEOUT_S:g}s"
    except OSError as exc:
        return str(exc)
    if result.returncode == 0:
        return ""
    said = [line.strip() for line in (result.stderr + result.stdout).splitlines()]
    said = [line for line in said if line and not line.startswith("WARNING: proceeding")]
    return said[0][:200] if said else f"exit status {result.returncode}"


class CodexStream(EventStream):
    """Reads `codex exec --json` events, and Codex's log lines beside them."""

    def __init__(self, worktree: Path, home: Path | None) -> None:
        super().__init__(worktree)
        self.home = home
        self.usage = TokenUsage()
        self.turns = 0
        self.started: set[str] = set()  # item ids shown when they started
        self.refusals: list[str] = []  # from the log: "a file edit (…)", "a command (…)"
        self.last_error = ""

    def line(self, raw: str) -> list[PaneLine]:
        text = raw.strip()
        if not text:
            return []
        try:
            event = json.loads(text)
        except ValueError:
            return self._log_line(text)
        if not isinstance(event, dict):
            return [PaneLine(text, "dim")]
        kind = event.get("type")
        if kind == "thread.started":
            thread = str(event.get("thread_id") or "")
            self.facts.session_id = thread or None
            return [PaneLine(f"Codex · thread {thread}", "dim")]
        if kind in ("item.started", "item.updated", "item.completed"):
            item = event.get("item")
            if isinstance(item, dict):
                return self._item(kind, item)
            return []
        if kind == "turn.completed":
            return self._turn_completed(event)
        if kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            return self._failed(str(message or "the turn failed"))
        if kind == "error":
            message = str(event.get("message") or "")
            if message.startswith("Reconnecting"):
                return [PaneLine(f"↻ {_first_line(message)}", "dim")]
            self.last_error = message
            return [PaneLine(f"✗ {_first_line(message)}", "bad")]
        return []

    # ------------------------------------------------------------ items

    def _item(self, kind: str, item: dict[str, Any]) -> list[PaneLine]:
        item_type = item.get("type")
        item_id = str(item.get("id") or "")
        done = kind == "item.completed"
        if item_type == "command_execution":
            return self._command(item, item_id, done)
        if item_type == "file_change":
            return self._file_change(item) if done else []
        if item_type == "todo_list":
            self._todo_progress(item.get("items"))
            return []
        if not done:
            return []
        if item_type == "agent_message":
            return self._text(str(item.get("text") or ""))
        if item_type == "reasoning":
            first = _first_line(item.get("text"))
            return [PaneLine(f"∴ {first}", "dim")] if first else []
        if item_type == "mcp_tool_call":
            self.facts.actions += 1
            return [PaneLine(f"→ {item.get('server')}.{item.get('tool')}", "action")]
        if item_type == "web_search":
            self.facts.actions += 1
            return [PaneLine(f"→ web search: {item.get('query') or ''}", "action")]
        if item_type == "error":
            return [PaneLine(f"! {_first_line(item.get('message'))}", "dim")]
        return []

    def _command(self, item: dict[str, Any], item_id: str, done: bool) -> list[PaneLine]:
        lines: list[PaneLine] = []
        if item_id not in self.started:
            self.started.add(item_id)
            self.facts.actions += 1
            lines.append(PaneLine(f"$ {shell_command(item.get('command'))}", "action"))
        if done:
            code = item.get("exit_code")
            if item.get("status") == "failed" or (isinstance(code, int) and code != 0):
                said = _first_line(item.get("aggregated_output"))
                shown = f"  ✗ exit {code}" + (f" · {said}" if said else "")
                lines.append(PaneLine(shown, "bad"))
        return lines

    def _file_change(self, item: dict[str, Any]) -> list[PaneLine]:
        self.facts.actions += 1
        changes = item.get("changes")
        named = [
            f"{change.get('kind') or 'change'} {self.relative(change.get('path'))}"
            for change in (changes if isinstance(changes, list) else [])
            if isinstance(change, dict)
        ]
        shown = ", ".join(named) or "files"
        if item.get("status") == "failed":
            return [PaneLine(f"✎ {shown} — failed", "bad")]
        return [PaneLine(f"✎ {shown}", "action")]

    def _text(self, text: str) -> list[PaneLine]:
        text = text.strip()
        if not text:
            return []
        self.facts.final_text = text
        rows = text.splitlines()
        shown = [PaneLine(("● " if i == 0 else "  ") + row) for i, row in enumerate(rows)]
        if len(shown) > TEXT_LINES:
            more = len(shown) - TEXT_LINES
            shown = [*shown[:TEXT_LINES], PaneLine(f"  … {more} more lines in the log", "dim")]
        return shown

    def _todo_progress(self, items: object) -> None:
        if not isinstance(items, list) or not items:
            return
        done = sum(1 for entry in items if isinstance(entry, dict) and entry.get("completed"))
        self.facts.progress = round(100.0 * done / len(items), 1)

    # ------------------------------------------------------------ the end of a turn

    def _turn_completed(self, event: dict[str, Any]) -> list[PaneLine]:
        self.facts.result_seen = True
        self.turns += 1
        self.usage = self.usage + TokenUsage.of(event.get("usage"))
        self.facts.input_tokens = self.usage.input
        self.facts.output_tokens = self.usage.output
        usage = self.usage
        cached = f" ({usage.cached:,} cached)" if usage.cached else ""
        return [
            PaneLine(
                f"✓ turn completed · {usage.input:,} tokens in{cached} · {usage.output:,} out",
                "good",
            )
        ]

    def _failed(self, message: str) -> list[PaneLine]:
        facts = self.facts
        facts.result_seen = True
        facts.is_error = True
        facts.error = " ".join(message.split())
        if RATE_LIMIT.search(facts.error):
            facts.rate_limit = facts.error
        if message == self.last_error:
            return []  # its error event just said so
        return [PaneLine(f"✗ turn failed: {_first_line(message)}", "bad")]

    # ------------------------------------------------------------ its log

    def _log_line(self, text: str) -> list[PaneLine]:
        if text.startswith("Reading additional input from stdin"):
            return []
        match = LOG_LINE.match(text)
        if match is None:
            return [PaneLine(text, "dim")]
        level, target, message = match.groups()
        refused = self._refusal(target, message)
        if refused:
            self.refusals.append(refused)
            self.facts.actions += 1
            return [PaneLine(f"✗ refused: {refused}", "bad")]
        return [PaneLine(f"{level.lower()}: {message}"[:300], "bad" if level == "ERROR" else "dim")]

    @staticmethod
    def _refusal(target: str, message: str) -> str:
        """What a log line says was refused ("" when it is not a refusal)."""
        error = message.removeprefix("error=")
        if target.startswith("codex_core::tools") and error.startswith("patch rejected"):
            return f"a file edit ({error.removeprefix('patch rejected: ')})"
        if target.startswith("codex_core::tools") and "reject command" in error:
            return "a command outside the sandbox (the approval policy is never)"
        violation = VIOLATION.search(message)
        if target.startswith("codex_sandboxing") and violation:
            return f"a command in the sandbox ({violation.group(1).replace('_', ' ')})"
        return ""

    def finish(self) -> list[PaneLine]:
        """Name the model and the refused calls from the session file; price the usage."""
        rollout = self._rollout()
        lines: list[PaneLine] = []
        if self.refusals:
            named = rollout.refused if rollout is not None and rollout.refused else []
            self.facts.denials = named or self.refusals
        model = rollout.models[-1] if rollout is not None and rollout.models else None
        if self.usage.empty:
            return lines
        prices = prices_of(model)
        if rollout is not None and len(rollout.models) > 1:
            # The turns ran on several models: price each answer with its own.
            if rollout.cost_usd is not None:
                self.facts.cost_usd = round(rollout.cost_usd, 6)
        elif prices is not None:
            self.facts.cost_usd = round(prices.cost(self.usage), 6)
        if self.facts.cost_usd is not None:
            lines.append(PaneLine(f"cost ${self.facts.cost_usd:.4f} ({model})", "dim"))
        else:
            why = f"no price known for {model}" if model else "the model is not known"
            lines.append(PaneLine(f"cost not recorded: {why}", "dim"))
        return lines

    def _rollout(self) -> Rollout | None:
        thread = self.facts.session_id or ""
        for path in find_rollouts(self.home, thread):
            rollout = read_rollout(path)
            if rollout is not None:
                return rollout
        return None


def shell_command(command: object) -> str:
    """`npm test` for Codex's `/bin/bash -lc 'npm test'`: the command the model wrote."""
    if isinstance(command, list):
        parts = [str(part) for part in command]
    else:
        text = str(command or "")
        try:
            parts = shlex.split(text)
        except ValueError:
            return " ".join(text.split())
    if len(parts) == 3 and SHELL.search(parts[0]) and parts[1] in ("-lc", "-c"):
        return " ".join(parts[2].split())
    return " ".join(" ".join(parts).split())


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:200] if lines else ""


CODEX = Codex()
