"""`codex-interactive` through `limitless run`: the real Codex TUI in a slot pane.

Only the model is scripted (tests/realagents, OpenAI Responses); Codex 0.171.0, its
TUI, its sandbox, its notify program, the tmux server (a private socket) and git are
the real ones. What is asserted is what a user sees: `limitless status`, the pane's
screen, the files on the base branch, the report.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from limitless.agents.pty import end_strays
from limitless.programs.codex_tui import CODEX_INTERACTIVE
from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.costs import codex_cost
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, error, run, say, write

NEEDS_INPUT_WITHIN_S = 5.0
RUN_DEADLINE_S = 120.0
WRITE_USAGE = Usage(1200, 60)
RUN_USAGE = Usage(1400, 30, 0, 600)
SAY_USAGE = Usage(1500, 12, 0, 800)


@pytest.fixture
def codex_env(
    codex_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """Codex against the scripted server, for `limitless run` and its agents."""
    codex_agent.export(monkeypatch)
    return codex_agent


def pane_text(socket: str, pane: str) -> str:
    """The pane's screen as `tmux capture-pane -p` shows it."""
    done = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-t", pane],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def status_line(repo: Path, task: str) -> str:
    """The task's line of `limitless status` (the table a user reads)."""
    shown = cli(repo, "status").stdout
    return next((line for line in shown.splitlines() if line.startswith(task + " ")), "")


def task_processes(run_id: str, task: str) -> list[str]:
    """Command lines of live processes that carry the task's variables (what it started)."""
    found: list[str] = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            environ = proc.environ()
        except psutil.Error:
            continue
        if environ.get("LIMITLESS_RUN") == run_id and environ.get("LIMITLESS_TASK") == task:
            found.append(" ".join(proc.info.get("cmdline") or []))
    return found


