"""One attempt of a task on another machine (a plan host reached over SSH).

The wrapper stays here, in the task's slot pane, with the store; only the agent runs
there. Through the host's master connection (`limitless.hosts.ssh`):

1. git: the base commit and the task's branch (base with its dependencies merged,
   as `prepare_worktree` left it here) are pushed to the host's clone, and the task's
   worktree is made there, under its root, from that commit;
2. the prompt is copied there, and the setup commands and the agent start in a tmux
   server of the task's own (`<root>/tmux/<run>.<task>`, a private socket), which
   records the exit status in a file and the output in a log (`pipe-pane`). The
   values of the host's `env_pass` reach it in the environment of that ssh command
   only; the server keeps them in memory, nothing is written there;
3. this pane runs `ssh -t ... tmux attach` (argv, no local shell): the user watches
   and types as in a local pane. A dropped connection ends the attach, not the
   agent: the pane connects again until the exit file appears. The new part of the
   log is read over the master every second for progress, cost and the task log;
4. at the end the leftovers are committed there, the branch is fetched back and this
   machine's worktree of the task (which stayed at the start commit) is fast-forwarded
   to it: the rest of the end (changes counted, merge phase) is as for a local task.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from limitless.agents.pty import PtyProcess, PtyResult
from limitless.errors import EnvironmentProblem, LimitlessError
from limitless.git.runner import git
from limitless.git.status import WorktreeState, state_of
from limitless.hosts import ssh, sync
from limitless.plan.hosts import Host
from limitless.programs import headless_run
from limitless.programs.headless_run import HeadlessEnd

log = logging.getLogger(__name__)

LOST_HOST = "lost host "
"""How the reason of an attempt whose host could not be reached begins."""
POLL_S = 1.0
QUICK_ATTACH_S = 2.0
MAX_QUICK_ATTACHES = 5  # attaches in a row that end at once: follow the log instead
RECONNECT_S = 1.0
EXIT_NAME = "exit"
FACTS_NAME = "facts.json"  # a headless program's account, written by its renderer there
GIT_BUSY_S = 3.0  # a remote worktree is read this often while its agent prints
GIT_QUIET_S = 30.0  # and this often while it prints nothing
LIVE_FACTS = FACTS_NAME + headless_run.LIVE_SUFFIX  # its figures so far, while it runs
HOOKS_NAME = "hooks.jsonl"  # an interactive program's hook calls, spooled by the relay there
AGENT_COMMAND = "LIMITLESS_AGENT_COMMAND"  # the program the task script looks for on PATH

# Runs in the task's tmux pane on the host: cd, wait for the log pipe, the setup
# commands, the agent; the exit status goes to a file the wrapper here reads.
_TASK_SCRIPT = r"""
work=$1; state=$2; nsetup=$3; shift 3
cd "$work" || { echo 126 > "$state/exit"; exit 126; }
i=0
while [ ! -e "$state/piped" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done
while [ "$nsetup" -gt 0 ]; do
  printf '$ %s\n' "$1"
  bash -c "$1" || {
    code=$?; echo "setup command \`$1\` exited with $code" > "$state/why"
    echo $code > "$state/exit"; exit $code
  }
  shift; nsetup=$((nsetup-1))
done
agent=${LIMITLESS_AGENT_COMMAND:-$1}
if ! command -v "$agent" >/dev/null 2>&1; then
  echo "agent command \`$agent\` not found on PATH there; install it on the host" > "$state/why"
  echo 127 > "$state/exit"; exit 127
fi
"$@"
code=$?
echo $code > "$state/exit"
exit $code
"""

# The pane's view of the agent: tmux attach, with a TERM the host knows (a local
# `tmux-256color` may have no terminfo entry there, and tmux would refuse to attach).
# `-u`: the slot pane is a tmux pane, which takes UTF-8; without it a host whose ssh
# session has no UTF-8 locale (LANG is not sent) shows `✎ Write` as `_ Write`.
_ATTACH = r"""
if command -v infocmp >/dev/null 2>&1 && ! infocmp "$TERM" >/dev/null 2>&1; then
  TERM=xterm-256color; export TERM
fi
exec tmux -u -S "$1" attach-session -t task
"""

# Starts the task's tmux server (environment: this ssh session's, env_pass included), at
# the slot pane's size: the window follows the attached pane (window-size latest), and
# an interactive agent's first screen is then already the one the pane here shows.
_START = r"""
sock=$1; state=$2; width=$3; height=$4; shift 4
rm -rf "$state"; mkdir -p "$state" "$(dirname "$sock")" || exit 1
tmux -S "$sock" kill-server 2>/dev/null
tmux -S "$sock" -f /dev/null new-session -d -s task -x "$width" -y "$height" -- "$@" || exit 1
tmux -S "$sock" set-option -t task status off >/dev/null
tmux -S "$sock" set-option -t task remain-on-exit off >/dev/null
tmux -S "$sock" pipe-pane -t task "cat >> '$state/log'" && touch "$state/piped"
"""

# The task's worktree made afresh from its start commit, and the prompt from stdin.
_WORKTREE = r"""
set -e
clone=$1; work=$2; branch=$3; start=$4; prompt=$5
git -C "$clone" worktree remove --force "$work" 2>/dev/null || rm -rf "$work"
git -C "$clone" worktree prune
git -C "$clone" worktree add -q -B "$branch" "$work" "$start"
mkdir -p "$(dirname "$prompt")"
cat > "$prompt"
"""

_COMMIT = r"""
cd "$1" || exit 1; shift
git add -A && { git diff --cached --quiet || git "$@"; }
"""

# An interactive agent's leftovers committed while it is still open (`idle_done`): the new
# commit on stdout, nothing when there was nothing to commit.
_COMMIT_NOW = r"""
cd "$1" || exit 1; shift
git add -A || exit 1
git diff --cached --quiet && exit 0
git "$@" && git rev-parse HEAD
"""

# The new bytes of the log (after its size, on a line of their own) and of the hook spool.
_LOG_AND_HOOKS = r"""
log=$1; spool=$2; seen=$3; hooks=$4
size=$(wc -c < "$log" 2>/dev/null) || size=0
size=$((size + 0))
echo "$size"
[ "$size" -gt "$seen" ] && tail -c +"$((seen + 1))" "$log" | head -c "$((size - seen))"
tail -c +"$((hooks + 1))" "$spool" 2>/dev/null
exit 0
"""

# Claude Code's hook settings written into the worktree there (stdin), kept out of its
# commits as `claude_hooks.install` does here: info/exclude, or skip-worktree if tracked.
# The worktree there as `git.status.inspect` reads one here: the three outputs, each
# followed by a NUL line mark (status's own fields are NUL-separated, so the mark is
# "\0--\0"). C locale: the shortstat's words are parsed.
_INSPECT = r"""
cd "$1" 2>/dev/null || exit 3
export LC_ALL=C
git --no-optional-locks status --porcelain=v2 --branch -z || exit 1
printf '\0--\0'
git rev-list --count "$2..HEAD" || exit 1
printf '\0--\0'
git diff --no-ext-diff --no-color --shortstat "$2...HEAD" || exit 1
"""

_HOOK_SETTINGS = r"""
cd "$1" || exit 1; file=$2
mkdir -p "$(dirname "$file")" && cat > "$file" || exit 1
if git ls-files --error-unmatch -- "$file" >/dev/null 2>&1; then
  git update-index --skip-worktree -- "$file"
else
  exclude="$(git rev-parse --git-common-dir)/info/exclude"
  mkdir -p "$(dirname "$exclude")"
  grep -qxF "/$file" "$exclude" 2>/dev/null || printf '/%s\n' "$file" >> "$exclude"
fi
"""


@dataclass(frozen=True)
class Place:
    """Where a task's attempt lives on its host."""

    root: str
    worktree: str
    socket: str
    state: str  # the attempt's exit, log and marker files
    prompt: str
    python: str  # the install's interpreter there (`hosts check` / `run` make it)
    relay: str  # the install's hook relay there (`agents/hookrelay.py`, run by its path)

    @property
    def hook_spool(self) -> str:
        """Where the relay there appends the agent's hook calls (LIMITLESS_HOOK_SPOOL)."""
        return posixpath.join(self.state, HOOKS_NAME)


def place_of(root: str, run_id: str, task_id: str, worktree_key: str) -> Place:
    name = f"{run_id}.{task_id}"
    return Place(
        root=root,
        worktree=posixpath.join(root, "worktrees", run_id, worktree_key),
        socket=posixpath.join(root, "tmux", name),
        state=posixpath.join(root, "runs", run_id, task_id),
        prompt=posixpath.join(root, "runs", run_id, "prompts", f"{task_id}.md"),
        python=posixpath.join(root, "install", "venv", "bin", "python"),
        relay=posixpath.join(root, "install", "src", "limitless", "agents", "hookrelay.py"),
    )


@dataclass
class RemoteResult:
    """How the remote agent ended, as the wrapper judges a local one."""

    result: PtyResult
    reason: str = ""  # set when limitless could not run or finish the attempt
    lost: bool = False  # the host stayed unreachable: the attempt's end is unknown
    detached: bool = False  # this pane went away: the agent goes on there (see `detach`)


class RemoteAttempt:
    """The host side of one attempt: sync, start, watch, bring the work back."""

    def __init__(
        self,
        host: Host,
        control: Path,
        repo: Path,
        *,
        run_id: str,
        task_id: str,
        worktree_key: str,
        branch: str,
        base_sha: str,
        start_sha: str,
        say: Callable[[str], None],
    ) -> None:
        self.host = host
        self.control = control
        self.repo = repo
        self.run_id = run_id
        self.task_id = task_id
        self.worktree_key = worktree_key
        self.branch = branch
        self.base_sha = base_sha
        self.start_sha = start_sha
        self.say = say
        self.place: Place | None = None
        self.log_offset = 0
        self.last_poll = 0.0
        self.spooling = False  # an interactive agent's hook calls are read with its log
        self.figuring = False  # a rendered headless agent's live figures are read with it
        self.figures: headless_run.Figures | None = None
        self.hooks_offset = 0
        self.hook_backlog = b""
        self.process: PtyProcess | None = None
        self.stop_requested = False
        self.detaching = False

    # ------------------------------------------------------------ start

    def prepare(self, prompt: str) -> Place:
        """Push, make the worktree there and copy the prompt; the attempt's places.

        One attempt at a time per host does this (a lock beside the master's socket):
        two pushes of the run's base ref at once make one of them fail, and
        `worktree add` in one clone takes its locks too."""
        with _host_lock(self.control, self.host):
            return self._prepare(prompt)

    def _prepare(self, prompt: str) -> Place:
        try:
            ssh.connect(self.host, self.control)
        except EnvironmentProblem as exc:
            msg = f"{LOST_HOST}{self.host.name}: unreachable at the start ({exc})"
            raise RemoteError(msg) from exc
        root = sync.root_and_clone(self.host, self.control)
        place = place_of(root, self.run_id, self.task_id, self.worktree_key)
        clone = sync.push(
            self.host,
            self.control,
            self.repo,
            run_id=self.run_id,
            base=self.base_sha,
            branches=[self.branch],
            root=root,
            clone_made=True,
        )
        # one command: a fresh worktree from the start commit (a retry too), the prompt
        self._run(
            ["sh", "-c", _WORKTREE, "sh", clone, place.worktree, self.branch, self.start_sha,
             place.prompt],
            "make the worktree and copy the prompt",
            input=prompt.encode(),
        )  # fmt: skip
        self.place = place
        return place

    def locate(self) -> Place:
        """The places of an attempt already started there (a wrapper taking it up again)."""
        try:
            ssh.connect(self.host, self.control)
        except EnvironmentProblem as exc:
            msg = f"{LOST_HOST}{self.host.name}: unreachable when taken up again ({exc})"
            raise RemoteError(msg) from exc
        root = sync.remote_root(self.host, self.control)
        self.place = place_of(root, self.run_id, self.task_id, self.worktree_key)
        return self.place

    def start(self, argv: list[str], env: Mapping[str, str], setup: tuple[str, ...]) -> None:
        """Start setup and agent in the task's tmux server there (with this machine's git
        identity, so the agent's own commits there carry the author they would here)."""
        place = self._place()
        env = {**_identity_env(self.repo), **env}
        # the setup commands run with the agent's variables, as they do here
        inner = ["env", *(f"{name}={value}" for name, value in env.items())]
        inner += ["sh", "-c", _TASK_SCRIPT, "limitless-task", place.worktree, place.state]
        inner += [str(len(setup)), *setup, *argv]
        secrets = {name: value for name, value in _passed(self.host).items()}
        self._run(
            ["sh", "-c", _START, "sh", place.socket, place.state, *_pane_size(), *inner],
            "start the agent's tmux session",
            env=secrets,
        )

    def rendered(self, adapter_name: str, approve: str, argv: list[str]) -> list[str]:
        """`argv` of a headless program run through limitless's renderer there (the
        install's `headless_run`): the pane there shows readable lines, not its JSON
        events, and the facts it told (cost, session, errors, denials) are kept in the
        attempt's folder for `facts`. The task script still looks for `argv[0]` on PATH
        (AGENT_COMMAND in the start's variables)."""
        place = self._place()
        facts = posixpath.join(place.state, FACTS_NAME)
        return [
            place.python, "-m", headless_run.MODULE, "--adapter", adapter_name,
            "--approve", approve, "--facts", facts, "--", *argv,
        ]  # fmt: skip

    def facts(self) -> HeadlessEnd | None:
        """What the renderer there said about the program's run, or None when it wrote
        nothing (it did not start, or was stopped)."""
        return headless_run.parse_facts(self._read(FACTS_NAME))

    # ------------------------------------------------------------ an interactive agent

    def write_hook_settings(self, relative: str, text: str) -> None:
        """Claude Code's hook settings (`relative` to the worktree there), kept out of the
        task's commits there."""
        place = self._place()
        self._run(
            ["sh", "-c", _HOOK_SETTINGS, "sh", place.worktree, relative],
            "write Claude Code's hook settings",
            input=text.encode(),
        )

    def inspect_there(self, base_sha: str) -> WorktreeState | None:
        """The task's worktree there as the dashboard reads a local one (commits ahead of
        `base_sha`, diffstat, dirty files): one ssh command; None when it cannot be read."""
        place = self._place()
        argv = ["sh", "-c", _INSPECT, "sh", place.worktree, base_sha]
        try:
            done = ssh.run(self.host, self.control, argv, timeout=10, reconnect=False)
        except (LimitlessError, OSError):
            return None
        parts = done.data.decode("utf-8", errors="surrogateescape").split("\0--\0")
        if done.code != 0 or len(parts) != 3:
            return None
        return state_of(*parts)

    def send_keys(self, data: bytes) -> None:
        """Type `data` into the agent's pane there (tmux `send-keys -H`: the bytes as they
        are, attached or not; a key typed here in the slot pane goes through the attach)."""
        place = self._place()
        if not data:
            return
        keys = [f"{byte:02x}" for byte in data]
        argv = ["tmux", "-S", place.socket, "send-keys", "-t", "task", "-H", *keys]
        with contextlib.suppress(LimitlessError, OSError):
            ssh.run(self.host, self.control, argv, timeout=30)

    def commit_now(self, message: str) -> str | None:
        """Commit the agent's leftovers there while it is still open; the new commit, or
        None when there was nothing to commit."""
        place = self._place()
        out = self._run(
            ["sh", "-c", _COMMIT_NOW, "sh", place.worktree, *_identity(self.repo), "commit",
             "-q", "-m", message],
            "commit the agent's leftovers",
        )  # fmt: skip
        return out.strip() or None

    def hook_lines(self) -> list[str]:
        """The hook calls the relay there spooled, read by the polls since the last call
        (whole lines only; `spooling` makes each poll of the log read the spool too)."""
        if b"\n" not in self.hook_backlog:
            return []
        cut = self.hook_backlog.rindex(b"\n") + 1
        whole, self.hook_backlog = self.hook_backlog[:cut], self.hook_backlog[cut:]
        return whole.decode("utf-8", errors="replace").splitlines()

    def copy_here(self, remote_path: str, local_path: Path) -> bool:
        """Copy a file of the host (an agent's transcript) here; False when it cannot."""
        try:
            done = ssh.run(self.host, self.control, ["cat", remote_path], timeout=60)
        except (LimitlessError, OSError):
            return False
        if done.code != 0:
            return False
        with contextlib.suppress(OSError):
            local_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = local_path.with_name(local_path.name + ".part")
            temporary.write_bytes(done.data)
            temporary.replace(local_path)
            return True
        return False

    # ------------------------------------------------------------ watch

    def watch(
        self,
        on_data: Callable[[bytes], None],
        *,
        timeout_s: float | None,
        host_timeout_s: float,
        on_input: Callable[[bytes], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> RemoteResult:
        """Show the agent in this pane until it ends (reconnecting after a drop); what it
        prints goes to `on_data` as it comes (read from the log there). A host that stays
        unreachable for `host_timeout_s` ends the attempt as lost (`LOST_HOST`)."""
        place = self._place()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        attach = [
            "ssh", "-t", *ssh.ssh_options(self.host, self.control), "-o", "ControlMaster=no",
            self.host.ssh or "", "--",
            ssh.remote_command(["sh", "-c", _ATTACH, "sh", place.socket]),
        ]  # fmt: skip
        drops = quick = 0
        unreachable_since: float | None = None
        following = False  # the attach keeps failing: show the log here instead
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                return RemoteResult(PtyResult(-9, True, False))
            if self.detaching:
                return RemoteResult(PtyResult(-1, False, True), detached=True)
            if self.stop_requested:
                self.kill()
                return RemoteResult(PtyResult(-15, False, True))
            try:
                ssh.connect(self.host, self.control)
            except LimitlessError as exc:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                gone = now - unreachable_since
                if gone >= host_timeout_s:
                    why = f"{LOST_HOST}{self.host.name}: unreachable for {gone:.0f}s"
                    return RemoteResult(PtyResult(255, False, False), f"{why} ({exc})", lost=True)
                time.sleep(RECONNECT_S)
                continue
            unreachable_since = None
            left = None if deadline is None else max(deadline - time.monotonic(), 0.1)
            attached = time.monotonic()
            if following:
                self._poll(lambda data: _show(data, on_data), force=True)
                result = PtyResult(0, False, False)
                if on_tick is not None:
                    on_tick()
                time.sleep(POLL_S)
            else:
                self.process = PtyProcess(
                    attach,
                    cwd="/",
                    env=_attach_env(self.host),
                    on_output=lambda data: None,
                    on_input=on_input,
                    on_tick=lambda: _tick(self._poll, on_data, on_tick),
                )
                result = self.process.pump(timeout_s=left)
                self.process = None
            if self.detaching:
                return RemoteResult(result, detached=True)
            if result.timed_out or result.stopped or self.stop_requested:
                self.kill()
                self._poll(on_data, force=True)
                return RemoteResult(result)
            try:
                code = self._exit_code()
                alive = code is None and self._session_alive()
            except LimitlessError:
                code, alive = None, True  # the connection went: try again
            if code is not None:
                self._poll(on_data, force=True)
                why = ""
                with contextlib.suppress(LimitlessError):
                    why = self._read("why").strip()
                return RemoteResult(PtyResult(code, False, False), why)
            if not alive:
                self._poll(on_data, force=True)
                return RemoteResult(
                    PtyResult(result.exit_code, False, False),
                    f"the agent's tmux session on {self.host.name} ended without an exit status",
                )
            if following:
                continue
            quick = quick + 1 if time.monotonic() - attached < QUICK_ATTACH_S else 0
            if quick >= MAX_QUICK_ATTACHES:
                following = True
                self.say(
                    f"cannot attach to the agent's tmux session on {self.host.name} (see above); "
                    "showing its output here instead (typing does not reach it)"
                )
                continue
            drops += 1
            self.say(f"connection to {self.host.name} dropped; reconnecting ({drops})")
            time.sleep(RECONNECT_S)

    def request_stop(self) -> None:
        self.stop_requested = True
        if self.process is not None:
            self.process.request_stop()

    def detach(self) -> None:
        """Stop watching, leave the agent running there: the pane is gone (its tmux died);
        `resume` gives the task a new pane whose wrapper takes the attempt up again."""
        self.detaching = True
        if self.process is not None:
            self.process.request_stop()

    def send(self, data: bytes) -> None:
        if self.process is not None:
            self.process.send(data)

    def kill(self) -> None:
        """End the agent there (its tmux server and everything in it)."""
        with contextlib.suppress(LimitlessError, OSError):
            place = self._place()
            ssh.run(self.host, self.control, ["tmux", "-S", place.socket, "kill-server"])

    # ------------------------------------------------------------ finish

    def bring_back(self, local_worktree: Path, message: str) -> str:
        """Commit leftovers there (when `message`), fetch the branch and fast-forward
        this machine's worktree to it; the commit it ends at."""
        place = self._place()
        if message:
            identity = _identity(self.repo)
            self._run(
                ["sh", "-c", _COMMIT, "sh", place.worktree, *identity, "commit", "-q", "-m",
                 message],
                "commit the agent's leftovers",
            )  # fmt: skip
        ref = f"refs/limitless/fetched/{self.run_id}/{self.task_id}"
        sha = sync.fetch(
            self.host, self.control, self.repo, branch=self.branch, ref=ref, root=place.root
        )
        try:
            git(local_worktree, "merge", "--ff-only", "-q", sha)
        finally:
            git(self.repo, "update-ref", "-d", ref, check=False)
        return sha

    # ------------------------------------------------------------ helpers

    def _place(self) -> Place:
        if self.place is None:
            msg = "the remote attempt was not prepared"
            raise RuntimeError(msg)
        return self.place

    def _run(
        self,
        argv: list[str],
        what: str,
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        done = ssh.run(self.host, self.control, argv, input=input, env=env)
        if done.code != 0:
            words = done.stderr.strip() or f"exit {done.code}"
            msg = f"host {self.host.name}: could not {what}: {words}"
            raise RemoteError(msg)
        return done.stdout

    def _read(self, name: str) -> str:
        place = self._place()
        done = ssh.run(
            self.host, self.control, ["cat", posixpath.join(place.state, name)], timeout=30
        )
        return done.stdout if done.code == 0 else ""

    def _exit_code(self) -> int | None:
        text = self._read(EXIT_NAME).strip()
        return int(text) if text.lstrip("-").isdigit() else None

    def _session_alive(self) -> bool:
        """Whether the agent's tmux session is there (True when the host cannot say)."""
        place = self._place()
        argv = ["tmux", "-S", place.socket, "has-session", "-t", "task"]
        done = ssh.run(self.host, self.control, argv, timeout=30)
        return done.code != 1  # 255: the connection failed; cannot tell

    def _poll(self, on_data: Callable[[bytes], None], *, force: bool = False) -> None:
        """Read what the agent printed since the last poll (the log there)."""
        now = time.monotonic()
        if not force and now - self.last_poll < POLL_S:
            return
        self.last_poll = now
        place = self._place()
        log_path = posixpath.join(place.state, "log")
        if self.spooling:
            self._poll_with_hooks(log_path, place.hook_spool, on_data)
            return
        if self.figuring:
            self._poll_with_figures(log_path, posixpath.join(place.state, LIVE_FACTS), on_data)
            return
        argv = ["tail", "-c", f"+{self.log_offset + 1}", log_path]
        try:
            done = ssh.run(self.host, self.control, argv, timeout=10, reconnect=False)
        except (LimitlessError, OSError):
            return
        if done.code != 0 or not done.data:
            return
        self.log_offset += len(done.data)
        on_data(done.data)

    def _poll_with_hooks(self, log_path: str, spool: str, on_data: Callable[[bytes], None]) -> None:
        """One command for the new part of the log and of the hook spool (one ssh a second
        per interactive agent, not two)."""
        hooks = self._log_and(log_path, spool, self.hooks_offset, on_data)
        if hooks is not None:
            self.hooks_offset += len(hooks)
            self.hook_backlog += hooks

    def _poll_with_figures(
        self, log_path: str, live: str, on_data: Callable[[bytes], None]
    ) -> None:
        """One command for the new part of the log and the renderer's live figures (a
        small file read whole): cost and session show here while the agent works."""
        text = self._log_and(log_path, live, 0, on_data)
        figures = headless_run.parse_figures(text.decode(errors="replace")) if text else None
        if figures is not None:
            self.figures = figures

    def _log_and(
        self, log_path: str, other: str, other_offset: int, on_data: Callable[[bytes], None]
    ) -> bytes | None:
        """Read the log's new bytes (to `on_data`) and `other` from `other_offset` in one
        ssh command: the log's size, its new bytes, the other file's. None: no answer."""
        argv = ["sh", "-c", _LOG_AND_HOOKS, "sh", log_path, other, str(self.log_offset),
                str(other_offset)]  # fmt: skip
        try:
            done = ssh.run(self.host, self.control, argv, timeout=10, reconnect=False)
        except (LimitlessError, OSError):
            return None
        head, newline, rest = done.data.partition(b"\n")
        if done.code != 0 or not newline or not head.strip().isdigit():
            return None
        size = int(head.strip())
        logged = rest[: max(size - self.log_offset, 0)]
        if logged:
            self.log_offset += len(logged)
            on_data(logged)
        return rest[len(logged) :]


class RemoteGitFigures:
    """A remote task's worktree read there now and then (every `GIT_BUSY_S` while the
    agent prints, else every `GIT_QUIET_S`); handed to `record` when its figures change."""

    def __init__(
        self, remote: RemoteAttempt, record: Callable[[WorktreeState], None], base_sha: str
    ) -> None:
        self.remote = remote
        self.record = record
        self.base_sha = base_sha
        self.checked_at = 0.0
        self.log_seen = -1
        self.recorded: tuple[int, int, int, int] | None = None

    def tick(self) -> None:
        now = time.monotonic()
        printed = self.remote.log_offset != self.log_seen
        if now - self.checked_at < (GIT_BUSY_S if printed else GIT_QUIET_S):
            return
        self.checked_at = now
        self.log_seen = self.remote.log_offset
        state = self.remote.inspect_there(self.base_sha)
        if state is None:
            return
        figures = (state.ahead, state.files_changed, state.insertions, state.deletions)
        if figures != self.recorded:  # what the store keeps of it
            self.recorded = figures
            self.record(state)


class RemoteError(LimitlessError):
    """A step of a remote attempt failed (the host said why)."""

    exit_code = 3


@contextlib.contextmanager
def _host_lock(control: Path, host: Host) -> Iterator[None]:
    with open(control / f"{host.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# What a run leaves on a host, taken away (`limitless cleanup`): worktrees, the run's
# folders and tmux sockets, its branches and base ref in the clone.
_REMOVE_RUN = r"""
root=$1; run=$2; clone="$1/repo.git"
for work in "$root/worktrees/$run"/*; do
  [ -d "$work" ] && git -C "$clone" worktree remove --force "$work" 2>/dev/null
done
rm -rf "$root/worktrees/$run" "$root/runs/$run"
rm -f "$root/tmux/$run".*
[ -d "$clone" ] || exit 0
git -C "$clone" worktree prune
git -C "$clone" for-each-ref --format='%(refname)' "refs/heads/limitless/$run/" \
  "refs/limitless/base/$run" | while read -r ref; do git -C "$clone" update-ref -d "$ref"; done
"""

_SAVE = r"""
sock=$1; work=$2; shift 2
tmux -S "$sock" kill-server 2>/dev/null
[ -d "$work" ] || exit 0
cd "$work" && git add -A && { git diff --cached --quiet || git "$@"; }
"""


def end_agents(host: Host, control: Path, run_id: str, task_ids: list[str]) -> None:
    """Stop the agents of `task_ids` still running on `host` (their tmux servers there)."""
    root = sync.remote_root(host, control)
    sockets = [place_of(root, run_id, task_id, task_id).socket for task_id in task_ids]
    script = 'for s in "$@"; do tmux -S "$s" kill-server 2>/dev/null; rm -f "$s"; done; exit 0'
    ssh.run(host, control, ["sh", "-c", script, "sh", *sockets])


def clean_host(
    host: Host,
    control: Path,
    repo: Path,
    run_id: str,
    tasks: list[tuple[str, str, str]],
) -> list[str]:
    """Remove what run `run_id` left on `host`, after saving its work: each task's agent
    is stopped, its leftovers committed there and its branch fetched; a commit not on
    the task's branch here is kept at `refs/limitless/saved/<run>/<task>`. `tasks`:
    (task id, worktree key, branch) of the tasks that ran there."""
    lines: list[str] = []
    root = sync.remote_root(host, control)
    identity = _identity(repo)
    for task_id, key, branch in tasks:
        place = place_of(root, run_id, task_id, key)
        message = f"limitless: {task_id} — saved on {host.name} before cleanup"
        ssh.run(
            host, control,
            ["sh", "-c", _SAVE, "sh", place.socket, place.worktree, *identity, "commit", "-q",
             "-m", message],
        )  # fmt: skip
        ref = f"refs/limitless/saved/{run_id}/{task_id}"
        try:
            sha = sync.fetch(host, control, repo, branch=branch, ref=ref, root=root)
        except LimitlessError:
            continue  # no branch there (never started)
        here = f"refs/heads/{branch}"
        known = git(repo, "rev-parse", "-q", "--verify", here, check=False).returncode == 0
        merged = git(
            repo, "merge-base", "--is-ancestor", sha, here if known else "HEAD", check=False
        )
        if merged.returncode == 0:
            git(repo, "update-ref", "-d", ref, check=False)
        else:
            lines.append(f"kept work of {task_id} left on {host.name} at {ref}")
    done = ssh.run(host, control, ["sh", "-c", _REMOVE_RUN, "sh", root, run_id])
    if done.code != 0:
        lines.append(f"could not remove {run_id} on {host.name}: {done.stderr.strip()}")
    else:
        lines.append(f"removed the worktrees, branches and agents of {run_id} on {host.name}")
    return lines


def lost_host(reason: str | None) -> str | None:
    """The host an attempt was lost with (its reason says so), or None."""
    if not reason or not reason.startswith(LOST_HOST):
        return None
    return reason[len(LOST_HOST) :].split(":", 1)[0]


def _tick(
    poll: Callable[[Callable[[bytes], None]], None],
    on_data: Callable[[bytes], None],
    on_tick: Callable[[], None] | None,
) -> None:
    poll(on_data)
    if on_tick is not None:
        on_tick()


def _show(data: bytes, on_data: Callable[[bytes], None]) -> None:
    """Output of the agent on this pane too (when it cannot be attached to)."""
    on_data(data)
    with contextlib.suppress(OSError):
        os.write(1, data.replace(b"\n", b"\r\n"))


def _pane_size() -> list[str]:
    """This pane's columns and lines (the wrapper's terminal), or 200 × 50 without one."""
    try:
        size = os.get_terminal_size(1)
    except OSError:
        return ["200", "50"]
    return [str(size.columns), str(size.lines)]


def _passed(host: Host) -> dict[str, str]:
    """The values of the host's `env_pass` names set here: they go with the start command."""
    return {name: os.environ[name] for name in host.env_pass if name in os.environ}


def _attach_env(host: Host) -> dict[str, str]:
    """The attach's ssh runs with this environment, minus what must not leave (env_pass)."""
    env = {k: v for k, v in os.environ.items() if k not in host.env_pass}
    env.pop("TMUX", None)
    return env


def _identity_env(repo: Path) -> dict[str, str]:
    """GIT_AUTHOR_* and GIT_COMMITTER_* as git here would commit."""
    env: dict[str, str] = {}
    for role in ("AUTHOR", "COMMITTER"):
        ident = git(repo, "var", f"GIT_{role}_IDENT", check=False).stdout.strip()
        match = _IDENT.match(ident)
        if match is not None:
            env[f"GIT_{role}_NAME"], env[f"GIT_{role}_EMAIL"] = match.group(1), match.group(2)
    return env


_IDENT = re.compile(r"^(.*) <([^>]*)> \d+ [+-]\d{4}$")


def _identity(repo: Path) -> list[str]:
    """`-c user.name=... -c user.email=...` as git here would commit (its config and
    GIT_AUTHOR_* variables), so commits made there carry the same author."""
    ident = git(repo, "var", "GIT_AUTHOR_IDENT", check=False).stdout.strip()
    match = _IDENT.match(ident)
    if match is None:
        return []
    return ["-c", f"user.name={match.group(1)}", "-c", f"user.email={match.group(2)}"]
