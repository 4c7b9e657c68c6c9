"""The one git runner, and how commits limitless makes follow the repository's rules.

Every git call of limitless goes through this module: `git()` (and `out()` for
its stdout), `git_all()` for a few calls at once, `git_bytes()` for one fed on
stdin. Each is a plain subprocess with the repository-locating variables
(`GIT_DIR`, `GIT_WORK_TREE`, ...) scrubbed from its environment (`env()`, also
for programs limitless runs in a worktree, like the merge gate), no editor and
no credential prompt. A failure becomes a `GitError` (`failure()`) naming the
command, the folder and git's own words. `OBJECT_ID` is what a whole object id
looks like.

Why plain subprocesses, not GitPython: it adds nothing for porcelain commands
like `worktree add` or `merge` (`repo.git.X` is itself a subprocess wrapper)
and would cost two long-lived `cat-file` children per `Repo`; plain calls are
one fork each, need no closing and are thread-safe.

Commits limitless makes (`commit()`)
    run the repository's hooks (`core.hooksPath` included) and sign when
    `commit.gpgSign` is on, as a commit of the user would; with `hooks=False`
    (plan `commit_hooks: skip`) the hooks are left out (`core.hooksPath=/dev/null`),
    signing still follows the configuration. They run in a session of their own
    without a terminal (`GPG_TTY` unset, `SSH_ASKPASS_REQUIRE=never`), so a signer
    that would ask for a passphrase fails at once instead of waiting for an
    answer nobody gives: `repochecks` refuses such a signer before a run starts.

    Which hook refused a commit is read from git's own trace (`GIT_TRACE2_EVENT`,
    a `child_start` of class `hook` and its `child_exit` code), not guessed from
    the wording of its output: a rejection is `CommitRejected`, carrying the
    hook's name and what it printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import EnvironmentProblem, GitError, LimitlessError
from limitless.versions import GIT

SCRUBBED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
"""Variables that would point git at another repository, index or namespace."""

OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
"""A commit, tree or blob id: sha1 (40 hex digits) or sha256 (64)."""

NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
"""Put before a git command to leave the repository's hooks out."""

OUTPUT_LINES = 40
"""How much of a rejecting hook's output a CommitRejected keeps (its last lines)."""


class CommitRejected(GitError):
    """A repository hook refused a commit limitless made; `output` is what the hook printed."""

    def __init__(self, hook: str, output: str, cwd: Path, what: str) -> None:
        self.hook = hook
        self.output = output
        self.cwd = cwd
        said = f":\n{output}" if output else " (it printed nothing)"
        super().__init__(f"the repository's {hook} hook rejected {what} in {cwd}{said}")


@dataclass(frozen=True)
class CommitResult:
    """A commit-making git call: its process, and the hook that refused it, if one did."""

    process: subprocess.CompletedProcess[str]
    rejected_by: str | None

    @property
    def ok(self) -> bool:
        return self.process.returncode == 0

    @property
    def output(self) -> str:
        """What git and its hooks printed (hooks print to stderr), the last lines of it."""
        text = (self.process.stderr or "") + (self.process.stdout or "")
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return "\n".join(lines[-OUTPUT_LINES:])


def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without repository-locating variables, plus `extra`."""
    result = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    result["GIT_TERMINAL_PROMPT"] = "0"
    result["GIT_MERGE_AUTOEDIT"] = "no"
    result["GIT_EDITOR"] = ":"  # never an editor: limitless always gives the message
    result["GIT_SEQUENCE_EDITOR"] = ":"
    if extra:
        result.update(extra)
    return result


def describe(args: Sequence[str]) -> str:
    return "git " + " ".join(args)


def failure(cwd: Path, args: Sequence[str], code: int, stderr: str) -> GitError:
    words = stderr.strip() or "(git printed nothing)"
    msg = f"`{describe(args)}` failed in {cwd} (exit {code}): {words}"
    return GitError(msg)


def is_object_id(text: str) -> bool:
    """Whether `text` is a whole object id (not an abbreviation, not a ref name)."""
    return OBJECT_ID.fullmatch(text) is not None


def _not_run(cwd: Path, args: Sequence[str], exc: FileNotFoundError) -> LimitlessError:
    """Why git could not be started: the folder is gone, or git is."""
    if not Path(cwd).is_dir():
        msg = f"cannot run `{describe(args)}`: folder {cwd} does not exist"
        return GitError(msg)
    msg = f"git is not installed or not on PATH; install git {GIT.wanted} or newer"
    return EnvironmentProblem(msg)


def git(
    cwd: Path,
    *args: str,
    check: bool = True,
    env_extra: Mapping[str, str] | None = None,
    detached: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run git in `cwd`; with `check`, a non-zero exit raises GitError.

    `detached` runs it in a session of its own, without a controlling terminal
    and without `GPG_TTY`; so does a `timeout`, past which the process group is
    killed and GitError says so.
    """
    environment = env(env_extra)
    if detached:
        environment.pop("GPG_TTY", None)  # gpg would ask for a passphrase on that terminal
    try:
        if timeout is not None:
            result = _run_with_timeout(cwd, args, environment, timeout)
        else:
            result = subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="surrogateescape",
                check=False,
                start_new_session=detached,
            )
    except FileNotFoundError as exc:
        raise _not_run(cwd, args, exc) from exc
    if check and result.returncode != 0:
        raise failure(cwd, args, result.returncode, result.stderr or result.stdout)
    return result


