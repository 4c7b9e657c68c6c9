"""Agent state: running ↔ waiting from signals, waiting_regex and idle time.

The first tests drive `StateWatcher.look()` poll by poll with screen lines given
by the test (so "within two polls" is checked exactly, with no clock); the last
ones run real fake interactive agents in real tmux on a private socket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.agents import hookrelay
from limitless.agents.state import StateWatcher, read_evidence, record_signal
from limitless.plan.loader import loads
from limitless.plan.model import Plan
from limitless.states import TaskStatus
from limitless.store import Run, Store, TaskRow
from limitless.tmux.session import TmuxSession
from limitless.views.status import state_of
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan

FAKE = Path(__file__).parent / "fake_agents"

PLAN = """\
name: state
agent: fake
agents:
  fake:
    command: ["{python}", "fake.py"]
    interactive: true
    waiting_regex: '\\(y/n\\)\\s*$'
    idle_seconds: 30
  batch:
    command: ["{python}", "batch.py"]
    waiting_regex: '\\(y/n\\)\\s*$'
tasks:
  - {id: talk, prompt: "talk to me"}
  - {id: batch, agent: batch, prompt: "work alone"}
"""


def make_plan(tmp_path: Path) -> Plan:
    return loads(PLAN, source="test.yaml", base_dir=tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        plan = make_plan(tmp_path)
        opened.create_run(
            Run(
                id="state-1",
                plan_name="state",
                plan_path=None,
                plan_json=plan.to_json(),
                repo_root=str(tmp_path),
                base="main",
                base_sha="0" * 40,
                worktree_root=str(tmp_path / "wt"),
            )
        )
        opened.add_tasks(
            "state-1",
            [
                TaskRow(
                    run_id="state-1",
                    id=task_id,
                    position=n,
                    agent=task_id,
                    branch=f"b-{task_id}",
                    worktree=str(tmp_path / task_id),
                    status=TaskStatus.RUNNING,
                    attempt=1,
                    started_at=1000.0,
                    pane_id=f"%{n + 1}",
                )
                for n, task_id in enumerate(("talk", "batch"))
            ],
        )
        yield opened


def watcher(store: Store, tmp_path: Path) -> StateWatcher:
    # No tmux here: these tests call look() with the screen lines themselves.
    return StateWatcher(store, "state-1", make_plan(tmp_path), TmuxSession("unused", "state-1"))


def status(store: Store, task_id: str = "talk") -> TaskStatus:
    return store.get_task("state-1", task_id).status


def kinds(store: Store) -> list[str]:
    return [e.kind for e in store.events("state-1") if e.kind in ("task_waiting", "task_working")]


def test_waiting_regex_needs_two_polls_and_clears_two_polls_after_the_answer(
    store: Store, tmp_path: Path
) -> None:
    """A prompt turns the task waiting on the second poll; typed answer back on the second."""
    w = watcher(store, tmp_path)
    prompt = ["reading the code", "Apply the change? (y/n)"]
    answered = ["reading the code", "Apply the change? (y/n) y", "applying"]
    w.look(store.get_task("state-1", "talk"), ["reading the code"], 1000.0)
    w.look(store.get_task("state-1", "talk"), prompt, 1000.25)
    assert status(store) is TaskStatus.RUNNING  # seen once: no flicker
    w.look(store.get_task("state-1", "talk"), prompt, 1000.5)
    row = store.get_task("state-1", "talk")
    assert row.status is TaskStatus.WAITING
    assert row.waiting_reason == "waiting_regex matched: Apply the change? (y/n)"
    w.look(row, answered, 1000.75)
    assert status(store) is TaskStatus.WAITING
    w.look(store.get_task("state-1", "talk"), answered, 1001.0)
    row = store.get_task("state-1", "talk")
    assert row.status is TaskStatus.RUNNING
    assert row.waiting_reason == ""
    assert kinds(store) == ["task_waiting", "task_working"]


def test_a_prompt_seen_on_one_poll_only_changes_nothing(store: Store, tmp_path: Path) -> None:
    """A question that flashes by for one poll leaves the task running."""
    w = watcher(store, tmp_path)
    for n, screen in enumerate((["a"], ["ok? (y/n)"], ["ok? (y/n) y", "b"], ["c"])):
        w.look(store.get_task("state-1", "talk"), screen, 1000.0 + n * 0.25)
    assert status(store) is TaskStatus.RUNNING
    assert kinds(store) == []


class IdleCase(NamedTuple):
    test_id: str
    task_id: str
    quiet_for: float
    expected: TaskStatus


@pytest.mark.parametrize(
    "case",
    [
        IdleCase("interactive-quiet-long", "talk", 31.0, TaskStatus.WAITING),
        IdleCase("interactive-quiet-short", "talk", 29.0, TaskStatus.RUNNING),
        IdleCase("batch-never-idle", "batch", 300.0, TaskStatus.RUNNING),
    ],
    ids=lambda case: case.test_id,
)
def test_idle_screen_means_waiting_only_for_interactive_profiles(
    store: Store, tmp_path: Path, case: IdleCase
) -> None:
    """An unchanged screen for idle_seconds makes an interactive task waiting."""
    w = watcher(store, tmp_path)
    screen = ["ready for instructions"]
    w.look(store.get_task("state-1", case.task_id), screen, 1000.0)
    w.look(store.get_task("state-1", case.task_id), screen, 1000.0 + case.quiet_for)
    w.look(store.get_task("state-1", case.task_id), screen, 1000.25 + case.quiet_for)
    row = store.get_task("state-1", case.task_id)
    assert row.status is case.expected
    if case.expected is TaskStatus.WAITING:
        assert row.waiting_reason == "no output for over 30s (idle_seconds)"
        w.look(row, [*screen, "on it: fix the bug"], 1040.0)
        w.look(store.get_task("state-1", case.task_id), [*screen, "on it: more"], 1040.25)
        assert status(store, case.task_id) is TaskStatus.RUNNING


def test_explicit_signal_beats_the_screen_and_holds_until_the_screen_moves_on(
    store: Store, tmp_path: Path
) -> None:
    """`signal waiting` beats a busy-looking screen on two polls; new output releases it."""
    w = watcher(store, tmp_path)
    w.look(store.get_task("state-1", "talk"), ["working"], 1000.0)
    record_signal(store, "state-1", "talk", "waiting", note="needs a decision")
    at = store.get_task("state-1", "talk").last_signal_at or 0.0
    w.look(store.get_task("state-1", "talk"), ["working"], at + 0.1)
    assert status(store) is TaskStatus.RUNNING
    w.look(store.get_task("state-1", "talk"), ["working"], at + 0.35)
    row = store.get_task("state-1", "talk")
    assert row.status is TaskStatus.WAITING
    assert row.waiting_reason == "needs a decision"
    w.look(row, ["working"], at + 60.0)  # quiet, and idle would say so too: still the signal
    assert status(store) is TaskStatus.WAITING
    w.look(store.get_task("state-1", "talk"), ["working", "typed"], at + 61.0)
    w.look(store.get_task("state-1", "talk"), ["working", "typed", "more"], at + 61.25)
    assert status(store) is TaskStatus.RUNNING


def test_signal_done_queues_a_done_request_and_rejects_ended_tasks(store: Store) -> None:
    """`signal done` asks the supervisor to end the task; a done task refuses signals."""
    message = record_signal(store, "state-1", "talk", "done", source="claude-Stop")
    assert message == "talk: done requested; the supervisor ends it"
    (request,) = store.pending_requests("state-1")
    assert (request.action, request.task_id, request.source) == (
        "done",
        "talk",
        "signal (claude-Stop)",
    )
    store.update_task("state-1", "batch", status=TaskStatus.DONE)
    with pytest.raises(
        Exception, match="task batch of run state-1 is done, not running or waiting"
    ):
        record_signal(store, "state-1", "batch", "waiting")


def test_evidence_file_names_the_matched_line(store: Store, tmp_path: Path) -> None:
    """The watcher keeps what it saw for `explain`: source, line, last screen lines."""
    w = watcher(store, tmp_path)
    w.look(store.get_task("state-1", "talk"), ["x", "Go? (y/n)"], 1000.0)
    w.look(store.get_task("state-1", "talk"), ["x", "Go? (y/n)"], 1000.25)
    evidence = read_evidence(store, "state-1", "talk")
    assert evidence is not None
    assert (evidence.status, evidence.source, evidence.line) == (
        "needs_input",
        "regex",
        "Go? (y/n)",
    )
    assert evidence.last_lines == ["x", "Go? (y/n)"]


# ---------------------------------------------------------------- real tmux

FAKE_PLAN = """\
name: fake
agent: ask
max_concurrency: 2
merge: {{land: manual}}
agents:
  ask:
    command: ["{{python}}", "{ask}"]
    interactive: true
    waiting_regex: '\\(y/n\\)\\s*$'
    idle_seconds: 600
  idle:
    command: ["{{python}}", "{idle}"]
    interactive: true
    idle_seconds: 2
