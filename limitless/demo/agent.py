"""The demo agent: a simulated coding agent for `limitless demo` and for tests.

Usage::

    python -m limitless.demo.agent --task ID [--model M] PROMPT_FILE

It runs in the task's worktree and behaves like a small coding agent: it reads a
few files, plans, writes real files that depend on the task id and the prompt,
commits them (one to three commits, each message starting with `<task>: `), runs
"tests", prints `progress NN%` lines rising to 100 and ends with a cost line
(`Total cost: $0.NN`). Everything it does is decided up front by a
`random.Random` seeded with the task id, so a task always writes the same files,
takes the same time and costs the same.

The prompt file is data: it is read as text, its first line becomes the commit
subject and a comment in the files written, and nothing in it is ever run.

Where files go: `frontend` -> `apps/web/`, `backend` -> `services/api/`,
`database` -> `db/migrations/` and `db/seeds/`, `api` -> `services/api/src/routes/`,
`frontend-api` -> `apps/web/src/api/`, `payments` -> `services/api/src/payments/`,
`e2e` -> `tests/e2e/`; any other id -> `work/<task>/`. A stage id such as
`api.review` uses the area of the part before the dot.

Knobs (environment variables):

- `LIMITLESS_DEMO_SPEED`: a float multiplier of speed (default 1: about 4-8 s per
  task; 2 is twice as fast). 0, or a very large value, makes the agent near-instant.
- `LIMITLESS_DEMO_FAIL=1`: after writing and committing its first batch of files,
  the test run fails; the agent prints the failures and its cost and exits 1.
- `LIMITLESS_DEMO_TOUCH=path[,path]`: also write these files (relative to the
  worktree) in the last commit: an existing file gets a line appended that names
  the task, a missing one is created. Two tasks touching one path conflict on
  merge, on purpose. Paths outside the worktree are refused with a warning.
- `LIMITLESS_DEMO_WAIT=1`: after planning, ask `Do you want to proceed with these
  edits? (y/n)` and wait for a line on stdin. `n` or `no` stops the agent (exit 1);
  anything else, or end of input, goes on.
- `NO_COLOR` / `FORCE_COLOR`: colours are used on a terminal unless `NO_COLOR` is
  set, or anywhere when `FORCE_COLOR` is set. The progress and cost figures are
  never split by colour codes, so the wrapper's regexes always read them.

Exit codes: 0 done; 1 failed tests (`LIMITLESS_DEMO_FAIL`), a declined question or
a git failure; 2 bad usage or an unreadable prompt file; 130 interrupted.

This module imports only the standard library: it starts once per task.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from limitless.demo.script import (
    Script,
    build_script,
    safe_slug,
)
from limitless.fmt import terminal_columns, wrap_words

SPEED_ENV = "LIMITLESS_DEMO_SPEED"
FAIL_ENV = "LIMITLESS_DEMO_FAIL"
TOUCH_ENV = "LIMITLESS_DEMO_TOUCH"
WAIT_ENV = "LIMITLESS_DEMO_WAIT"

INSTANT_SPEED = 1000.0
"""At or above this speed (or at 0) the agent does not pause at all."""

QUESTION = "Do you want to proceed with these edits? (y/n)"
AGENT_NAME = "limitless demo agent"
AGENT_EMAIL = "demo-agent@limitless.invalid"

_GIT_SCRUB = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")
_TRUE = frozenset({"1", "true", "yes", "on"})


class _Style:
    """ANSI colours when wanted; plain text otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)


def _colour_wanted(env: Mapping[str, str]) -> bool:
    if "NO_COLOR" in env:
        return False
    if env.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    return sys.stdout.isatty()


def parse_speed(raw: str | None) -> float:
    """The speed multiplier from `LIMITLESS_DEMO_SPEED`; 0 means no pauses at all."""
    if raw is None or not raw.strip():
        return 1.0
    try:
        speed = float(raw)
    except ValueError:
        speed = math.nan
    if math.isnan(speed) or speed < 0:
        print(
            f"demo agent: {SPEED_ENV}={raw!r} is not a speed; use a number >= 0 "
            "(2 = twice as fast, 0 = instant); going on at speed 1",
            file=sys.stderr,
        )
        return 1.0
    return speed


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_SCRUB}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


