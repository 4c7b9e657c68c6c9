"""The real agent programs other than Claude Code inside `sandbox: worktree` (issue 17).

Each built-in profile's program, run by `limitless run` against the scripted model
server, writes a file and commits it inside the sandbox, its work lands on the base
branch, and the state it keeps under HOME (its `state_paths`: a session file, a
database, a log) was written there. Claude Code's own test is in test_sandbox.py.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.agents import sandbox
from limitless.plan.loader import loads
from limitless.programs.base import Approve
from limitless.programs.codex import CODEX
from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan
from tests.realagents.homes import (
    AgentSetup,
    aider_setup,
    codex_setup,
    gemini_setup,
    opencode_setup,
)
from tests.realagents.modelserver import ModelServer
from tests.realagents.programs import agents_dir, program
from tests.realagents.script import Script, Step, run, say, write
from tests.test_sandbox import RUN_TIMEOUT, needs_bwrap

APP = "def greet():\n    return 'hi'\n"
COMMIT = "git add -A && git commit -q -m 'app: greet' && echo committed"
# What a program says when the sandbox keeps it from writing its own state.
READ_ONLY = ("Read-only file system", "EROFS")


@pytest.fixture
def home_outside_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HOME outside /tmp, as a user's is (Codex will not make its helper programs under
    the temporary folder), removed after the test."""
    home = agents_dir() / "homes" / f"home-{uuid.uuid4().hex[:12]}"
    home.mkdir(parents=True)
    # A user's git identity: without one aider writes a made-up one into the repository's
    # config (read-only in the sandbox: it stops there).
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Boxed User\n\temail = boxed@limitless.invalid\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _codex(server: ModelServer, home: Path) -> AgentSetup:
    # CODEX_HOME left unset: Codex keeps its state in ~/.codex, the adapter's state path.
    setup = codex_setup(server, home / ".codex", home=home)
    env = {name: value for name, value in setup.env.items() if name != "CODEX_HOME"}
    return AgentSetup(setup.program, setup.executable, home, env, setup.args, setup.missing)


class BoxedCase(NamedTuple):
    test_id: str
    profile: str
    setup: Callable[[ModelServer, Path], AgentSetup]
    commits: bool  # the script commits with git (aider commits its edits itself)
    state: tuple[str, ...]  # globs under HOME: the state it must have written
    extra: str = ""  # more plan keys
    session: bool = True  # its session is recorded (aider has none)


CODEX_STATE = (".codex/sessions/*/*/*/rollout-*.jsonl", ".codex/state_*.sqlite")
OPENCODE_STATE = (".local/share/opencode/log/*.log", ".local/share/opencode/snapshot/*/*/HEAD")
BOXED_CASES = [
    pytest.param(
        BoxedCase("codex", "codex", _codex, True, CODEX_STATE),
        id="codex",
    ),
    pytest.param(
        BoxedCase(
            "codex-interactive",
            "codex-interactive",
            _codex,
            True,
            CODEX_STATE,
            extra="idle_done: 1s",
        ),
        id="codex-interactive",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        BoxedCase(
            "gemini",
            "gemini",
            gemini_setup,
            True,
            (".gemini/tmp/*/chats/session-*.jsonl", ".gemini/projects.json"),
        ),
        id="gemini",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        # its database (OPENCODE_DB) is in the task's own run folder, writable inside
        BoxedCase("opencode", "opencode", opencode_setup, True, OPENCODE_STATE),
        id="opencode",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        BoxedCase("aider", "aider", aider_setup, False, (".aider/installs.json",), session=False),
        id="aider",
        marks=pytest.mark.slow,
    ),
]


