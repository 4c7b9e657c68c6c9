"""The built-in `aider` profile through `limitless run`: the real aider, a scripted model.

aider 0.86.2 (`.agents/aider-venv`) talks to the harness's model server (chat
completions, not streamed with the profile's `--no-stream`), applies `whole`
edits, asks its questions on the pane and commits with the side request's
message. Everything else — worktrees, panes, merge, landing, report — is the
real limitless.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
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
    # A user's git knows who they are; without it aider writes placeholders into the
    # repository's .git/config at start, and two aiders starting at once race on its lock.
    (aider_agent.home / ".gitconfig").write_text(
        "[user]\n\tname = Limitless Test\n\temail = test@limitless.invalid\n"
    )
    return aider_agent


def test_three_aider_tasks_write_edit_commit_merge_and_land(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Write a file, edit another, extend the first one after it: merged, landed, costed."""
    scripts = {
        "notes": Script("notes", [write("notes.txt", "first note\n", usage=TURN)]),
        "title": Script(
            "title",
            [
                read("README.md", usage=TURN),
                edit("README.md", "# test repo", "# aider", usage=TURN),
            ],
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
            extra="max_concurrency: 3\n",  # slot panes ~66 columns wide: no wrapping allowed
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
    assert "Your Name" not in (repo / ".git" / "config").read_text()  # git knew the user
    excluded = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert excluded[-3:] == [
        "/.aider.chat.history.md",
        "/.aider.input.history",
        "/.aider.tags.cache.v*/",
    ]
    worktree = Path(tasks_of(repo, latest_run(repo).id)["notes"].worktree)
    assert (worktree / ".aider.chat.history.md").exists()  # kept beside the work, not in it
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


def _send_keys(socket: str, pane: str, *keys: str) -> None:
    subprocess.run(["tmux", "-L", socket, "send-keys", "-t", pane, *keys], check=True)


def test_ask_leaves_aider_questions_to_the_user_as_needs_input(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path, tmux_socket: str
) -> None:
    """`approve: ask`: "Create new file?" waits on the pane, the task waits; y goes on."""
    script = Script("asked", [write("hello.txt", "hello\n", usage=TURN)])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: hello\n    prompt: "Say hello in hello.txt. {script.marker}"\n',
            approve="ask",
            extra="idle_done: 5m\nmerge: {land: manual}\n",
        ),
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def waiting() -> bool:
        return tasks_of(repo, run_id)["hello"].status is TaskStatus.WAITING

    wait_for(waiting, 60, "the task waiting on aider's question")
    row = tasks_of(repo, run_id)["hello"]
    document = json.loads(cli(repo, "status", "--json").stdout)
    (task,) = document["tasks"]
    assert (task["status"], task["needs_input"]) == ("needs_input", True)
    assert task["reason"] == "aider asks: Create(hello.txt)"
    waited = cli(repo, "wait", run_id, "--until-input", "--quiet", timeout=60)
    assert waited.returncode == 4, waited.stdout + waited.stderr
    assert waited.stdout.startswith("? hello needs input — aider asks: Create(hello.txt)\n")
    screen = subprocess.run(
        ["tmux", "-L", tmux_socket, "capture-pane", "-p", "-t", row.pane_id or ""],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "? aider asks: Create new file? (Y)es/(N)o [Yes]:" in screen, screen
    assert "hello.txt" in screen

    _send_keys(tmux_socket, row.pane_id or "", "y", "Enter")

    waited = cli(repo, "wait", run_id, "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    row = tasks_of(repo, run_id)["hello"]
    assert row.status is TaskStatus.DONE, row.reason
    branch = git(repo, "show", f"{row.branch}:hello.txt")
    assert branch == "hello"
    assert "  → y" in _pane_text(repo, run_id, "hello")


def test_an_unanswered_question_is_declined_and_the_task_fails_saying_so(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Nobody answers within idle_done: limitless says no, aider skips, the task fails."""
    script = Script("unanswered", [write("hello.txt", "hello\n", usage=TURN)])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: hello\n    prompt: "Say hello in hello.txt. {script.marker}"\n',
            approve="ask",
            extra="idle_done: 2s\nmerge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["hello"]
    assert row.status is TaskStatus.FAILED
    assert row.reason == (
        "aider was refused Create(hello.txt), unanswered for 2s (approve: ask; `approve: edits` "
        "lets file edits through, `approve: all` commands too)"
    )
    assert "✗ nobody answered in 2s: declined" in _pane_text(repo, row.run_id, "hello")
    assert not (Path(row.worktree) / "hello.txt").exists()


def test_all_runs_the_shell_command_aider_suggests(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`approve: all`: the wrapper answers aider's "Run shell command?" with yes."""
    # aider finds shell commands in the `diff` edit format (`whole` reads every fence as a file).
    monkeypatch.setenv("AIDER_EDIT_FORMAT", "diff")
    script = Script("command", [run("echo ran > ran.txt", usage=TURN)])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: cmd\n    prompt: "Make ran.txt with a command. {script.marker}"\n',
            approve="all",
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["cmd"]
    assert row.status is TaskStatus.DONE, row.reason
    assert git(repo, "show", f"{row.branch}:ran.txt") == "ran"
    pane = _pane_text(repo, row.run_id, "cmd")
    assert "? Run shell command? echo ran > ran.txt → yes (approve: all)" in pane
    assert "$ echo ran > ran.txt" in pane


def test_an_edit_aider_will_not_make_fails_the_task(
    aider_env: AgentSetup, model_server: ModelServer, make_repo: Callable[..., Path]
) -> None:
    """A write to a git-ignored file is skipped by aider (exit 0): the task fails, naming it."""
    repo = make_repo(files={"README.md": "# test repo\n", ".gitignore": "build/\n"})
    script = Script("ignored", [write("build/out.txt", "out\n", usage=TURN)])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: out\n    prompt: "Write the build output. {script.marker}"\n',
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["out"]
    assert row.status is TaskStatus.FAILED
    assert row.reason == (
        "aider ended on an error: its edit of build/out.txt was skipped: git ignores that file"
    )
    assert (Path(row.worktree) / ".gitignore").read_text() == "build/\n"  # aider left it alone


def test_a_short_429_is_retried_by_aider_itself(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Three 429s: litellm retries twice, aider once more; the task is done, not rate limited."""
    script = Script("short-429", [error(429, times=3), write("hello.txt", "hi\n", usage=TURN)])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: hello\n    prompt: "Say hi in hello.txt. {script.marker}"\n',
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["hello"]
    assert (row.status, row.attempt, row.reason) == (TaskStatus.DONE, 1, "")
    pane = _pane_text(repo, row.run_id, "hello")
    assert "✗ RateLimitError: RateLimitError: OpenAIException - scripted error 429" in pane
    assert "↻ aider retries in 0.2s" in pane
    assert [r.status for r in model_server.main_requests(script.name)] == [429, 429, 429, 200]


@pytest.mark.slow
def test_a_lasting_429_backs_off_and_the_retry_recovers(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """aider gives up after ~80 s and exits 0: limitless says rate limited, backs off, retries."""
    # 27 requests: aider's 9 tries of 3 requests each (litellm retries twice), then it gives up.
    script = Script("long-429", [error(429, times=27), write("hello.txt", "hi\n", usage=TURN)])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: hello\n    prompt: "Say hi in hello.txt. {script.marker}"\n',
            extra="merge: {land: manual}\n",
        ),
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def backing_off() -> bool:
        row = tasks_of(repo, run_id)["hello"]
        return row.status is TaskStatus.READY and row.reason.startswith("rate limited: ")

    wait_for(backing_off, 150, "the task queued again after aider gave up")
    assert tasks_of(repo, run_id)["hello"].reason == (
        "rate limited: RateLimitError: RateLimitError: OpenAIException - scripted error 429; "
        "retrying in 30s (not counted as an attempt)"
    )
    with open_store(repo) as store:
        store.update_task(run_id, "hello", not_before=0.0)  # the back-off has passed
    waited = cli(repo, "wait", run_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    row = tasks_of(repo, run_id)["hello"]
    assert (row.status, row.attempt) == (TaskStatus.DONE, 2)
    assert git(repo, "show", f"{row.branch}:hello.txt") == "hi"
    assert row.cost_usd == pytest.approx(TURN_COST)
    assert len(model_server.main_requests(script.name)) == 28


def test_edits_that_never_apply_fail_the_task(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Four replies aider cannot apply: it gives up after 3 reflections, exit 0; the task fails."""
    unnamed = say("```\nno file name\n```\n", usage=TURN)
    script = Script("malformed", [unnamed, unnamed, unnamed, unnamed])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: bad\n    prompt: "Write something. {script.marker}"\n',
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["bad"]
    assert row.status is TaskStatus.FAILED
    assert row.reason == (
        "aider ended on an error: Only 3 reflections allowed, stopping. (the last: The LLM did "
        "not conform to the edit format. No filename provided before ``` in file listing)"
    )
    assert row.cost_usd == pytest.approx(4 * TURN_COST)


def test_the_same_question_twice_is_answered_twice(
    aider_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """`approve: all`: one reply creating two files asks "Create new file?" twice; both yes."""
    two_files = "a.txt\n```\nA\n```\n\nb.txt\n```\nB\n```\n"
    script = Script("two-files", [say(two_files, usage=TURN)])
    model_server.add(script)
    write_plan(
        repo,
        _plan(
            f'  - id: two\n    prompt: "Write a and b. {script.marker}"\n',
            approve="all",
            extra="merge: {land: manual}\n",
        ),
    )

    result = cli(repo, "run", "--headless", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["two"]
    assert (git(repo, "show", f"{row.branch}:a.txt"), git(repo, "show", f"{row.branch}:b.txt")) == (
        "A",
        "B",
    )
    pane = _pane_text(repo, row.run_id, "two")
    assert pane.count("? Create new file? ") == 2, pane
