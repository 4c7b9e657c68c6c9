"""The scripted model server on its own: routing, turns, errors, side requests, dialects.

These speak HTTP to the server directly (no agent program), with request bodies
shaped like the ones the real programs send (see tests/realagents/README.md).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple

import pytest

from tests.realagents.dialects import apply_patch_text, file_in_chat, sample_json
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import (
    Edit,
    Script,
    Usage,
    Write,
    edit,
    error,
    read,
    run,
    say,
    write,
)

CLAUDE_TOOLS = [
    {
        "name": "Write",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["file_path", "content"],
        },
    },
    {
        "name": "Edit",
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
                "replace_all": {"type": "boolean"},
            },
            "required": ["file_path", "old_string", "new_string"],
        },
    },
    {
        "name": "Read",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}},
            "required": ["file_path"],
        },
    },
    {
        "name": "Bash",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
            "required": ["command"],
        },
    },
]
SYSTEM = [{"type": "text", "text": "Primary working directory: /work/repo\n"}]


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[tuple[str | None, Any]]:
        """The server-sent events: (event name, parsed data)."""
        found: list[tuple[str | None, Any]] = []
        for frame in self.body.decode().split("\n\n"):
            name, data = None, None
            for line in frame.splitlines():
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    raw = line[len("data: ") :]
                    data = raw if raw == "[DONE]" else json.loads(raw)
            if data is not None:
                found.append((name, data))
        return found


def post(server: ModelServer, path: str, body: dict[str, Any], **headers: str) -> Response:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return Response(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as failed:
        return Response(failed.code, dict(failed.headers), failed.read())


def claude_body(
    *messages: dict[str, Any], stream: bool = True, tools: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-opus-4-8",
        "system": SYSTEM,
        "messages": list(messages),
        "stream": stream,
    }
    if tools:
        body["tools"] = CLAUDE_TOOLS
    return body


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def tool_turn(result: str) -> list[dict[str, Any]]:
    """An assistant tool_use and the user's tool_result for it."""
    return [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": result}],
        },
    ]


def tool_uses(response: Response) -> list[dict[str, Any]]:
    """The tool_use blocks of a streamed Anthropic answer, with their input parsed."""
    uses: list[dict[str, Any]] = []
    for name, data in response.events():
        if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
            uses.append(dict(data["content_block"]))
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            uses[-1]["input"] = json.loads(data["delta"]["partial_json"])
    return uses


def test_nothing_listens_after_the_server_stops() -> None:
    """After stop() the port refuses connections."""
    server = ModelServer().start()
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_the_fixture_server_binds_loopback_on_a_free_port(model_server: ModelServer) -> None:
    """The fixture's server is started on 127.0.0.1 with a port the OS chose."""
    assert model_server.url == f"http://127.0.0.1:{model_server.port}"
    assert model_server.port > 0


