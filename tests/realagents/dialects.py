"""The providers' wire formats: read a request's conversation, render a scripted turn.

Four dialects, one class each:

- `Anthropic`  — `POST /v1/messages` (Claude Code), SSE or JSON;
- `Responses`  — `POST /v1/responses` (Codex), SSE or JSON;
- `Chat`       — `POST /v1/chat/completions` (aider, opencode), SSE chunks ending
  in `data: [DONE]`, or JSON;
- `Gemini`     — `POST /v1beta/models/M:streamGenerateContent?alt=sse` and
  `:generateContent` (gemini-cli).

Each reads a request body into a neutral list of `Message`s (to route and count
turns), tells a side request by its shape (`is_side`), and turns a neutral
`Reply` (text and tool calls) into the bytes of its answer. Tool calls are
chosen from the tools the request offers: `ToolPicker` maps a step to a tool
name and argument names found in the request's JSON schemas, so Claude gets
`Write`/`Edit`/`Bash`, opencode `write`/`edit`/`bash`, gemini
`write_file`/`replace`/`run_shell_command`, and Codex `apply_patch` (its
freeform tool) or `exec_command`. A chat request without tools (aider) gets
the step as text in aider's `whole` edit format.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar

from tests.realagents.script import ZERO_USAGE, Action, Edit, Fail, Read, Run, Say, Usage, Write

JSON = dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One message of a conversation, reduced to what routing and turn counting need."""

    role: str  # "user", "assistant", "tool" (a tool result) or "system"
    text: str
    tool_results: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: JSON | str  # a str for a freeform (custom) tool such as Codex's apply_patch
    custom: bool = False
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


