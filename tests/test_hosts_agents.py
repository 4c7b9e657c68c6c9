"""Real headless agent programs on a host (a real sshd on loopback), through `limitless run`.

Claude Code runs there in print mode; limitless's renderer (the host's install,
`headless_run`) turns its stream-json events into the pane's lines and keeps the facts
(cost, session, errors, denials) that come back here. The model is the scripted server
on 127.0.0.1, which a loopback host reaches; its URL and key travel as `env_pass`.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.costs import claude_cost, codex_cost
from tests.realagents.homes import CODEX_KEY_VAR, CODEX_MODEL, AgentSetup, claude_setup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, error, say, write
from tests.sshhosts import Fleet, SshHost

pytestmark = pytest.mark.usefixtures("tmux_socket")

RUN_TIMEOUT = 240.0
PASSED = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING")


def claude_host(fleet: Fleet, claude_agent: AgentSetup, server: ModelServer) -> SshHost:
    """A host whose sshd takes Claude Code's variables, with `claude` on its PATH and a
    HOME past Claude Code's onboarding (its own ~/.claude.json)."""
    box = fleet.add("box1", accept_env=PASSED)
    claude_setup(server, box.home)
    assert claude_agent.executable is not None
    (box.bin / "claude").symlink_to(claude_agent.executable.resolve())
    return box


def plan_text(box: SshHost, task: str, *, approve: str = "edits") -> str:
    host = box.host()
    return "\n".join(
        [
            "name: remote-claude",
            "agent: claude",
            f"approve: {approve}",
            "hosts:",
            "  - {name: local, slots: 1}",
            f"  - {{name: box1, ssh: {host.ssh}, port: {host.port}, identity: {host.identity},",
            f"     slots: 1, env_pass: [{', '.join(PASSED)}]}}",
            "tasks:",
            task,
            "",
        ]
    )


