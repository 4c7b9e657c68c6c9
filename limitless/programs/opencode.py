"""opencode (`opencode`): `opencode run --format json`, its events read as they come.

One JSON object a line, each with a `part`: `step_start`, `tool_use` (`part.tool`,
`part.state` with `status` completed/error, `input`, `output` or `error`),
`text` (`part.text`), `step_finish` (`part.reason` — `tool-calls`, or `stop` at
the end of the turn — `part.tokens` and `part.cost`, the step's price from the
provider's model table) and `error`. The cost of a task is the sum of its
steps' costs. opencode's own messages (a permission it turned down, a final
`Error: …`) come on stderr, in the same pane.

Permissions: `OPENCODE_PERMISSION` (JSON merged over every config file) sets
`edit` and `bash` for this run only; the user's `opencode.json` is left alone.
`opencode run` turns down whatever is set to `ask` ("permission requested: …;
auto-rejecting"), ends the run and exits 0, so a rejected tool is a denial.

opencode works in `$PWD`, not in its process's working directory: the wrapper
sets `PWD` to the task's worktree. Its session database is the task's own
(`OPENCODE_DB` in the run's folder): parallel runs on the user's one database
fail at random.

State (`state_paths`, writable in `sandbox: worktree`), what opencode 1.18 was
seen writing under HOME: `~/.local/share/opencode/` (log, snapshot repositories,
its database when OPENCODE_DB is not set), `~/.local/state/opencode/` (locks),
`~/.cache/opencode/`, and `~/.config/opencode/` (it writes a `.gitignore` there
at every start and stops if it cannot). Left out: `~/.npm/`, npm's cache, which
its background install of the config folder's dependencies writes (without it
that install fails with a warning in opencode's log and the run goes on; a plan
whose opencode plugins need it names it in `sandbox_write`). Other XDG folders
(`XDG_DATA_HOME`, …) are not followed: name them in `sandbox_write`. Known gap:
the task's own database folder (the run's folder, see `state_env`) is read-only
inside the sandbox, so opencode stops at "unable to open database file" unless
the plan names that folder in `sandbox_write`; the wrapper has to make it
writable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from limitless.programs.base import Approve, EventStream, PaneLine, Program

PERMISSIONS: dict[Approve, dict[str, str]] = {
    "ask": {"edit": "ask", "bash": "ask", "webfetch": "ask"},
    "edits": {"edit": "allow", "bash": "ask", "webfetch": "ask"},
    "all": {"edit": "allow", "bash": "allow", "webfetch": "allow"},
}
RATE_LIMIT = re.compile(r"(?i)(\b429\b|rate[ _-]?limit|too many requests|quota|overloaded|\b529\b)")
EDIT_TOOLS = frozenset({"write", "edit", "patch", "multiedit"})
REJECTED = re.compile(r"(?i)(rejected permission|permission .*(denied|rejected))")
TEXT_LINES = 12


class Opencode(Program):
    """opencode's `run` command (`opencode` profile)."""

    name: ClassVar[str] = "opencode"
    executable: ClassVar[str] = "opencode"
    display: ClassVar[str] = "opencode"
    install: ClassVar[str] = "npm install -g opencode-ai@1.18.33"
    tested_version: ClassVar[str] = "1.18.33"
    min_version: ClassVar[tuple[int, int, int]] = (1, 0, 0)
    headless_stream: ClassVar[bool] = True
    state_paths: ClassVar[tuple[str, ...]] = (
        "~/.local/share/opencode/",
        "~/.local/state/opencode/",
        "~/.cache/opencode/",
        "~/.config/opencode/",
    )

    def approve_env(self, approve: Approve) -> dict[str, str]:
        return {"OPENCODE_PERMISSION": json.dumps(PERMISSIONS[approve])}

    def environment(self) -> dict[str, str]:
        # An unattended agent must not update itself mid-task.
        return {"OPENCODE_DISABLE_AUTOUPDATE": "1"}

    def state_env(self, folder: Path) -> dict[str, str]:
        # opencode keeps sessions in one SQLite file per user; several `opencode run` starting
        # at once fail on it ("Failed query: CREATE TABLE …" on a first start, "database is
        # locked" later: opencode issues 33320, 47566). Each task gets a database of its own.
        return {"OPENCODE_DB": str(folder / "opencode.db")}

    def stream(self, worktree: Path, env: Mapping[str, str] | None = None) -> EventStream:
        return OpencodeStream(worktree)