@dataclass(frozen=True)
class Reply:
    """A neutral answer: optional text, then tool calls (none: the turn ends)."""

    text: str = ""
    calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Answer:
    """What the handler sends: status, headers, and either a JSON body or SSE frames."""

    status: int
    body: JSON | None = None
    events: tuple[bytes, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def streamed(self) -> bool:
        return self.body is None


class ScriptProblem(Exception):
    """A step cannot be rendered for this request (e.g. no tool to write with)."""


# -- helpers ------------------------------------------------------------------


def sse(event: str | None, data: JSON | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def text_of(content: Any) -> str:
    """The text in a message content: a string, or a list of text-bearing parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                value = part.get("text")
                if isinstance(value, str):
                    parts.append(value)
        return "\n".join(parts)
    return ""


CWD_PATTERNS = (
    re.compile(r"Primary working directory: (\S+)"),  # Claude Code
    re.compile(r"<cwd>([^<]+)</cwd>"),  # Codex
    re.compile(r"Working directory: (\S+)"),  # opencode
    re.compile(r"Workspace Directories:\*\*\n\s*- (\S+)"),  # gemini-cli
)


def find_cwd(texts: Iterable[str]) -> str | None:
    """The agent's working directory as its prompt states it (for absolute paths)."""
    for text in texts:
        for pattern in CWD_PATTERNS:
            found = pattern.search(text)
            if found:
                return found.group(1)
    return None


def absolute(path: str, cwd: str | None) -> str:
    if cwd is None or PurePosixPath(path).is_absolute():
        return path
    return str(PurePosixPath(cwd) / path)


def sample_json(schema: Any, hint: str = "Scripted session") -> Any:
    """A small value matching a JSON schema (side requests asking for structured output)."""
    if not isinstance(schema, Mapping):
        return hint
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        return sample_json(schema["anyOf"][0], hint)
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: sample_json(sub, hint) for name, sub in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return max(1, int(schema.get("minimum", 1)))
    if kind == "boolean":
        return False
    return hint


# -- tool choice ----------------------------------------------------------------

TOOL_NAMES: dict[str, tuple[str, ...]] = {
    "write": ("Write", "write", "write_file", "create_file"),
    "edit": ("Edit", "edit", "replace", "edit_file", "str_replace"),
    "read": ("Read", "read", "read_file", "view"),
    "run": ("Bash", "bash", "run_shell_command", "shell"),
}
ARG_NAMES: dict[str, tuple[str, ...]] = {
    "path": ("file_path", "filePath", "path", "absolute_path"),
    "text": ("content", "text", "file_text"),
    "old": ("old_string", "oldString", "old_str"),
    "new": ("new_string", "newString", "new_str"),
    "command": ("command", "cmd"),
}


@dataclass(frozen=True)
class ToolPicker:
    """The request's tools (name → JSON schema) and the working directory it states."""

    schemas: Mapping[str, Mapping[str, Any]]
    cwd: str | None

    def call(self, job: str, values: Mapping[str, str]) -> ToolCall:
        """A call of the request's tool for `job` with `values` under its own argument names."""
        for name in TOOL_NAMES[job]:
            if name in self.schemas:
                return ToolCall(name, self.arguments(self.schemas[name], values))
        msg = f"no tool to {job} with among {sorted(self.schemas)}"
        raise ScriptProblem(msg)

    def arguments(self, schema: Mapping[str, Any], values: Mapping[str, str]) -> JSON:
        props: Mapping[str, Any] = schema.get("properties") or {}
        args: JSON = {}
        for key, value in values.items():
            for candidate in ARG_NAMES.get(key, (key,)):
                if candidate in props:
                    args[candidate] = value
                    break
            else:
                msg = f"tool schema has none of {ARG_NAMES.get(key)} (properties: {sorted(props)})"
                raise ScriptProblem(msg)
        for required in schema.get("required") or ():
            if required not in args:
                # e.g. gemini's replace wants an `instruction`; Bash likes a description.
                args[required] = "scripted step"
        if "description" in props and "description" not in args:
            args["description"] = "scripted step"
        return args

    def generic(self, action: Action) -> tuple[ToolCall, ...]:
        """The usual rendering: one tool call per step, paths made absolute."""
        if isinstance(action, Write):
            path = absolute(action.path, self.cwd)
            return (self.call("write", {"path": path, "text": action.text}),)
        if isinstance(action, Edit):
            path = absolute(action.path, self.cwd)
            values = {"path": path, "old": action.old, "new": action.new}
            return (self.call("edit", values),)
        if isinstance(action, Read):
            return (self.call("read", {"path": absolute(action.path, self.cwd)}),)
        if isinstance(action, Run):
            return (self.call("run", {"command": action.command}),)
        return ()


def error_message(fail: Fail) -> str:
    return fail.message or f"scripted error {fail.status}"


# -- dialects -------------------------------------------------------------------


class Dialect:
    """Base: a provider's API as the scripted server speaks it."""

    name: ClassVar[str] = ""

    def messages(self, body: JSON) -> list[Message]:
        raise NotImplementedError

    def is_side(self, body: JSON) -> bool:
        raise NotImplementedError

    def wants_stream(self, body: JSON, path: str) -> bool:
        return bool(body.get("stream"))

    def tools(self, body: JSON) -> dict[str, Mapping[str, Any]]:
        raise NotImplementedError

    def render_action(self, body: JSON, action: Action, usage: Usage) -> Reply:
        picker = ToolPicker(self.tools(body), find_cwd(m.text for m in self.messages(body)))
        if isinstance(action, Say):
            return Reply(text=action.text, usage=usage)
        return Reply(calls=picker.generic(action), usage=usage)

    def side_reply(self, body: JSON, usage: Usage) -> Reply:
        schema = self.output_schema(body)
        if schema is not None:
            return Reply(text=json.dumps(sample_json(schema)), usage=usage)
        return Reply(text=self.side_text(body), usage=usage)

    def output_schema(self, body: JSON) -> Any:
        return None

    def side_text(self, body: JSON) -> str:
        system = " ".join(m.text for m in self.messages(body) if m.role == "system").lower()
        if "commit message" in system:
            return "Make the scripted change"
        if "title" in system:
            return "Scripted session"
        return "ok"

    def answer(self, body: JSON, path: str, reply: Reply) -> Answer:
        raise NotImplementedError

    def error(self, fail: Fail, body: JSON, path: str) -> Answer:
        raise NotImplementedError

    def count_turns(self, messages: list[Message], start: int) -> int:
        """Assistant turns after message `start` (a run of assistant messages is one turn)."""
        turns = 0
        previous = ""
        for message in messages[start + 1 :]:
            if message.role == "assistant" and previous != "assistant":
                turns += 1
            previous = message.role
        return turns


class Anthropic(Dialect):
    """Anthropic Messages API (Claude Code)."""

    name = "anthropic"
    ERROR_TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }

    def messages(self, body: JSON) -> list[Message]:
        found: list[Message] = []
        system = body.get("system")
        if system:
            found.append(Message("system", text_of(system)))
        for message in body.get("messages") or []:
            content = message.get("content")
            results: list[str] = []
            if isinstance(content, list):
                for block in content:
                    if isinstance(block, Mapping) and block.get("type") == "tool_result":
                        results.append(text_of(block.get("content")))
            role = str(message.get("role"))
            if role == "user" and results and not text_of(content).strip():
                role = "tool"
            found.append(Message(role, text_of(content), tuple(results)))
        return found

    def tools(self, body: JSON) -> dict[str, Mapping[str, Any]]:
        return {
            str(t.get("name")): t.get("input_schema") or {}
            for t in body.get("tools") or []
            if isinstance(t, Mapping)
        }

    def is_side(self, body: JSON) -> bool:
        # Claude Code's own turns always offer its tools; the session-title and
        # other helper requests offer none.
        return not body.get("tools")

    def output_schema(self, body: JSON) -> Any:
        fmt = (body.get("output_config") or {}).get("format")
        if isinstance(fmt, Mapping):
            return fmt.get("schema")
        return None

    def render_action(self, body: JSON, action: Action, usage: Usage) -> Reply:
        reply = super().render_action(body, action, usage)
        if isinstance(action, Edit) and reply.calls:
            # Claude Code refuses to edit a file it has not read in this session:
            # read it in the same turn (tools of one message run in order).
            picker = ToolPicker(self.tools(body), find_cwd(m.text for m in self.messages(body)))
            path = absolute(action.path, picker.cwd)
            reply = Reply(calls=(picker.call("read", {"path": path}), *reply.calls), usage=usage)
        return reply

    @staticmethod
    def usage_json(usage: Usage, output_tokens: int) -> JSON:
        return {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "output_tokens": output_tokens,
        }

    def blocks(self, reply: Reply) -> list[JSON]:
        blocks: list[JSON] = []
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for call in reply.calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{call.call_id}",
                    "name": call.name,
                    "input": call.arguments,
                }
            )
        return blocks

    def answer(self, body: JSON, path: str, reply: Reply) -> Answer:
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        model = str(body.get("model", "claude"))
        stop = "tool_use" if reply.calls else "end_turn"
        blocks = self.blocks(reply)
        if not self.wants_stream(body, path):
            return Answer(
                200,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": self.usage_json(reply.usage, reply.usage.output_tokens),
                },
            )
        events = [self.message_start(message_id, model, reply.usage)]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                start: JSON = {"type": "text", "text": ""}
                delta: JSON = {"type": "text_delta", "text": block["text"]}
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(
                sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            events.append(
                sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
            events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": self.usage_json(reply.usage, reply.usage.output_tokens),
                },
            )
        )
        events.append(sse("message_stop", {"type": "message_stop"}))
        return Answer(200, events=tuple(events))

    def message_start(self, message_id: str, model: str, usage: Usage) -> bytes:
        return sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": self.usage_json(usage, 1),
                },
            },
        )

    def error(self, fail: Fail, body: JSON, path: str) -> Answer:
        kind = fail.kind or self.ERROR_TYPES.get(fail.status, "api_error")
        payload: JSON = {"type": "error", "error": {"type": kind, "message": error_message(fail)}}
        headers: tuple[tuple[str, str], ...] = ()
        if fail.retry_after is not None:
            headers = (("retry-after", f"{fail.retry_after:g}"),)
        if fail.in_stream and self.wants_stream(body, path):
            start = self.message_start(
                f"msg_{uuid.uuid4().hex[:24]}", str(body.get("model")), ZERO_USAGE
            )
            return Answer(200, events=(start, sse("error", payload)), headers=headers)
        return Answer(fail.status, payload, headers=headers)


