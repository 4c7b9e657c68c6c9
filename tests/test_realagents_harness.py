"""The real agent programs against the scripted model server, run directly (no limitless).

Each test starts the real program (Claude Code, Codex, aider, opencode, gemini-cli)
in a temporary git repository with a fresh HOME, pointed at `model_server`; only
the model is scripted. A test skips, naming why, only when its program is not
installed (the bootstrap could not reach npm or PyPI).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from tests.engine_helpers import wait_for
from tests.realagents.costs import claude_cost
from tests.realagents.homes import (
    AgentSetup,
    Finished,
    claude_setup,
    codex_setup,
    reap_started,
)
from tests.realagents.modelserver import ModelServer
from tests.realagents.programs import PINNED, REPO_ROOT, find
from tests.realagents.script import Script, Usage, edit, error, run, say, write

# A generous bound on start-up: the first model request came after 0.3-0.6 s
# (claude, codex), 1.6 s (gemini), 2.5-3 s (aider, opencode) on this machine.
FIRST_REQUEST_WITHIN = 20.0


def result_line(finished: Finished) -> dict[str, Any]:
    """The last `{"type": "result", ...}` line of Claude's stream-json output."""
    results = [line for line in finished.json_lines() if line.get("type") == "result"]
    assert results, finished.describe()
    return results[-1]


def first_request_delay(server: ModelServer, finished: Finished) -> float:
    model_requests = server.model_requests()
    assert model_requests, finished.describe()
    return model_requests[0].at - finished.started


# -- installation --------------------------------------------------------------


def test_the_bootstrap_installs_the_pinned_versions() -> None:
    """scripts/_bootstrap.sh pins the same versions as programs.PINNED."""
    text = (REPO_ROOT / "scripts" / "_bootstrap.sh").read_text()
    pinned_in_script = set(re.findall(r"(@?[a-z][\w./-]*(?:@|==)\d[\w.]*)", text))
    assert set(PINNED.values()) <= pinned_in_script


