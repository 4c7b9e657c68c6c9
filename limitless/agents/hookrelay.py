"""The command Claude Code's hooks run: the agent's state, recorded fast.

    python -S -I <this file> [--stop idle|done]      (the hook's JSON on stdin)
    python -S -I <this file> --codex-notify JSON     (Codex's `notify` program)

Claude Code waits for a command hook before it goes on, and PreToolUse and
PostToolUse run on every tool call, so this file imports the standard library
only — no limitless module (10–20 ms a call instead of 60+) — and writes the
store with plain SQL. The columns it touches are pinned by a test against the
real `Store` (tests/test_claude_interactive.py).

Which task: LIMITLESS_STATE_DIR / LIMITLESS_RUN / LIMITLESS_TASK when the agent
inherited them (it runs in a task's pane); else from the payload alone: `cwd`
→ the worktree holding it (its `.git` file) → the repository's common git dir
→ `limitless/state.db` → the running or waiting task whose worktree that is
(or whose session id the payload names). So a `claude` started by hand in a
task's worktree reports to that task too.

Event → signal (`tasks.last_signal`, read by `agentstate.StateWatcher`):

- UserPromptSubmit, PreToolUse, PostToolUse, PostToolUseFailure → `working`
- PermissionRequest, Notification of a permission prompt or a question → `waiting`
  (needs input)
- Stop, StopFailure → `idle` (the turn ended; `working` while background tasks or
  scheduled wake-ups are pending; `done` with `--stop done`), Notification
  `idle_prompt` → `idle`
- SessionStart, SessionEnd and the rest → no signal

A repeated `working` writes nothing: with the pane's variables it does not even
open the store (`runs/<run>/hooks/<task>.last` remembers the last signal it
wrote). Every call is appended to `runs/<run>/hooks/<task>.jsonl` (event, time,
session, transcript path: the wrapper prices the transcripts from there).

Codex (`codex-interactive`) runs it as its `notify` program, which gets one
JSON argument when a turn completes (`agent-turn-complete`: `thread-id`,
`cwd`, `last-assistant-message`): that is Codex's Stop. A turn of a side thread
Codex starts by itself (the session title it asks the model for) keeps no
session file under CODEX_HOME and is ignored; the main thread's session file is
its transcript.

On another host (a task placed there by a plan's `hosts:`) there is no store:
LIMITLESS_HOOK_SPOOL names a file there, and each call only appends
`{"t", "on_stop", "payload"}` to it; the task's wrapper here reads the new lines
over the SSH master and records them with `record` (`replay`), as if the hook
had run here.

It prints nothing on stdout (Claude Code reads some hooks' stdout as context
for the model) and always exits 0: a hook must never fail its agent.
"""

from __future__ import annotations

import json
import os
import sys
import time

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs a hook 3 ms
if TYPE_CHECKING:
    import sqlite3  # loaded by `_connect` only, off the fast path
    from collections.abc import Mapping

STDIN_LIMIT = 1 << 20
BUSY_TIMEOUT_MS = 5000
WORKING_EVENTS = frozenset({"UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure"})
QUESTION_NOTIFICATIONS = frozenset({"permission_prompt", "elicitation_dialog"})
ACTIVE = ("running", "waiting")
SPOOL_VAR = "LIMITLESS_HOOK_SPOOL"  # on a host: the file the calls are appended to
EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit", "Read"})