def test_anthropic_write_is_a_streamed_tool_use_with_usage(model_server: ModelServer) -> None:
    """A write step becomes a Write tool_use with an absolute path; usage in start and delta."""
    model_server.add(Script("w", [write("a.txt", "hi\n", usage=Usage(1000, 50, 7, 3))]))
    answer = post(model_server, "/v1/messages?beta=true", claude_body(user("go [script:w]")))
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/event-stream"
    events = answer.events()
    assert [n for n, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert tool_uses(answer)[0]["name"] == "Write"
    assert tool_uses(answer)[0]["input"] == {"file_path": "/work/repo/a.txt", "content": "hi\n"}
    start_usage = events[0][1]["message"]["usage"]
    assert start_usage["input_tokens"] == 1000
    assert start_usage["cache_creation_input_tokens"] == 7
    assert start_usage["cache_read_input_tokens"] == 3
    assert events[4][1]["delta"]["stop_reason"] == "tool_use"
    assert events[4][1]["usage"]["output_tokens"] == 50


def test_anthropic_edit_reads_the_file_in_the_same_turn(model_server: ModelServer) -> None:
    """Claude Code edits only files it has read: an edit step is Read then Edit in one turn."""
    model_server.add(Script("e", [edit("a.txt", "hi", "hello")]))
    answer = post(model_server, "/v1/messages", claude_body(user("[script:e]")))
    uses = tool_uses(answer)
    assert [u["name"] for u in uses] == ["Read", "Edit"]
    assert uses[1]["input"] == {
        "file_path": "/work/repo/a.txt",
        "old_string": "hi",
        "new_string": "hello",
    }


def test_the_turn_is_the_number_of_assistant_turns_after_the_prompt(
    model_server: ModelServer,
) -> None:
    """Each request is answered from the step its conversation has reached."""
    model_server.add(Script("t", [run("make"), run("make test"), say("done")]))
    first = post(model_server, "/v1/messages", claude_body(user("[script:t]")))
    second = post(model_server, "/v1/messages", claude_body(user("[script:t]"), *tool_turn("ok")))
    third = post(
        model_server,
        "/v1/messages",
        claude_body(user("[script:t]"), *tool_turn("ok"), *tool_turn("ok")),
    )
    assert tool_uses(first)[0]["input"]["command"] == "make"
    assert tool_uses(second)[0]["input"]["command"] == "make test"
    assert third.events()[2][1]["delta"] == {"type": "text_delta", "text": "done"}
    assert [r.turn for r in model_server.main_requests("t")] == [0, 1, 2]
    assert model_server.main_requests("t")[2].tool_results == ["ok", "ok"]


def test_an_error_step_fails_its_times_then_the_turn_goes_on(model_server: ModelServer) -> None:
    """error(429, times=2) fails two requests of that turn, then the next step answers."""
    model_server.add(Script("r", [error(429, times=2, retry_after=1.5), say("ok")]))
    statuses = [post(model_server, "/v1/messages", claude_body(user("[script:r]"))) for _ in "abc"]
    assert [s.status for s in statuses] == [429, 429, 200]
    assert statuses[0].json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "scripted error 429"},
    }
    assert statuses[0].headers["retry-after"] == "1.5"
    assert [r.error for r in model_server.main_requests("r")] == ["429", "429", None]


def test_overloaded_error_names_its_type_and_can_come_in_the_stream(
    model_server: ModelServer,
) -> None:
    """529 is an overloaded_error; in_stream sends it as an SSE error after message_start."""
    model_server.add(Script("o", [error(529), error(529, in_stream=True), say("ok")]))
    plain = post(model_server, "/v1/messages", claude_body(user("[script:o]")))
    streamed = post(model_server, "/v1/messages", claude_body(user("[script:o]")))
    assert plain.status == 529
    assert plain.json()["error"]["type"] == "overloaded_error"
    assert streamed.status == 200
    assert [n for n, _ in streamed.events()] == ["message_start", "error"]
    assert streamed.events()[1][1]["error"]["type"] == "overloaded_error"


def test_an_endless_error_never_lets_the_turn_through(model_server: ModelServer) -> None:
    """error(500, times=None) fails every request of its turn."""
    model_server.add(Script("f", [error(500, times=None), say("never")]))
    statuses = {post(model_server, "/v1/messages", claude_body(user("[script:f]"))).status}
    statuses |= {post(model_server, "/v1/messages", claude_body(user("[script:f]"))).status}
    assert statuses == {500}


def test_a_title_request_is_a_side_request_answered_by_its_schema(
    model_server: ModelServer,
) -> None:
    """No tools + an output schema: answered with matching JSON, and no step is used."""
    model_server.add(Script("s", [say("first step")]))
    body = claude_body(user("title for: [script:s]"), stream=False, tools=False)
    body["output_config"] = {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
            },
        }
    }
    side = post(model_server, "/v1/messages", body)
    assert json.loads(side.json()["content"][0]["text"]) == {"title": "Scripted session"}
    assert side.json()["usage"]["input_tokens"] == 0
    main = post(model_server, "/v1/messages", claude_body(user("[script:s]"), stream=False))
    assert main.json()["content"] == [{"type": "text", "text": "first step"}]
    assert [r.kind for r in model_server.model_requests()] == ["side", "main"]


