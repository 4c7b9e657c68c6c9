"""Codex's session files ("rollouts") and what its models cost.

Codex writes every session to `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread
id>.jsonl` (CODEX_HOME defaults to `~/.codex`), one JSON record a line:
`session_meta`, `turn_context` (the turn's `model`), `response_item` (what the model
said and asked — `function_call` with JSON `arguments`, `custom_tool_call` with the
`apply_patch` text — and what each call gave back), `event_msg` (`token_count` with the
session's running `total_token_usage`, `item_completed` for a command that ran). The
`--json` events do not name the model, and omit a command its sandbox refused before it
started (openai/codex#47433); the rollout has both.

Prices are USD per million tokens from OpenAI's pricing page as quoted on 2026-06-04
(tokenmix.ai "OpenAI API Cost 2026", morphllm.com "OpenAI API pricing": gpt-5.5 and the
gpt-5.4 family) and 2026-06-27 (apimaster.ai "GPT-5.6 Sol, Terra & Luna Preview",
OpenAI's announcement via Simon Willison: the gpt-5.6 tiers, cached input at a tenth
of input, cache writes at 1.25 × input). A model not in the table gets no cost: a
missing figure is better than a wrong one. Not modelled: the long-context rate of
gpt-5.5 (a request over 272K input tokens), Batch, Flex and Priority tiers.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PATCH_FILE = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+)$", re.MULTILINE)
# What a refused call's output starts with (the model is told so; the events are silent).
REFUSED_OUTPUTS = ("patch rejected:", "approval policy is never; reject command")
EXIT_CODE = re.compile(r"^Process exited with code (-?\d+)$", re.MULTILINE)
# Words in a failed command's output that Codex itself takes for its sandbox's refusal.
SANDBOX_WORDS = (
    "read-only file system",
    "operation not permitted",
    "permission denied",
    "bwrap:",
    "seccomp",
    "landlock",
)


@dataclass(frozen=True)
class Prices:
    """USD per million tokens. `cache_write` defaults to the input price."""

    input: float
    cached_input: float
    output: float
    cache_write: float | None = None

    def cost(self, usage: TokenUsage) -> float:
        written = min(usage.cache_write, usage.input)
        cached = min(usage.cached, usage.input - written)
        fresh = usage.input - cached - written
        write_price = self.input if self.cache_write is None else self.cache_write
        return (
            fresh * self.input
            + cached * self.cached_input
            + written * write_price
            + usage.output * self.output
        ) / 1_000_000


PRICES: dict[str, Prices] = {
    "gpt-5.5": Prices(5.00, 0.50, 30.00),
    "gpt-5.4": Prices(2.50, 0.25, 15.00),
    "gpt-5.4-mini": Prices(0.75, 0.075, 4.50),
    "gpt-5.4-nano": Prices(0.20, 0.02, 1.25),
    "gpt-5.6-sol": Prices(5.00, 0.50, 30.00, 6.25),
    "gpt-5.6-terra": Prices(2.50, 0.25, 15.00, 3.125),
    "gpt-5.6-luna": Prices(1.00, 0.10, 6.00, 1.25),
}
DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def prices_of(model: str | None) -> Prices | None:
    """The prices of `model` (`gpt-5.5`, `gpt-5.5-2026-04-23`), or None when unknown."""
    if not model:
        return None
    return PRICES.get(DATED.sub("", model.strip().lower()))


@dataclass(frozen=True)
class TokenUsage:
    """Codex's token counts: `input` includes `cached` and `cache_write`; `output`
    includes reasoning (OpenAI's convention, and Codex's `--json` usage)."""

    input: int = 0
    cached: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0

    @classmethod
    def of(cls, usage: object) -> TokenUsage:
        """From a `turn.completed` usage or a rollout `total_token_usage` object."""
        if not isinstance(usage, Mapping):
            return cls()

        def count(key: str) -> int:
            value = usage.get(key)
            return int(value) if isinstance(value, int | float) else 0

        return cls(
            count("input_tokens"),
            count("cached_input_tokens"),
            count("cache_write_input_tokens"),
            count("output_tokens"),
            count("reasoning_output_tokens"),
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input + other.input,
            self.cached + other.cached,
            self.cache_write + other.cache_write,
            self.output + other.output,
            self.reasoning + other.reasoning,
        )

    def __sub__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            max(0, self.input - other.input),
            max(0, self.cached - other.cached),
            max(0, self.cache_write - other.cache_write),
            max(0, self.output - other.output),
            max(0, self.reasoning - other.reasoning),
        )

    @property
    def empty(self) -> bool:
        return not (self.input or self.output)


@dataclass
class Rollout:
    """What one session file says: its models, its usage priced per model, refused calls."""

    models: list[str] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = 0.0  # None once a model without a price answered
    unpriced: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "apply_patch(a.txt)", "exec_command(…)"


def codex_home(env: Mapping[str, str]) -> Path | None:
    """Where Codex keeps its state for this environment (CODEX_HOME, else ~/.codex)."""
    if env.get("CODEX_HOME"):
        return Path(env["CODEX_HOME"]).expanduser()
    home = env.get("HOME")
    return Path(home).expanduser() / ".codex" if home else None


def find_rollouts(home: Path | None, thread_id: str) -> list[Path]:
    """The session files of thread `thread_id` under `home` (normally one)."""
    if home is None or not thread_id or "/" in thread_id:
        return []
    with contextlib.suppress(OSError):
        return sorted((home / "sessions").glob(f"*/*/*/rollout-*-{thread_id}.jsonl"))
    return []


def read_rollout(path: Path) -> Rollout | None:
    """The facts in one session file, or None when it cannot be read."""
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError:
        return None
    rollout = Rollout()
    model: str | None = None
    seen = TokenUsage()
    calls: dict[str, str] = {}  # call id → "exec_command(cmd)"
    commands: set[str] = set()  # exec_command call ids
    ran: set[str] = set()  # call ids of commands that ran (an item_completed)
    with handle:
        for kind, payload in _records(handle):
            if kind == "turn_context":
                model = payload.get("model") if isinstance(payload.get("model"), str) else model
                if model and model not in rollout.models:
                    rollout.models.append(model)
            elif kind == "event_msg" and payload.get("type") == "token_count":
                info = payload.get("info")
                totals = info.get("total_token_usage") if isinstance(info, dict) else None
                total = TokenUsage.of(totals)
                rollout.usage = total
                _price(rollout, model, total - seen)
                seen = total
            elif kind == "event_msg" and payload.get("type") == "item_completed":
                item = payload.get("item")
                if isinstance(item, dict) and item.get("type") == "CommandExecution":
                    ran.add(str(item.get("id")))
            elif kind == "response_item":
                _response_item(payload, calls, commands, rollout)
    # A command the sandbox refused before it started ran no item (openai/codex#47433).
    for call_id in commands - ran:
        label = calls[call_id]
        if label not in rollout.refused:
            rollout.refused.append(label)
    return rollout


def _records(handle: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for line in handle:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if isinstance(record, dict) and isinstance(record.get("payload"), dict):
            yield str(record.get("type")), record["payload"]


def _price(rollout: Rollout, model: str | None, usage: TokenUsage) -> None:
    if usage.empty or rollout.cost_usd is None:
        return
    prices = prices_of(model)
    if prices is None:
        rollout.cost_usd = None
        rollout.unpriced.append(model or "an unnamed model")
        return
    rollout.cost_usd += prices.cost(usage)


def _response_item(
    payload: dict[str, Any], calls: dict[str, str], commands: set[str], rollout: Rollout
) -> None:
    kind = payload.get("type")
    call_id = str(payload.get("call_id") or "")
    if kind in ("function_call", "custom_tool_call") and call_id:
        name = str(payload.get("name") or "tool")
        calls[call_id] = call_label(name, payload.get("arguments"), payload.get("input"))
        if name == "exec_command":
            commands.add(call_id)
    elif kind in ("function_call_output", "custom_tool_call_output") and call_id in calls:
        output = payload.get("output")
        text = output if isinstance(output, str) else json.dumps(output)
        if text.strip().lower().startswith(REFUSED_OUTPUTS) or (
            call_id in commands and _sandbox_refused(text)
        ):
            if calls[call_id] not in rollout.refused:
                rollout.refused.append(calls[call_id])
            commands.discard(call_id)


def _sandbox_refused(output: str) -> bool:
    """A command's output as the model got it: it failed the way a sandbox refusal does."""
    code = EXIT_CODE.search(output)
    if code is None or code.group(1) == "0":
        return False
    said = output[code.end() :].lower()
    return any(word in said for word in SANDBOX_WORDS)


def call_label(name: str, arguments: object, patch: object) -> str:
    """`exec_command(npm test)`, `apply_patch(src/a.py, b.py)`: a tool call as the user
    would name it."""
    if name == "apply_patch":
        text = patch if isinstance(patch, str) else ""
        if not text and isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                loaded = json.loads(arguments)
                text = str(loaded.get("input", "")) if isinstance(loaded, dict) else ""
        files = list(dict.fromkeys(PATCH_FILE.findall(text)))
        return f"apply_patch({', '.join(files)})" if files else "apply_patch"
    command = ""
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            loaded = json.loads(arguments)
            if isinstance(loaded, dict):
                command = str(loaded.get("cmd") or loaded.get("command") or "")
    command = " ".join(command.split())
    return f"{name}({command[:80]})" if command else name