def test_ask_needs_input_then_a_key_goes_on_and_idle_done_ends_it(
    codex_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """approve: ask — Codex's approval screen shows as needs input in `status` within 5 s;
    a key sent to the pane approves it; the turn's end (Codex's notify program) becomes
    done after idle_done; the file lands on main; the cost is the scripted usage; no
    trust question, no model offer, nothing of Codex's left running."""
    script = Script(
        "hello",
        [
            write("hello.txt", "hi\n", usage=WRITE_USAGE),
            run("cat hello.txt", usage=RUN_USAGE),
            say("done", usage=SAY_USAGE),
        ],
    )
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: tui
agent: codex-interactive
approve: ask
idle_done: 2s
tasks:
  - id: hello
    prompt: "Create hello.txt saying hi {script.marker}"
""",
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_row = latest_run(repo)
    wait_for(lambda: tasks_of(repo, run_row.id)["hello"].pane_id is not None, 60, "a pane")
    pane = tasks_of(repo, run_row.id)["hello"].pane_id or ""

    wait_for(
        lambda: "Would you like to make the following edits?" in pane_text(tmux_socket, pane),
        60,
        "the approval screen",
    )
    asked_at = time.monotonic()
    wait_for(lambda: "? needs input" in status_line(repo, "hello"), 30, "needs input in status")
    assert time.monotonic() - asked_at <= NEEDS_INPUT_WITHIN_S
    document = json.loads(cli(repo, "status", "--json").stdout)
    (task,) = document["tasks"]
    assert (task["status"], task["needs_input"]) == ("needs_input", True)
    assert task["reason"].startswith("Codex asks: Would you like to make the following edits?")
    worktree = Path(tasks_of(repo, run_row.id)["hello"].worktree)
    assert not (worktree / "hello.txt").exists()  # not before the user said yes

    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "y"], check=True)
    finished = cli(
        repo, "wait", run_row.id, "--timeout", str(RUN_DEADLINE_S), timeout=RUN_DEADLINE_S + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    row = tasks_of(repo, run_row.id)["hello"]
    assert (row.status, row.reason) == (TaskStatus.DONE, "")
    assert row.session_id  # the thread, from the notify program
    assert git(repo, "show", "main:hello.txt") == "hi"

    report = json.loads(cli(repo, "report", run_row.id, "--format", "json").stdout)
    expected = codex_cost("gpt-5.5", [WRITE_USAGE, RUN_USAGE, SAY_USAGE])
    assert report["run"]["total_cost_usd"] == pytest.approx(expected, abs=1e-9)
    with open_store(repo) as store:
        events = [e for e in store.events(run_row.id) if e.task_id == "hello"]
    kinds = [e.kind for e in events]
    assert kinds.index("task_waiting") < kinds.index("task_idle") < kinds.index("task_closing")
    assert kinds.index("task_closing") < kinds.index("task_done")
    signals = [e.data.get("source") for e in events if e.kind == "task_signal"]
    assert "codex-notify" in signals
    assert not [e for e in events if e.kind == "task_dialog"]  # -c settings, no questions
    assert task_processes(run_row.id, "hello") == []
    assert model_server.problems() == []


def test_a_background_server_left_by_codex_is_ended_only_for_its_own_task(
    codex_agent: AgentSetup, repo: Path, tmux_socket: str
) -> None:
    """Started without `-c` settings or `--no-daemon`, Codex's TUI starts a shared
    `codex app-server` detached, which outlives its pane. `end_strays` ends the one that
    carries a task's variables, and leaves it alone for any other task."""
    codex_home = Path(codex_agent.env["CODEX_HOME"])
    with (codex_home / "config.toml").open("a") as config:
        config.write(f'\n[projects."{repo}"]\ntrust_level = "trusted"\n')
        config.write('\n[notice.model_migrations]\n"gpt-5.5" = "gpt-6-sol"\n')
    mine = {"LIMITLESS_RUN": "strays-1", "LIMITLESS_TASK": "t", "LIMITLESS_ATTEMPT": "1"}
    env = [f"{name}={value}" for name, value in {**codex_agent.env, **mine}.items()]
    command = [*codex_agent.argv(), "--", "hello"]
    subprocess.run(
        [
            "tmux",
            "-L",
            tmux_socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "strays",
            "-x",
            "120",
            "-y",
            "35",
            "-c",
            str(repo),
            *[a for pair in env for a in ("-e", pair)],
            "--",
            *command,
        ],
        check=True,
    )

    def servers() -> list[str]:
        return [c for c in task_processes("strays-1", "t") if "app-server" in c]

    try:
        wait_for(lambda: servers() != [], 30, "Codex's background app-server")
        # Killed before the TUI has a turn through it, the daemon may follow its client
        # out (seen once in CI under load); once a turn has run it stays.
        wait_for(lambda: "Worked for" in pane_text(tmux_socket, "strays"), 30, "Codex's turn ended")
        subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], check=True)
        wait_for(lambda: all("app-server" in c for c in task_processes("strays-1", "t")), 10)
        assert servers() != []  # the pane and the TUI are gone; the server is not
        others = {**mine, "LIMITLESS_TASK": "another"}
        assert end_strays(others, CODEX_INTERACTIVE.stray_markers) == []
        assert servers() != []
        ended = end_strays(mine, CODEX_INTERACTIVE.stray_markers)
        assert ended and all("app-server" in command for command in ended)
        wait_for(lambda: servers() == [], 10, "the background server ended")
    finally:
        end_strays(mine, ("app-server",))  # what this test started, should it fail