def test_probes_and_token_counts_are_answered(model_server: ModelServer) -> None:
    """HEAD / and GET /v1/models get 200; count_tokens a number; none uses a step."""
    head = urllib.request.Request(model_server.url + "/", method="HEAD")
    with urllib.request.urlopen(head, timeout=5) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(model_server.url + "/v1/models", timeout=5) as answer:
        assert json.loads(answer.read()) == {"object": "list", "data": []}
    counted = post(model_server, "/v1/messages/count_tokens", {"messages": []})
    assert counted.json()["input_tokens"] >= 1
    assert [r.kind for r in model_server.requests] == ["probe", "probe", "side"]


def test_unmatched_exhausted_and_unknown_requests_are_problems(model_server: ModelServer) -> None:
    """A conversation no script claims, a turn past the end, an unknown path: all recorded."""
    model_server.add(Script("x", [say("only")]))
    unmatched = post(model_server, "/v1/messages", claude_body(user("no marker"), stream=False))
    assert "no script matches" in unmatched.json()["content"][0]["text"]
    post(model_server, "/v1/messages", claude_body(user("[script:x]"), *tool_turn("ok")))
    assert post(model_server, "/v2/whatever", {}).status == 404
    assert [r.kind for r in model_server.problems()] == ["unmatched", "exhausted", "unknown"]


def test_a_script_can_be_routed_by_a_substring(model_server: ModelServer) -> None:
    """match= routes by any text of a user message instead of the marker."""
    model_server.add(Script("m", [say("matched")], match="refactor the parser"))
    answer = post(
        model_server, "/v1/messages", claude_body(user("please refactor the parser"), stream=False)
    )
    assert answer.json()["content"][0]["text"] == "matched"


def test_secret_headers_are_not_recorded(model_server: ModelServer) -> None:
    """x-api-key and Authorization are recorded as <redacted>."""
    model_server.add(Script("k", [say("ok")]))
    post(
        model_server,
        "/v1/messages",
        claude_body(user("[script:k]")),
        **{"x-api-key": "sk-secret", "Authorization": "Bearer sk-secret"},
    )
    headers = model_server.requests[0].headers
    assert headers["x-api-key"] == "<redacted>"
    assert headers["authorization"] == "<redacted>"
    assert "sk-secret" not in json.dumps(headers)


