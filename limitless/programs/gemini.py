"""gemini-cli (`gemini`): headless `-p` with `--output-format stream-json`, read as it comes.

One JSON object a line: `init` (session id, model), `message` (the user's
prompt, then the assistant's text in `delta` pieces), `tool_use` (`tool_name`,
`parameters`), `tool_result` (`status` success/error, `output`, `error`) and a
last `result` (`status`, `error`, token `stats`). gemini-cli reports tokens,
never a price, so a gemini task has no cost. Its own diagnostics (retries, the
path of an error report, stack traces) come on stderr, in the same pane.

Permissions: in `-p` the approval mode decides which tools the model is even
offered — `default` only read-only ones, `auto_edit` adds `write_file` and
`replace`, `yolo` adds `run_shell_command` — so nothing is asked or denied
mid-run: under `approve: ask` a task that must change files ends unchanged,
and the "changed nothing" verdict says so.

State (`state_paths`, writable in `sandbox: worktree`): all gemini-cli 0.61 was
seen writing under HOME is in `~/.gemini/` (`projects.json`, the session file
`tmp/<project>/chats/session-*.jsonl`, `tmp/<project>/logs`, `history/`); without
it, it stops at once (EROFS on `projects.json.<id>.tmp`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from limitless.programs.base import Approve, EventStream, PaneLine, Program

APPROVAL_MODES: dict[Approve, str] = {"ask": "default", "edits": "auto_edit", "all": "yolo"}
RATE_LIMIT = re.compile(
    r"(?i)(\b429\b|RESOURCE_EXHAUSTED|rate[ _-]?limit|quota|overloaded|\b503\b|UNAVAILABLE)"
)
EDIT_TOOLS = frozenset({"write_file", "replace", "edit"})
SHELL_TOOLS = frozenset({"run_shell_command"})
DENIED = re.compile(
    r"(?i)(denied|rejected|not allowed|requires (?:user )?(?:approval|confirmation))"
)
NOISE = re.compile(
    r"^(at |Warning: (?:256-color|True color)|Ripgrep is not available|\[STARTUP\]|\(node:\d+\)"
    r"|\(Use `node |YOLO mode is enabled|status: \d+|\}$|cause: |retryDelayMs:|[A-Za-z]+: \{)"
)
TEXT_LINES = 12


class Gemini(Program):
    """gemini-cli in headless mode (`gemini` profile)."""

    name: ClassVar[str] = "gemini"
    executable: ClassVar[str] = "gemini"
    display: ClassVar[str] = "gemini-cli"
    install: ClassVar[str] = "npm install -g @google/gemini-cli@0.61.0"
    tested_version: ClassVar[str] = "0.61.0"
    min_version: ClassVar[tuple[int, int, int]] = (0, 30, 0)
    headless_stream: ClassVar[bool] = True
    state_paths: ClassVar[tuple[str, ...]] = ("~/.gemini/",)

    def approve_args(self, approve: Approve, confined: bool = False) -> tuple[str, ...]:
        return ("--approval-mode", APPROVAL_MODES[approve])

    def stream(self, worktree: Path, env: Mapping[str, str] | None = None) -> EventStream:
        return GeminiStream(worktree)


class GeminiStream(EventStream):
    """Reads `gemini -p … -o stream-json` events (and its stderr, in the same pane)."""

    def __init__(self, worktree: Path) -> None:
        super().__init__(worktree)
        self.text = ""  # the assistant's text so far, shown when it ends
        self.tools: dict[str, str] = {}  # tool id → "write_file(hi.txt)"

    def line(self, raw: str) -> list[PaneLine]:
        text = raw.strip()
        if not text:
            return []
        try:
            event = json.loads(text)
        except ValueError:
            return self._stderr(text)
        if not isinstance(event, dict):
            return self._stderr(text)
        session = event.get("session_id")
        if isinstance(session, str) and session:
            self.facts.session_id = session
        kind = event.get("type")
        if kind == "message" and event.get("role") == "assistant":
            self.text += str(event.get("content") or "")
            return []
        lines = self._said()
        if kind == "init":
            lines.append(PaneLine(f"gemini-cli · model {event.get('model') or '?'}", "dim"))
        elif kind == "tool_use":
            lines.append(self._tool_use(event))
        elif kind == "tool_result":
            lines += self._tool_result(event)
        elif kind == "result":
            lines += self._result(event)
        elif kind == "error":
            lines += self._error_event(event)
        return lines

    def _said(self) -> list[PaneLine]:
        """The assistant's text that came before this event, as pane lines."""
        text, self.text = self.text.strip(), ""
        if not text:
            return []
        self.facts.final_text = text
        rows = text.splitlines()
        shown = [PaneLine(("● " if i == 0 else "  ") + row) for i, row in enumerate(rows)]
        if len(shown) > TEXT_LINES:
            more = len(shown) - TEXT_LINES
            shown = [*shown[:TEXT_LINES], PaneLine(f"  … {more} more lines in the log", "dim")]
        return shown

    def _tool_use(self, event: Mapping[str, Any]) -> PaneLine:
        self.facts.actions += 1
        name = str(event.get("tool_name") or "tool")
        raw = event.get("parameters")
        params: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        path = self.relative(
            params.get("file_path") or params.get("dir_path") or params.get("path")
        )
        if name in SHELL_TOOLS:
            command = " ".join(str(params.get("command") or "").split())
            label = f"{name}({command[:80]})"
            line = PaneLine(f"$ {command[:160]}", "action")
        elif name in EDIT_TOOLS:
            label = f"{name}({path})"
            line = PaneLine(f"✎ {name} {path}", "action")
        else:
            label = f"{name}({path})" if path != "?" else name
            line = PaneLine(f"→ {label}", "action")
        if isinstance(event.get("tool_id"), str):
            self.tools[event["tool_id"]] = label
        return line

    def _tool_result(self, event: Mapping[str, Any]) -> list[PaneLine]:
        if event.get("status") != "error":
            return []
        error = event.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        said = _first_line(message or event.get("output") or "error")
        label = self.tools.get(str(event.get("tool_id")), "tool")
        if DENIED.search(said):
            self.facts.denials.append(label)
        return [PaneLine(f"  ✗ {said}", "bad")]

    def _result(self, event: Mapping[str, Any]) -> list[PaneLine]:
        facts = self.facts
        facts.result_seen = True
        stats = event.get("stats")
        if isinstance(stats, dict):
            facts.input_tokens = _int(stats.get("input_tokens"))
            facts.output_tokens = _int(stats.get("output_tokens"))
        tokens = f"{facts.input_tokens} tokens in, {facts.output_tokens} out"
        if event.get("status") == "success":
            return [PaneLine(f"✓ finished · {tokens}", "good")]
        error = event.get("error")
        message = error.get("message") if isinstance(error, dict) else str(error or "")
        facts.is_error, facts.error = True, " ".join(str(message or "error").split())
        if RATE_LIMIT.search(facts.error):
            facts.rate_limit = facts.error
        return [PaneLine(f"✗ {_first_line(message or 'error')} · {tokens}", "bad")]

    def _error_event(self, event: Mapping[str, Any]) -> list[PaneLine]:
        message = str(event.get("message") or event.get("error") or "error")
        return [PaneLine(f"✗ {_first_line(message)}", "bad")]

    def _stderr(self, text: str) -> list[PaneLine]:
        if NOISE.match(text):
            return []
        if text.startswith("Attempt ") and "Retrying" in text:
            return [PaneLine(f"↻ {text.split(' _ApiError')[0]}", "dim")]
        return [PaneLine(text[:200], "dim")]


def _first_line(content: object) -> str:
    lines = str(content or "").strip().splitlines()
    return lines[0][:200] if lines else ""


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


GEMINI = Gemini()
