"""A scripted model server on 127.0.0.1: the one thing the real-agent tests replace.

    with ModelServer([Script("hello", [write("a.txt", "hi\\n"), say("done")])]) as server:
        ... run claude / codex / aider against server.url ...
        assert server.main_requests("hello")[1].tool_results

It speaks four dialects (see `dialects.py`), streamed or not as each request
asks. For every request it:

1. records it (`RecordedRequest`: path, headers without secrets, JSON body,
   kind, script and turn, status, time);
2. answers probes (`HEAD`/`GET`, e.g. Claude Code's `HEAD /`) with 200, and
   Anthropic's `count_tokens` with a rough count (kind "probe" / "side");
3. answers side requests (a program's own helpers: session titles, commit
   messages, router classifiers — recognised by shape, `Dialect.is_side`) with
   a short text or a JSON object matching the schema they ask for, usage
   `side_usage` (zero by default), kind "side": they never consume a step;
4. routes a conversation to the script whose key (`[script:NAME]` marker or
   `match=` substring) is in one of its user messages (the earliest such
   message wins), counts the assistant turns after that message to find the
   turn, fails the request while that turn has error steps left (each error
   step counts its own failures, shared by every conversation of the script),
   else renders the turn's action (kind "main");
5. answers a conversation no script claims with a text naming the known
   scripts (kind "unmatched"), and a turn past the script's end with a text
   saying so (kind "exhausted") — tests can assert there are none.

Nothing listens after `stop()` (or the `with` block, or the `model_server`
fixture): the listening socket is closed and open connections are shut.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.realagents.dialects import (
    JSON,
    Answer,
    Message,
    Reply,
    ScriptProblem,
    dialect_for,
)
from tests.realagents.script import ZERO_USAGE, Action, Fail, Script, Usage

logger = logging.getLogger(__name__)

SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie", "proxy-authorization"}
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, and how it was answered."""

    seq: int
    at: float  # time.monotonic() when the request was read
    wall: float  # time.time() then
    method: str
    path: str
    headers: dict[str, str]  # names in lower case; secret ones' values are "<redacted>"
    body: Any  # the parsed JSON body (None for GET/HEAD, a str if it was not JSON)
    dialect: str | None  # "anthropic", "responses", "chat", "gemini" or None
    kind: str  # "main", "side", "probe", "unmatched", "exhausted", "unknown", "bad"
    script: str | None = None
    turn: int | None = None
    step: Action | None = None  # the action rendered (None for an error or no step)
    status: int = 200
    error: str | None = None  # the scripted error's type, or a rendering problem
    messages: tuple[Message, ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        """Every message's text, joined (to check a prompt reached the model)."""
        return "\n".join(m.text for m in self.messages)

    @property
    def user_text(self) -> str:
        return "\n".join(m.text for m in self.messages if m.role == "user")

    @property
    def tool_results(self) -> list[str]:
        """The tool results the request carries (Anthropic tool_result, Responses
        function_call_output, chat tool messages, Gemini functionResponse)."""
        return [r for m in self.messages for r in m.tool_results]

    @property
    def last_tool_result(self) -> str | None:
        results = self.tool_results
        return results[-1] if results else None

    @property
    def model(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("model"), str):
            return str(self.body["model"])
        if self.dialect == "gemini":
            return self.path.split("?", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
        return None


class ModelServer:
    """The scripted model server; a context manager. `url` is `http://127.0.0.1:PORT`."""

    def __init__(
        self,
        scripts: Iterable[Script] = (),
        *,
        side_usage: Usage = ZERO_USAGE,
        host: str = "127.0.0.1",
    ) -> None:
        self.side_usage = side_usage
        self.host = host
        self._scripts: dict[str, Script] = {}
        self._failures: dict[tuple[str, int, int], int] = {}
        self._records: list[RecordedRequest] = []
        self._held: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.started_at = 0.0
        self.add(*scripts)

    # -- life -------------------------------------------------------------------

    def start(self) -> ModelServer:
        if self._httpd is not None:
            msg = f"model server already listening on {self.url}"
            raise RuntimeError(msg)
        self._httpd = _HTTPServer((self.host, 0), _Handler, self)
        self.started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"modelserver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("model server started", extra={"url": self.url})
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        logger.info("model server stopped")

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            msg = "model server is not started"
            raise RuntimeError(msg)
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL (no `/v1`): what ANTHROPIC_BASE_URL wants."""
        return f"http://{self.host}:{self.port}"

    # -- scripts ----------------------------------------------------------------

    def add(self, *scripts: Script) -> None:
        """Register scripts (a name may be registered once)."""
        with self._lock:
            for script in scripts:
                if script.name in self._scripts:
                    msg = f"script {script.name!r} is already registered"
                    raise ValueError(msg)
                self._scripts[script.name] = script

    def script(self, name: str) -> Script:
        with self._lock:
            return self._scripts[name]

    # -- records ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def main_requests(self, script: str | None = None) -> list[RecordedRequest]:
        """The requests answered from a script (its turns and its errors)."""
        return [
            r for r in self.requests if r.kind == "main" and (script is None or r.script == script)
        ]

    def of_kind(self, *kinds: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind in kinds]

    def model_requests(self) -> list[RecordedRequest]:
        """Every request to a model endpoint (main, side, unmatched, exhausted)."""
        return [r for r in self.requests if r.dialect is not None]

    def wait_for(
        self,
        predicate: Callable[[list[RecordedRequest]], bool],
        timeout: float = 30.0,
        what: str = "",
    ) -> list[RecordedRequest]:
        """Block until `predicate(records)` holds; raise AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._records)):
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = [(r.kind, r.script, r.turn, r.status) for r in self._records]
                    msg = f"model server: no {what or 'such requests'} in {timeout} s; saw {kinds}"
                    raise AssertionError(msg)
                self._changed.wait(left)
            return list(self._records)

    def problems(self) -> list[RecordedRequest]:
        """Requests no script could answer properly (unmatched, exhausted, bad, unknown)."""
        return self.of_kind("unmatched", "exhausted", "bad", "unknown")

    def _record(self, record: RecordedRequest) -> None:
        with self._changed:
            self._records.append(dataclasses.replace(record, seq=len(self._records)))
            self._changed.notify_all()

    # -- answering --------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        """Decide the answer to one request and record it (called by the handler thread)."""
        at, wall = time.monotonic(), time.time()
        safe = {
            k.lower(): ("<redacted>" if k.lower() in SECRET_HEADERS else v)
            for k, v in headers.items()
        }
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        dialect = dialect_for(method, path)

        def record(kind: str, answer: Answer, **extra: Any) -> Answer:
            self._record(
                RecordedRequest(
                    seq=-1,
                    at=at,
                    wall=wall,
                    method=method,
                    path=path,
                    headers=safe,
                    body=body,
                    dialect=dialect.name if dialect else None,
                    kind=kind,
                    status=answer.status,
                    **extra,
                )
            )
            return answer

        bare = path.split("?", 1)[0]
        if method in ("HEAD", "GET"):
            payload: JSON = {"object": "list", "data": []} if bare.endswith("/models") else {}
            return record("probe", Answer(200, payload))
        if method == "POST" and bare.endswith("/messages/count_tokens"):
            return record("side", Answer(200, {"input_tokens": max(1, len(raw) // 4)}))
        if dialect is None:
            return record("unknown", Answer(404, {"error": {"message": f"no endpoint {path}"}}))
        if not isinstance(body, dict):
            return record("bad", Answer(400, {"error": {"message": "body is not a JSON object"}}))
        messages = tuple(dialect.messages(body))
        if dialect.is_side(body):
            reply = dialect.side_reply(body, self.side_usage)
            return record("side", dialect.answer(body, path, reply), messages=messages)
        found = self._route(list(messages))
        if found is None:
            with self._lock:
                known = ", ".join(s.key for s in self._scripts.values()) or "none"
            text = f"[modelserver] no script matches this conversation (scripts: {known})"
            answer = dialect.answer(body, path, Reply(text=text, usage=self.side_usage))
            return record("unmatched", answer, messages=messages)
        script, start = found
        turn_index = dialect.count_turns(list(messages), start)
        turn = script.turn(turn_index)
        where = {"script": script.name, "turn": turn_index, "messages": messages}
        fail = self._take_failure(script, turn_index, turn.errors)
        if fail is not None:
            answer = dialect.error(fail, body, path)
            kind_name = fail.kind or str(fail.status)
            return record("main", answer, error=kind_name, **where)
        if turn.action is None:
            text = f"[modelserver] script {script.name!r} has no step for turn {turn_index}"
            answer = dialect.answer(body, path, Reply(text=text, usage=self.side_usage))
            return record("exhausted", answer, **where)
        action = turn.action
        if action.delay > 0:
            self._stopping.wait(action.delay)
        if action.gate is not None:
            self._hold(script.name, turn_index, action.gate)
        try:
            reply = dialect.render_action(body, action, script.usage_of(action))
        except ScriptProblem as problem:
            text = f"[modelserver] cannot render {action!r}: {problem}"
            answer = dialect.answer(body, path, Reply(text=text, usage=self.side_usage))
            return record("bad", answer, error=str(problem), **where)
        return record("main", dialect.answer(body, path, reply), step=action, **where)

    def _hold(self, script: str, turn: int, gate: threading.Event) -> None:
        """Keep this request waiting (listed in `held()`) until `gate` is set or we stop."""
        entry = (script, turn)
        with self._changed:
            self._held.append(entry)
            self._changed.notify_all()
        try:
            while not gate.wait(0.05) and not self._stopping.is_set():
                pass
        finally:
            with self._changed:
                self._held.remove(entry)
                self._changed.notify_all()

    def held(self) -> list[tuple[str, int]]:
        """(script, turn) of the requests waiting at a gate now."""
        with self._lock:
            return list(self._held)

    def wait_until_held(self, *scripts: str, timeout: float = 30.0) -> None:
        """Block until a request of each named script waits at a gate."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not set(scripts) <= {name for name, _ in self._held}:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.kind, r.script, r.turn, r.status) for r in self._records]
                    msg = (
                        f"model server: {sorted(scripts)} not all held at a gate in {timeout} s;"
                        f" held {self._held}, saw {seen}"
                    )
                    raise AssertionError(msg)
                self._changed.wait(left)

    def _route(self, messages: list[Message]) -> tuple[Script, int] | None:
        """The script whose key appears in the earliest user message, and that message."""
        with self._lock:
            scripts = list(self._scripts.values())
        for index, message in enumerate(messages):
            if message.role != "user":
                continue
            for script in scripts:
                if script.key in message.text:
                    return script, index
        return None

    def _take_failure(self, script: Script, turn: int, errors: tuple[Fail, ...]) -> Fail | None:
        """The error step that fails this request, counting it; None when all are spent."""
        with self._lock:
            for position, fail in enumerate(errors):
                key = (script.name, turn, position)
                done = self._failures.get(key, 0)
                if fail.times is None or done < fail.times:
                    self._failures[key] = done + 1
                    return fail
        return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], handler: type, owner: ModelServer) -> None:
        self.owner = owner
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 300  # an idle keep-alive connection is dropped after this

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("request: " + format, *args)

    def setup(self) -> None:
        super().setup()
        owner = self.server.owner
        with owner._lock:
            owner._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            owner = self.server.owner
            with owner._lock:
                owner._connections.discard(self.connection)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _serve(self, head: bool = False) -> None:
        raw = self._read_body() if self.command == "POST" else b""
        headers = {k: v for k, v in self.headers.items()}
        answer = self.server.owner.handle(self.command, self.path, headers, raw)
        try:
            self._send(answer, head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, answer: Answer, head: bool) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.streamed:
            # Server-sent events; the body ends when the connection closes.
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for event in answer.events:
                self.wfile.write(event)
                self.wfile.flush()
            return
        data = json.dumps(answer.body).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)