def test_concurrent_conversations_each_get_their_own_steps(model_server: ModelServer) -> None:
    """Eight threads, two scripts, several turns each: every answer matches its script."""
    model_server.add(
        Script("one", [run("echo one-0"), run("echo one-1"), say("one done")]),
        Script("two", [run("echo two-0"), run("echo two-1"), say("two done")]),
    )
    wrong: list[str] = []

    def converse(name: str) -> None:
        history = [user(f"task [script:{name}]")]
        for turn in range(2):
            uses = tool_uses(post(model_server, "/v1/messages", claude_body(*history)))
            if uses[0]["input"]["command"] != f"echo {name}-{turn}":
                wrong.append(f"{name} turn {turn}: {uses}")
            history += tool_turn(f"{name}-{turn}")

    threads = [threading.Thread(target=converse, args=(n,)) for n in ("one", "two") * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert wrong == []
    assert len(model_server.main_requests("one")) == 8
    assert len(model_server.main_requests("two")) == 8


def test_a_delayed_step_is_answered_after_its_delay(model_server: ModelServer) -> None:
    """delay= holds the answer back (an agent that looks busy)."""
    model_server.add(Script("d", [say("late", delay=0.3)]))
    started = time.monotonic()
    post(model_server, "/v1/messages", claude_body(user("[script:d]")))
    assert time.monotonic() - started >= 0.3


def test_a_gated_step_waits_for_its_event(model_server: ModelServer) -> None:
    """gate= holds the answer until the test sets the event."""
    gate = threading.Event()
    model_server.add(Script("g", [say("released", gate=gate)]))
    answers: list[Response] = []
    asking = threading.Thread(
        target=lambda: answers.append(
            post(model_server, "/v1/messages", claude_body(user("[script:g]")))
        )
    )
    asking.start()
    model_server.wait_until_held("g", timeout=10)
    assert model_server.held() == [("g", 0)]
    assert model_server.requests == []  # recorded once answered
    gate.set()
    asking.join(timeout=10)
    assert answers[0].events()[2][1]["delta"]["text"] == "released"
    assert model_server.held() == []


def test_wait_for_fails_naming_what_it_saw(model_server: ModelServer) -> None:
    """wait_for raises AssertionError after its timeout, listing the requests seen."""
    with pytest.raises(AssertionError, match=r"no main request in 0\.1 s"):
        model_server.wait_for(lambda rs: bool(rs), timeout=0.1, what="main request")


RESPONSES_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
    {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
]


def responses_body(*items: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> dict:
    return {
        "model": "gpt-5.5",
        "stream": True,
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "x"}],
            },
            *items,
        ],
        "tools": RESPONSES_TOOLS if tools is None else tools,
    }


def codex_message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


def codex_user(text: str) -> dict[str, Any]:
    return codex_message("user", text)


def test_responses_write_is_an_apply_patch_call_and_usage_is_in_completed(
    model_server: ModelServer,
) -> None:
    """Codex gets its freeform apply_patch tool for a write; usage arrives in response.completed."""
    model_server.add(Script("c", [write("a.txt", "one\ntwo\n", usage=Usage(300, 40, 50, 100))]))
    events = post(model_server, "/v1/responses", responses_body(codex_user("[script:c]"))).events()
    names = [n for n, _ in events]
    assert names[0] == "response.created"
    assert names[-1] == "response.completed"
    item = next(d["item"] for n, d in events if n == "response.output_item.done")
    assert item["type"] == "custom_tool_call"
    assert item["name"] == "apply_patch"
    assert item["input"] == "*** Begin Patch\n*** Add File: a.txt\n+one\n+two\n*** End Patch\n"
    usage = events[-1][1]["response"]["usage"]
    assert usage["input_tokens"] == 300
    assert usage["input_tokens_details"] == {"cached_tokens": 100, "cache_write_tokens": 50}
    assert usage["output_tokens"] == 40


def test_codex_thread_title_request_is_a_side_request(model_server: ModelServer) -> None:
    """Codex's TUI asks for a thread title with tools and the prompt (its marker) in it,
    but an output schema {title}: a side request, answered with a title, using no step."""
    model_server.add(Script("t", [say("first step")]))
    body = responses_body(codex_user("Generate a concise title.\n\nUser prompt:\n[script:t]"))
    body["text"] = {
        "format": {
            "type": "json_schema",
            "name": "codex_output_schema",
            "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
        }
    }
    side = post(model_server, "/v1/responses", body).events()
    done = next(d["item"] for n, d in side if n == "response.output_item.done")
    assert json.loads(done["content"][0]["text"]) == {"title": "Scripted session"}
    main = post(model_server, "/v1/responses", responses_body(codex_user("[script:t]"))).events()
    message = next(d["item"] for n, d in main if n == "response.output_item.done")
    assert message["content"][0]["text"] == "first step"
    assert [r.kind for r in model_server.model_requests()] == ["side", "main"]