def _run_with_timeout(
    cwd: Path, args: Sequence[str], environment: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """git in a session of its own; past `timeout` its whole process group is killed
    (a signer it started too), and GitError says so."""
    process = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=dict(environment),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        msg = f"`{describe(args)}` did not finish within {timeout:g}s in {cwd}; it was stopped"
        raise GitError(msg) from None
    return subprocess.CompletedProcess(["git", *args], process.returncode, stdout, stderr)


def out(cwd: Path, *args: str) -> str:
    """Stdout of a git call that must succeed, without the trailing newline."""
    return git(cwd, *args).stdout.rstrip("\n")


def git_all(
    cwd: Path, calls: Mapping[str, Sequence[str]], *, env_extra: Mapping[str, str] | None = None
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several git calls in `cwd` run at once (one process each), by name.

    Never raises for an exit code: the caller reads each `returncode`.
    """
    environment = env(env_extra)
    processes: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, args in calls.items():
            processes[name] = subprocess.Popen(
                ["git", *args],
                cwd=cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="surrogateescape",
            )
    except FileNotFoundError as exc:
        for started in processes.values():
            started.kill()
            started.communicate()
        raise _not_run(cwd, calls[name], exc) from exc
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate()
        results[name] = subprocess.CompletedProcess(
            ["git", *calls[name]], process.returncode, stdout, stderr
        )
    return results


def git_bytes(
    cwd: Path,
    *args: str,
    input: bytes,
    env_extra: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """git fed `input` on stdin, its output kept as bytes (packs of objects).

    Never raises for an exit code; past `timeout`, `subprocess.TimeoutExpired`.
    """
    try:
        return subprocess.run(
            ["git", *args],
            input=input,
            cwd=cwd,
            env=env(env_extra),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise _not_run(cwd, args, exc) from exc


def no_terminal_env() -> dict[str, str]:
    """What a signer sees from limitless: no terminal to ask on, no askpass window."""
    return {"SSH_ASKPASS_REQUIRE": "never"}


def commit(
    cwd: Path,
    *args: str,
    hooks: bool = True,
    env_extra: Mapping[str, str] | None = None,
) -> CommitResult:
    """Run a git command that makes commits (commit, merge, rebase ...) by the repository's rules.

    Never raises for a non-zero exit: the caller tells a conflict from a
    rejection (`rejected_by`) from any other failure.
    """
    handle, trace = tempfile.mkstemp(prefix="limitless-trace2-", suffix=".json")
    os.close(handle)
    extra = {**no_terminal_env(), **(env_extra or {}), "GIT_TRACE2_EVENT": trace}
    prefix = () if hooks else NO_HOOKS
    try:
        process = git(cwd, *prefix, *args, check=False, env_extra=extra, detached=True)
        failed = _failed_hook(Path(trace)) if process.returncode != 0 else None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(trace)
    return CommitResult(process, failed)


def _failed_hook(trace: Path) -> str | None:
    """The first hook that exited non-zero, from a trace2 event file."""
    started: dict[tuple[str, int], str] = {}
    try:
        lines = trace.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        key = (str(event.get("sid", "")), int(event.get("child_id", -1) or 0))
        if event.get("event") == "child_start" and event.get("child_class") == "hook":
            started[key] = str(event.get("hook_name") or "commit")
        elif event.get("event") == "child_exit" and key in started and event.get("code"):
            return started[key]
    return None


def rejected(result: CommitResult, cwd: Path, what: str) -> CommitRejected | None:
    """The CommitRejected to raise for `result`, when a hook refused it."""
    if result.ok or result.rejected_by is None:
        return None
    output = "\n".join(
        line
        for line in result.output.splitlines()
        if not line.startswith(("Not committing merge", "hint: "))
    )
    return CommitRejected(result.rejected_by, output, cwd, what)
