"""Group `agents`: a real agent program's start-up, through limitless and alone.

For every built-in profile that drives a real program (it has an adapter) and
whose program the bootstrap installed, one task runs through `limitless run`
against the scripted model server of the tests (tests/realagents): the figure
is the time from the task's start (the supervisor's `task_launched` event) to
the program's first model request. Beside it, in the same run, the same
command line started directly in a worktree of the same repository: the part
of the figure that is the program's own start-up.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchlib.harness import BenchError, Harness

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from limitless.programs import adapter  # noqa: E402
from limitless.programs.profiles import BUILTIN_PROFILES, AgentContext, render_argv  # noqa: E402
from tests.realagents import homes  # noqa: E402
from tests.realagents.modelserver import ModelServer  # noqa: E402
from tests.realagents.programs import find  # noqa: E402
from tests.realagents.script import Script, say, write  # noqa: E402


@dataclass(frozen=True)
class StartUp:
    """One program's start-up, in seconds: through limitless and alone."""

    profile: str
    through_limitless: float
    alone: float


@contextmanager
def _setup_for(profile: str, server: ModelServer, home: Path) -> Iterator[homes.AgentSetup]:
    """The program's home and environment for `profile`, as the harness tests make them."""
    program = adapter(BUILTIN_PROFILES[profile].adapter)
    name = program.executable if program else profile
    if name == "codex":
        with homes.codex_home_dir() as codex_home:
            yield homes.codex_setup(server, codex_home, home=home)
        return
    makers: dict[str, Callable[[ModelServer, Path], homes.AgentSetup]] = {
        "claude": homes.claude_setup,
        "aider": homes.aider_setup,
        "opencode": homes.opencode_setup,
        "gemini": homes.gemini_setup,
    }
    if name not in makers:
        msg = f"no test home for the program {name!r} of profile {profile}"
        raise BenchError(msg)
    yield makers[name](server, home)


def _profiles() -> list[str]:
    """Built-in profiles with an adapter whose program is installed, one per program."""
    chosen: dict[str, str] = {}
    for name, profile in BUILTIN_PROFILES.items():
        program = adapter(profile.adapter)
        if program is None or program.interactive or program.executable in chosen:
            continue
        if find(program.executable).path is not None:
            chosen[program.executable] = name
    return list(chosen.values())


def _first_request_wall(server: ModelServer, script: str) -> float:
    requests = [r for r in server.main_requests(script)]
    if not requests:
        msg = f"the program never asked the model for script {script}"
        raise BenchError(msg)
    return min(r.wall for r in requests)


def _through_limitless(
    h: Harness, repo: Path, server: ModelServer, profile: str, env: dict[str, str]
) -> float:
    script = Script(f"bench-run-{profile}", [write(f"bench/{profile}.txt", "x\n"), say("done")])
    server.add(script)
    h.counter += 1
    plan_path = h.workdir / "plans" / f"agents-{profile}-{h.counter}.yaml"
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan = {
        "name": f"agents-{profile}-{h.counter}",
        "agent": profile,
        "merge": {"land": "manual"},
        "tasks": [{"id": "hello", "prompt": f"Write the file. {script.marker}"}],
    }
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False))
    saved = h.env
    h.env = env
    try:
        result = h.run(repo, plan_path, h.marks_dir(plan["name"]), "--no-merge", timeout=180)
    finally:
        h.env = saved
    launched = result.event("task_launched", "hello")
    if launched is None or result.tasks["hello"].status != "done":
        msg = f"{profile}: the task did not run to done ({result.tasks['hello'].reason})"
        raise BenchError(msg)
    h.cleanup(repo, result.run.id)
    return _first_request_wall(server, script.name) - launched.ts


def _alone(h: Harness, repo: Path, server: ModelServer, profile: str, env: dict[str, str]) -> float:
    """The profile's own command line, started directly in a fresh worktree."""
    script = Script(f"bench-alone-{profile}", [write(f"bench/{profile}.txt", "x\n"), say("done")])
    server.add(script)
    worktree = h.workdir / f"alone-{profile}"
    h.git(repo, "worktree", "add", "-q", "-b", f"bench-alone/{profile}", str(worktree), "main")
    try:
        spec = BUILTIN_PROFILES[profile]
        context = AgentContext(
            prompt=f"Write the file. {script.marker}",
            prompt_file="",
            task="hello",
            worktree=str(worktree),
            branch=f"bench-alone/{profile}",
        )
        argv = render_argv(spec, context)
        program = adapter(spec.adapter)
        environ = dict(env)
        if program is not None:  # as the wrapper starts it
            argv = program.command(argv, "edits", context.prompt)
            environ.update(program.environment())
            environ.update(program.approve_env("edits"))
            state = h.workdir / f"state-{profile}"
            state.mkdir(parents=True, exist_ok=True)
            environ.update(program.state_env(state))
        environ["PWD"] = str(worktree)
        started = time.time()
        finished = subprocess.run(
            argv,
            cwd=worktree,
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=180,
            check=False,
        )
        if finished.returncode != 0:
            msg = f"{profile} alone exited {finished.returncode}: {finished.stderr[-400:]!r}"
            raise BenchError(msg)
        return _first_request_wall(server, script.name) - started
    finally:
        with contextlib.suppress(BenchError):
            h.git(repo, "worktree", "remove", "--force", str(worktree))
            h.git(repo, "branch", "-D", f"bench-alone/{profile}")


def measure(h: Harness) -> list[StartUp]:
    """Task start → first model request per program, and the program alone beside it."""
    profiles = _profiles()
    if not profiles:
        msg = "no agent program is installed (run ./scripts/test.sh once to bootstrap them)"
        raise BenchError(msg)
    repo = h.make_repo("agents")
    measured: list[StartUp] = []
    with ModelServer() as server:
        for profile in profiles:
            home = h.workdir / f"home-{profile}"
            home.mkdir(parents=True, exist_ok=True)
            with _setup_for(profile, server, home) as setup:
                env = setup.environ(h.env)
                env["HOME"] = str(home)
                # A tmux server keeps the environment it was started with: a fresh one
                # per program, so its panes have this program's HOME.
                h.kill_server()
                through = _through_limitless(h, repo, server, profile, env)
                alone = _alone(h, repo, server, profile, env)
            h.say(
                f"  {profile}: first model request {through * 1000:.0f} ms after the task "
                f"started; the program alone {alone * 1000:.0f} ms"
            )
            measured.append(StartUp(profile, through, alone))
    return measured
