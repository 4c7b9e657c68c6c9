"""What the panes of a run run: the one contract between the processes of a run.

The launcher starts the supervisor and the dashboard, the supervisor puts the
in-pane wrapper or the idle program in a slot, the wrapper wakes the supervisor
on a tmux channel, recovery and the supervisor tell a live wrapper or supervisor
by its command line, the resolver runs in a slot. Every argv, channel name and
command-line test they share lives here, so changing what a pane runs is a change
to this module alone.

Every limitless program a pane runs is `python -m limitless ...` from the
interpreter that started the run (no PATH lookup): a run started before an
upgrade keeps running the same entry points after it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from limitless.forkserver import client as forkserver_client

EXEC_COMMAND = "_exec"
"""The hidden subcommand of the in-pane wrapper: one attempt of one task."""
SUPERVISE_COMMAND = "_supervise"
"""The hidden subcommand of the supervisor, in the `control` window."""
RESOLVER_MODULE = "limitless.merge.resolver"
"""The module a conflict resolver runs under in a slot pane (it records the exit code)."""

SOCKET_ENV = "LIMITLESS_TMUX_SOCKET"
"""Names the tmux server (`tmux -L`) of the run a pane belongs to; the command line's default."""

_SLEEP_FOREVER = "exec sleep 2147483647"


def limitless_argv(*args: str) -> list[str]:
    """`limitless ARGS` run by this very interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "limitless", *args]


def exec_argv(
    run_id: str, task_id: str, state_dir: Path, fork_socket: Path | None = None
) -> list[str]:
    """What a slot pane runs for one attempt of one task: the in-pane wrapper.

    With the run's fork server (`fork_socket`), the pane runs its small client,
    which has the warm server fork the wrapper (no interpreter start-up on the
    task's path) and starts the same cold command itself when the server is
    gone. The cold command stays in the argv, so liveness checks read it as before.
    """
    cold = limitless_argv(
        EXEC_COMMAND, "--run", run_id, "--task", task_id, "--state-dir", str(state_dir)
    )
    if fork_socket is None:
        return cold
    return [sys.executable, "-S", "-I", forkserver_client.__file__, str(fork_socket), *cold]


def fork_socket(state_dir: Path, run_id: str, owner_pid: int) -> Path:
    """Where the fork server of a run's supervisor (`owner_pid`) listens: in the run's
    folder, named after the supervisor so a restarted one never meets its
    predecessor's server (which ends within a second of its owner)."""
    return state_dir / "runs" / run_id / f"fork-{owner_pid}.sock"


def supervise_argv(run_id: str, state_dir: Path, fork_socket: Path | None = None) -> list[str]:
    """What the `control` pane runs: the run's supervisor; with `fork_socket` (the warm
    server `limitless run` forked from itself), the client that has it forked there."""
    cold = limitless_argv(SUPERVISE_COMMAND, "--run", run_id, "--state-dir", str(state_dir))
    if fork_socket is None:
        return cold
    return [sys.executable, "-S", "-I", forkserver_client.__file__, str(fork_socket), *cold]


def start_socket(state_dir: Path, owner_pid: int) -> Path:
    """Where the one-shot server that starts a run's supervisor warm listens (forked by
    `limitless run`, pid `owner_pid`, before the run has an id)."""
    return state_dir / "forks" / f"start-{owner_pid}.sock"


def dashboard_argv(run_id: str, *, textual: bool) -> list[str]:
    """What the dashboard pane runs: the Textual dashboard, or the plain status
    when textual is not installed."""
    if textual:
        return limitless_argv("dashboard", run_id)
    return limitless_argv("status", run_id, "--watch")


def idle_argv() -> list[str]:
    """What an unused slot pane shows (its border names the slot): a line, then nothing."""
    return _idle("free slot: waiting for a task")


def resolver_stopped_argv() -> list[str]:
    """What a slot pane shows after its resolver was stopped at its time limit."""
    return _idle("free slot: the resolver was stopped at its time limit")


def _idle(line: str) -> list[str]:
    return ["sh", "-c", f"printf '{line}\\n'; {_SLEEP_FOREVER}"]


def resolver_argv(exit_file: Path, argv: Sequence[str]) -> list[str]:
    """A resolver's `argv` in a slot pane, its exit code written to `exit_file`."""
    return [sys.executable, "-m", RESOLVER_MODULE, str(exit_file), "--", *argv]


def wake_channel(run_id: str) -> str:
    """The tmux wait-for channel the supervisor of `run_id` listens on (wrappers signal it,
    and so does the slot panes' exit hook)."""
    return f"limitless-{run_id}"


def done_channel(run_id: str) -> str:
    """The tmux wait-for channel signalled once the run has ended."""
    return wake_channel(run_id) + "-done"


def pane_env(run_id: str, socket_name: str | None) -> dict[str, str]:
    """The variables every limitless program in a run's pane starts with: its run, and the
    tmux server it lives on (so its own tmux calls reach that server)."""
    env = {"LIMITLESS_RUN": run_id}
    if socket_name:
        env[SOCKET_ENV] = socket_name
    return env


def runs_wrapper(cmdline: Sequence[str], task_id: str) -> bool:
    """Is `cmdline` (a process's argv) the in-pane wrapper of task `task_id`?"""
    return EXEC_COMMAND in cmdline and task_id in cmdline


def runs_supervisor(cmdline: Sequence[str], run_id: str) -> bool:
    """Is `cmdline` (a process's argv) the supervisor of run `run_id`?"""
    return SUPERVISE_COMMAND in cmdline and run_id in cmdline