class _GitFailed(Exception):
    pass


class Agent:
    """One run of the demo agent in `cwd`."""

    def __init__(
        self,
        script: Script,
        cwd: Path,
        *,
        model: str | None,
        env: Mapping[str, str],
        out: Callable[[str], None],
        readline: Callable[[], str],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.script = script
        self.cwd = cwd
        self.model = model
        self.out = out
        self.readline = readline
        self.sleep = sleep
        self.style = _Style(_colour_wanted(env))
        speed = parse_speed(env.get(SPEED_ENV))
        self.scale = 0.0 if speed == 0 or speed >= INSTANT_SPEED else 1.0 / speed
        self.fail = _flag(env, FAIL_ENV)
        self.wait = _flag(env, WAIT_ENV)
        self.warnings: list[str] = []
        self.touch = self._touch_paths(env.get(TOUCH_ENV, ""))
        self.commits = script.commits[:1] if self.fail else script.commits
        files = sum(len(c.files) for c in self.commits) + len(self.touch)
        self.total_steps = len(script.reads) + 1 + files + len(self.commits) + 1
        self.step = 0
        self.pause = script.seconds * self.scale / self.total_steps
        self.identity: tuple[str, ...] | None = None

    def _touch_paths(self, raw: str) -> tuple[str, ...]:
        """The `LIMITLESS_DEMO_TOUCH` paths that stay inside the worktree, as posix paths."""
        root = self.cwd.resolve()
        kept: list[str] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            rel = Path(item)
            target = (root / rel).resolve()
            if (
                rel.is_absolute()
                or ".." in rel.parts
                or ".git" in rel.parts
                or target == root
                or not target.is_relative_to(root)
            ):
                self.warnings.append(
                    f"warning: {TOUCH_ENV} path {item!r} is not a file inside the worktree; skipped"
                )
                continue
            posix = target.relative_to(root).as_posix()
            if posix not in kept:
                kept.append(posix)
        return tuple(kept)

    def say(self, text: str = "") -> None:
        for line in wrap_words(text, terminal_columns()):
            self.out(line)

    def advance(self) -> None:
        """Pause for one step's share of the run, then report progress."""
        if self.pause > 0:
            self.sleep(self.pause)
        self.step = min(self.step + 1, self.total_steps)
        percent = 100 * self.step // self.total_steps
        filled = percent // 5
        bar = "#" * filled + "-" * (20 - filled)
        # Plain words around the figure: a colour code glued to "progress" would hide it
        # from the wrapper's regex (no word boundary between "m" and "p").
        self.say(f"progress {percent}% " + self.style.dim(f"[{bar}]"))

    def run(self) -> int:
        """Do the whole script; returns the exit code."""
        s, script = self.style, self.script
        model = self.model or "demo-sim-1"
        self.say(s.bold(f"demo agent - task {script.task}") + s.dim(f" (model: {model})"))
        self.say(s.dim(f"cwd: {self.cwd}"))
        self.say(f"Task: {script.summary}")
        for warning in self.warnings:
            self.say(s.yellow(warning))
        in_repo = _git(self.cwd, "rev-parse", "--is-inside-work-tree").returncode == 0
        if not in_repo:
            self.say(s.yellow("warning: not inside a git repository; files will not be committed"))
        for path in script.reads:
            missing = "" if (self.cwd / path).exists() else " (not found, skipping)"
            self.say(s.cyan("Reading ") + path + s.dim(missing))
            self.advance()
        self.say(s.bold("Planning: ") + script.summary)
        for number, step in enumerate(script.steps, start=1):
            self.say(f"  {number}. {step}")
        self.advance()
        if self.wait and not self._ask():
            return self._finish(1, s.red("Stopped: the edits were declined."))
        written = 0
        for index, commit in enumerate(self.commits):
            files = list(commit.files)
            if index == len(self.commits) - 1:
                files += [(rel, self._touched_text(rel, files)) for rel in self.touch]
            try:
                self._write_and_commit(commit.message, files, in_repo)
            except _GitFailed as exc:
                return self._finish(1, s.red(f"Error: {exc}"))
            written += len(files)
        if self.fail:
            return self._fail_tests()
        self.say(
            s.cyan("Running tests: ") + s.green(f"{script.tests} passed") + s.dim(" (0 failed)")
        )
        self.advance()
        count = len(self.commits)
        done = f"Done: {written} files written in {count} commit{'s' if count > 1 else ''}."
        return self._finish(0, s.green(done))

    def _ask(self) -> bool:
        self.say(self.style.yellow(QUESTION))
        answer = self.readline()
        if answer.strip().lower() in ("n", "no"):
            return False
        self.say(self.style.dim("continuing" if answer else "no answer (end of input); continuing"))
        return True

    def _touched_text(self, rel: str, pending: Sequence[tuple[str, str]]) -> str:
        """Touched file `rel`: its current text (or ours) plus a line naming the task."""
        line = f"{self.script.task} was here: {self.script.summary}\n"
        ours = dict(pending)
        path = self.cwd / rel
        old = ours.get(rel) or (path.read_text(errors="replace") if path.is_file() else "")
        if old and not old.endswith("\n"):
            old += "\n"
        return old + line

    def _write_and_commit(
        self, message: str, files: Sequence[tuple[str, str]], in_repo: bool
    ) -> None:
        s = self.style
        for rel, text in files:
            path = self.cwd / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            self.say(s.green("Writing ") + rel + s.dim(f" (+{text.count(chr(10))} lines)"))
            self.advance()
        if not in_repo:
            self.advance()
            return
        self._git_ok("add", "add", "--", *(rel for rel, _ in files))
        if _git(self.cwd, "diff", "--cached", "--quiet").returncode == 0:
            self.say(s.dim("nothing new to commit"))
            self.advance()
            return
        self._git_ok(
            "commit",
            *self._identity(),
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--no-verify",
            "-q",
            "-m",
            message,
        )
        head = self._git_ok("rev-parse", "rev-parse", "--short", "HEAD").strip()
        self.say(s.cyan("Committed ") + s.dim(f"[{head}]") + f" {message}")
        self.advance()

    def _identity(self) -> tuple[str, ...]:
        """`-c` options naming the agent when the repository has no identity of its own."""
        if self.identity is None:
            if _git(self.cwd, "config", "user.email").returncode == 0:
                self.identity = ()
            else:
                self.identity = ("-c", f"user.name={AGENT_NAME}", "-c", f"user.email={AGENT_EMAIL}")
        return self.identity

    def _git_ok(self, name: str, *args: str) -> str:
        result = _git(self.cwd, *args)
        if result.returncode != 0:
            words = (result.stderr or result.stdout).strip().splitlines()
            reason = words[-1] if words else f"exit status {result.returncode}"
            msg = f"git {name} failed: {reason}"
            raise _GitFailed(msg)
        return result.stdout

    def _fail_tests(self) -> int:
        s, script = self.style, self.script
        failed = 1 + script.tests % 3
        self.say(s.cyan("Running tests: ") + s.red(f"{failed} failed") + f", {script.tests} passed")
        self.say(s.red(f"FAILED tests/{safe_slug(script.task)}.test.ts::renders without errors"))
        self.say("    AssertionError: expected status 200, received 500")
        return self._finish(1, s.red(f"Error: {failed} tests failed; giving up on this attempt."))

    def _finish(self, code: int, line: str) -> int:
        self.say(line)
        self.say(f"Total cost: ${self.script.cost_usd:.2f}")
        return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m limitless.demo.agent",
        description="A simulated coding agent for limitless demos and tests.",
    )
    parser.add_argument("--task", required=True, help="the task id (decides files, time, cost)")
    parser.add_argument("--model", default=None, help="a model name (shown, otherwise unused)")
    parser.add_argument("prompt_file", type=Path, help="a file holding the task's prompt")
    return parser


def _print(text: str) -> None:
    print(text, flush=True)


def _readline() -> str:
    return sys.stdin.readline() if sys.stdin is not None else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo agent; returns the process exit code."""
    args = _parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        prompt = args.prompt_file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(
            f"demo agent: cannot read the prompt file {args.prompt_file}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    script = build_script(args.task, prompt)
    agent = Agent(
        script, Path.cwd(), model=args.model, env=os.environ, out=_print, readline=_readline
    )
    try:
        return agent.run()
    except KeyboardInterrupt:
        _print("Interrupted.")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
