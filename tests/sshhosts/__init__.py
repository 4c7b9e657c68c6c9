"""A real sshd per test host, on a loopback port, owned by the test.

Each `SshHost` has its own folder with generated host keys, the user's authorized key,
an sshd_config of its own (no PAM, StrictModes off, AuthorizedKeysFile in the folder)
and its own `home`: sshd runs as root here and logs the client in as the current
user, so the host's HOME is set with sshd's `SetEnv HOME=...` (sshd applies SetEnv
after it sets HOME from the password database) — one Unix user, one HOME per host, no
system users created. A `bin` folder in the host is put first on PATH the same way,
so a test can shadow a tool (a `tmux` that prints `tmux 2.9`).

sshd runs in the foreground (`-D`) as our child with `-E log`; `stop()` ends exactly
that process. `AcceptEnv LIMITLESS_TEST_*` lets env_pass travel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from limitless.hosts.model import Host

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def unavailable() -> str | None:
    """Why real-sshd tests cannot run here, or None."""
    if not os.access(SSHD, os.X_OK):
        return "sshd is not installed (scripts/test.sh installs openssh-server where apt-get works)"
    if shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        return "the ssh client (openssh-client) is not installed"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SshHost:
    name: str
    folder: Path
    identity: Path
    port: int = 0
    accept_env: tuple[str, ...] = ()  # more names sshd takes from the client (AcceptEnv)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def bin(self) -> Path:
        return self.folder / "bin"

    @property
    def log(self) -> Path:
        return self.folder / "sshd.log"

    def host(self, *, slots: int = 2, env_pass: tuple[str, ...] = ()) -> Host:
        user = os.environ.get("USER") or "root"
        return Host(
            self.name, slots, f"{user}@127.0.0.1", self.port, str(self.identity),
            "~/limitless", env_pass,
        )  # fmt: skip

    def start(self, *, same_port: bool = False) -> None:
        """Start sshd on a free port (`same_port`: on the one it had, as a host coming back)."""
        if not (same_port and self.port):
            self.port = free_port()
        config = self.folder / "sshd_config"
        path = f"{self.bin}:/usr/local/bin:/usr/bin:/bin"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.folder / 'host_ed25519'}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "LogLevel VERBOSE",
                    "MaxStartups 50",
                    "MaxSessions 50",
                    " ".join(["AcceptEnv LIMITLESS_TEST_*", *self.accept_env]),
                    f"SetEnv HOME={self.home} PATH={path}",
                    "",
                ]
            )
        )
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
        self.process = subprocess.Popen(
            [SSHD, "-D", "-f", str(config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited {self.process.returncode}: {self.log.read_text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port}: {self.log.read_text()}")

    def trust(self, state_dir: Path) -> None:
        """Add this host's key to `state_dir/known_hosts`, where limitless.hosts.ssh looks."""
        state_dir.mkdir(parents=True, exist_ok=True)
        key = (self.folder / "host_ed25519.pub").read_text().split()[:2]
        with (state_dir / "known_hosts").open("a") as stream:
            stream.write(f"[127.0.0.1]:{self.port} {' '.join(key)}\n")

    def stop(self) -> None:
        """End this sshd and the sessions it serves (as a machine going away would)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self.process.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def end_agents(self) -> None:
        """End the tmux servers limitless started here (one per task, under root/tmux)."""
        folder = self.home / "limitless" / "tmux"
        for socket_file in folder.glob("*") if folder.is_dir() else []:
            subprocess.run(
                ["tmux", "-S", str(socket_file), "kill-server"], capture_output=True, check=False
            )

    def handshakes(self) -> int:
        """Logins sshd accepted so far (one per new connection; riders on a master add none)."""
        return self.log.read_text(errors="replace").count("Accepted publickey")


def make_host(name: str, folder: Path, identity: Path, accept_env: tuple[str, ...] = ()) -> SshHost:
    """A host folder with its keys, home and bin; started (its sshd taking `accept_env`
    too)."""
    folder.mkdir(parents=True)
    (folder / "home").mkdir()
    (folder / "bin").mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_ed25519")],
        check=True,
    )
    shutil.copy(identity.with_suffix(".pub"), folder / "authorized_keys")
    ssh_host = SshHost(name, folder, identity, accept_env=accept_env)
    ssh_host.start()
    return ssh_host


def make_user_key(folder: Path) -> Path:
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@dataclass
class Fleet:
    """Test hosts on real sshds, a short state dir for control sockets, and the user key."""

    folder: Path
    state_dir: Path
    identity: Path
    hosts: list[SshHost] = field(default_factory=list)
    control_dirs: list[Path] = field(default_factory=list)

    def add(self, name: str, *, accept_env: tuple[str, ...] = ()) -> SshHost:
        ssh_host = make_host(name, self.folder / name, self.identity, accept_env)
        self.hosts.append(ssh_host)
        ssh_host.trust(self.state_dir)
        for folder in self.control_dirs:
            ssh_host.trust(folder)
        return ssh_host

    def serve(self, repo: Path) -> Path:
        """Trust the hosts in the control folder `limitless` uses for `repo` (where a run
        or `hosts check` there looks for known_hosts); its masters end with the fleet."""
        from limitless.git.repo import find_repo, state_dir
        from limitless.hosts.ssh import control_dir

        folder = control_dir(state_dir(find_repo(repo)))
        self.control_dirs.append(folder)
        for ssh_host in self.hosts:
            ssh_host.trust(folder)
        return folder

    def close(self) -> None:
        from limitless.hosts.ssh import disconnect

        for ssh_host in self.hosts:
            if ssh_host.port:
                for folder in [self.state_dir, *self.control_dirs]:
                    with contextlib.suppress(Exception):
                        disconnect(ssh_host.host(), folder)
            ssh_host.end_agents()
            ssh_host.stop()
        for folder in self.control_dirs:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """Start test hosts with `fleet.add(name)`; every sshd and master is ended afterwards."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    # control sockets need a short path: pytest's tmp_path can pass 100 bytes
    folder = Path(tempfile.mkdtemp(prefix="lh-", dir="/tmp"))
    state_dir = folder / "s"
    state_dir.mkdir(mode=0o700)
    group = Fleet(folder, state_dir, make_user_key(folder))
    try:
        yield group
    finally:
        group.close()
        shutil.rmtree(folder, ignore_errors=True)
