"""Claude Code (`claude`): print mode with stream-json events, read as they come.

`claude -p PROMPT --output-format stream-json --verbose` prints one JSON object
a line: `system`/`init` (session id, model, tools), `assistant` messages (text
and `tool_use` blocks), `user` messages (`tool_result` blocks) and a last
`result` (`subtype`, `is_error`, `total_cost_usd`, `permission_denials`).
Print mode refuses any tool its permission mode does not allow and still exits
0, so the denials in the result are what tell a refused task from a done one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from limitless.programs.base import Approve, EventStream, PaneLine, Program, Refusal

PERMISSION_MODES: dict[Approve, str] = {
    "ask": "default",
    "edits": "acceptEdits",
    "all": "bypassPermissions",
}
# What a provider's refusal looks like in Claude Code's error text.
RATE_LIMIT = re.compile(
    r"(?i)(\b429\b|rate[ _-]?limit|overloaded|\b529\b|usage limit reached|quota exceeded)"
)
RATE_LIMIT_STATUSES = frozenset({429, 529})  # too many requests, overloaded
EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
TEXT_LINES = 12  # an assistant message longer than this is cut in the pane (the log keeps all)


class Claude(Program):
    """Claude Code in print mode (`claude` profile)."""

    name: ClassVar[str] = "claude"
    executable: ClassVar[str] = "claude"
    display: ClassVar[str] = "Claude Code"
    install: ClassVar[str] = "npm install -g @anthropic-ai/claude-code@2.1.197"
    tested_version: ClassVar[str] = "2.1.197"
    min_version: ClassVar[tuple[int, int, int]] = (2, 0, 0)
    headless_stream: ClassVar[bool] = True
    prompt_after_dashes: ClassVar[bool] = True
    state_paths: ClassVar[tuple[str, ...]] = ("~/.claude/", "~/.claude.json")

    def approve_args(self, approve: Approve, confined: bool = False) -> tuple[str, ...]:
        return ("--permission-mode", PERMISSION_MODES[approve])

    def refusal(self, approve: Approve, env: Mapping[str, str], is_root: bool) -> Refusal | None:
        if approve == "all" and is_root and env.get("IS_SANDBOX") != "1":
            return Refusal(
                f"{self.display} refuses `approve: all` (its bypassPermissions mode) when run "
                "as root; use `approve: edits`, run limitless as another user, or on a "
                'throwaway machine set IS_SANDBOX: "1" in the profile\'s env'
            )
        return None

    def environment(self) -> dict[str, str]:
        # An unattended agent must not update itself or phone home mid-task.
        return {"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}

    def stream(self, worktree: Path, env: Mapping[str, str] | None = None) -> EventStream:
        return ClaudeStream(worktree)


class ClaudeStream(EventStream):
    """Reads `--output-format stream-json --verbose` events."""

    def __init__(self, worktree: Path) -> None:
        super().__init__(worktree)
        self.tool_names: dict[str, str] = {}  # tool_use id → "Write(a.txt)"

    def line(self, raw: str) -> list[PaneLine]:
        text = raw.strip()
        if not text:
            return []
        try:
            event = json.loads(text)
        except ValueError:
            return [PaneLine(text, "dim")]  # stderr, or a line the program printed as text
        if not isinstance(event, dict):
            return [PaneLine(text, "dim")]
        session = event.get("session_id")
        if isinstance(session, str) and session:
            self.facts.session_id = session
        kind = event.get("type")
        if kind == "system":
            return self._system(event)
        if kind == "assistant":
            return self._assistant(event)
        if kind == "user":
            return self._tool_results(event)
        if kind == "result":
            return self._result(event)
        return []

    # ------------------------------------------------------------ events

    def _system(self, event: dict[str, Any]) -> list[PaneLine]:
        subtype = event.get("subtype")
        if subtype == "init":
            # "claude-opus-4-8[1m]": the model with its 1M-token context window
            model = str(event.get("model") or "?").replace("[1m]", " (1M)")
            mode = event.get("permissionMode") or "?"
            version = event.get("claude_code_version")
            program = f"Claude Code {version}" if version else "Claude Code"
            return [PaneLine(f"{program} · {model} · {mode}", "dim")]
        if subtype == "api_retry":
            status = event.get("error_status")
            error = event.get("error") or "error"
            delay = event.get("retry_delay_ms")
            wait = f" in {delay / 1000:.1f}s" if isinstance(delay, int | float) else ""
            attempt, most = event.get("attempt"), event.get("max_retries")
            what = f"{status} {error}" if status else str(error)
            return [PaneLine(f"↻ model API {what}: retry {attempt}/{most}{wait}", "dim")]
        return []

    def _assistant(self, event: dict[str, Any]) -> list[PaneLine]:
        message = event.get("message")
        blocks = message.get("content") if isinstance(message, dict) else None
        lines: list[PaneLine] = []
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                lines += self._text(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                lines.append(self._tool_use(block))
        if event.get("error"):
            lines.append(PaneLine(f"✗ {event['error']}", "bad"))
        return lines

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

    def _tool_use(self, block: dict[str, Any]) -> PaneLine:
        self.facts.actions += 1
        name = str(block.get("name") or "tool")
        raw_input = block.get("input")
        tool_input: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
        label = self.tool_label(name, tool_input)
        if isinstance(block.get("id"), str):
            self.tool_names[block["id"]] = label
        if name == "TodoWrite":
            self._todo_progress(tool_input.get("todos"))
        if name in EDIT_TOOLS:
            return PaneLine(f"✎ {name} {self.relative(_path_of(tool_input))}", "action")
        if name == "Read":
            return PaneLine(f"→ Read {self.relative(_path_of(tool_input))}", "action")
        if name == "Bash":
            command = str(tool_input.get("command") or "").strip().splitlines()
            return PaneLine(f"$ {command[0] if command else ''}", "action")
        return PaneLine(f"→ {label}", "action")

    def tool_label(self, name: str, tool_input: Mapping[str, Any]) -> str:
        """`Write(src/app.py)`, `Bash(npm test)`: how a tool call is named to the user."""
        if name in EDIT_TOOLS or name == "Read":
            return f"{name}({self.relative(_path_of(tool_input))})"
        if name == "Bash":
            command = " ".join(str(tool_input.get("command") or "").split())
            return f"Bash({command[:80]})"
        for key in ("pattern", "description", "url", "query"):
            if tool_input.get(key):
                return f"{name}({str(tool_input[key])[:80]})"
        return name

    def _todo_progress(self, todos: object) -> None:
        if not isinstance(todos, list) or not todos:
            return
        done = sum(
            1 for item in todos if isinstance(item, dict) and item.get("status") == "completed"
        )
        self.facts.progress = round(100.0 * done / len(todos), 1)

    def _tool_results(self, event: dict[str, Any]) -> list[PaneLine]:
        message = event.get("message")
        blocks = message.get("content") if isinstance(message, dict) else None
        lines: list[PaneLine] = []
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            if block.get("is_error"):
                first = _first_line(block.get("content"))
                lines.append(PaneLine(f"  ✗ {first}", "bad"))
        return lines

    def _result(self, event: dict[str, Any]) -> list[PaneLine]:
        facts = self.facts
        facts.result_seen = True
        cost = event.get("total_cost_usd")
        if isinstance(cost, int | float):
            facts.cost_usd = float(cost)
        usage = event.get("usage")
        if isinstance(usage, dict):
            facts.input_tokens = _tokens(usage, "input_tokens")
            facts.output_tokens = _tokens(usage, "output_tokens")
        subtype = str(event.get("subtype") or "")
        result_text = str(event.get("result") or "").strip()
        facts.is_error = bool(event.get("is_error")) or subtype.startswith("error")
        for denial in event.get("permission_denials") or []:
            if isinstance(denial, dict):
                tool_input = denial.get("tool_input")
                facts.denials.append(
                    self.tool_label(
                        str(denial.get("tool_name") or "tool"),
                        tool_input if isinstance(tool_input, dict) else {},
                    )
                )
        turns = event.get("num_turns")
        seconds = event.get("duration_ms")
        parts = [f"{turns} turn{'s' if turns != 1 else ''}" if isinstance(turns, int) else ""]
        if isinstance(seconds, int | float):
            parts.append(f"{seconds / 1000:.1f}s")
        if facts.cost_usd is not None:
            parts.append(f"${facts.cost_usd:.4f}")
        summary = " · ".join(part for part in parts if part)
        if facts.is_error:
            facts.error = result_text or subtype or "error"
            if event.get("api_error_status") in RATE_LIMIT_STATUSES or RATE_LIMIT.search(
                facts.error
            ):
                facts.rate_limit = " ".join(facts.error.split())
            shown = f"✗ {subtype or 'error'}: {_first_line(facts.error)} · {summary}"
            return [PaneLine(shown, "bad")]
        if result_text:
            facts.final_text = result_text
        return [PaneLine(f"✓ finished · {summary}", "good")]


def _path_of(tool_input: Mapping[str, Any]) -> str:
    for key in ("file_path", "notebook_path", "path"):
        if tool_input.get(key):
            return str(tool_input[key])
    return ""


def _first_line(content: object) -> str:
    if isinstance(content, list):
        texts = [str(part.get("text", "")) for part in content if isinstance(part, dict)]
        content = "\n".join(texts)
    lines = str(content or "").strip().splitlines()
    return lines[0][:200] if lines else ""


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, int | float) else 0


CLAUDE = Claude()
