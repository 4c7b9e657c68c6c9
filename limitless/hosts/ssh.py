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

import contextlib
import fcntl
import hashlib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    data: bytes = b""  # stdout as it came, for output that is not text


def control_dir(state_dir: Path) -> Path:
    """The short folder for the master sockets of a repository whose store is `state_dir`:
    `<tmp>/limitless-ssh-<uid>/<hash8>` (the store's own folder is often too long for a unix
    socket). Made 0700 and checked to be this user's, so no one else can plant a socket."""
    digest = hashlib.sha256(os.fsencode(state_dir.absolute())).hexdigest()[:8]
    top = Path(tempfile.gettempdir()) / f"limitless-ssh-{os.getuid()}"
    folder = top / digest
    top.mkdir(exist_ok=True, mode=0o700)
    folder.mkdir(exist_ok=True, mode=0o700)
    for path in (top, folder):
        info = path.lstat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or path.is_symlink():
            msg = f"{path} is not a private folder of this user; remove it and try again"
            raise EnvironmentProblem(msg)
    return folder


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
    # One process at a time opens a host's master: a second `ControlMaster=yes` beside a
    # live socket gives up multiplexing and would stay behind as a plain connection.
    with open(state_dir / f"{host.name}.connect.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_connected(host, state_dir):
                return
            # a master that died (killed, or its link cut) leaves its socket file
            control_path(host, state_dir).unlink(missing_ok=True)
            _open_master(host, state_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _open_master(host: Host, state_dir: Path) -> None:
    argv = [
        "ssh", *ssh_options(host, state_dir),
        "-o", "ControlMaster=yes", "-o", f"ControlPersist={PERSIST}", "-f", "-N", _target(host),
    ]  # fmt: skip
    done = _run(
        host, argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=CONNECT_TIMEOUT + 5,
    )  # fmt: skip
    if done.returncode != 0:
        words = done.stderr.strip() or f"ssh exited {done.returncode}"
        msg = f"host {host.name}: cannot connect to {host.ssh}: {words}"
        raise EnvironmentProblem(msg)


def is_connected(host: Host, state_dir: Path) -> bool:
    """Whether the master connection answers (`ssh -O check`)."""
    if not control_path(host, state_dir).exists():
        return False
    argv = ["ssh", *ssh_options(host, state_dir), "-O", "check", _target(host)]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def disconnect(host: Host, state_dir: Path) -> None:
    """Close the master connection (`ssh -O exit`); nothing when none is open."""
    if control_path(host, state_dir).exists():
        argv = ["ssh", *ssh_options(host, state_dir), "-O", "exit", _target(host)]
        with contextlib.suppress(subprocess.TimeoutExpired):
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
    reconnect: bool = True,
) -> Result:
    """Run `argv` on `host` over its master connection (opened if needed).

    `env` holds the values of the host's `env_pass` names: they go into the local ssh
    process's environment only, never into an argument or a file. `reconnect=False`
    skips the check of the master (one process less): a poll that may fail (255).
    """
    if reconnect:
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
    done = _run(
        host,
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
        done.stdout,
    )


def _run(host: Host, argv: list[str], **options: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run` whose timeout is an EnvironmentProblem naming the host (exit 3)."""
    try:
        return subprocess.run(argv, check=False, **options)
    except subprocess.TimeoutExpired as exc:
        msg = f"host {host.name}: ssh gave no answer within {exc.timeout:.0f}s"
        raise EnvironmentProblem(msg) from exc


def _target(host: Host) -> str:
    if host.ssh is None:
        msg = f"host {host.name!r} is this machine; it has no ssh connection"
        raise EnvironmentProblem(msg)
    return host.ssh