class Responses(Dialect):
    """OpenAI Responses API (Codex)."""

    name = "responses"
    ASSISTANT_ITEMS: ClassVar[frozenset[str]] = frozenset(
        {"function_call", "custom_tool_call", "local_shell_call", "reasoning", "web_search_call"}
    )
    RESULT_ITEMS: ClassVar[frozenset[str]] = frozenset(
        {"function_call_output", "custom_tool_call_output", "local_shell_call_output"}
    )

    def messages(self, body: JSON) -> list[Message]:
        found: list[Message] = []
        if body.get("instructions"):
            found.append(Message("system", str(body["instructions"])))
        items = body.get("input")
        if isinstance(items, str):
            return [*found, Message("user", items)]
        for item in items or []:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type", "message")
            if kind == "message":
                role = str(item.get("role"))
                role = "system" if role == "developer" else role
                found.append(Message(role, text_of(item.get("content"))))
            elif kind in self.ASSISTANT_ITEMS:
                found.append(Message("assistant", ""))
            elif kind in self.RESULT_ITEMS:
                output = item.get("output")
                text = output if isinstance(output, str) else text_of(output)
                found.append(Message("tool", "", (text,)))
        return found

    def tools(self, body: JSON) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for tool in body.get("tools") or []:
            if isinstance(tool, Mapping) and tool.get("name"):
                found[str(tool["name"])] = {
                    **(tool.get("parameters") or {}),
                    "tool_type": tool.get("type"),
                }
        return found

    def is_side(self, body: JSON) -> bool:
        # Codex's TUI asks for a thread title on a side thread that carries the prompt
        # (so its marker) and offers apply_patch: told by its output schema {title}.
        schema = self.output_schema(body)
        properties = schema.get("properties") if isinstance(schema, Mapping) else None
        asks_title = isinstance(properties, Mapping) and set(properties) == {"title"}
        return not body.get("tools") or asks_title

    def output_schema(self, body: JSON) -> Any:
        fmt = (body.get("text") or {}).get("format")
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            return fmt.get("schema")
        return None

    def render_action(self, body: JSON, action: Action, usage: Usage) -> Reply:
        if isinstance(action, Say):
            return Reply(text=action.text, usage=usage)
        tools = self.tools(body)
        patcher = tools.get("apply_patch", {})
        if isinstance(action, Write | Edit) and patcher:
            patch = apply_patch_text(action)
            if patcher.get("tool_type") == "custom":
                return Reply(calls=(ToolCall("apply_patch", patch, custom=True),), usage=usage)
            return Reply(calls=(ToolCall("apply_patch", {"input": patch}),), usage=usage)
        if "exec_command" not in tools:
            msg = f"Codex request offers no exec_command tool (tools: {sorted(tools)})"
            raise ScriptProblem(msg)
        if isinstance(action, Run):
            args: JSON = {"cmd": action.command}
            if action.escalate:
                args["sandbox_permissions"] = "require_escalated"
                args["justification"] = "The scripted step needs to run outside the sandbox."
        elif isinstance(action, Read):
            args = {"cmd": f"cat {shlex.quote(action.path)}"}
        elif isinstance(action, Write | Edit):
            args = {"cmd": shell_write(action)}
        else:
            msg = f"cannot render {action!r} for Codex"
            raise ScriptProblem(msg)
        return Reply(calls=(ToolCall("exec_command", args),), usage=usage)

    @staticmethod
    def usage_json(usage: Usage) -> JSON:
        return {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {
                "cached_tokens": usage.cache_read_input_tokens,
                "cache_write_tokens": usage.cache_creation_input_tokens,
            },
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.input_tokens + usage.output_tokens,
        }

    def items(self, reply: Reply) -> list[JSON]:
        items: list[JSON] = []
        if reply.text:
            items.append(
                {
                    "type": "message",
                    "id": f"msg_{uuid.uuid4().hex[:24]}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        for call in reply.calls:
            if call.custom:
                items.append(
                    {
                        "type": "custom_tool_call",
                        "id": f"ctc_{call.call_id}",
                        "call_id": f"call_{call.call_id}",
                        "name": call.name,
                        "input": call.arguments,
                        "status": "completed",
                    }
                )
            else:
                items.append(
                    {
                        "type": "function_call",
                        "id": f"fc_{call.call_id}",
                        "call_id": f"call_{call.call_id}",
                        "name": call.name,
                        "arguments": json.dumps(call.arguments),
                        "status": "completed",
                    }
                )
        return items

    def answer(self, body: JSON, path: str, reply: Reply) -> Answer:
        response_id = f"resp_{uuid.uuid4().hex[:24]}"
        items = self.items(reply)
        base: JSON = {
            "id": response_id,
            "object": "response",
            "created_at": 0,
            "model": body.get("model"),
        }
        done = {
            **base,
            "status": "completed",
            "output": items,
            "usage": self.usage_json(reply.usage),
        }
        if not self.wants_stream(body, path):
            return Answer(200, done)
        seq = iter(range(1_000_000))
        events = [
            sse(
                "response.created",
                {
                    "type": "response.created",
                    "sequence_number": next(seq),
                    "response": {**base, "status": "in_progress", "output": []},
                },
            )
        ]
        for index, item in enumerate(items):
            added = {**item, "status": "in_progress"}
            if item["type"] == "message":
                added["content"] = []
            events.append(
                sse(
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": next(seq),
                        "output_index": index,
                        "item": added,
                    },
                )
            )
            if item["type"] == "message":
                events.append(
                    sse(
                        "response.output_text.delta",
                        {
                            "type": "response.output_text.delta",
                            "sequence_number": next(seq),
                            "item_id": item["id"],
                            "output_index": index,
                            "content_index": 0,
                            "delta": item["content"][0]["text"],
                        },
                    )
                )
            events.append(
                sse(
                    "response.output_item.done",
                    {
                        "type": "response.output_item.done",
                        "sequence_number": next(seq),
                        "output_index": index,
                        "item": item,
                    },
                )
            )
        events.append(
            sse(
                "response.completed",
                {"type": "response.completed", "sequence_number": next(seq), "response": done},
            )
        )
        return Answer(200, events=tuple(events))

    def error(self, fail: Fail, body: JSON, path: str) -> Answer:
        kinds = {429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
        kind = fail.kind or kinds.get(fail.status, "server_error")
        payload = {
            "error": {"message": error_message(fail), "type": kind, "param": None, "code": kind}
        }
        headers: tuple[tuple[str, str], ...] = ()
        if fail.retry_after is not None:
            headers = (("retry-after", f"{fail.retry_after:g}"),)
        return Answer(fail.status, payload, headers=headers)


def apply_patch_text(action: Write | Edit) -> str:
    """The patch Codex's apply_patch tool takes for a write (add) or edit (update)."""
    if isinstance(action, Write):
        lines = action.text.splitlines() or [""]
        body = "\n".join(f"+{line}" for line in lines)
        return f"*** Begin Patch\n*** Add File: {action.path}\n{body}\n*** End Patch\n"
    old = "\n".join(f"-{line}" for line in action.old.splitlines())
    new = "\n".join(f"+{line}" for line in action.new.splitlines())
    return f"*** Begin Patch\n*** Update File: {action.path}\n@@\n{old}\n{new}\n*** End Patch\n"


def shell_write(action: Write | Edit) -> str:
    """A shell command doing the write or edit (when no patch tool is offered)."""
    path = shlex.quote(action.path)
    if isinstance(action, Write):
        parent = shlex.quote(str(PurePosixPath(action.path).parent))
        delimiter = f"LIMITLESS_EOF_{uuid.uuid4().hex[:8]}"
        text = action.text if action.text.endswith("\n") else action.text + "\n"
        return f"mkdir -p {parent} && cat > {path} <<'{delimiter}'\n{text}{delimiter}"
    program = (
        "import sys, pathlib; p = pathlib.Path(sys.argv[1]); "
        "p.write_text(p.read_text().replace(sys.argv[2], sys.argv[3], 1))"
    )
    old, new = shlex.quote(action.old), shlex.quote(action.new)
    return f"python3 -c {shlex.quote(program)} {path} {old} {new}"


class Chat(Dialect):
    """OpenAI chat completions (aider, opencode)."""

    name = "chat"
    # A chat request without tools whose system prompt matches one of these is
    # a helper request of the program, not a turn of the conversation.
    SIDE_PATTERNS: ClassVar[tuple[re.Pattern[str], ...]] = (
        re.compile(r"title generator", re.I),  # opencode's session title
        re.compile(r"commit message", re.I),  # aider's commit message
        re.compile(r"summariz", re.I),  # aider's chat-history summary
    )

    def messages(self, body: JSON) -> list[Message]:
        found: list[Message] = []
        for message in body.get("messages") or []:
            role = str(message.get("role"))
            if role == "developer":
                role = "system"
            if role == "tool":
                found.append(Message("tool", "", (text_of(message.get("content")),)))
                continue
            found.append(Message(role, text_of(message.get("content"))))
        return found

    def tools(self, body: JSON) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for tool in body.get("tools") or []:
            function = tool.get("function") if isinstance(tool, Mapping) else None
            if isinstance(function, Mapping) and function.get("name"):
                found[str(function["name"])] = function.get("parameters") or {}
        return found

    def is_side(self, body: JSON) -> bool:
        if body.get("tools"):
            return False
        system = " ".join(m.text for m in self.messages(body) if m.role == "system")
        return any(p.search(system) for p in self.SIDE_PATTERNS)

    def output_schema(self, body: JSON) -> Any:
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            return (fmt.get("json_schema") or {}).get("schema")
        return None

    def render_action(self, body: JSON, action: Action, usage: Usage) -> Reply:
        if body.get("tools"):
            return super().render_action(body, action, usage)
        return Reply(text=whole_format(action, self.messages(body)), usage=usage)

    @staticmethod
    def usage_json(usage: Usage) -> JSON:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        }

    def answer(self, body: JSON, path: str, reply: Reply) -> Answer:
        chat_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        model = body.get("model")
        finish = "tool_calls" if reply.calls else "stop"
        tool_calls = [
            {
                "id": f"call_{call.call_id}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in reply.calls
        ]
        if not self.wants_stream(body, path):
            message: JSON = {"role": "assistant", "content": reply.text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return Answer(
                200,
                {
                    "id": chat_id,
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": self.usage_json(reply.usage),
                },
            )
        base: JSON = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
        }

        def chunk(delta: JSON, finish_reason: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return sse(None, {**base, "choices": [choice], **extra})

        events = [chunk({"role": "assistant", "content": ""})]
        if reply.text:
            events.append(chunk({"content": reply.text}))
        for index, call in enumerate(tool_calls):
            events.append(chunk({"tool_calls": [{"index": index, **call}]}))
        usage = self.usage_json(reply.usage)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if include_usage:
            events.append(chunk({}, finish))
            events.append(sse(None, {**base, "choices": [], "usage": usage}))
        else:
            events.append(chunk({}, finish, usage=usage))
        events.append(sse(None, "[DONE]"))
        return Answer(200, events=tuple(events))

    def error(self, fail: Fail, body: JSON, path: str) -> Answer:
        kinds = {429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
        kind = fail.kind or kinds.get(fail.status, "server_error")
        payload = {
            "error": {"message": error_message(fail), "type": kind, "param": None, "code": kind}
        }
        headers: tuple[tuple[str, str], ...] = ()
        if fail.retry_after is not None:
            headers = (("retry-after", f"{fail.retry_after:g}"),)
        return Answer(fail.status, payload, headers=headers)


FENCE = "```"


def whole_format(action: Action, messages: list[Message]) -> str:
    """aider's `whole` edit format: the file's path on a line, then its whole text fenced."""
    if isinstance(action, Say):
        return action.text
    if isinstance(action, Run):
        return f"Run this:\n\n{FENCE}bash\n{action.command}\n{FENCE}\n"
    if isinstance(action, Read):
        return f"Please add {action.path} to the chat."
    if isinstance(action, Write):
        text = action.text
    elif isinstance(action, Edit):
        current = file_in_chat(action.path, messages)
        if current is None:
            msg = f"aider edit of {action.path}: its text is not in the conversation (add the file)"
            raise ScriptProblem(msg)
        if action.old not in current:
            msg = f"aider edit of {action.path}: {action.old!r} is not in its text"
            raise ScriptProblem(msg)
        text = current.replace(action.old, action.new, 1)
    else:
        msg = f"cannot render {action!r} for aider"
        raise ScriptProblem(msg)
    if not text.endswith("\n"):
        text += "\n"
    return f"{action.path}\n{FENCE}\n{text}{FENCE}\n"


def file_in_chat(path: str, messages: list[Message]) -> str | None:
    """The latest text of `path` that aider put into the chat (path line, fenced text)."""
    pattern = re.compile(rf"^{re.escape(path)}\n{FENCE}[^\n]*\n(.*?)^{FENCE}", re.M | re.S)
    found: str | None = None
    for message in messages:
        if message.role != "user":
            continue
        for match in pattern.finditer(message.text):
            found = match.group(1)
    return found


class Gemini(Dialect):
    """Google's Generative Language API (gemini-cli with GOOGLE_GEMINI_BASE_URL)."""

    name = "gemini"
    STATUS: ClassVar[dict[int, str]] = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }

    def messages(self, body: JSON) -> list[Message]:
        found: list[Message] = []
        system = body.get("systemInstruction")
        if isinstance(system, Mapping):
            found.append(Message("system", text_of(system.get("parts"))))
        for content in body.get("contents") or []:
            parts = content.get("parts") or []
            results = tuple(
                json.dumps(p["functionResponse"].get("response"))
                for p in parts
                if isinstance(p, Mapping) and "functionResponse" in p
            )
            role = "assistant" if content.get("role") == "model" else "user"
            if results:
                role = "tool"
            found.append(Message(role, text_of(parts), results))
        return found

    def tools(self, body: JSON) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for tool in body.get("tools") or []:
            for decl in tool.get("functionDeclarations") or []:
                schema = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
                found[str(decl.get("name"))] = schema
        return found

    def is_side(self, body: JSON) -> bool:
        # The model router's complexity request and other helpers offer no tools.
        return not body.get("tools")

    def wants_stream(self, body: JSON, path: str) -> bool:
        return ":streamGenerateContent" in path

    def output_schema(self, body: JSON) -> Any:
        config = body.get("generationConfig") or {}
        return config.get("responseJsonSchema") or config.get("responseSchema")

    def answer(self, body: JSON, path: str, reply: Reply) -> Answer:
        parts: list[JSON] = []
        if reply.text:
            parts.append({"text": reply.text})
        for call in reply.calls:
            parts.append(
                {"functionCall": {"id": call.call_id, "name": call.name, "args": call.arguments}}
            )
        usage = {
            "promptTokenCount": reply.usage.input_tokens,
            "candidatesTokenCount": reply.usage.output_tokens,
            "cachedContentTokenCount": reply.usage.cache_read_input_tokens,
            "thoughtsTokenCount": reply.usage.reasoning_tokens,
            "totalTokenCount": reply.usage.input_tokens + reply.usage.output_tokens,
        }
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        whole: JSON = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
            "modelVersion": model,
        }
        if not self.wants_stream(body, path):
            return Answer(200, whole)
        return Answer(200, events=(sse(None, whole),))

    def error(self, fail: Fail, body: JSON, path: str) -> Answer:
        status = fail.kind or self.STATUS.get(fail.status, "INTERNAL")
        payload = {"error": {"code": fail.status, "message": error_message(fail), "status": status}}
        headers: tuple[tuple[str, str], ...] = ()
        if fail.retry_after is not None:
            headers = (("retry-after", f"{fail.retry_after:g}"),)
        return Answer(fail.status, payload, headers=headers)


DIALECTS: dict[str, Dialect] = {d.name: d for d in (Anthropic(), Responses(), Chat(), Gemini())}


def dialect_for(method: str, path: str) -> Dialect | None:
    """The dialect a POST to `path` speaks (None: not a model call)."""
    if method != "POST":
        return None
    bare = path.split("?", 1)[0]
    if bare.endswith("/messages"):
        return DIALECTS["anthropic"]
    if bare.endswith("/responses"):
        return DIALECTS["responses"]
    if bare.endswith("/chat/completions"):
        return DIALECTS["chat"]
    if ":generateContent" in bare or ":streamGenerateContent" in bare:
        return DIALECTS["gemini"]
    return None