@pytest.mark.parametrize("name", sorted(PINNED))
def test_an_installed_program_has_its_pinned_version(name: str) -> None:
    """`PROGRAM --version` prints the version the bootstrap pinned."""
    found = find(name)
    if found.path is None:
        pytest.skip(found.missing or name)
    version = re.split(r"@|==", found.pinned)[-1]
    result = subprocess.run(
        [str(found.path), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert version in result.stdout, result.stdout + result.stderr


def test_a_program_left_running_is_reaped(tmp_path: Path) -> None:
    """reap_started (the autouse reap_agents fixture) kills what a test left running."""
    sleeper = AgentSetup("sleep", Path("/bin/sleep"), tmp_path)
    agent = sleeper.start("300", cwd=tmp_path)
    assert agent.process.poll() is None
    assert reap_started() == [["/bin/sleep", "300"]]
    assert agent.process.returncode == -signal.SIGKILL


# -- Claude Code ---------------------------------------------------------------

CLAUDE_PRINT = ("--output-format", "stream-json", "--verbose")


def test_claude_writes_edits_and_reports_the_scripted_cost(
    claude_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """acceptEdits: write then edit land; total_cost_usd is the scripted usage at opus prices."""
    usages = [Usage(1200, 80), Usage(2400, 60, 1000, 0), Usage(3100, 40, 0, 2000)]
    script = Script(
        "claude-write-edit",
        [
            write("notes/hello.txt", "hello from the script\n", usage=usages[0]),
            edit("notes/hello.txt", "from the script", "edited by claude", usage=usages[1]),
            say("All done.", usage=usages[2]),
        ],
    )
    model_server.add(script)
    prompt = f"Write the greeting file. {script.marker}"
    finished = claude_agent.run(
        "-p", prompt, "--permission-mode", "acceptEdits", *CLAUDE_PRINT, cwd=repo
    )

    assert finished.returncode == 0, finished.describe()
    assert (repo / "notes" / "hello.txt").read_text() == "hello edited by claude\n"
    result = result_line(finished)
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["result"] == "All done."
    assert result["permission_denials"] == []
    assert result["total_cost_usd"] == pytest.approx(claude_cost(None, usages), rel=1e-9)
    turns = model_server.main_requests(script.name)
    assert [r.turn for r in turns] == [0, 1, 2]
    assert prompt in turns[0].user_text
    assert turns[1].tool_results == [
        f"File created successfully at: {repo}/notes/hello.txt"
        " (file state is current in your context — no need to Read it back)"
    ]
    assert model_server.problems() == []
    assert first_request_delay(model_server, finished) < FIRST_REQUEST_WITHIN


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-haiku-4-5"])
def test_claude_cost_follows_the_price_table(
    claude_agent: AgentSetup, model_server: ModelServer, repo: Path, model: str
) -> None:
    """Each family's four token prices (tests/realagents/costs.py) are what Claude charges."""
    usage = Usage(100_000, 10_000, 20_000, 300_000)
    script = Script(f"price-{model}", [say("ok", usage=usage)])
    model_server.add(script)
    finished = claude_agent.run(
        "-p", script.marker, "--model", model, "--output-format", "json", cwd=repo
    )
    assert finished.returncode == 0, finished.describe()
    result = result_line(finished)
    assert model_server.main_requests(script.name)[0].model == model
    assert result["total_cost_usd"] == pytest.approx(claude_cost(model, [usage]), rel=1e-9)


def test_claude_print_mode_without_a_permission_flag_refuses_and_exits_0(
    claude_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """No permission flag: Write and a writing Bash are refused, listed in permission_denials."""
    script = Script(
        "claude-denied",
        [
            write("denied.txt", "should not exist\n"),
            run("touch made-by-bash.txt"),
            say("I could not write it."),
        ],
    )
    model_server.add(script)
    finished = claude_agent.run("-p", f"Write it. {script.marker}", *CLAUDE_PRINT, cwd=repo)

    assert finished.returncode == 0, finished.describe()
    assert not (repo / "denied.txt").exists()
    assert not (repo / "made-by-bash.txt").exists()
    result = result_line(finished)
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    denials = result["permission_denials"]
    assert [d["tool_name"] for d in denials] == ["Write", "Bash"]
    assert denials[0]["tool_input"] == {
        "file_path": f"{repo}/denied.txt",
        "content": "should not exist\n",
    }
    assert denials[1]["tool_input"]["command"] == "touch made-by-bash.txt"
    assert all(d["tool_use_id"].startswith("toolu_") for d in denials)
    turns = model_server.main_requests(script.name)
    assert turns[1].tool_results == [
        f"Claude requested permissions to write to {repo}/denied.txt,"
        " but you haven't granted it yet."
    ]


def test_claude_retries_a_429_and_succeeds(
    claude_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """One 429: Claude waits about half a second, asks again, and finishes normally."""
    script = Script("claude-429", [error(429), say("done after a retry")])
    model_server.add(script)
    finished = claude_agent.run("-p", script.marker, *CLAUDE_PRINT, cwd=repo)

    assert finished.returncode == 0, finished.describe()
    assert result_line(finished)["result"] == "done after a retry"
    retries = [line for line in finished.json_lines() if line.get("subtype") == "api_retry"]
    assert len(retries) == 1
    assert retries[0]["error_status"] == 429
    assert retries[0]["error"] == "rate_limit"
    assert retries[0]["max_retries"] == 10
    turns = model_server.main_requests(script.name)
    assert [(r.turn, r.status) for r in turns] == [(0, 429), (0, 200)]
    assert turns[1].at - turns[0].at >= 0.4


def test_claude_gives_up_on_a_lasting_overload_with_exit_1(
    claude_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """529 every time, CLAUDE_CODE_MAX_RETRIES=1: two requests, then an error result, exit 1."""
    script = Script("claude-529", [error(529, times=None), say("never")])
    model_server.add(script)
    finished = claude_agent.run(
        "-p", script.marker, *CLAUDE_PRINT, cwd=repo, env={"CLAUDE_CODE_MAX_RETRIES": "1"}
    )

    assert finished.returncode == 1, finished.describe()
    result = result_line(finished)
    assert result["is_error"] is True
    assert result["api_error_status"] == 529
    assert result["result"].startswith("API Error: 529 scripted error 529.")
    assert result["total_cost_usd"] == 0
    assert [r.status for r in model_server.main_requests(script.name)] == [529, 529]


def test_two_claudes_at_once_each_follow_their_own_script(
    model_server: ModelServer, make_repo: Callable[..., Path], isolated_env: Path
) -> None:
    """Two claude processes on one server at the same time: each gets its own steps."""
    first, second = make_repo("first"), make_repo("second")
    both_asked = threading.Event()  # the first turns are answered once both are waiting
    scripts = {
        repo: Script(
            f"claude-{repo.name}",
            [
                write("who.txt", f"{repo.name}\n", gate=both_asked),
                run("cat who.txt"),
                say(f"{repo.name} done"),
            ],
        )
        for repo in (first, second)
    }
    model_server.add(*scripts.values())
    setup = claude_setup(model_server, isolated_env)
    running = [
        setup.start("-p", s.marker, "--permission-mode", "acceptEdits", *CLAUDE_PRINT, cwd=repo)
        for repo, s in scripts.items()
    ]
    try:
        model_server.wait_until_held(*(s.name for s in scripts.values()), timeout=30)
    finally:
        both_asked.set()
        finished = [agent.wait(60) for agent in running]

    for done, (repo, script) in zip(finished, scripts.items(), strict=True):
        assert done.returncode == 0, done.describe()
        assert (repo / "who.txt").read_text() == f"{repo.name}\n"
        assert result_line(done)["result"] == f"{repo.name} done"
        turns = model_server.main_requests(script.name)
        assert [r.turn for r in turns] == [0, 1, 2]
        assert turns[2].last_tool_result == repo.name
    assert model_server.problems() == []


def test_the_readme_example_runs(
    claude_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """The worked example of tests/realagents/README.md, as written there."""
    script = Script(
        "greet",
        [
            write("hello.txt", "hi\n", usage=Usage(1000, 50)),
            error(429),
            edit("hello.txt", "hi", "hello"),
            run("git add -A && git commit -qm greet"),
            say("Done."),
        ],
    )
    model_server.add(script)
    finished = claude_agent.run(
        "-p",
        f"Greet. {script.marker}",
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        "Bash",
        "--output-format",
        "stream-json",
        "--verbose",
        cwd=repo,
    )
    assert finished.returncode == 0, finished.describe()
    assert (repo / "hello.txt").read_text() == "hello\n"
    assert git(repo, "log", "-1", "--format=%s") == "greet"
    result = [line for line in finished.json_lines() if line["type"] == "result"][-1]
    usages = [Usage(1000, 50), *[script.default_usage] * 3]
    assert result["total_cost_usd"] == pytest.approx(claude_cost(None, usages))
    assert model_server.main_requests("greet")[1].tool_results
    assert model_server.problems() == []


def test_claude_tui_starts_without_questions_and_titles_its_pane(
    model_server: ModelServer, repo: Path, isolated_env: Path, tmux_socket: str
) -> None:
    """Interactive claude in a private tmux pane: straight to the prompt, works, pane titled."""
    script = Script("claude-tui", [write("tui.txt", "from the tui\n"), say("Wrote tui.txt.")])
    model_server.add(script)
    setup = claude_setup(model_server, isolated_env, trust=[repo])
    env = setup.environ()
    env["PWD"] = str(repo)
    command = " ".join(shlex.quote(a) for a in setup.argv("--permission-mode", "acceptEdits"))

    def tmux(*args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", tmux_socket, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=10,
            check=False,
        )
        return done.stdout

    tmux("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "-c", str(repo), command)
    wait_for(lambda: "accept edits on" in tmux("capture-pane", "-p"), 30, "claude's prompt")
    screen = tmux("capture-pane", "-p")
    assert "trust" not in screen.lower()
    assert "API key" not in screen
    tmux("send-keys", "-l", f"Write it. {script.marker}")
    wait_for(lambda: f"Write it. {script.marker}" in tmux("capture-pane", "-p"), 10, "the prompt")
    tmux("send-keys", "Enter")
    wait_for(lambda: "Wrote tui.txt." in tmux("capture-pane", "-p"), 30, "the answer")
    assert (repo / "tui.txt").read_text() == "from the tui\n"
    wait_for(
        lambda: "Scripted session" in tmux("display-message", "-p", "#{pane_title}"),
        10,
        "the pane title from the title side request",
    )
    side = model_server.of_kind("side")
    assert side and side[0].body["output_config"]["format"]["type"] == "json_schema"
    assert [r.turn for r in model_server.main_requests(script.name)] == [0, 1]


# -- Codex ---------------------------------------------------------------------


def test_codex_exec_workspace_write_writes_and_reports_json_events(
    codex_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """-s workspace-write: apply_patch adds the file, a command runs; --json events and usage."""
    usages = [Usage(1000, 50), Usage(1500, 30, 0, 500), Usage(2000, 20)]
    script = Script(
        "codex-write",
        [
            write("hello.txt", "hello from codex\n", usage=usages[0]),
            run("cat hello.txt && echo appended >> hello.txt", usage=usages[1]),
            say("Wrote hello.txt.", usage=usages[2]),
        ],
    )
    model_server.add(script)
    finished = codex_agent.run(
        "exec", "--json", "-s", "workspace-write", f"Write hello. {script.marker}", cwd=repo
    )

    assert finished.returncode == 0, finished.describe()
    assert (repo / "hello.txt").read_text() == "hello from codex\nappended\n"
    events = finished.json_lines()
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["thread.started", "turn.started"]
    assert kinds[-1] == "turn.completed"
    items = [e["item"] for e in events if e["type"] == "item.completed"]
    assert [i["type"] for i in items] == ["file_change", "command_execution", "agent_message"]
    assert items[0]["changes"] == [{"path": f"{repo}/hello.txt", "kind": "add"}]
    assert items[1]["exit_code"] == 0
    assert items[1]["aggregated_output"] == "hello from codex\n"
    assert items[2]["text"] == "Wrote hello.txt."
    assert events[-1]["usage"] == {
        "input_tokens": sum(u.input_tokens for u in usages),
        "cached_input_tokens": sum(u.cache_read_input_tokens for u in usages),
        "cache_write_input_tokens": 0,
        "output_tokens": sum(u.output_tokens for u in usages),
        "reasoning_output_tokens": 0,
    }
    turns = model_server.main_requests(script.name)
    assert [r.turn for r in turns] == [0, 1, 2]
    assert "Success. Updated the following files:\nA hello.txt" in turns[1].tool_results[0]
    assert model_server.problems() == []
    assert first_request_delay(model_server, finished) < FIRST_REQUEST_WITHIN


def test_codex_exec_default_sandbox_writes_nothing_and_exits_0(
    codex_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """Default (read-only) sandbox: the patch is rejected, the model says done, exit 0."""
    script = Script("codex-readonly", [write("hello.txt", "x\n"), say("done.")])
    model_server.add(script)
    finished = codex_agent.run("exec", "--json", script.marker, cwd=repo)

    assert finished.returncode == 0, finished.describe()
    assert not (repo / "hello.txt").exists()
    assert model_server.main_requests(script.name)[1].tool_results == [
        "patch rejected: writing is blocked by read-only sandbox;"
        " rejected by user approval settings"
    ]
    messages = [
        e["item"]["text"]
        for e in finished.json_lines()
        if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"
    ]
    assert messages == ["done."]


def test_codex_retries_a_429_only_when_told_when(
    codex_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """A 429 with retry-after is retried after that wait; one without it ends the run (exit 1)."""
    waited = Script("codex-429-retry-after", [error(429, retry_after=1), say("ok")])
    bare = Script("codex-429-bare", [error(429), say("never")])
    model_server.add(waited, bare)
    finished = codex_agent.run("exec", "--json", waited.marker, cwd=repo)
    assert finished.returncode == 0, finished.describe()
    turns = model_server.main_requests(waited.name)
    assert [r.status for r in turns] == [429, 200]
    assert turns[1].at - turns[0].at >= 0.9

    failed = codex_agent.run("exec", "--json", bare.marker, cwd=repo)
    assert failed.returncode == 1, failed.describe()
    assert failed.json_lines()[-1] == {
        "type": "turn.failed",
        "error": {"message": "exceeded retry limit, last status: 429 Too Many Requests"},
    }
    assert [r.status for r in model_server.main_requests(bare.name)] == [429]


def test_codex_gives_up_on_lasting_500s_after_its_retry_limits(
    codex_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """500 every time: (request_max_retries+1) × (stream_max_retries+1) requests, then exit 1."""
    codex_home = Path(codex_agent.env["CODEX_HOME"])
    setup = codex_setup(
        model_server, codex_home, home=codex_agent.home, request_max_retries=1, stream_max_retries=1
    )
    script = Script("codex-500", [error(500, times=None), say("never")])
    model_server.add(script)
    finished = setup.run("exec", "--json", script.marker, cwd=repo)

    assert finished.returncode == 1, finished.describe()
    assert [r.status for r in model_server.main_requests(script.name)] == [500] * 4
    events = finished.json_lines()
    assert events[-1]["type"] == "turn.failed"
    assert any(e.get("message", "").startswith("Reconnecting... 1/1") for e in events)


# -- aider -----------------------------------------------------------------------


def test_aider_whole_edit_changes_the_file_and_commits(
    aider_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """aider applies a `whole` edit of a file in the chat and commits it with the side reply."""
    script = Script("aider-edit", [edit("README.md", "# test repo", "# edited by aider")])
    model_server.add(script)
    finished = aider_agent.run(
        "--message", f"Change the title. {script.marker}", "README.md", cwd=repo
    )

    assert finished.returncode == 0, finished.describe()
    assert (repo / "README.md").read_text() == "# edited by aider\n"
    assert git(repo, "log", "-1", "--format=%s") == "Make the scripted change"
    assert git(repo, "rev-list", "--count", "HEAD") == "2"
    assert git(repo, "status", "--porcelain", "--", "README.md") == ""
    kinds = [(r.kind, r.script) for r in model_server.model_requests()]
    assert kinds == [("main", script.name), ("side", None)]
    assert "commit message" in model_server.of_kind("side")[0].text
    assert first_request_delay(model_server, finished) < FIRST_REQUEST_WITHIN


# -- opencode and gemini -------------------------------------------------------------


def test_opencode_runs_against_the_server(
    opencode_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """opencode run: its title request is side, its write tool writes the file."""
    script = Script("opencode-write", [write("hi.txt", "from opencode\n"), say("written")])
    model_server.add(script)
    finished = opencode_agent.run("run", f"Write hi. {script.marker}", cwd=repo)

    assert finished.returncode == 0, finished.describe()
    assert (repo / "hi.txt").read_text() == "from opencode\n"
    assert "written" in finished.stdout
    turns = model_server.main_requests(script.name)
    assert [r.turn for r in turns] == [0, 1]
    assert turns[1].tool_results == ["Wrote file successfully."]
    assert [r.kind for r in model_server.of_kind("side")] == ["side"]
    assert model_server.problems() == []


def test_gemini_runs_against_the_server(
    gemini_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """gemini -p with --approval-mode yolo: the router request is side, write_file writes."""
    script = Script("gemini-write", [write("hi.txt", "from gemini\n"), say("written")])
    model_server.add(script)
    finished = gemini_agent.run(
        "--approval-mode", "yolo", "-p", f"Write hi. {script.marker}", cwd=repo
    )

    assert finished.returncode == 0, finished.describe()
    assert (repo / "hi.txt").read_text() == "from gemini\n"
    assert finished.stdout.strip() == "written"
    turns = model_server.main_requests(script.name)
    assert [r.turn for r in turns] == [0, 1]
    assert turns[0].path.endswith(":streamGenerateContent?alt=sse")
    assert "Successfully created and wrote to new file" in turns[1].tool_results[0]
    assert model_server.problems() == []


# -- lasting errors (slow: the programs' own back-off takes over a minute) -----------


@pytest.mark.slow
def test_aider_gives_up_on_a_lasting_429_and_still_exits_0(
    aider_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """aider retries for about 80 s (27 requests), says it was rate limited, exits 0."""
    script = Script("aider-429", [error(429, times=None), say("never")])
    model_server.add(script)
    finished = aider_agent.run("--message", script.marker, "README.md", cwd=repo, timeout=180)

    assert finished.returncode == 0, finished.describe()
    assert "The API provider has rate limited you." in finished.stdout
    assert len(model_server.main_requests(script.name)) == 27
    assert git(repo, "rev-list", "--count", "HEAD") == "1"


@pytest.mark.slow
def test_opencode_gives_up_on_a_lasting_429_with_exit_1(
    opencode_agent: AgentSetup, model_server: ModelServer, repo: Path
) -> None:
    """opencode retries 5 times over about 75 s, then prints the error and exits 1."""
    script = Script("opencode-429", [error(429, times=None), say("never")])
    model_server.add(script)
    finished = opencode_agent.run("run", script.marker, cwd=repo, timeout=180)

    assert finished.returncode == 1, finished.describe()
    assert "scripted error 429" in finished.stderr
    assert len(model_server.main_requests(script.name)) == 6