def main(argv: list[str]) -> int:
    started = time.time()
    try:
        if argv[1:2] == ["--codex-notify"]:
            loaded = codex_payload(json.loads(argv[-1]), os.environ)
        else:
            loaded = json.loads(sys.stdin.read(STDIN_LIMIT) or "{}")
    except (OSError, ValueError, IndexError):
        return 0
    if not isinstance(loaded, dict):
        return 0
    payload: dict[str, object] = loaded
    on_stop = "done" if argv[1:3] == ["--stop", "done"] else "idle"
    try:
        spool = os.environ.get(SPOOL_VAR)
        if spool:
            entry = {"t": round(started, 3), "on_stop": on_stop, "payload": payload}
            with open(spool, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            return 0
        record(payload, started, on_stop, os.environ)
    except Exception as exc:  # sqlite3.Error, OSError, ...: a hook never fails its agent
        print(f"limitless hook: {exc}", file=sys.stderr)
    return 0


def signal_of(payload: dict[str, object], on_stop: str = "idle") -> tuple[str, str] | None:
    """The (signal, note) a hook payload means, or None for events that tell no state."""
    event = str(payload.get("hook_event_name") or "")
    tool = _tool_label(payload)
    if event in WORKING_EVENTS:
        return "working", f"{event} {tool}".strip() if tool else event
    if event == "PermissionRequest":
        return "waiting", f"permission for {tool or 'a tool'}"
    if event == "Notification":
        kind = str(payload.get("notification_type") or "")
        message = " ".join(str(payload.get("message") or "").split())[:160]
        if kind in QUESTION_NOTIFICATIONS:
            return "waiting", message or kind.replace("_", " ")
        if kind == "idle_prompt":
            return "idle", message or "waiting for your next prompt"
        return None
    if event == "Stop":
        for key, what in (("background_tasks", "background task"), ("session_crons", "wake-up")):
            pending = payload.get(key)
            if isinstance(pending, list) and pending:  # it goes on by itself: not idle
                count = len(pending)
                return "working", f"turn ended; {count} {what}{'s' * (count != 1)} pending"
        return on_stop, "turn ended"
    if event == "StopFailure":
        error = " ".join(
            f"{payload.get('error') or ''} {payload.get('error_details') or ''}".split()
        )
        return (
            on_stop,
            f"turn ended on an error: {error[:160]}" if error else "turn ended on an error",
        )
    return None


def codex_payload(notification: object, env: Mapping[str, str]) -> dict[str, object] | None:
    """Codex's `notify` JSON as the hook payload it stands for (a turn's end: Stop), or
    None for other notifications and for a side thread, which keeps no session file."""
    if not isinstance(notification, dict) or notification.get("type") != "agent-turn-complete":
        return None
    thread = str(notification.get("thread-id") or "")
    transcript = codex_session_file(thread, env)
    if transcript is None:
        return None
    return {
        "hook_event_name": "Stop",
        "session_id": thread,
        "cwd": notification.get("cwd"),
        "transcript_path": transcript,
        "limitless_source": "codex-notify",
    }


def codex_session_file(thread: str, env: Mapping[str, str]) -> str | None:
    """`$CODEX_HOME/sessions/Y/M/D/rollout-…-<thread>.jsonl`, if Codex keeps one."""
    home = env.get("CODEX_HOME") or os.path.join(env.get("HOME") or "~", ".codex")
    sessions = os.path.join(os.path.expanduser(home), "sessions")
    if not thread or os.sep in thread:
        return None
    suffix = f"-{thread}.jsonl"
    try:  # newest day first: the session began a moment ago
        for year in sorted(os.listdir(sessions), reverse=True):
            for month in sorted(os.listdir(os.path.join(sessions, year)), reverse=True):
                for day in sorted(os.listdir(os.path.join(sessions, year, month)), reverse=True):
                    folder = os.path.join(sessions, year, month, day)
                    for name in os.listdir(folder):
                        if name.startswith("rollout-") and name.endswith(suffix):
                            return os.path.join(folder, name)
    except OSError:
        return None
    return None


def _tool_label(payload: dict[str, object]) -> str:
    name = payload.get("tool_name")
    if not isinstance(name, str) or not name:
        return ""
    raw = payload.get("tool_input")
    tool_input = raw if isinstance(raw, dict) else {}
    if name in EDIT_TOOLS:
        path = str(tool_input.get("file_path") or tool_input.get("notebook_path") or "")
        cwd = str(payload.get("cwd") or "")
        if cwd and path.startswith(cwd.rstrip("/") + "/"):
            path = path[len(cwd.rstrip("/")) + 1 :]
        return f"{name}({path})"
    if name == "Bash":
        return f"Bash({' '.join(str(tool_input.get('command') or '').split())[:80]})"
    return name


# ---------------------------------------------------------------- finding the task


def find_state_dir(cwd: str) -> tuple[str, str] | None:
    """(the worktree holding `cwd`, the limitless state dir of its repository), or None."""
    folder = os.path.realpath(cwd)
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.isfile(dot_git):
            common = _common_dir_of_worktree(dot_git)
            return (folder, os.path.join(common, "limitless")) if common else None
        if os.path.isdir(dot_git):
            return folder, os.path.join(dot_git, "limitless")
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _common_dir_of_worktree(dot_git: str) -> str | None:
    with open(dot_git, encoding="utf-8") as handle:
        first = handle.readline().strip()
    if not first.startswith("gitdir:"):
        return None
    git_dir = first[len("gitdir:") :].strip()
    if not os.path.isabs(git_dir):
        git_dir = os.path.join(os.path.dirname(dot_git), git_dir)
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as handle:
            common = handle.readline().strip()
    except FileNotFoundError:
        return os.path.realpath(git_dir)
    return os.path.realpath(common if os.path.isabs(common) else os.path.join(git_dir, common))


def _connect(state_dir: str) -> sqlite3.Connection | None:
    import sqlite3

    path = os.path.join(state_dir, "state.db")
    if not os.path.isfile(path):
        return None
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")  # as the Store: WAL, no fsync per commit
    conn.row_factory = sqlite3.Row
    return conn


COLUMNS = (
    "run_id, id, status, attempt, worktree, session_id, last_signal, last_signal_at, started_at"
)


def _task_row(
    conn: sqlite3.Connection,
    env: Mapping[str, str],
    worktree: str | None,
    session: str | None,
) -> sqlite3.Row | None:
    run_id, task_id = env.get("LIMITLESS_RUN"), env.get("LIMITLESS_TASK")
    if run_id and task_id:
        return conn.execute(  # type: ignore[no-any-return]
            f"SELECT {COLUMNS} FROM tasks WHERE run_id = ? AND id = ?", (run_id, task_id)
        ).fetchone()
    marks = ", ".join("?" for _ in ACTIVE)
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM tasks WHERE status IN ({marks}) ORDER BY started_at DESC", ACTIVE
    ).fetchall()
    if session:
        for row in rows:
            if row["session_id"] == session:
                return row  # type: ignore[no-any-return]
    for row in rows:
        if worktree and os.path.realpath(row["worktree"]) == worktree:
            return row  # type: ignore[no-any-return]
    return None