@needs_bwrap
@pytest.mark.parametrize("case", BOXED_CASES)
def test_a_real_agent_works_inside_the_sandbox(
    case: BoxedCase,
    home_outside_tmp: Path,
    model_server: ModelServer,
    repo: Path,
    tmux_socket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The profile's real program in `sandbox: worktree` (`approve: all`): it writes and
    commits, its work lands, its own state under HOME was written, and it was never
    refused a write there."""
    setup = case.setup(model_server, home_outside_tmp)
    if setup.executable is None:
        pytest.skip(setup.missing or f"{setup.program} is not installed")
    setup.export(monkeypatch)
    steps: list[Step] = [write("src/app.py", APP)]
    if case.commits:
        steps.append(run(COMMIT))
    steps.append(say("Wrote src/app.py."))
    script = Script(f"boxed-{case.test_id}", steps)
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: boxed
sandbox: worktree
agent: {case.profile}
{case.extra}
tasks:
  - id: app
    approve: all
    prompt: "Create src/app.py with greet(). {script.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    run_row = latest_run(repo)
    with open_store(repo) as store:
        log = store.log_path(run_row.id, "app").read_text()
    assert finished.returncode == 0, finished.stdout + finished.stderr + log
    assert git(repo, "show", "main:src/app.py") == APP.strip()
    if case.commits:
        assert "app: greet" in git(repo, "log", "--format=%s", "main").splitlines()
        results = [r for req in model_server.main_requests(script.name) for r in req.tool_results]
        assert any("committed" in r for r in results), results
    row = tasks_of(repo, run_row.id)["app"]
    assert row.status is TaskStatus.DONE, row.reason
    assert bool(row.session_id) is case.session, row.session_id
    assert "sandbox: worktree (bubblewrap)" in log
    assert not [word for word in READ_ONLY if word in log], log
    for pattern in case.state:
        assert list(home_outside_tmp.glob(pattern)), f"{case.profile} wrote no {pattern}: {log}"


class CommandCase(NamedTuple):
    test_id: str
    approve: Approve
    confined: bool
    flags: list[str]


COMMAND_CASES = [
    CommandCase("edits", "edits", False, ["--sandbox", "workspace-write"]),
    CommandCase("edits-confined", "edits", True, ["--sandbox", "danger-full-access"]),
    CommandCase("ask-confined", "ask", True, ["--sandbox", "read-only"]),
    CommandCase("all-confined", "all", True, ["--dangerously-bypass-approvals-and-sandbox"]),
]


@pytest.mark.parametrize("case", COMMAND_CASES, ids=[c.test_id for c in COMMAND_CASES])
def test_codex_runs_without_its_own_sandbox_inside_limitless_s(case: CommandCase) -> None:
    """Confined by limitless, `edits` drops Codex's sandbox (it cannot start there); `ask`
    keeps read-only (nothing may be written); the prompt stays last, after `--`."""
    argv = CODEX.command(
        ["codex", "exec", "--json", "-p"], case.approve, "-p", confined=case.confined
    )
    assert argv == ["codex", "exec", "--json", *case.flags, "--", "-p"]


class StateCase(NamedTuple):
    test_id: str
    profile: str
    state: tuple[str, ...]


STATE_CASES = [
    StateCase("codex", "codex", ("~/.codex/",)),
    StateCase("codex-interactive", "codex-interactive", ("~/.codex/",)),
    StateCase("gemini", "gemini", ("~/.gemini/",)),
    StateCase(
        "opencode",
        "opencode",
        (
            "~/.local/share/opencode/",
            "~/.local/state/opencode/",
            "~/.cache/opencode/",
            "~/.config/opencode/",
        ),
    ),
    StateCase("aider", "aider", ("~/.aider/",)),
]


@pytest.mark.parametrize("case", STATE_CASES, ids=[c.test_id for c in STATE_CASES])
def test_each_profile_s_sandbox_can_write_its_program_s_state(
    case: StateCase, tmp_path: Path
) -> None:
    """The folders each program was seen writing under HOME are writable in its task's
    sandbox, before the plan's own `sandbox_write`."""
    plan = loads(
        f"sandbox: worktree\nsandbox_write: [~/.cache/pip/]\n"
        f"tasks: [{{id: a, prompt: x, agent: {case.profile}}}]\n",
        source="plan.yaml",
        base_dir=tmp_path,
    )
    assert sandbox.policy(plan, plan.task("a")).write == (*case.state, "~/.cache/pip/")


@needs_bwrap
def test_codex_under_edits_works_inside_the_sandbox(
    home_outside_tmp: Path,
    model_server: ModelServer,
    repo: Path,
    tmux_socket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`approve: edits` inside limitless's sandbox: Codex's edit and its command both write
    the worktree (without Codex's own sandbox, which cannot start there), and the work lands."""
    program("codex")
    _codex(model_server, home_outside_tmp).export(monkeypatch)
    script = Script(
        "nested",
        [
            write("src/app.py", APP),
            run("echo ran > ran.txt; echo status=$?"),
            say("Wrote src/app.py and ran.txt."),
        ],
    )
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: nested
sandbox: worktree
agent: codex
tasks:
  - id: app
    approve: edits
    prompt: "Create src/app.py with greet(). {script.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    run_row = latest_run(repo)
    with open_store(repo) as store:
        log = store.log_path(run_row.id, "app").read_text()
    results = [r for req in model_server.main_requests("nested") for r in req.tool_results]
    assert finished.returncode == 0, finished.stdout + finished.stderr + log + repr(results)
    assert any("status=0" in r for r in results), results
    assert git(repo, "show", "main:src/app.py") == APP.strip()
    assert git(repo, "show", "main:ran.txt") == "ran"
    assert tasks_of(repo, run_row.id)["app"].status is TaskStatus.DONE
