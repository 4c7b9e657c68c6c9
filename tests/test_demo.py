"""Tests of the demo agent (limitless.demo.agent) and the demo repository (limitless.demo.repo)."""

from __future__ import annotations

import math
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, NamedTuple

import psutil
import pytest
import yaml

from limitless.demo import agent as demo_agent
from limitless.demo import repo as demo
from limitless.demo import script as demo_script
from limitless.errors import UsageError
from limitless.programs.profiles import BUILTIN_PROFILES, AgentContext, OutputParsers, render_argv
from tests.conftest import GIT_IDENTITY, git

PARSERS = OutputParsers.for_profile(BUILTIN_PROFILES["demo"])
DEADLINE_S = 60.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def agent_argv(
    tmp_path: Path, repo: Path, task: str, prompt: str, model: str | None = None
) -> list[str]:
    """The demo profile's argv for `task`, with the prompt in a file outside the repository."""
    prompt_file = tmp_path / f"prompt-{task}.txt"
    prompt_file.write_text(prompt, encoding="utf-8")
    context = AgentContext(
        prompt=prompt,
        prompt_file=str(prompt_file),
        task=task,
        worktree=str(repo),
        branch=f"limitless/test/{task}",
        model=model,
    )
    return render_argv(BUILTIN_PROFILES["demo"], context)