def test_responses_run_is_exec_command_and_its_output_is_recorded(
    model_server: ModelServer,
) -> None:
    """A run step is exec_command {cmd}; a function_call_output comes back as a tool result."""
    model_server.add(Script("c", [run("ls", escalate=True), say("done")]))
    first = post(model_server, "/v1/responses", responses_body(codex_user("[script:c]"))).events()
    call = next(d["item"] for n, d in first if n == "response.output_item.done")
    assert call["name"] == "exec_command"
    assert json.loads(call["arguments"])["cmd"] == "ls"
    assert json.loads(call["arguments"])["sandbox_permissions"] == "require_escalated"
    post(
        model_server,
        "/v1/responses",
        responses_body(
            codex_user("[script:c]"),
            {"type": "function_call", "call_id": call["call_id"], "name": "exec_command"},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "a.txt\n"},
        ),
    )
    assert model_server.main_requests("c")[1].tool_results == ["a.txt\n"]
    assert model_server.main_requests("c")[1].turn == 1


def test_responses_without_a_patch_tool_writes_with_the_shell(model_server: ModelServer) -> None:
    """Without apply_patch in the request, a write is a heredoc through exec_command."""
    model_server.add(Script("c", [write("d/a.txt", "x")]))
    tools = [RESPONSES_TOOLS[0]]
    events = post(
        model_server, "/v1/responses", responses_body(codex_user("[script:c]"), tools=tools)
    ).events()
    call = next(d["item"] for n, d in events if n == "response.output_item.done")
    cmd = json.loads(call["arguments"])["cmd"]
    assert cmd.startswith("mkdir -p d && cat > d/a.txt <<'LIMITLESS_EOF_")
    assert "\nx\nLIMITLESS_EOF_" in cmd


def test_apply_patch_text_updates_whole_lines() -> None:
    """An edit is an Update File hunk of removed and added lines."""
    patch = apply_patch_text(Edit("a.txt", "old line", "new line"))
    assert patch == (
        "*** Begin Patch\n*** Update File: a.txt\n@@\n-old line\n+new line\n*** End Patch\n"
    )
    assert "*** Add File: b.txt\n+\n" in apply_patch_text(Write("b.txt", ""))


AIDER_SYSTEM = {"role": "system", "content": "Act as an expert software developer."}


def test_chat_without_tools_answers_in_aiders_whole_format(model_server: ModelServer) -> None:
    """aider (no tools): an edit is the whole new file under its path, fenced; [DONE] ends."""
    model_server.add(Script("a", [edit("a.txt", "hello", "hello world")]))
    chat_file = {"role": "user", "content": "I added these files:\n\na.txt\n```\nhello\nbye\n```\n"}
    body = {
        "model": "limitless-fake",
        "stream": True,
        "messages": [
            AIDER_SYSTEM,
            chat_file,
            {"role": "assistant", "content": "Ok."},
            {"role": "user", "content": "change it [script:a]"},
        ],
    }
    events = post(model_server, "/v1/chat/completions", body).events()
    text = "".join(d["choices"][0]["delta"].get("content", "") for _, d in events[:-1])
    assert text == "a.txt\n```\nhello world\nbye\n```\n"
    assert events[-1][1] == "[DONE]"
    assert events[-2][1]["usage"]["prompt_tokens"] == 100


def test_aiders_commit_message_request_is_a_side_request(model_server: ModelServer) -> None:
    """A chat request whose system prompt asks for a commit message uses no step."""
    model_server.add(Script("a", [say("step")]))
    body = {
        "model": "limitless-fake",
        "messages": [
            {"role": "system", "content": "You generate concise, one-line Git commit messages."},
            {"role": "user", "content": "diff for [script:a]"},
        ],
    }
    answer = post(model_server, "/v1/chat/completions", body)
    assert answer.json()["choices"][0]["message"]["content"] == "Make the scripted change"
    assert model_server.requests[0].kind == "side"