# ---------------------------------------------------------------- recording


def record(
    payload: dict[str, object],
    now: float,
    on_stop: str = "idle",
    env: Mapping[str, str] = os.environ,
) -> str | None:
    """Record what the hook says for its task; returns the signal written (None: none)."""
    raw_session = payload.get("session_id")
    session = raw_session if isinstance(raw_session, str) and raw_session else None
    meant = signal_of(payload, on_stop)
    named = _named_task(env)
    if named is not None and meant is not None and meant[0] == "working":
        # the common case, every tool call: nothing new to say, and no sqlite to load
        state_dir, run_id, task_id, attempt = named
        if _last(state_dir, run_id, task_id) == [attempt, session, "working"]:
            _log(state_dir, run_id, task_id, attempt, payload, now)
            return None
    cwd = str(payload.get("cwd") or os.getcwd())
    worktree = None
    if named is None:
        found = find_state_dir(cwd)
        if found is None:
            return None
        worktree, state_dir = found
        env = {}  # the variables name no task (or another repository's): go by the payload
    else:
        state_dir = named[0]
    conn = _connect(state_dir)
    if conn is None:
        return None
    try:
        row = _task_row(conn, env, worktree, session)
        if row is None or row["status"] not in ACTIVE:
            return None
        key = (state_dir, row["run_id"], row["id"])
        _log(*key, row["attempt"], payload, now)
        if meant is None:
            if session and session != row["session_id"]:
                _write(conn, row, None, session, now)
            return None
        kind, note = meant
        current = str(row["last_signal"] or "").partition(":")[0].strip()
        stale = row["started_at"] is not None and (row["last_signal_at"] or 0) < row["started_at"]
        if kind == current == "working" and not stale and session in (None, row["session_id"]):
            _remember(*key, row["attempt"], session, kind)
            return None
        event = payload.get("hook_event_name")
        source = str(payload.get("limitless_source") or f"claude-{event}")
        if not _write(conn, row, (kind, note), session, now, source=source):
            return None
        _remember(*key, row["attempt"], session, kind)
        return kind
    finally:
        conn.close()