def test_claude_on_a_host_writes_a_file_that_lands_with_the_scripted_cost(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task pinned to a host runs the real Claude Code there: the pane shows readable
    lines (✎ Write …, not JSON events), the file lands on main, and the task's cost and
    session id are what the stream told."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    usages = [Usage(1500, 120), Usage(1800, 30, 400, 0)]
    script = Script(
        "remote",
        [
            write("hello.txt", "hello from box1\n", usage=usages[0]),
            say("Wrote hello.txt.", usage=usages[1]),
        ],
    )
    model_server.add(script)
    task = f"  - {{id: hello, host: box1, prompt: 'Write hello.txt. {script.marker}'}}"
    write_plan(repo, plan_text(box, task))
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    run = latest_run(repo)
    row = tasks_of(repo, run.id)["hello"]
    assert row.status is TaskStatus.DONE and row.host == "box1"
    assert git(repo, "show", "main:hello.txt") == "hello from box1"
    assert row.cost_usd == pytest.approx(claude_cost(None, usages), rel=1e-9)
    assert row.session_id  # from the stream's init event, told by the renderer there
    with open_store(repo) as store:
        shown = store.log_path(run.id, "hello").read_text()
    assert "on box1:" in shown
    assert "✎ Write hello.txt" in shown
    assert "● Wrote hello.txt." in shown
    assert '{"type"' not in shown  # the pane there showed lines, not the raw events
    screen = (box.home / "limitless" / "runs" / run.id / "hello" / "log").read_text()
    assert "✎ Write hello.txt" in screen  # what the pane there (the attach) showed
    assert "--permission-mode" not in shown  # the flags are on the command, not shown


def test_a_refused_write_on_a_host_fails_the_task_as_here(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """approve: ask: Claude Code there is refused the write and exits 0; the task fails
    with the reason a local one gives (no silent success on a host either)."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    script = Script("refused", [write("refused.txt", "nope\n"), say("I could not write the file.")])
    model_server.add(script)
    task = f"  - {{id: write, host: box1, prompt: 'Write refused.txt. {script.marker}'}}"
    write_plan(repo, plan_text(box, task, approve="ask"))
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    row = tasks_of(repo, latest_run(repo).id)["write"]
    assert row.status is TaskStatus.FAILED and row.host == "box1"
    assert row.exit_code == 0
    assert row.reason == (
        "Claude Code was refused Write(refused.txt) (approve: ask; `approve: edits` lets "
        "file edits through, `approve: all` commands too)"
    )
    assert git(repo, "ls-tree", "--name-only", "main") == "README.md"


def test_an_error_result_on_a_host_fails_the_task_with_the_program_s_words(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider refuses every request (400): Claude Code there ends on an error
    result; the task fails with its words, as a local one does."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    refusal = "the scripted model refuses this request"
    script = Script(
        "broken",
        [error(400, "invalid_request_error", message=refusal, times=None), say("never")],
    )
    model_server.add(script)
    task = f"  - {{id: broken, host: box1, prompt: 'Do it. {script.marker}'}}"
    write_plan(repo, plan_text(box, task))
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    row = tasks_of(repo, latest_run(repo).id)["broken"]
    assert row.status is TaskStatus.FAILED and row.host == "box1"
    assert row.reason.startswith("Claude Code ended on an error: "), row.reason
    assert refusal in row.reason
    assert row.session_id  # recorded even though it failed


def test_claude_missing_on_the_host_is_named(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The renderer runs the program there; a host without `claude` on its PATH still
    fails the task naming `claude`, not the renderer's python."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    (box.bin / "claude").unlink()
    fleet.serve(repo)
    write_plan(repo, plan_text(box, "  - {id: none, host: box1, prompt: 'Write x.txt.'}"))
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    row = tasks_of(repo, latest_run(repo).id)["none"]
    assert row.status is TaskStatus.FAILED and row.exit_code == 127
    assert row.reason == "agent command `claude` not found on PATH there; install it on the host"


def test_codex_on_a_host_writes_a_file_that_lands_with_the_scripted_cost(
    fleet: Fleet,
    codex_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Codex (`codex exec --json`) on a host: readable lines, the file on main, the
    scripted cost and the thread id recorded. Its CODEX_HOME (config with the server's
    provider) and key travel as env_pass."""
    codex_agent.export(monkeypatch)
    passed = ("CODEX_HOME", CODEX_KEY_VAR)
    box = fleet.add("box1", accept_env=passed)
    assert codex_agent.executable is not None
    (box.bin / "codex").symlink_to(codex_agent.executable.resolve())
    fleet.serve(repo)
    usages = [Usage(1500, 120), Usage(1800, 30, 0, 600)]
    script = Script(
        "remote",
        [
            write("hello.txt", "hello from box1\n", usage=usages[0]),
            say("Wrote hello.txt.", usage=usages[1]),
        ],
    )
    model_server.add(script)
    host = box.host()
    plan = "\n".join(
        [
            "name: remote-codex",
            "agent: codex",
            "hosts:",
            "  - {name: local, slots: 1}",
            f"  - {{name: box1, ssh: {host.ssh}, port: {host.port}, identity: {host.identity},",
            f"     slots: 1, env_pass: [{', '.join(passed)}]}}",
            "tasks:",
            f"  - {{id: hello, host: box1, prompt: 'Write hello.txt. {script.marker}'}}",
            "",
        ]
    )
    write_plan(repo, plan)
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    run = latest_run(repo)
    row = tasks_of(repo, run.id)["hello"]
    assert row.status is TaskStatus.DONE and row.host == "box1"
    assert git(repo, "show", "main:hello.txt") == "hello from box1"
    assert row.cost_usd == pytest.approx(codex_cost(CODEX_MODEL, usages), abs=1e-6)
    assert row.session_id  # the thread id of thread.started
    with open_store(repo) as store:
        shown = store.log_path(run.id, "hello").read_text()
    assert "✎ add hello.txt" in shown
    assert '{"type"' not in shown


def test_the_slot_pane_shows_claude_s_lines_from_the_host_while_it_works(
    fleet: Fleet,
    claude_agent: AgentSetup,
    model_server: ModelServer,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmux_socket: str,
) -> None:
    """The local slot pane (attached to the host's tmux) shows the rendered lines while
    Claude Code is still at work there: `✎ Write …`, no JSON event."""
    claude_agent.export(monkeypatch)
    box = claude_host(fleet, claude_agent, model_server)
    fleet.serve(repo)
    go = threading.Event()
    script = Script("held", [write("held.txt", "held\n"), say("Wrote held.txt.", gate=go)])
    model_server.add(script)
    task = f"  - {{id: held, host: box1, prompt: 'Write held.txt. {script.marker}'}}"
    write_plan(repo, plan_text(box, task))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)

    def screen() -> str:
        pane = tasks_of(repo, run.id)["held"].pane_id or ""
        shown = subprocess.run(
            ["tmux", "-L", tmux_socket, "capture-pane", "-p", "-t", pane],
            capture_output=True,
            text=True,
            check=False,
        )
        return shown.stdout

    def reported() -> dict[str, object]:
        shown = cli(repo, "status", run.id, "--json")
        assert shown.returncode == 0, shown.stderr
        return next(t for t in json.loads(shown.stdout)["tasks"] if t["id"] == "held")

    try:
        wait_for(lambda: "✎ Write held.txt" in screen(), 60, "the rendered line on the pane")
        assert '{"type"' not in screen()
        assert tasks_of(repo, run.id)["held"].status == "running"
        # the session id the stream told at its start shows here while it works there
        wait_for(lambda: reported()["session_id"], 30, "the remote session id in status")
        live = reported()
        assert live["status"] == "running" and live["host"] == "box1"
    finally:
        go.set()
    waited = cli(repo, "wait", run.id, timeout=RUN_TIMEOUT)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert git(repo, "show", "main:held.txt") == "held"
    assert tasks_of(repo, run.id)["held"].session_id == live["session_id"]
