"""The built-in `codex` profile through `limitless run`, with the real Codex CLI.

Codex runs as `codex exec --json` in each task's pane; the model is the scripted
server (tests/realagents, OpenAI Responses API). What a user sees is checked: files
on the base branch, `limitless status`/`report`, the task's pane lines.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from limitless.programs import EventStream
from limitless.programs.codex import CODEX
from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import (
    LIMITLESS,
    cli,
    latest_run,
    open_store,
    tasks_of,
    wait_for,
    write_plan,
)
from tests.realagents.costs import codex_cost
from tests.realagents.homes import AgentSetup, Finished
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, Usage, edit, error, run, say, write

RUN_TIMEOUT = 240.0


@pytest.fixture
def codex_env(
    codex_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    """Codex's variables and PATH in this test's environment (`limitless run` passes them
    to the agents); tmux on a private socket."""
    codex_agent.export(monkeypatch)
    return codex_agent


def _report(repo: Path, run_id: str) -> dict[str, object]:
    result = cli(repo, "report", run_id, "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def _log(repo: Path, run_id: str, task: str) -> str:
    with open_store(repo) as store:
        return store.log_path(run_id, task).read_text()


def test_three_tasks_write_edit_commit_merge_and_land_with_the_scripted_cost(
    codex_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """The codex profile does real work: files written, edited and committed by Codex
    land on main, and the report's cost is what the scripted usage costs."""
    usages = {
        "app": [Usage(1500, 120), Usage(1800, 30)],
        "docs": [Usage(1100, 200), Usage(1300, 90, 200, 500), Usage(1600, 20, 0, 1200)],
        "polish": [Usage(2000, 60), Usage(2100, 40, 0, 800), Usage(2300, 10, 0, 0, 5)],
    }
    scripts = [
        Script(
            "app",
            [
                write("src/app.py", "def greet():\n    return 'hi'\n", usage=usages["app"][0]),
                say("Created src/app.py.", usage=usages["app"][1]),
            ],
        ),
        Script(
            "docs",
            [
                write("docs/guide.md", "# Guide\n\nRun the app.\n", usage=usages["docs"][0]),
                edit("docs/guide.md", "Run the app.", "Run `greet()`.", usage=usages["docs"][1]),
                say("Wrote the guide.", usage=usages["docs"][2]),
            ],
        ),
        Script(
            "polish",
            [
                edit(
                    "src/app.py", "    return 'hi'", "    return 'hello'", usage=usages["polish"][0]
                ),
                run(
                    "git add -A && git commit -q -m 'app: greet says hello'",
                    usage=usages["polish"][1],
                ),
                say("Committed the change.", usage=usages["polish"][2]),
            ],
        ),
    ]
    for script in scripts:
        model_server.add(script)
    write_plan(
        repo,
        f"""\
name: real
agent: codex
max_concurrency: 3
tasks:
  - id: app
    prompt: "Create src/app.py with greet(). {scripts[0].marker}"
  - id: docs
    model: gpt-5.5
    prompt: "Write docs/guide.md. {scripts[1].marker}"
  - id: polish
    depends_on: [app]
    approve: all
    prompt: "Make greet() say hello and commit it. {scripts[2].marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:src/app.py") == "def greet():\n    return 'hello'"
    assert git(repo, "show", "main:docs/guide.md") == "# Guide\n\nRun `greet()`."
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert "app: greet says hello" in subjects  # the agent's own commit, landed
    run_row = latest_run(repo)
    rows = tasks_of(repo, run_row.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    expected = {task: codex_cost("gpt-5.5", task_usages) for task, task_usages in usages.items()}
    for task, cost in expected.items():
        assert rows[task].cost_usd == pytest.approx(cost, abs=1e-6), task
        assert rows[task].session_id  # the thread id of thread.started
    report = _report(repo, run_row.id)["run"]
    assert isinstance(report, dict)
    assert report["total_cost_usd"] == pytest.approx(sum(expected.values()), abs=1e-5)
    docs_log = _log(repo, run_row.id, "docs")
    polish_log = _log(repo, run_row.id, "polish")
    assert "✎ add docs/guide.md" in docs_log
    assert "✎ update docs/guide.md" in docs_log
    assert "● Wrote the guide." in docs_log
    assert f"cost ${rows['docs'].cost_usd:.4f} (gpt-5.5)" in docs_log
    assert "$ git add -A && git commit -q -m 'app: greet says hello'" in polish_log
    assert '{"type"' not in docs_log  # the pane shows lines, not the raw events
    assert "Reading additional input from stdin" not in docs_log  # stdin is the pane's tty
    assert model_server.problems() == []


def test_a_refused_write_is_not_a_plain_success(
    codex_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """approve: ask (Codex's read-only sandbox) refuses the write, approve: edits refuses
    the commit (.git is outside its writable worktree); Codex exits 0 both times and says
    nothing in its events. Both tasks fail, naming what was refused and the policy that
    allows it; the write that edits allowed is kept (committed) on the task's branch."""
    refused = Script("refused", [write("refused.txt", "nope\n"), say("I could not write it.")])
    commit = Script(
        "commit",
        [
            write("notes.txt", "kept\n"),
            run("git add -A && git commit -q -m notes"),
            say("Committed notes.txt."),
        ],
    )
    model_server.add(refused, commit)
    write_plan(
        repo,
        f"""\
name: refused
agent: codex
max_concurrency: 2
merge: {{land: manual}}
tasks:
  - id: ask
    approve: ask
    prompt: "Write refused.txt. {refused.marker}"
  - id: edits
    prompt: "Write and commit notes.txt. {commit.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", "--no-merge", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    run_id = latest_run(repo).id
    rows = tasks_of(repo, run_id)
    assert rows["ask"].status is TaskStatus.FAILED
    assert rows["ask"].exit_code == 0
    assert rows["ask"].reason == (
        "Codex was refused apply_patch(refused.txt) (approve: ask; `approve: edits` lets "
        "Codex write in the worktree, `approve: all` runs it without its sandbox)"
    )
    assert rows["edits"].status is TaskStatus.FAILED
    assert rows["edits"].reason == (
        "Codex was refused exec_command(git add -A && git commit -q -m notes) (approve: "
        "edits; `approve: all` runs Codex without its sandbox (git commits, network, files "
        "outside the worktree))"
    )
    assert git(repo, "show", f"{rows['edits'].branch}:notes.txt") == "kept"
    status = cli(repo, "status")
    assert "was refused apply_patch(refused.txt)" in status.stdout
    ask_log = _log(repo, run_id, "ask")
    assert "✗ refused: a file edit (writing is blocked by read-only sandbox" in ask_log
    edits_log = _log(repo, run_id, "edits")
    assert "✗ refused: a command in the sandbox (read only file system)" in edits_log
    assert git(repo, "ls-tree", "--name-only", "main") == "README.md"


def test_rate_limits_back_off_or_are_retried_by_codex_and_recover(
    codex_env: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """A 429 without retry-after ends Codex at once (no retry of its own); a 429 with
    retry-after Codex waits out itself and goes on; a lasting one it gives up on after 5
    reconnects. Given up, the attempt ends `rate limited: …`, the supervisor retries it
    after the back-off (not counted), and the retry does the work."""
    bare = Script("bare", [error(429), write("bare.txt", "made it\n"), say("done")])
    waited = Script(
        "waited", [error(429, retry_after=1), write("waited.txt", "waited\n"), say("done")]
    )
    lasting = Script(
        "lasting", [error(429, retry_after=1, times=6), write("lasting.txt", "late\n"), say("ok")]
    )
    model_server.add(bare, waited, lasting)
    write_plan(
        repo,
        f"""\
name: limited
agent: codex
max_concurrency: 3
tasks:
  - id: bare
    prompt: "Write bare.txt. {bare.marker}"
  - id: waited
    prompt: "Write waited.txt. {waited.marker}"
  - id: lasting
    prompt: "Write lasting.txt. {lasting.marker}"
""",
    )
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id

    def backing_off(task: str) -> bool:
        row = tasks_of(repo, run_id)[task]
        return row.status is TaskStatus.READY and row.reason.startswith("rate limited: ")

    for task in ("bare", "lasting"):
        wait_for(lambda task=task: backing_off(task), 90, f"{task} queued for a retry")
        reason = tasks_of(repo, run_id)[task].reason
        assert reason.startswith(
            "rate limited: exceeded retry limit, last status: 429 Too Many Requests"
        ), reason
        assert "(not counted as an attempt)" in reason
    with open_store(repo) as store:
        for task in ("bare", "lasting"):
            store.update_task(run_id, task, not_before=0.0)  # the back-off has passed
    waited_run = cli(repo, "wait", run_id, "--timeout", "120", timeout=150)
    assert waited_run.returncode == 0, waited_run.stdout + waited_run.stderr
    rows = tasks_of(repo, run_id)
    assert (rows["bare"].attempt, rows["waited"].attempt, rows["lasting"].attempt) == (2, 1, 2)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    assert git(repo, "show", "main:bare.txt") == "made it"
    assert git(repo, "show", "main:waited.txt") == "waited"
    assert git(repo, "show", "main:lasting.txt") == "late"
    statuses = {
        name: [r.status for r in model_server.main_requests(name) if r.turn == 0]
        for name in ("bare", "waited", "lasting")
    }
    assert statuses == {"bare": [429, 200], "waited": [429, 200], "lasting": [429] * 6 + [200]}
    waited_log = _log(repo, run_id, "waited")
    assert (
        "↻ Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)"
        in waited_log
    )
    lasting_log = _log(repo, run_id, "lasting")
    assert "↻ Reconnecting... 5/5" in lasting_log
    assert "✗ exceeded retry limit, last status: 429 Too Many Requests" in lasting_log


def _read(stream: EventStream, finished: Finished) -> tuple[list[str], list[str]]:
    """What the pane shows for a finished run: for its stdout (the events, then finish())
    and its stderr (its log; in the pane's pty the two are one stream)."""
    log = [line.text for text in finished.stderr.splitlines() for line in stream.line(text)]
    shown = [line.text for text in finished.stdout.splitlines() for line in stream.line(text)]
    return shown + [line.text for line in stream.finish()], log


def test_the_event_reader_turns_a_real_transcript_into_pane_lines(
    codex_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Codex's own --json events and log (a write, a failing command, an edit, a refused
    write outside the worktree, a retry, the last message) read by the adapter: readable
    lines, the thread, the priced usage and the refusal named from the session file."""
    usages = [Usage(1000, 50), Usage(1200, 40), Usage(1400, 30), Usage(1500, 20), Usage(1600, 10)]
    script = Script(
        "transcript",
        [
            write("src/one.py", "x = 1\n", usage=usages[0]),
            run("ls src && false", usage=usages[1]),
            error(429, retry_after=1),
            edit("src/one.py", "x = 1", "x = 2", usage=usages[2]),
            run("touch /etc/limitless-denied.txt", usage=usages[3]),
            say("Wrote one file.\nCould not write the other.", usage=usages[4]),
        ],
    )
    model_server.add(script)
    env = codex_agent.environ()
    env.update(CODEX.environment())
    prompt = f"Go. {script.marker}"
    argv = CODEX.command(["codex", "exec", "--json", prompt], "edits", prompt)
    assert argv[-4:] == ["--sandbox", "workspace-write", "--", prompt]
    finished = codex_agent.run(*argv[1:], cwd=repo, env=env)
    assert finished.returncode == 0, finished.describe()
    stream = CODEX.stream(repo, env)
    shown, log = _read(stream, finished)
    assert log == ["✗ refused: a command in the sandbox (read only file system)"]
    # Codex 0.171 reports a command its sandbox refused as an item only now and then
    # (a race; openai/codex#47433): when it does, the pane shows it like any other.
    refused_item = ["$ touch /etc/limitless-denied.txt", "  ✗ exit 1 · touch: cannot touch"]
    item_shown = refused_item[0] in shown
    if item_shown:
        at = shown.index(refused_item[0])
        assert shown[at + 1].startswith(refused_item[1]), shown
        del shown[at : at + 2]
    assert shown[0].startswith("Codex · thread ")
    assert shown[1:] == [
        "✎ add src/one.py",
        "$ ls src && false",
        "  ✗ exit 1 · one.py",
        "↻ Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)",
        "✎ update src/one.py",
        "● Wrote one file.",
        "  Could not write the other.",
        "✓ turn completed · 6,700 tokens in · 150 out",
        f"cost ${stream.facts.cost_usd or 0:.4f} (gpt-5.5)",
    ]
    facts = stream.facts
    assert facts.session_id and facts.session_id in finished.stdout
    assert facts.cost_usd == pytest.approx(codex_cost("gpt-5.5", usages), abs=1e-6)
    assert facts.denials == ["exec_command(touch /etc/limitless-denied.txt)"]
    assert facts.actions == 4 + item_shown  # the refused command counts once more then
    assert not facts.is_error
    assert facts.final_text == "Wrote one file.\nCould not write the other."


def test_a_model_without_a_known_price_records_no_cost(
    codex_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """A model the price table does not know: the usage is shown, no cost is recorded
    (rather than a wrong one), and the pane says why. Codex itself warns it does not know
    the model (an `error` item that does not fail the turn)."""
    script = Script("unpriced", [write("a.txt", "a\n"), say("done")])
    model_server.add(script)
    env = codex_agent.environ()
    argv = CODEX.command(
        ["codex", "exec", "--json", script.marker, "-m", "limitless-unpriced"],
        "edits",
        script.marker,
    )
    finished = codex_agent.run(*argv[1:], cwd=repo, env=env)
    assert finished.returncode == 0, finished.describe()
    stream = CODEX.stream(repo, env)
    shown, _ = _read(stream, finished)
    assert any(
        text.startswith("! Model metadata for `limitless-unpriced` not found") for text in shown
    )
    assert shown[-1] == "cost not recorded: no price known for limitless-unpriced"
    assert stream.facts.cost_usd is None
    assert stream.facts.input_tokens == 200
    assert (repo / "a.txt").read_text() == "a\n"


PLAN_EDITS_AND_ALL = """\
name: checked
agent: codex
tasks:
  - id: edits
    prompt: "Write a file."
  - id: all
    approve: all
    prompt: "Write a file."
"""


def _nothing_made(repo: Path) -> None:
    assert git(repo, "branch", "--format=%(refname:short)") == "main"
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not (repo.parent / f"{repo.name}.worktrees").exists()


def test_a_missing_or_too_old_codex_is_refused_before_anything_starts(
    codex_env: AgentSetup, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No codex on PATH, or one older than the adapter supports: `run` exits 3 naming the
    install command, and makes no branch, worktree or run."""
    write_plan(repo, PLAN_EDITS_AND_ALL)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    missing = cli(repo, "run", "--headless")
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert missing.stderr.strip() == (
        "limitless: error: agent command 'codex' (profile codex, for edits, all) is not on "
        "PATH; install it (npm install -g @openai/codex@0.171.0), or give these tasks another "
        "agent (`agent:` in the plan, `--agent` with --prompt)"
    )
    # No older Codex can be installed here (the registry mirror is offline for old
    # versions); a stand-in answers `--version` as Codex 0.150 did.
    old = tmp_path / "old-codex"
    old.mkdir()
    (old / "codex").write_text('#!/bin/sh\necho "codex-cli 0.150.0"\n')
    (old / "codex").chmod(0o755)
    monkeypatch.setenv("PATH", f"{old}:/usr/bin:/bin")
    too_old = cli(repo, "run", "--headless")
    assert too_old.returncode == 3, too_old.stdout + too_old.stderr
    assert too_old.stderr.strip() == (
        "limitless: error: Codex 0.150.0 (profile codex, for edits, all) is older than "
        "limitless supports (0.171.0; tested with 0.171.0); upgrade it: npm install -g "
        "@openai/codex@0.171.0"
    )
    _nothing_made(repo)
    with open_store(repo) as store:
        assert store.latest_run() is None


def test_codex_that_cannot_start_as_the_plan_asks_is_refused_by_validate(
    codex_env: AgentSetup, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where Codex's sandbox cannot start (no user namespaces: here a user namespace
    whose limit is 0), `validate` and `run` refuse the tasks that would run inside it,
    saying what the sandbox said; `approve: all` is not refused. A CODEX_HOME that is not
    a folder is refused for every task."""
    write_plan(repo, PLAN_EDITS_AND_ALL)
    ok = cli(repo, "validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    unshare = shutil.which("unshare")
    probe = subprocess.run(
        [unshare or "unshare", "-U", "-r", "true"], capture_output=True, check=False
    )
    if unshare is None or probe.returncode != 0:
        pytest.skip(f"cannot make a user namespace to take them away in: {probe.stderr!r}")
    limit = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    for command in ("validate", "run"):
        refused = subprocess.run(
            [unshare, "-U", "-r", "sh", "-c", limit, "sh", *LIMITLESS, command],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert refused.returncode == 3, refused.stdout + refused.stderr
        said = refused.stdout + refused.stderr
        assert (
            "Codex's sandbox cannot start here (`codex sandbox` said: bwrap: Creating new "
            "namespace failed: nesting depth or /proc/sys/user/max_*_namespaces exceeded "
            "(ENOSPC)), and `approve: edits` runs Codex inside it; every write and command "
            "would fail."
        ) in said
        assert said.rstrip().endswith("(tasks edits)"), said
    _nothing_made(repo)
    monkeypatch.setenv("CODEX_HOME", str(repo / "no-such-folder"))
    missing_home = cli(repo, "validate")
    assert missing_home.returncode == 3
    assert (missing_home.stdout + missing_home.stderr).strip() == (
        f"limitless.yaml: CODEX_HOME is {repo / 'no-such-folder'}, which is not a folder; "
        "Codex stops at once ('failed to resolve CODEX_HOME'): create it, or unset "
        "CODEX_HOME (tasks edits, all)"
    )