def _named_task(env: Mapping[str, str]) -> tuple[str, str, str, int] | None:
    """(state dir, run, task, attempt) from the variables a task's pane sets, if all are set."""
    state_dir, run_id, task_id = (
        env.get("LIMITLESS_STATE_DIR"),
        env.get("LIMITLESS_RUN"),
        env.get("LIMITLESS_TASK"),
    )
    if not (state_dir and run_id and task_id):
        return None
    try:
        attempt = int(env.get("LIMITLESS_ATTEMPT") or 0)
    except ValueError:
        attempt = 0
    return state_dir, run_id, task_id, attempt


def last_path(state_dir: str, run_id: str, task_id: str) -> str:
    """`runs/<run>/hooks/<task>.last`: the last signal the relay wrote (for its fast path)."""
    return os.path.join(state_dir, "runs", run_id, "hooks", f"{task_id}.last")


def _last(state_dir: str, run_id: str, task_id: str) -> object:
    try:
        with open(last_path(state_dir, run_id, task_id), encoding="utf-8") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None


def _remember(
    state_dir: str, run_id: str, task_id: str, attempt: int, session: str | None, kind: str
) -> None:
    path = last_path(state_dir, run_id, task_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps([attempt, session, kind]))
    os.replace(temporary, path)


def _write(
    conn: sqlite3.Connection,
    row: sqlite3.Row,
    signal: tuple[str, str] | None,
    session: str | None,
    now: float,
    source: str = "",
) -> bool:
    """Write the signal (or just the session); False when a newer signal is there already."""
    key = (row["run_id"], row["id"])
    conn.execute("BEGIN IMMEDIATE")
    try:
        if signal is None:
            conn.execute(
                "UPDATE tasks SET session_id = ? WHERE run_id = ? AND id = ?", (session, *key)
            )
        else:
            kind, note = signal
            note = " ".join(note.split())[:200]
            # hooks of one agent may overlap: the one that started last has the last word
            written = conn.execute(
                "UPDATE tasks SET last_signal = ?, last_signal_at = ?, "
                "session_id = COALESCE(?, session_id) WHERE run_id = ? AND id = ? "
                "AND (last_signal_at IS NULL OR last_signal_at <= ?)",
                (f"{kind}: {note}" if note else kind, now, session, *key, now),
            ).rowcount
            if not written:
                conn.execute("ROLLBACK")
                return False
            data = json.dumps({"note": note, "signal": kind, "source": source}, sort_keys=True)
            conn.execute(
                "INSERT INTO events (run_id, task_id, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
                (*key, now, "task_signal", data),
            )
            if kind == "done":
                conn.execute(
                    "INSERT INTO controls (run_id, task_id, action, source, created_at) "
                    "VALUES (?, ?, 'done', ?, ?)",
                    (*key, f"signal ({source})", now),
                )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def replay(
    lines: list[str], env: Mapping[str, str], now: float | None = None
) -> list[dict[str, object]]:
    """Record spooled calls (the lines a host's relay appended) for the task `env` names
    (LIMITLESS_STATE_DIR, _RUN, _TASK, _ATTEMPT), at this machine's clock: the host's
    may differ, and the store's times are compared with this machine's. The payloads."""
    payloads: list[dict[str, object]] = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        payload = entry.get("payload") if isinstance(entry, dict) else None
        if not isinstance(payload, dict):
            continue
        on_stop = "done" if entry.get("on_stop") == "done" else "idle"
        record(payload, time.time() if now is None else now, on_stop, env)
        payloads.append(payload)
    return payloads


def hook_log_path(state_dir: str, run_id: str, task_id: str) -> str:
    """`runs/<run>/hooks/<task>.jsonl`: one line per hook call of the task."""
    return os.path.join(state_dir, "runs", run_id, "hooks", f"{task_id}.jsonl")


def _log(
    state_dir: str, run_id: str, task_id: str, attempt: int, payload: dict[str, object], now: float
) -> None:
    path = hook_log_path(state_dir, run_id, task_id)
    entry = {
        "t": round(now, 3),
        "event": payload.get("hook_event_name"),
        "attempt": attempt,
        "session_id": payload.get("session_id"),
        "transcript_path": payload.get("transcript_path"),
    }
    for key in ("tool_name", "notification_type", "reason"):
        if payload.get(key):
            entry[key] = payload[key]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