tasks:
  - {{id: ask, prompt: "ask me"}}
  - {{id: idle, agent: idle, prompt: "sit there"}}
"""


def send_keys(socket: str, pane: str, *keys: str) -> None:
    subprocess.run(["tmux", "-L", socket, "send-keys", "-t", pane, *keys], check=True)


def test_fake_agents_in_tmux_wait_resume_and_end_with_done(repo: Path, tmux_socket: str) -> None:
    """Real panes: a question and an idle agent turn waiting; typing clears; `done` ends."""
    write_plan(repo, FAKE_PLAN.format(ask=FAKE / "ask.py", idle=FAKE / "idle.py"))
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stdout + started.stderr
    run = latest_run(repo)

    def state(task_id: str) -> TaskRow:
        return tasks_of(repo, run.id)[task_id]

    wait_for(lambda: state("ask").status is TaskStatus.WAITING, 60, "ask waiting")
    assert state("ask").waiting_reason == "waiting_regex matched: Apply the change to app.py? (y/n)"
    wait_for(lambda: state("idle").status is TaskStatus.WAITING, 60, "idle waiting")
    assert state("idle").waiting_reason == "no output for over 2s (idle_seconds)"

    send_keys(tmux_socket, state("ask").pane_id or "", "y", "Enter")
    wait_for(lambda: state("ask").status is TaskStatus.RUNNING, 60, "ask working after answer")
    send_keys(tmux_socket, state("idle").pane_id or "", "fix the bug", "Enter")
    wait_for(lambda: state("idle").status is TaskStatus.RUNNING, 60, "idle working after typing")

    explained = cli(repo, "explain", run.id, "ask")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith(f"ask ({run.id}, attempt 1): running")
    assert "task_waiting (regex): waiting_regex matched: Apply the change" in explained.stdout

    for task_id in ("ask", "idle"):
        done = cli(repo, "done", run.id, task_id)
        assert done.returncode == 0, done.stdout + done.stderr
    waited = cli(repo, "wait", run.id, "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    notes = git(repo, "show", f"limitless/{run.id}/idle:notes.txt")
    assert notes == "fix the bug"  # typed work left uncommitted was committed at done
    with open_store(repo) as opened:
        events = [(e.kind, e.task_id) for e in opened.events(run.id)]
    assert ("task_waiting", "idle") in events
    assert ("task_working", "ask") in events


CODEX_PLAN = """\
name: codex
agent: codex-interactive
tasks:
  - {id: cx, prompt: "work"}
