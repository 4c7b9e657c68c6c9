"""One SSH master connection per host, and commands over it.

The master (`ControlMaster=yes`, `ControlPersist`) keeps its socket at
`<state_dir>/<host name>.sock`; `state_dir` should be short (unix socket paths end at
about 104 bytes), so `control_path` refuses a path that would not fit. Every later
`ssh` names the same `ControlPath` with `ControlMaster=no`: it rides the open
connection, no new handshake.

Commands are argv lists. ssh hands the remote side one string for the user's login
shell, so `remote_command` quotes each element with `shlex.quote` (`shlex.join`):
a prompt or a path reaches the remote program as one argument, never as shell text.
Values of `env_pass` travel only in the environment of the local `ssh` process, named
by `SendEnv`; the host's sshd must accept them (`AcceptEnv NAME` in its sshd_config,
Debian accepts only `LANG LC_*` by default) — `check_hosts` verifies that.

Host keys are checked (BatchMode, no prompt): against the user's known_hosts, then
`<state_dir>/known_hosts` (where tests put their sshd's keys).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import EnvironmentProblem
from limitless.hosts.model import Host

SOCKET_PATH_MAX = 100
CONNECT_TIMEOUT = 10
PERSIST = "10m"


@dataclass(frozen=True)
class Result:
    """A finished remote command."""

    code: int
    stdout: str
    stderr: str


def control_path(host: Host, state_dir: Path) -> Path:
    path = state_dir / f"{host.name}.sock"
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        msg = (
            f"the ssh control socket {path} is too long for a unix socket; use a shorter state dir"
        )
        raise EnvironmentProblem(msg)
    return path


def known_hosts(state_dir: Path) -> Path:
    """Host keys limitless was given (tests, provisioning), read after the user's own."""
    return state_dir / "known_hosts"


def ssh_options(host: Host, state_dir: Path) -> list[str]:
    """The options every ssh call to `host` shares (the master and its riders)."""
    if host.ssh is None:
        msg = f"host {host.name!r} is this machine; it has no ssh connection"
        raise EnvironmentProblem(msg)
    options = [
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=3",
        "-o", f"ControlPath={control_path(host, state_dir)}",
        "-o", f'UserKnownHostsFile=~/.ssh/known_hosts "{known_hosts(state_dir)}"',
    ]  # fmt: skip
    if host.port is not None:
        options += ["-p", str(host.port)]
    if host.identity is not None:
        options += ["-i", os.path.expanduser(host.identity), "-o", "IdentitiesOnly=yes"]
    for name in host.env_pass:
        options += ["-o", f"SendEnv={name}"]
    return options


def ssh_command(host: Host, state_dir: Path) -> str:
    """A GIT_SSH_COMMAND that rides the master connection (git appends host and command)."""
    options = [*ssh_options(host, state_dir), "-o", "ControlMaster=no"]
    return shlex.join(["ssh", *options])


def connect(host: Host, state_dir: Path) -> None:
    """Open the master connection unless one is up; EnvironmentProblem with ssh's words if not."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if is_connected(host, state_dir):
        return
    argv = [
        "ssh", *ssh_options(host, state_dir),
        "-o", "ControlMaster=yes", "-o", f"ControlPersist={PERSIST}", "-f", "-N", _target(host),
    ]  # fmt: skip
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CONNECT_TIMEOUT + 5
    )
    if done.returncode != 0:
        words = done.stderr.strip() or f"ssh exited {done.returncode}"
        msg = f"host {host.name}: cannot connect to {host.ssh}: {words}"
        raise EnvironmentProblem(msg)


def is_connected(host: Host, state_dir: Path) -> bool:
    """Whether the master connection answers (`ssh -O check`)."""
    if not control_path(host, state_dir).exists():
        return False
    argv = ["ssh", *ssh_options(host, state_dir), "-O", "check", _target(host)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    return done.returncode == 0


def disconnect(host: Host, state_dir: Path) -> None:
    """Close the master connection (`ssh -O exit`); nothing when none is open."""
    if control_path(host, state_dir).exists():
        argv = ["ssh", *ssh_options(host, state_dir), "-O", "exit", _target(host)]
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)


def remote_command(argv: Sequence[str]) -> str:
    """The one string ssh sends: each argv element quoted for the remote shell."""
    if not argv:
        msg = "no command to run"
        raise ValueError(msg)
    return shlex.join(argv)


def run(
    host: Host,
    state_dir: Path,
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Result:
    """Run `argv` on `host` over its master connection (opened if needed).

    `env` holds the values of the host's `env_pass` names: they go into the local ssh
    process's environment only, never into an argument or a file.
    """
    connect(host, state_dir)
    argv_ssh = [
        "ssh", *ssh_options(host, state_dir), "-o", "ControlMaster=no", "-T",
        _target(host), "--", remote_command(argv),
    ]  # fmt: skip
    process_env = dict(os.environ)
    for name in host.env_pass:
        process_env.pop(name, None)
    for name, value in (env or {}).items():
        if name not in host.env_pass:
            msg = (
                f"host {host.name}: {name} is not in its env_pass; nothing else leaves this machine"
            )
            raise EnvironmentProblem(msg)
        process_env[name] = value
    done = subprocess.run(
        argv_ssh,
        input=input if input is not None else b"",
        capture_output=True,
        env=process_env,
        timeout=timeout,
    )
    return Result(
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
    )


def _target(host: Host) -> str:
    if host.ssh is None:
        msg = f"host {host.name!r} is this machine; it has no ssh connection"
        raise EnvironmentProblem(msg)
    return host.ssh
