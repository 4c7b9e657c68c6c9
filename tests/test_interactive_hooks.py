"""A repository hook refusing an interactive agent's work, shown to the agent in its pane.

The real Claude Code and Codex TUIs (claude-interactive, codex-interactive) against
the scripted model, through
`limitless run`, on a repository whose pre-commit hook (`core.hooksPath`) rejects
a forbidden word. When the agent's turn ends and `idle_done` runs out, limitless
commits its leftovers while the agent is still open; the hook's refusal is typed
into the agent as its next prompt. What is asserted is what a user sees: the
pane's screen, `limitless status`, the report, the files on main.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from limitless.states import MergeStatus, TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, say, write
from tests.test_commit_rules import HOOK, committed_hooks, install_hook

RUN_DEADLINE_S = 120.0
HOOK_WORDS = "policy: the word FORBIDDEN may not be committed"


@pytest.fixture
def claude_env(
    claude_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """Claude Code against the scripted server, for `limitless run` and its agents."""
    claude_agent.export(monkeypatch)
    return claude_agent


@pytest.fixture(params=["claude-interactive", "codex-interactive"])
def agent_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> str:
    """One interactive profile's program against the scripted server; its name."""
    program = "claude_agent" if request.param == "claude-interactive" else "codex_agent"
    setup: AgentSetup = request.getfixturevalue(program)
    setup.export(monkeypatch)
    return str(request.param)


def screen(socket: str, pane: str) -> str:
    """The pane's screen with its wrapping undone (Claude Code breaks lines itself)."""
    done = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-t", pane],
        capture_output=True,
        text=True,
        check=False,
    )
    return " ".join(done.stdout.split())


def plan_text(marker: str, agent: str) -> str:
    return f"""\
name: policy
agent: {agent}
approve: edits
idle_done: 1s
tasks:
  - id: note
    prompt: "Write note.txt {marker}"
"""


def start(repo: Path, script: Script, agent: str = "claude-interactive") -> tuple[str, str, str]:
    """A repository with the hook, the plan started: the run id, the task's pane, and
    main's commit before the run."""
    install_hook(repo, "pre-commit", HOOK)
    committed_hooks(repo)
    base = git(repo, "rev-parse", "main")
    write_plan(repo, plan_text(script.marker, agent))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id
    wait_for(lambda: tasks_of(repo, run_id)["note"].pane_id is not None, 60, "a pane")
    return run_id, tasks_of(repo, run_id)["note"].pane_id or "", base


def status_reason(repo: Path) -> str:
    """The task's reason as `limitless status --json` gives it."""
    document = json.loads(cli(repo, "status", "--json").stdout)
    (task,) = document["tasks"]
    return str(task["reason"])


def rejections(repo: Path, run_id: str) -> list[dict[str, object]]:
    with open_store(repo) as store:
        return [e.data for e in store.events(run_id) if e.kind == "task_commit_rejected"]


def test_the_agent_sees_the_hooks_refusal_in_its_pane_fixes_it_and_the_task_lands(
    agent_env: str, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """The first turn writes the forbidden word; the commit before the close is refused;
    the hook's words appear in the agent's pane as its prompt and in `status` while it
    works on them; its next turn rewrites the file; the countdown runs again, the commit
    passes, the task is done and lands clean."""
    fixing = threading.Event()  # the model answers the fix turn once the test has looked
    script = Script(
        "note",
        [
            write("note.txt", "a FORBIDDEN word\n"),
            say("Wrote note.txt."),
            write("note.txt", "a clean word\n", gate=fixing),
            say("Rewrote note.txt without it."),
        ],
    )
    model_server.add(script)
    run_id, pane, base = start(repo, script, agent_env)

    typed = f"the repository's pre-commit hook rejected the commit and said: {HOOK_WORDS}"
    wait_for(lambda: typed in screen(tmux_socket, pane), 60, "the hook's words in the pane")
    told = f"the pre-commit hook refused the commit of its work (1 of 3): {HOOK_WORDS}"
    wait_for(lambda: told in status_reason(repo), 30, "the refusal in status")
    fixing.set()
    finished = cli(repo, "wait", run_id, "--timeout", str(RUN_DEADLINE_S), timeout=150)
    assert finished.returncode == 0, finished.stdout + finished.stderr

    row = tasks_of(repo, run_id)["note"]
    assert (row.status, row.merge_status) == (TaskStatus.DONE, MergeStatus.MERGED), row.reason
    assert git(repo, "show", "main:note.txt") == "a clean word"
    assert "FORBIDDEN" not in git(repo, "log", "-p", f"{base}..main")
    (refused,) = rejections(repo, run_id)
    assert (refused["hook"], refused["rejection"]) == ("pre-commit", 1)
    assert refused["action"] == "asked the agent to fix it"
    shown = cli(repo, "events", run_id, "--kind", "task_commit_rejected").stdout
    assert "pre-commit" in shown and HOOK_WORDS in shown
    assert not model_server.problems()


def test_an_agent_that_never_fixes_it_fails_with_the_hooks_words(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """Asked twice, the agent leaves the word in: the third refusal closes it and the task
    fails with the hook's output in `status` and the report; nothing reaches main; the
    refused work stays staged in the task's worktree."""
    script = Script(
        "note",
        [
            write("note.txt", "a FORBIDDEN word\n"),
            say("Wrote note.txt."),
            say("I keep note.txt as it is."),
            say("Still as it is."),
        ],
    )
    model_server.add(script)
    run_id, _, base = start(repo, script)
    finished = cli(repo, "wait", run_id, "--timeout", str(RUN_DEADLINE_S), timeout=150)
    assert finished.returncode == 1, finished.stdout + finished.stderr

    row = tasks_of(repo, run_id)["note"]
    assert row.status is TaskStatus.FAILED
    assert row.reason.startswith(
        "the agent was asked 2 times to fix what the pre-commit hook refused"
    ), row.reason
    assert HOOK_WORDS in row.reason
    assert [e["rejection"] for e in rejections(repo, run_id)] == [1, 2, 3]
    assert HOOK_WORDS in status_reason(repo)
    assert "failed" in cli(repo, "status").stdout
    assert HOOK_WORDS in cli(repo, "report", run_id).stdout
    assert row.merge_status is not MergeStatus.MERGED
    assert git(repo, "rev-parse", "main") == base
    assert git(Path(row.worktree), "diff", "--cached", "--name-only") == "note.txt"