def agent_env(task: str, repo: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the wrapper gives the agent, fast and without colours unless overridden."""
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env.update(
        {
            "LIMITLESS_RUN": "test-1",
            "LIMITLESS_TASK": task,
            "LIMITLESS_WORKTREE": str(repo),
            "LIMITLESS_BRANCH": f"limitless/test-1/{task}",
            "LIMITLESS_ATTEMPT": "1",
            "LIMITLESS_DEMO_SPEED": "50",
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


def run_agent(
    tmp_path: Path,
    repo: Path,
    task: str,
    prompt: str = "Do the thing\nwith details\n",
    *,
    env: Mapping[str, str] | None = None,
    model: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the demo agent to its end in `repo`."""
    return subprocess.run(
        agent_argv(tmp_path, repo, task, prompt, model),
        cwd=repo,
        env=agent_env(task, repo, env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=DEADLINE_S,
        check=False,
    )


def subjects(repo: Path, since: str = "main") -> list[str]:
    """Commit subjects on HEAD since `since`, oldest first."""
    out = git(repo, "log", "--reverse", "--format=%s", f"{since}..HEAD")
    return out.splitlines() if out else []


def progress_values(text: str) -> list[float]:
    return [p for line in text.splitlines() if (p := PARSERS.progress_of(line)) is not None]


def cost_values(text: str) -> list[float]:
    return [c for line in text.splitlines() if (c := PARSERS.cost_of(line)) is not None]


def on_branch(repo: Path, branch: str) -> Path:
    """Check out a new branch `branch` from main in `repo`."""
    git(repo, "checkout", "-q", "-b", branch, "main")
    return repo


class AreaCase(NamedTuple):
    test_id: str
    task: str
    prefixes: tuple[str, ...]


AREA_CASES = [
    AreaCase("frontend", "frontend", ("apps/web/",)),
    AreaCase("backend", "backend", ("services/api/",)),
    AreaCase("database", "database", ("db/migrations/", "db/seeds/")),
    AreaCase("api", "api", ("services/api/src/routes/", "services/api/tests/")),
    AreaCase("frontend-api", "frontend-api", ("apps/web/src/api/", "apps/web/src/hooks/")),
    AreaCase("payments", "payments", ("services/api/src/payments/", "services/api/tests/")),
    AreaCase("e2e", "e2e", ("tests/e2e/",)),
    AreaCase("stage-of-api", "api.review", ("services/api/src/routes/", "services/api/tests/")),
    AreaCase("unknown", "docs-site", ("work/docs-site/",)),
]


@pytest.mark.parametrize("case", AREA_CASES, ids=[c.test_id for c in AREA_CASES])
def test_agent_writes_and_commits_files_in_its_area(
    case: AreaCase, repo: Path, tmp_path: Path
) -> None:
    """The agent writes files where its task belongs and commits them all, naming the task."""
    on_branch(repo, "work")
    result = run_agent(tmp_path, repo, case.task, "Build the part\nsecond line\n")
    assert result.returncode == 0, result.stdout + result.stderr
    changed = git(repo, "diff", "--name-only", "main", "HEAD").splitlines()
    assert changed
    assert all(path.startswith(case.prefixes) for path in changed), changed
    found = subjects(repo)
    assert 1 <= len(found) <= 3
    assert found[0] == f"{case.task}: Build the part"
    assert all(s.startswith(f"{case.task}: ") for s in found)
    assert git(repo, "status", "--porcelain") == ""


class ColourCase(NamedTuple):
    test_id: str
    coloured: bool


COLOUR_CASES = [ColourCase("plain", False), ColourCase("coloured", True)]


@pytest.mark.parametrize("case", COLOUR_CASES, ids=[c.test_id for c in COLOUR_CASES])
def test_agent_output_is_read_by_the_demo_profile_parsers(
    case: ColourCase, repo: Path, tmp_path: Path
) -> None:
    """Progress rises to 100 and one cost line is read, with or without colours."""
    env = agent_env("frontend", repo)
    if case.coloured:
        del env["NO_COLOR"]
        env["FORCE_COLOR"] = "1"
    result = subprocess.run(
        agent_argv(tmp_path, repo, "frontend", "Set up React"),
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=DEADLINE_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert ("\x1b[" in result.stdout) is case.coloured
    assert result.stdout.isascii()
    progress = progress_values(result.stdout)
    assert progress == sorted(progress)
    assert len(set(progress)) >= 5
    assert progress[-1] == 100.0
    assert cost_values(result.stdout) == [demo_script.cost_for("frontend")]
    text = ANSI.sub("", result.stdout)
    assert "Reading apps/web/src/main.tsx" in text
    assert "Planning: Set up React" in text
    assert "Writing apps/web/src/App.tsx" in text
    assert "Running tests: " in text
    assert text.endswith(f"\nTotal cost: ${demo_script.cost_for('frontend'):.2f}\n")


def test_agent_is_deterministic_per_task(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    """The same task writes the same tree and reports the same progress and cost."""
    first, second = make_repo("first"), make_repo("second")
    outputs = []
    for repo in (first, second):
        result = run_agent(tmp_path, repo, "backend")
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert git(first, "rev-parse", "HEAD^{tree}") == git(second, "rev-parse", "HEAD^{tree}")
    assert git(first, "log", "--format=%s") == git(second, "log", "--format=%s")
    assert progress_values(outputs[0]) == progress_values(outputs[1])
    assert cost_values(outputs[0]) == cost_values(outputs[1])


def test_seconds_and_cost_depend_on_the_task_only() -> None:
    """Duration (4-8 s) and cost (under $1) are fixed per task id and differ between ids."""
    ids = ["frontend", "backend", "database", "api", "frontend-api", "payments", "e2e"]
    seconds = [demo_script.seconds_for(task) for task in ids]
    costs = [demo_script.cost_for(task) for task in ids]
    assert all(4.0 <= s <= 8.0 for s in seconds)
    assert all(0 < c < 1 for c in costs)
    assert len(set(zip(seconds, costs, strict=True))) == len(ids)
    assert seconds == [demo_script.seconds_for(task) for task in ids]
    script = demo_script.build_script("frontend", "Set up React\n")
    assert (script.seconds, script.cost_usd) == (seconds[0], costs[0])


class SpeedCase(NamedTuple):
    test_id: str
    raw: str | None
    factor: float  # total pause = seconds_for(task) * factor


SPEED_CASES = [
    SpeedCase("default", None, 1.0),
    SpeedCase("double", "2", 0.5),
    SpeedCase("half", "0.5", 2.0),
    SpeedCase("zero-is-instant", "0", 0.0),
    SpeedCase("huge-is-instant", "1e6", 0.0),
    SpeedCase("garbage-means-1", "fast", 1.0),
    SpeedCase("negative-means-1", "-3", 1.0),
]


@pytest.mark.parametrize("case", SPEED_CASES, ids=[c.test_id for c in SPEED_CASES])
def test_speed_scales_the_pauses(case: SpeedCase, repo: Path) -> None:
    """LIMITLESS_DEMO_SPEED divides the total pause; 0 or a huge speed means no pause."""
    env = {"NO_COLOR": "1"} | ({demo_agent.SPEED_ENV: case.raw} if case.raw is not None else {})
    slept: list[float] = []
    lines: list[str] = []
    script = demo_script.build_script("database", "Write migrations\n")
    agent = demo_agent.Agent(
        script, repo, model=None, env=env, out=lines.append, readline=lambda: "", sleep=slept.append
    )
    assert agent.run() == 0
    assert math.isclose(sum(slept), script.seconds * case.factor, abs_tol=1e-9)
    assert progress_values("\n".join(lines))[-1] == 100.0


def test_agent_fail_knob_exits_1_after_some_work(repo: Path, tmp_path: Path) -> None:
    """LIMITLESS_DEMO_FAIL=1 commits a first batch, reports failing tests and its cost, exits 1."""
    on_branch(repo, "work")
    result = run_agent(tmp_path, repo, "payments", env={"LIMITLESS_DEMO_FAIL": "1"})
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "Error: " in result.stdout
    assert len(subjects(repo)) == 1
    assert max(progress_values(result.stdout)) < 100
    assert cost_values(result.stdout) == [demo_script.cost_for("payments")]


def test_agent_touch_knob_writes_the_named_files(repo: Path, tmp_path: Path) -> None:
    """LIMITLESS_DEMO_TOUCH appends to existing files, creates missing ones, refuses escapes."""
    on_branch(repo, "work")
    touch = "README.md, shared/notes.txt,../outside.txt,/etc/passwd-demo"
    result = run_agent(tmp_path, repo, "frontend", env={"LIMITLESS_DEMO_TOUCH": touch})
    assert result.returncode == 0, result.stdout
    readme = (repo / "README.md").read_text()
    assert readme.startswith("# test repo\n")
    assert "frontend was here: Do the thing" in readme
    assert "frontend was here" in (repo / "shared" / "notes.txt").read_text()
    assert not (tmp_path / "outside.txt").exists()
    assert not Path("/etc/passwd-demo").exists()
    assert result.stdout.count("not a file inside the worktree; skipped") == 2
    changed = git(repo, "diff", "--name-only", "main", "HEAD").splitlines()
    assert {"README.md", "shared/notes.txt"} <= set(changed)
    assert git(repo, "status", "--porcelain") == ""


def test_agent_touch_knob_makes_a_merge_conflict(repo: Path, tmp_path: Path) -> None:
    """Two tasks touching one file merge cleanly one way and conflict on that file."""
    worktrees = {}
    for task in ("frontend", "backend"):
        path = tmp_path / f"wt-{task}"
        git(repo, "worktree", "add", "-q", "-b", f"t/{task}", str(path), "main")
        result = run_agent(tmp_path, path, task, env={"LIMITLESS_DEMO_TOUCH": "shared.txt"})
        assert result.returncode == 0, result.stdout
        worktrees[task] = path
    git(repo, "merge", "-q", "--no-edit", "t/frontend")
    merge = subprocess.run(
        ["git", "merge", "--no-edit", "t/backend"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert merge.returncode == 1
    assert git(repo, "diff", "--name-only", "--diff-filter=U") == "shared.txt"


def test_agent_treats_the_prompt_as_data(repo: Path, tmp_path: Path) -> None:
    """Shell metacharacters in the prompt run nothing and reach the commit message as text."""
    on_branch(repo, "work")
    first = "Make $(touch pwned) and `touch pwned2`; echo 'q' \"dq\" {task} > x"
    prompt = f"\n  {first}\x1b[2J\n$(touch pwned3)\n"
    result = run_agent(tmp_path, repo, "frontend", prompt)
    assert result.returncode == 0, result.stdout
    for name in ("pwned", "pwned2", "pwned3", "x"):
        assert not (repo / name).exists()
        assert not (tmp_path / name).exists()
    assert subjects(repo)[0] == f"frontend: {first} [2J"
    assert "\x1b" not in result.stdout
    assert "$(touch pwned)" in (repo / "apps/web/src/App.tsx").read_text()


def _read_lines(stream: IO[str], into: queue.Queue[tuple[float, str] | None]) -> None:
    """Put each line of `stream` with the time it was read, then None at its end."""
    for line in iter(stream.readline, ""):
        into.put((time.monotonic(), line))
    into.put(None)


def _blocked(pid: int) -> bool:
    process = psutil.Process(pid)
    return process.status() == psutil.STATUS_SLEEPING and not process.children()


class AnswerCase(NamedTuple):
    test_id: str
    answer: str
    code: int
    commits: bool


ANSWER_CASES = [
    AnswerCase("yes", "y\n", 0, True),
    AnswerCase("no", "n\n", 1, False),
]


@pytest.mark.parametrize("case", ANSWER_CASES, ids=[c.test_id for c in ANSWER_CASES])
def test_agent_wait_knob_blocks_until_a_line_arrives(
    case: AnswerCase, repo: Path, tmp_path: Path
) -> None:
    """LIMITLESS_DEMO_WAIT=1 asks a (y/n) question and does nothing more until answered."""
    on_branch(repo, "work")
    proc = subprocess.Popen(
        agent_argv(tmp_path, repo, "backend", "Serve things"),
        cwd=repo,
        env=agent_env("backend", repo, {"LIMITLESS_DEMO_WAIT": "1", "LIMITLESS_DEMO_SPEED": "0"}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert item is not None, "the agent ended without asking"
            if "(y/n)" in item[1]:
                break
        assert OutputParsers.for_profile(BUILTIN_PROFILES["demo"]).is_waiting(item[1])
        while not _blocked(proc.pid):
            assert time.monotonic() < deadline, "the agent never blocked on its question"
            time.sleep(0.01)
        assert proc.poll() is None
        assert lines.empty()
        assert subjects(repo) == []
        answered_at = time.monotonic()
        assert proc.stdin is not None
        proc.stdin.write(case.answer)
        proc.stdin.close()
        assert proc.wait(timeout=DEADLINE_S) == case.code
        reader.join(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = []
    while (item := lines.get_nowait()) is not None:
        rest.append(item)
    assert rest and all(at >= answered_at for at, _ in rest)
    assert bool(subjects(repo)) is case.commits
    assert cost_values("".join(line for _, line in rest)) == [demo_script.cost_for("backend")]


def test_agent_passes_the_model_through_the_profile(repo: Path, tmp_path: Path) -> None:
    """With a model the demo profile adds --model, which the agent accepts and shows."""
    argv = agent_argv(tmp_path, repo, "e2e", "Test it", model="opus")
    assert argv[-2:] == ["--model", "opus"]
    result = run_agent(tmp_path, repo, "e2e", "Test it", model="opus")
    assert result.returncode == 0, result.stderr
    assert "(model: opus)" in result.stdout


def test_agent_without_a_prompt_file_exits_2(repo: Path, tmp_path: Path) -> None:
    """An unreadable prompt file is a usage error naming the file."""
    missing = tmp_path / "nope.txt"
    result = subprocess.run(
        [sys.executable, "-m", "limitless.demo.agent", "--task", "x", str(missing)],
        cwd=repo,
        env=agent_env("x", repo),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert result.returncode == 2
    assert f"cannot read the prompt file {missing}" in result.stderr
    assert git(repo, "log", "--format=%s") == "initial commit"


def test_agent_commits_without_any_git_identity(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no configured identity the agent commits as itself."""
    for name in GIT_IDENTITY:
        if name != "GIT_CONFIG_NOSYSTEM":
            monkeypatch.delenv(name)
    monkeypatch.setenv("EMAIL", "")
    result = run_agent(tmp_path, repo, "database")
    assert result.returncode == 0, result.stdout
    assert git(repo, "log", "-1", "--format=%an <%ae>") == (
        f"{demo_agent.AGENT_NAME} <{demo_agent.AGENT_EMAIL}>"
    )


def test_agent_outside_a_repository_writes_without_committing(tmp_path: Path) -> None:
    """Outside git the agent warns, writes its files and still ends well."""
    folder = tmp_path / "plain"
    folder.mkdir()
    result = run_agent(tmp_path, folder, "database")
    assert result.returncode == 0, result.stdout
    assert "not inside a git repository" in result.stdout
    assert (folder / "db" / "migrations" / "0001_products.sql").exists()
    assert progress_values(result.stdout)[-1] == 100.0


class TasksCase(NamedTuple):
    test_id: str
    tasks: int
    ids: tuple[str, ...]


BASE_IDS = ("frontend", "backend", "database", "api", "frontend-api", "payments", "e2e")
TASKS_CASES = [
    TasksCase("one", 1, ("frontend",)),
    TasksCase("three", 3, ("frontend", "backend", "database")),
    TasksCase("five", 5, BASE_IDS[:5]),
    TasksCase("seven", 7, BASE_IDS),
    TasksCase("nine", 9, (*BASE_IDS, "feature-1", "feature-2")),
    TasksCase("twenty", 20, (*BASE_IDS, *(f"feature-{n}" for n in range(1, 14)))),
]


@pytest.mark.parametrize("case", TASKS_CASES, ids=[c.test_id for c in TASKS_CASES])
def test_demo_plan_text_keeps_the_first_tasks_with_their_dependencies(case: TasksCase) -> None:
    """The plan has the asked number of tasks, each depending only on kept tasks."""
    data = yaml.safe_load(demo.demo_plan_text(case.tasks, 2.5))
    assert data["name"] == demo.DEMO_PLAN_NAME
    assert data["agent"] == "demo"
    assert data["max_concurrency"] == 3
    assert data["merge"] == {"strategy": "merge", "gate": None}
    tasks = data["tasks"]
    assert tuple(t["id"] for t in tasks) == case.ids
    seen: set[str] = set()
    for task in tasks:
        assert set(task.get("depends_on", [])) <= seen
        assert task["env"] == {"LIMITLESS_DEMO_SPEED": "2.5"}
        assert task["prompt"].strip()
        seen.add(task["id"])


def test_demo_plan_text_has_the_shop_shape() -> None:
    """frontend, backend, database in parallel; api, frontend-api, payments, then e2e."""
    data = yaml.safe_load(demo.demo_plan_text())
    deps = {t["id"]: set(t.get("depends_on", [])) for t in data["tasks"]}
    assert deps == {
        "frontend": set(),
        "backend": set(),
        "database": set(),
        "api": {"backend", "database"},
        "frontend-api": {"frontend", "api"},
        "payments": {"api"},
        "e2e": {"frontend-api", "payments"},
    }


class BadArgsCase(NamedTuple):
    test_id: str
    tasks: int
    speed: float
    message: str


BAD_ARGS_CASES = [
    BadArgsCase(
        "no-tasks", 0, 1.0, "demo tasks 0 is out of range; use a whole number from 1 to 500"
    ),
    BadArgsCase(
        "too-many", 501, 1.0, "demo tasks 501 is out of range; use a whole number from 1 to 500"
    ),
    BadArgsCase(
        "negative-speed",
        7,
        -1.0,
        "demo speed -1.0 is not a speed; use a number >= 0 (2 = twice as fast, 0 = instant)",
    ),
    BadArgsCase(
        "nan-speed",
        7,
        math.nan,
        "demo speed nan is not a speed; use a number >= 0 (2 = twice as fast, 0 = instant)",
    ),
]


@pytest.mark.parametrize("case", BAD_ARGS_CASES, ids=[c.test_id for c in BAD_ARGS_CASES])
def test_create_demo_repo_refuses_bad_arguments_before_creating_anything(
    case: BadArgsCase, tmp_path: Path
) -> None:
    """Bad task counts and speeds are usage errors, and no folder is made."""
    with pytest.raises(UsageError) as caught:
        demo.create_demo_repo(tmp_path / "demo", tasks=case.tasks, speed=case.speed)
    assert str(caught.value) == case.message
    assert not (tmp_path / "demo").exists()


def test_create_demo_repo_makes_a_clean_repository_on_main(tmp_path: Path) -> None:
    """The repository is on main, clean, holds the skeleton and the committed plan."""
    made = demo.create_demo_repo(tmp_path / "demo", tasks=5, speed=3)
    assert made.repo == tmp_path / "demo" / "shop"
    assert made.plan_path == made.repo / "limitless.yaml"
    assert git(made.repo, "branch", "--show-current") == "main"
    assert git(made.repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert made.plan_path.read_text() == demo.demo_plan_text(5, 3)
    tracked = set(git(made.repo, "ls-files").splitlines())
    assert {"README.md", "package.json", "limitless.yaml", "apps/web/src/main.tsx"} <= tracked
    assert {"services/api/src/index.ts", "db/schema.sql", "tests/smoke.test.ts"} <= tracked
    assert len(git(made.repo, "log", "--format=%s").splitlines()) == 2


def test_create_demo_repo_refuses_an_existing_folder(tmp_path: Path) -> None:
    """A second demo in the same parent is refused with the path named."""
    demo.create_demo_repo(tmp_path)
    with pytest.raises(UsageError) as caught:
        demo.create_demo_repo(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'shop'} already exists; pick another folder for the demo (or remove it)"
    )


def test_create_demo_repo_works_without_any_git_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository carries its own identity, so a machine without one can commit."""
    for name in GIT_IDENTITY:
        if name != "GIT_CONFIG_NOSYSTEM":
            monkeypatch.delenv(name)
    made = demo.create_demo_repo(tmp_path)
    assert git(made.repo, "log", "-1", "--format=%ae") == demo.DEMO_IDENTITY[1]


def test_demo_tasks_merge_into_main_without_conflicts(tmp_path: Path) -> None:
    """Each demo task's branch, run by the demo agent, merges into main cleanly."""
    made = demo.create_demo_repo(tmp_path, tasks=9, speed=0)
    data = yaml.safe_load(made.plan_path.read_text())
    for task in data["tasks"]:
        path = tmp_path / "wt" / task["id"]
        git(made.repo, "worktree", "add", "-q", "-b", f"t/{task['id']}", str(path), "main")
        result = run_agent(tmp_path, path, task["id"], task["prompt"], env=task["env"])
        assert result.returncode == 0, result.stdout
        assert git(path, "status", "--porcelain") == ""
    for task in data["tasks"]:
        git(made.repo, "merge", "-q", "--no-edit", f"t/{task['id']}")
    assert git(made.repo, "status", "--porcelain") == ""
    assert (made.repo / "tests/e2e/checkout.spec.ts").exists()


@pytest.mark.parametrize("tasks", [1, 3, 7, 20], ids=lambda n: f"tasks-{n}")
def test_plan_loader_accepts_the_demo_plan(tasks: int, tmp_path: Path) -> None:
    """limitless.plan.load reads the demo plan: demo agent, per-task speed, estimates, merge."""
    plan = pytest.importorskip("limitless.plan.loader")
    made = demo.create_demo_repo(tmp_path, tasks=tasks, speed=4)
    loaded = plan.load(made.plan_path)
    assert loaded.name == demo.DEMO_PLAN_NAME
    assert len(loaded.tasks) == tasks
    assert loaded.max_concurrency == 3
    assert loaded.merge.strategy == "merge"
    assert loaded.merge.gate is None
    for task in loaded.tasks:
        assert task.agent == "demo"
        assert dict(task.env) == {"LIMITLESS_DEMO_SPEED": "4"}
        assert task.estimate_s == pytest.approx(demo_script.seconds_for(task.id) / 4, rel=0.01)


@pytest.mark.usefixtures("tmux_socket")
def test_demo_detach_prints_commands_that_work_from_where_it_was_started(
    tmp_path: Path,
) -> None:
    """`demo --detach` makes its repository elsewhere: the printed commands carry -C,
    so typed as shown, in the same folder, they find the run."""
    from tests.engine_helpers import cli

    here = tmp_path / "here"
    here.mkdir()
    started = cli(
        here, "demo", "--detach", "--dir", str(tmp_path / "d"), "--tasks", "2", "--speed", "20"
    )
    assert started.returncode == 0, started.stdout + started.stderr
    commands = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in started.stdout.splitlines()
        if line.startswith("  ") and ":" in line
    }
    assert commands["wait"].startswith("limitless -C ")
    for name in ("wait", "status"):
        argv = shlex.split(commands[name])[1:]
        result = cli(here, *argv, timeout=180)
        assert result.returncode == 0, f"{commands[name]}: {result.stdout}{result.stderr}"