def test_chat_with_tools_calls_opencodes_tools(model_server: ModelServer) -> None:
    """opencode's write tool gets filePath/content; the usage chunk comes before [DONE]."""
    model_server.add(Script("o", [write("a.txt", "hi")]))
    schema = {
        "type": "object",
        "properties": {"filePath": {"type": "string"}, "content": {"type": "string"}},
        "required": ["content", "filePath"],
    }
    body = {
        "model": "limitless-fake",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "write", "parameters": schema}}],
        "messages": [
            {"role": "system", "content": "  Working directory: /w/r\n"},
            {"role": "user", "content": "[script:o]"},
        ],
    }
    events = post(model_server, "/v1/chat/completions", body).events()
    calls = [d["choices"][0]["delta"]["tool_calls"][0] for _, d in events[1:2]]
    assert calls[0]["function"]["name"] == "write"
    assert json.loads(calls[0]["function"]["arguments"]) == {
        "filePath": "/w/r/a.txt",
        "content": "hi",
    }
    assert events[-3][1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-2][1]["choices"] == []
    assert events[-2][1]["usage"]["completion_tokens"] == 20


def test_gemini_router_request_is_side_and_turns_are_function_calls(
    model_server: ModelServer,
) -> None:
    """gemini: a tool-less generateContent is side (schema JSON); a turn is a functionCall."""
    model_server.add(Script("g", [read("a.txt")]))
    router = {
        "contents": [{"role": "user", "parts": [{"text": "[script:g]"}]}],
        "generationConfig": {
            "responseJsonSchema": {
                "type": "OBJECT",
                "properties": {"complexity_score": {"type": "INTEGER"}},
            }
        },
    }
    side = post(model_server, "/v1beta/models/gemini-x:generateContent", router).json()
    assert json.loads(side["candidates"][0]["content"]["parts"][0]["text"]) == {
        "complexity_score": 1
    }
    turn = {
        "contents": router["contents"],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "read_file",
                        "parametersJsonSchema": {
                            "type": "object",
                            "properties": {"file_path": {"type": "string"}},
                        },
                    }
                ]
            }
        ],
    }
    events = post(
        model_server, "/v1beta/models/gemini-x:streamGenerateContent?alt=sse", turn
    ).events()
    part = events[0][1]["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"]["name"] == "read_file"
    assert part["functionCall"]["args"] == {"file_path": "a.txt"}
    assert [r.kind for r in model_server.model_requests()] == ["side", "main"]


class SchemaCase(NamedTuple):
    test_id: str
    schema: Any
    expected: Any


@pytest.mark.parametrize(
    "case",
    [
        SchemaCase("string", {"type": "string"}, "Scripted session"),
        SchemaCase("enum", {"type": "string", "enum": ["flash", "pro"]}, "flash"),
        SchemaCase("integer-minimum", {"type": "integer", "minimum": 5}, 5),
        SchemaCase("array", {"type": "array", "items": {"type": "string"}}, []),
        SchemaCase(
            "object",
            {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            {"ok": False},
        ),
    ],
    ids=lambda c: c.test_id,
)
def test_sample_json_fits_the_schema(case: SchemaCase) -> None:
    """Side requests asking for structured output get a value of the schema's shape."""
    assert sample_json(case.schema) == case.expected


def test_file_in_chat_finds_the_latest_text() -> None:
    """aider repeats a file after each edit; the latest text is the one edited."""
    from tests.realagents.dialects import Message

    messages = [
        Message("user", "a.txt\n```\nv1\n```\n"),
        Message("assistant", "a.txt\n```\nnot this\n```\n"),
        Message("user", "a.txt\n```python\nv2\n```\n"),
    ]
    assert file_in_chat("a.txt", messages) == "v2\n"
    assert file_in_chat("b.txt", messages) is None


def test_a_script_rejects_bad_names_and_counts() -> None:
    """Names are marker-safe; error(times=0) is refused."""
    with pytest.raises(ValueError, match="script name 'a b'"):
        Script("a b", [])
    with pytest.raises(ValueError, match="times must be 1 or more"):
        error(429, times=0)