class OpencodeStream(EventStream):
    """Reads `opencode run --format json` events (and its stderr, in the same pane)."""

    def __init__(self, worktree: Path) -> None:
        super().__init__(worktree)
        self.cost = 0.0
        self.error_open = False  # an "Error: …" line came; its detail is the next one

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
        session = event.get("sessionID")
        if isinstance(session, str) and session:
            self.facts.session_id = session
        raw_part = event.get("part")
        part: Mapping[str, Any] = raw_part if isinstance(raw_part, dict) else {}
        kind = event.get("type")
        if kind == "tool_use":
            return self._tool(part)
        if kind == "text":
            return self._text(str(part.get("text") or ""))
        if kind == "step_finish":
            return self._step_finish(part)
        if kind == "error":
            return self._error(event)
        return []

    def _tool(self, part: Mapping[str, Any]) -> list[PaneLine]:
        self.facts.actions += 1
        name = str(part.get("tool") or "tool")
        raw_state = part.get("state")
        state: Mapping[str, Any] = raw_state if isinstance(raw_state, dict) else {}
        raw_input = state.get("input")
        tool_input: Mapping[str, Any] = raw_input if isinstance(raw_input, dict) else {}
        path = self.relative(tool_input.get("filePath") or tool_input.get("path"))
        if name == "bash":
            command = " ".join(str(tool_input.get("command") or "").split())
            label, shown = f"Bash({command[:80]})", f"$ {command[:160]}"
        elif name in EDIT_TOOLS:
            label, shown = f"{name.capitalize()}({path})", f"✎ {name} {path}"
        else:
            label = f"{name}({path})" if path != "?" else name
            shown = f"→ {label}"
        lines = [PaneLine(shown, "action")]
        if state.get("status") == "error":
            error = _first_line(state.get("error") or "error")
            if REJECTED.search(error):
                self.facts.denials.append(label)
            lines.append(PaneLine(f"  ✗ {error}", "bad"))
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

    def _step_finish(self, part: Mapping[str, Any]) -> list[PaneLine]:
        facts = self.facts
        cost = part.get("cost")
        if isinstance(cost, int | float):
            self.cost += float(cost)
            facts.cost_usd = round(self.cost, 10)
        tokens = part.get("tokens")
        if isinstance(tokens, dict):
            facts.input_tokens += _int(tokens.get("input"))
            facts.output_tokens += _int(tokens.get("output"))
        # A step that ends the turn, or one after an error, means opencode got past it.
        facts.rate_limit, facts.is_error, facts.error = "", False, ""
        if part.get("reason") != "stop":
            return []
        facts.result_seen = True
        summary = f"{facts.input_tokens} tokens in, {facts.output_tokens} out"
        if facts.cost_usd is not None:
            summary += f" · ${facts.cost_usd:.4f}"
        return [PaneLine(f"✓ finished · {summary}", "good")]

    def _error(self, event: Mapping[str, Any]) -> list[PaneLine]:
        error = event.get("error")
        status: object = None
        if isinstance(error, dict):
            raw_data = error.get("data")
            data: Mapping[str, Any] = raw_data if isinstance(raw_data, dict) else {}
            message = data.get("message") or error.get("message") or error.get("name") or "error"
            status = data.get("statusCode")
        else:
            message = error or event.get("message") or "error"
        if isinstance(status, int):
            message = f"{message} (HTTP {status})"
        return self._failed(str(message), limited=status in (429, 503, 529))

    def _failed(self, message: str, *, limited: bool = False) -> list[PaneLine]:
        facts = self.facts
        facts.is_error, facts.error = True, " ".join(message.split())
        if limited or RATE_LIMIT.search(facts.error):
            facts.rate_limit = facts.error
        return [PaneLine(f"✗ {_first_line(message)}", "bad")]

    def _stderr(self, text: str) -> list[PaneLine]:
        if self.error_open:  # the line after "Error: Unexpected error" says what it was
            self.error_open = False
            self.facts.error = f"{self.facts.error} ({text[:120]})"
            return [PaneLine(f"  {text[:200]}", "bad")]
        if text.startswith("Error: "):
            self.error_open = True
            return self._failed(text.removeprefix("Error: "))
        if "auto-rejecting" in text:
            return [PaneLine(text.lstrip("! ").strip(), "bad")]
        return [PaneLine(text[:200], "dim")]


def _first_line(content: object) -> str:
    lines = str(content or "").strip().splitlines()
    return lines[0][:200] if lines else ""


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


OPENCODE = Opencode()