"""
CODEX_PROMPT = ["› Ask Codex to do anything", "  GPT-5.5 default · /wt/cx", "  ? for shortcuts"]
CODEX_LIMIT = "■ exceeded retry limit, last status: 429 Too Many Requests"
CONTINUE = "› The model was rate limited; continue where you stopped."


class CodexScreen(NamedTuple):
    name: str
    lines: list[str]
    shown: str  # as `status` shows it after two polls
    reason: str


CODEX_SCREENS = [
    CodexScreen(
        "an interrupted turn no poll saw running",
        [
            "• Added refused.txt (+1 -0)",
            "■ Conversation interrupted - use /feedback",
            *CODEX_PROMPT,
        ],
        "idle",
        "at its prompt after: ■ Conversation interrupted - use /feedback",
    ),
    CodexScreen(
        "a turn ended on a rate limit",
        ["› Write notes.md", CODEX_LIMIT, *CODEX_PROMPT],
        "waiting",
        f"rate limited: {CODEX_LIMIT}",
    ),
    CodexScreen(
        "a turn runs below the old limit",
        [CONTINUE, CODEX_LIMIT, "◦ Working (1s • esc to interrupt)", *CODEX_PROMPT],
        "running",
        "",
    ),
    CodexScreen(
        "the continued turn ended below the old limit",
        [CODEX_LIMIT, CONTINUE, "─ Worked for 3s ─────", *CODEX_PROMPT],
        "idle",
        "at its prompt after: Worked for 3s ─────",
    ),
]


@pytest.mark.parametrize("case", CODEX_SCREENS, ids=lambda case: case.name)
def test_codex_screens_read_exactly(tmp_path: Path, case: CodexScreen) -> None:
    """Codex's rate-limit line counts only as the line its turn ended on (not while a newer
    turn runs or after it ended); a "■" line proves a turn ran even if no poll saw it."""
    plan = loads(CODEX_PLAN, source="codex.yaml", base_dir=tmp_path)
    with Store.open(tmp_path / "state") as store:
        store.create_run(
            Run(
                id="cx-1",
                plan_name="codex",
                plan_path=None,
                plan_json=plan.to_json(),
                repo_root=str(tmp_path),
                base="main",
                base_sha="0" * 40,
                worktree_root=str(tmp_path / "wt"),
            )
        )
        row = TaskRow(
            run_id="cx-1",
            id="cx",
            position=0,
            agent="codex-interactive",
            branch="b-cx",
            worktree=str(tmp_path / "cx"),
            status=TaskStatus.WAITING if case.shown == "running" else TaskStatus.RUNNING,
            attempt=1,
            started_at=1000.0,
            pane_id="%1",
        )
        store.add_tasks("cx-1", [row])
        w = StateWatcher(store, "cx-1", plan, TmuxSession("unused", "cx-1"))
        w.look(store.get_task("cx-1", "cx"), case.lines, 1001.0)
        w.look(store.get_task("cx-1", "cx"), case.lines, 1001.5)
        seen = store.get_task("cx-1", "cx")
        assert state_of(seen) == case.shown
        assert seen.waiting_reason == case.reason


def test_a_host_s_relay_only_spools_and_the_replay_here_records_the_signal(
    store: Store, tmp_path: Path
) -> None:
    """On a host the relay (LIMITLESS_HOOK_SPOOL) appends the call to a file and writes no
    store, even one its variables name; replayed here, the call is the signal it means."""
    spool = tmp_path / "hooks.jsonl"
    named = {
        "LIMITLESS_STATE_DIR": str(store.state_dir),
        "LIMITLESS_RUN": "state-1",
        "LIMITLESS_TASK": "talk",
        "LIMITLESS_ATTEMPT": "1",
    }
    payload = {
        "hook_event_name": "PermissionRequest",
        "tool_name": "Write",
        "tool_input": {"file_path": str(tmp_path / "x.txt")},
        "cwd": str(tmp_path),
        "session_id": "s-1",
    }
    relay = Path(hookrelay.__file__).resolve()
    env = {**os.environ, **named, hookrelay.SPOOL_VAR: str(spool)}
    done = subprocess.run(
        [sys.executable, "-S", "-I", str(relay)],
        input=json.dumps(payload),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert store.get_task("state-1", "talk").last_signal is None  # nothing written here
    (line,) = spool.read_text().splitlines()
    assert json.loads(line)["payload"] == payload
    assert hookrelay.replay([line, "not json"], named) == [payload]
    row = store.get_task("state-1", "talk")
    assert row.last_signal == "waiting: permission for Write(x.txt)"
    assert row.session_id == "s-1"
