"""Malformed plans: each one gives a located error, exit 2, and creates nothing.

The corpus lives in `tests/bad_plans/`, one plan per file. The first line of each
file says where its (first expected) problem is and what it says:

    # expect: LINE:COL substring of the message
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.cli import main as cli
from limitless.plan.model import MAX_PLAN_BYTES
from tests.conftest import git
from tests.engine_helpers import cli as run_cli
from tests.engine_helpers import write_plan

CORPUS = Path(__file__).parent / "bad_plans"
EXPECT = re.compile(rb"# expect: (\d+):(\d+) (.+)")


class BadPlan(NamedTuple):
    test_id: str
    path: Path
    line: int
    column: int
    says: str


def corpus() -> list[BadPlan]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        first = path.read_bytes().split(b"\n", 1)[0]
        match = EXPECT.fullmatch(first)
        if match is None:
            msg = f"{path}: the first line must be `# expect: LINE:COL substring`"
            raise AssertionError(msg)
        line, column, says = match.groups()
        cases.append(BadPlan(path.stem, path, int(line), int(column), says.decode()))
    return cases


CASES = corpus()


def snapshot(repo: Path) -> tuple[str, bool, bool, str]:
    """What a run could have created: branches, worktrees, the store, tmux sessions."""
    sessions = subprocess.run(
        ["tmux", "-L", os.environ["LIMITLESS_TMUX_SOCKET"], "list-sessions", "-F", "#S"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return (
        git(repo, "branch", "--list", "--format=%(refname)"),
        (repo.parent / f"{repo.name}.worktrees").exists(),
        (repo / ".git" / "limitless").exists(),
        sessions,
    )


def test_the_corpus_is_big_and_every_file_is_indexed() -> None:
    """At least 40 malformed plans, each with an `# expect:` line."""
    assert len(CASES) >= 40
    assert len(CASES) == len(list(CORPUS.iterdir()))


@pytest.mark.usefixtures("tmux_socket")
@pytest.mark.parametrize("case", CASES, ids=[case.test_id for case in CASES])
def test_a_bad_plan_is_refused_at_its_place_and_creates_nothing(
    repo: Path, case: BadPlan, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`limitless run --headless BAD.yaml`: exit 2, `FILE:LINE:COL: message`, nothing made."""
    plan = repo / case.path.name
    plan.write_bytes(case.path.read_bytes())
    before = snapshot(repo)
    monkeypatch.chdir(repo)
    code = cli.main(["run", "--headless", plan.name])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{plan.name}:{case.line}:{case.column}: {case.says}" in err
    assert snapshot(repo) == before


@pytest.mark.usefixtures("tmux_socket")
def test_a_plan_over_one_mebibyte_is_refused_before_parsing(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A huge plan file is refused at 1:1 without being parsed; nothing is made."""
    filler = "# " + "x" * 78 + "\n"
    body = "name: x\ntasks:\n  - {id: a, prompt: hi}\n"
    (repo / "huge.yaml").write_text(body + filler * (MAX_PLAN_BYTES // len(filler) + 1))
    before = snapshot(repo)
    monkeypatch.chdir(repo)
    code = cli.main(["run", "--headless", "huge.yaml"])
    err = capsys.readouterr().err
    assert code == 2
    assert "huge.yaml:1:1: the plan is larger than 1 MiB" in err
    assert snapshot(repo) == before


class ViaProcess(NamedTuple):
    test_id: str
    plan: str
    args: tuple[str, ...]


VIA_PROCESS = [
    ViaProcess("run-headless", "cycle_three.yaml", ("run", "--headless")),
    ViaProcess("run-detach", "id_slash.yaml", ("run", "--detach")),
    ViaProcess("validate", "alias_bomb.yaml", ("validate",)),
]


@pytest.mark.usefixtures("tmux_socket")
@pytest.mark.parametrize("case", VIA_PROCESS, ids=[case.test_id for case in VIA_PROCESS])
def test_the_real_command_exits_2_with_the_location(repo: Path, case: ViaProcess) -> None:
    """The installed entry point (a real process) reports the same place and exit code."""
    expected = next(c for c in CASES if c.path.name == case.plan)
    (repo / case.plan).write_bytes(expected.path.read_bytes())
    before = snapshot(repo)
    result = run_cli(repo, *case.args, case.plan)
    assert result.returncode == 2, result.stdout + result.stderr
    located = f"{case.plan}:{expected.line}:{expected.column}: {expected.says}"
    assert located in result.stderr.splitlines()[0]
    assert snapshot(repo) == before


@pytest.mark.usefixtures("tmux_socket")
def test_a_missing_agent_program_is_refused_before_anything_is_made(repo: Path) -> None:
    """An agent whose program is not on PATH: exit 3 naming it and its tasks, nothing
    made (before, a task failed only after its setup had run)."""
    write_plan(
        repo,
        """\
name: ghosts
agent: ghost
setup: ["touch setup-ran"]
agents:
  ghost: {command: [no-such-agent-program-xyz, "{prompt}"]}
tasks:
  - {id: a, prompt: one}
  - {id: b, prompt: two}
  - {id: c, prompt: three, agent: shell}
""",
    )
    before = snapshot(repo)
    result = run_cli(repo, "run", "--headless")
    assert result.returncode == 3, result.stdout + result.stderr
    assert (
        "agent command 'no-such-agent-program-xyz' (profile ghost, for a, b) is not on PATH; "
        "install it, or give these tasks another agent"
    ) in result.stderr
    assert snapshot(repo) == before
