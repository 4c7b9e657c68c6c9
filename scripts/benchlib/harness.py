"""Driving real limitless runs from outside: a synthetic repository, plans, the CLI, the store.

Everything lives in one temporary folder and one private tmux socket. Tasks use
the `shell` agent: each prompt is a bash script that stamps its start, sleeps,
optionally holds until released, commits one file of its own and stamps its end
(`$EPOCHREALTIME` into `<marks>/<task>.start|.end`), so the bench sees when the
agent really ran, not only when limitless says it did.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from limitless.git.repo import find_repo, state_dir
from limitless.store import Event, Run, Store, TaskRow
from limitless.tmux.session import socket_path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "limitless bench",
    "GIT_AUTHOR_EMAIL": "bench@limitless.invalid",
    "GIT_COMMITTER_NAME": "limitless bench",
    "GIT_COMMITTER_EMAIL": "bench@limitless.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}
DROPPED_ENV = (
    "TMUX",
    "TMUX_PANE",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "LIMITLESS_RUN",
    "LIMITLESS_TASK",
)


class BenchError(Exception):
    """A benchmark could not be measured (the run failed, timed out, or lost a task)."""


@dataclass(frozen=True)
class BenchTask:
    """A shell task: sleep `seconds`, then hold until `hold_file` exists or `hold_count` began."""

    id: str
    seconds: float
    deps: tuple[str, ...] = ()
    hold_file: Path | None = None
    hold_count: int = 0


@dataclass(frozen=True)
class Marks:
    """What the agents stamped themselves: epoch seconds at their first and last line."""

    start: dict[str, float]
    end: dict[str, float]


@dataclass
class RunResult:
    run: Run
    tasks: dict[str, TaskRow]
    events: list[Event]
    marks: Marks
    exit_code: int
    started_wall: float
    extra: dict[str, float] = field(default_factory=dict)

    def event(self, kind: str, task_id: str | None = None) -> Event | None:
        return next(
            (
                e
                for e in self.events
                if e.kind == kind and (task_id is None or e.task_id == task_id)
            ),
            None,
        )


class Harness:
    """A temp folder, a private tmux socket and the limitless CLI run by this interpreter."""

    def __init__(
        self,
        workdir: Path,
        socket: str,
        say: Callable[[str], None] = print,
        files: int = 2000,
        packed: bool = True,
    ) -> None:
        self.workdir = workdir
        self.socket = socket
        self.say = say
        self.files = files
        self.packed = packed
        self.env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        self.env.update(GIT_ENV)
        self.env["LIMITLESS_TMUX_SOCKET"] = socket
        self.counter = 0

    # ------------------------------------------------------------ repositories

    def git(self, cwd: Path, *args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            msg = f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}"
            raise BenchError(msg)
        return result.stdout.strip()

    def make_repo(self, name: str) -> Path:
        """A repository with `self.files` small source files in 40 folders, one commit on main.

        Its objects are packed (unless `packed` is False), as a clone's are: a checkout
        reading 2,000 loose objects, one file each, took 0.35-0.48 s against 0.05 s packed
        on this machine, which is git's cost, not limitless's, and no cloned repository has.
        """
        files = self.files
        repo = self.workdir / name
        repo.mkdir(parents=True)
        self.git(repo, "init", "-q", "-b", "main")
        self.git(repo, "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
        self.git(repo, "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
        folders = 40
        for i in range(files):
            folder = repo / "src" / f"pkg{i % folders:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            body = "".join(f"def f{j}(x):\n    return x * {i} + {j}\n\n" for j in range(8))
            (folder / f"mod{i:04d}.py").write_text(f'"""module {i}"""\n\n{body}')
        (repo / "README.md").write_text(f"# {name}\n\nA synthetic repository for the bench.\n")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", "synthetic repository")
        if self.packed:
            self.git(repo, "repack", "-a", "-d", "-q")
        return repo

    def git_checkout_seconds(self, repo: Path, count: int) -> float:
        """Time `git worktree add` alone for `count` new branches, then remove them again."""
        root = self.workdir / f"git-only-{repo.name}-{count}"
        elapsed = 0.0
        for i in range(count):
            branch = f"bench-git-only/{count}-{i}"
            started = time.perf_counter()
            self.git(repo, "worktree", "add", "-q", "-b", branch, str(root / str(i)), "main")
            elapsed += time.perf_counter() - started
        for i in range(count):
            self.git(repo, "worktree", "remove", "--force", str(root / str(i)))
            self.git(repo, "branch", "-D", f"bench-git-only/{count}-{i}")
        return elapsed

    # ------------------------------------------------------------ plans

    def marks_dir(self, plan_name: str) -> Path:
        path = self.workdir / "marks" / plan_name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def script(self, task: BenchTask, marks: Path) -> str:
        stamp = shlex.quote(str(marks))
        lines = [
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task.id}.start",
            f"sleep {task.seconds:g}",
        ]
        if task.hold_file is not None:
            flag = shlex.quote(str(task.hold_file))
            lines.append(f"for _ in $(seq 900); do [ -e {flag} ] && break; sleep 1; done")
        if task.hold_count:
            lines.append(
                f"for _ in $(seq 900); do set -- {stamp}/*.start; "
                f'[ "$#" -ge {task.hold_count} ] && break; sleep 1; done'
            )
        lines += [
            "mkdir -p out",
            f"printf '%s\\n' {task.id} > out/{task.id}.txt",
            f"git add out/{task.id}.txt",
            f"git commit -q -m 'bench: {task.id}'",
            f"printf '%s\\n' \"$EPOCHREALTIME\" > {stamp}/{task.id}.end",
        ]
        return "\n".join(lines) + "\n"

    def write_plan(
        self, name: str, tasks: Sequence[BenchTask], *, concurrency: int, land: str = "auto"
    ) -> tuple[Path, Path]:
        """A plan file outside the repository (the checkout stays clean for landing)."""
        self.counter += 1
        plan_name = f"{name}-{self.counter}"
        marks = self.marks_dir(plan_name)
        plan = {
            "name": plan_name,
            "agent": "shell",
            "max_concurrency": concurrency,
            "merge": {"land": land},
            "tasks": [
                {
                    "id": t.id,
                    "prompt": self.script(t, marks),
                    **({"depends_on": list(t.deps)} if t.deps else {}),
                }
                for t in tasks
            ],
        }
        path = self.workdir / "plans" / f"{plan_name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        return path, marks

    # ------------------------------------------------------------ runs

    def limitless(
        self, repo: Path, *args: str, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "limitless", "--socket", self.socket, *args],
            cwd=repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def start(self, repo: Path, plan: Path, *flags: str) -> tuple[str, float]:
        """`limitless run PLAN --json FLAGS`: the run id and the wall clock just before it."""
        started = time.time()
        result = self.limitless(repo, "run", str(plan), "--json", *flags)
        if result.returncode != 0:
            msg = f"limitless run {plan.name} exited {result.returncode}: {result.stderr.strip()}"
            raise BenchError(msg)
        return str(json.loads(result.stdout)["run"]), started

    def wait(self, repo: Path, run_id: str, timeout: float) -> int:
        result = self.limitless(
            repo, "wait", run_id, "--quiet", "--timeout", f"{timeout:g}", timeout=timeout + 60
        )
        return result.returncode

    @contextmanager
    def store(self, repo: Path) -> Iterator[Store]:
        with Store.open(state_dir(find_repo(repo))) as store:
            yield store

    def collect(
        self, repo: Path, run_id: str, marks: Path, exit_code: int, wall: float
    ) -> RunResult:
        with self.store(repo) as store:
            run = store.get_run(run_id)
            tasks = {row.id: row for row in store.get_tasks(run_id)}
            events = store.events(run_id)
        return RunResult(run, tasks, events, read_marks(marks), exit_code, wall)

    def run(
        self, repo: Path, plan: Path, marks: Path, *flags: str, timeout: float = 600.0
    ) -> RunResult:
        """Start a run, wait for its end, read everything it recorded."""
        run_id, wall = self.start(repo, plan, *flags)
        code = self.wait(repo, run_id, timeout)
        result = self.collect(repo, run_id, marks, code, wall)
        if result.run.ended_at is None:
            msg = f"run {run_id} did not end within {timeout:g}s"
            raise BenchError(msg)
        return result

    def cleanup(self, repo: Path, run_id: str) -> None:
        """Remove the run's worktrees and branches so later runs start from the same state."""
        self.limitless(repo, "cleanup", run_id, "--force", timeout=300)

    def pane_pid(self, pane_id: str) -> int:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "display-message", "-p", "-t", pane_id, "#{pane_pid}"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not result.stdout.strip().isdigit():
            msg = f"no pane {pane_id} on tmux socket {self.socket}: {result.stderr.strip()}"
            raise BenchError(msg)
        return int(result.stdout.strip())

    def kill_server(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            env=self.env,
            capture_output=True,
            check=False,
        )
        # tmux 3.3 leaves a killed server's socket file behind
        path = socket_path(self.socket, self.env)
        if path.is_socket():
            path.unlink(missing_ok=True)


def read_marks(marks: Path) -> Marks:
    """The stamps written so far; one being written (still empty) is read next time."""
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    for stamps, suffix in ((start, "start"), (end, "end")):
        for path in marks.glob(f"*.{suffix}"):
            text = path.read_text().strip()
            if text:
                stamps[path.stem] = float(text)
    return Marks(start, end)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition()` every 0.2 s until true; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:g}s waiting for {what}"
            raise BenchError(msg)
        time.sleep(0.2)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def dashboard_process(h: Harness, pane_id: str) -> psutil.Process:
    """The `limitless dashboard` process under the run's dashboard pane."""
    root = psutil.Process(h.pane_pid(pane_id))
    for proc in [root, *root.children(recursive=True)]:
        try:
            if "dashboard" in proc.cmdline():
                return proc
        except psutil.Error:
            continue
    msg = f"no `limitless dashboard` process under pane {pane_id}"
    raise BenchError(msg)


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system