def test_a_refused_approval_is_seen_on_the_screen_and_fails_as_no_change(
    codex_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """Esc on Codex's approval ends its turn without a notify ("■ Conversation
    interrupted"): the screen says idle, idle_done closes it, and the untouched branch
    fails the task with the reason a user needs."""
    script = Script("refuse", [write("refused.txt", "no\n"), say("never")])
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: refuse
agent: codex-interactive
approve: ask
idle_done: 1s
tasks:
  - id: refuse
    prompt: "Create refused.txt {script.marker}"
""",
    )
    assert cli(repo, "run", "--detach").returncode == 0
    run_row = latest_run(repo)
    wait_for(lambda: "? needs input" in status_line(repo, "refuse"), 60, "needs input")
    pane = tasks_of(repo, run_row.id)["refuse"].pane_id or ""
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane, "Escape"], check=True)
    finished = cli(repo, "wait", run_row.id, "--timeout", "90", timeout=120)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    row = tasks_of(repo, run_row.id)["refuse"]
    assert row.status is TaskStatus.FAILED
    assert row.reason.startswith("the agent changed nothing"), row.reason
    with open_store(repo) as store:
        events = [e for e in store.events(run_row.id) if e.task_id == "refuse"]
    idle = [e for e in events if e.kind == "task_idle"]
    assert idle and "■ Conversation interrupted" in str(idle[-1].data.get("reason"))
    assert git(repo, "ls-tree", "--name-only", "main") == "README.md"


def test_edits_and_all_never_ask_and_land(
    codex_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """approve: edits writes in the worktree without a question; approve: all also runs
    the agent's own commit (outside the sandbox); neither needs input; both land."""
    notes = Script("notes", [write("notes.md", "# Notes\n"), say("Wrote notes.")])
    commit = Script(
        "commit",
        [
            write("all.txt", "all\n"),
            run("git add -A && git commit -q -m 'all: by the agent'"),
            say("Committed."),
        ],
    )
    model_server.add(notes, commit)
    write_plan(
        repo,
        f"""\
name: quiet
agent: codex-interactive
idle_done: 1s
tasks:
  - id: notes
    prompt: "Write notes.md {notes.marker}"
  - id: commit
    approve: all
    prompt: "Write and commit all.txt {commit.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_DEADLINE_S)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:notes.md") == "# Notes"
    assert git(repo, "show", "main:all.txt") == "all"
    assert "all: by the agent" in git(repo, "log", "--format=%s", "main").splitlines()
    run_id = latest_run(repo).id
    with open_store(repo) as store:
        kinds = {e.kind for e in store.events(run_id)}
    assert "task_waiting" not in kinds
    assert task_processes(run_id, "notes") == task_processes(run_id, "commit") == []


def test_a_lasting_rate_limit_waits_then_continues_by_itself(
    codex_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """Codex gives up on a 429 without retry-after ("■ exceeded retry limit"): the task
    shows rate limited with the back-off in `status`; when the back-off is over (moved to
    now, as a retry's can be) the driver types a continue prompt, the agent writes its
    file, and the task ends done and lands."""
    script = Script("notes", [error(429), write("notes.md", "# Notes\n"), say("Wrote notes.")])
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: limited
agent: codex-interactive
idle_done: 1s
tasks:
  - id: notes
    prompt: "Write notes.md {script.marker}"
""",
    )
    assert cli(repo, "run", "--detach").returncode == 0
    run_id = latest_run(repo).id
    wait_for(lambda: "continuing in" in status_line(repo, "notes"), 60, "rate limited")
    document = json.loads(cli(repo, "status", "--json").stdout)
    (shown,) = document["tasks"]
    assert str(shown["reason"]).startswith("rate limited: ■ exceeded retry limit")
    assert str(shown["reason"]).endswith("— continuing in 30s"), shown["reason"]
    with open_store(repo) as store:
        store.update_task(run_id, "notes", not_before=0.0)  # the back-off has passed
    finished = cli(
        repo, "wait", run_id, "--timeout", str(RUN_DEADLINE_S), timeout=RUN_DEADLINE_S + 30
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:notes.md") == "# Notes"
    with open_store(repo) as store:
        events = [e for e in store.events(run_id) if e.task_id == "notes"]
    kinds = [e.kind for e in events]
    assert kinds.count("task_rate_limited") == kinds.count("task_continued") == 1
    assert kinds.index("task_rate_limited") < kinds.index("task_continued")
    assert kinds.index("task_continued") < kinds.index("task_closing")
