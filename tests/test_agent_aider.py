"""The built-in `aider` profile through `limitless run`: the real aider, a scripted model.

aider 0.86.2 (`.agents/aider-venv`) talks to the harness's model server (chat
completions, not streamed with the profile's `--no-stream`), applies `whole`
edits, asks its questions on the pane and commits with the side request's
message. Everything else — worktrees, panes, merge, landing, report — is the
real limitless.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, edit, error, read, run, say, write

TURN = Usage(1000, 100)
# The harness prices its model at $1 / $2 per million tokens (aider's price cache).
TURN_COST = 1000 * 0.000001 + 100 * 0.000002  # $0.0012, as aider prints it


def _plan(body: str, *, approve: str = "edits", extra: str = "") -> str:
    return f"name: aider-run\nagent: aider\napprove: {approve}\n{extra}tasks:\n{body}"


def _pane_text(repo: Path, run_id: str, task_id: str) -> str:
    """What the task's pane showed: the wrapper's rendered lines, as kept in its log."""
    with open_store(repo) as store:
        return store.log_path(run_id, task_id).read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def aider_env(
    aider_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """aider's model server settings in the environment `limitless run` and its panes inherit.

    The harness's own AIDER_YES_ALWAYS goes: the profile's `approve` decides.
    """
    aider_agent.export(monkeypatch)
    monkeypatch.delenv("AIDER_YES_ALWAYS", raising=False)
    return aider_agent


def test_three_aider_tasks_write_edit_commit_merge_and_land(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Write a file, edit another, extend the first one after it: merged, landed, costed."""
    scripts = {
        "notes": Script("notes", [write("notes.txt", "first note\n", usage=TURN)]),
        "title": Script(
            "title",
            [read("README.md", usage=TURN), edit("README.md", "# test repo", "# aider", usage=TURN)],
        ),
        # The prompt names notes.txt: aider adds it to the chat before it asks the model.
        "more": Script(
            "more", [edit("notes.txt", "first note", "first note\nsecond note", usage=TURN)]
        ),
    }
    model_server.add(*scripts.values())
    write_plan(
        repo,
        _plan(
            f"""\
  - id: notes
    prompt: "Start notes.txt with a first note. {scripts["notes"].marker}"
  - id: title
    prompt: "Give the README a new title. {scripts["title"].marker}"
  - id: more
    depends_on: [notes]
    prompt: "Add a second note to notes.txt. {scripts["more"].marker}"
""",
            extra="max_concurrency: 2\n",
        ),
    )
    started = time.time()

    result = cli(repo, "run", "--headless", timeout=240)

    assert result.returncode == 0, result.stdout + result.stderr
    # Landed on main: the files, and aider's own commits (message from the side request).
    assert (repo / "notes.txt").read_text() == "first note\nsecond note\n"
    assert (repo / "README.md").read_text() == "# aider\n"
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert subjects.count("Make the scripted change") == 3
    # aider's chat history and caches stay out of every commit, and .gitignore untouched.
    tracked = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert not [name for name in tracked if name.startswith(".aider")], tracked
    assert ".gitignore" not in tracked
    assert ".aider*" in (repo / ".git" / "info" / "exclude").read_text().splitlines()
    run_id = latest_run(repo).id
    rows = tasks_of(repo, run_id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    assert {task: row.reason for task, row in rows.items()} == {t: "" for t in rows}
    # The cost of each task is aider's own session cost of the scripted usage.
    assert rows["notes"].cost_usd == pytest.approx(TURN_COST)
    assert rows["title"].cost_usd == pytest.approx(2 * TURN_COST)
    assert rows["more"].cost_usd == pytest.approx(TURN_COST)
    report = json.loads(cli(repo, "report", run_id, "--format", "json").stdout)
    assert report["run"]["total_cost_usd"] == pytest.approx(4 * TURN_COST)
    pane = _pane_text(repo, run_id, "notes")
    assert "$0.0012 (session $0.0012)" in pane
    assert "✎ notes.txt" in pane
    assert "✓ commit " in pane and "Make the scripted change" in pane
    assert "first note" not in pane  # the file's text is folded, not shown
    # aider answered through the profile: no question was left on the screen.
    assert "asks:" not in pane
    assert model_server.problems() == []
    first = min(r.wall for r in model_server.model_requests())
    assert first - started < 30
