"""Leases for running tasks: free TCP ports, and the cap on agents across runs.

Every running task holds one lease in a small JSON book shared by every
supervisor on this machine (`$XDG_STATE_HOME/limitless/leases.json`, guarded by
an exclusive `flock`). A lease names its supervisor's pid; leases of dead
supervisors are dropped whenever the book is opened. So:

- ports leased to running tasks are unique among them, and each was free when
  leased (checked by binding it on 127.0.0.1);
- `max_active_agents` (user config) counts the live leases of all runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from limitless.errors import StoreError

log = logging.getLogger(__name__)

MAX_PORT_TRIES = 200


@dataclass(frozen=True)
class Lease:
    """One running task's lease: who holds it and which ports."""

    key: str
    pid: int
    ports: tuple[int, ...] = ()


def lease_book_path() -> Path:
    """`$XDG_STATE_HOME/limitless/leases.json` (default ~/.local/state)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "limitless" / "leases.json"


def lease_key(state_dir: Path, run_id: str, task_id: str) -> str:
    """A key unique on the machine: run ids only count within one repository."""
    return f"{state_dir}::{run_id}/{task_id}"


def ports_in_env(env: Mapping[str, str]) -> tuple[int, ...]:
    """The leased ports an environment was given (`LIMITLESS_PORT_0`, `_1`, ...)."""
    ports: list[int] = []
    while (value := env.get(f"LIMITLESS_PORT_{len(ports)}", "")).isdigit():
        ports.append(int(value))
    return tuple(ports)


def port_env(ports: tuple[int, ...], run_id: str, task_id: str) -> dict[str, str]:
    """`LIMITLESS_PORT_0..N-1`, `PORT` (the first) and `COMPOSE_PROJECT_NAME`."""
    env = {f"LIMITLESS_PORT_{index}": str(port) for index, port in enumerate(ports)}
    if ports:
        env["PORT"] = str(ports[0])
    project = f"limitless-{run_id}-{task_id}".lower()
    env["COMPOSE_PROJECT_NAME"] = "".join(c if c.isalnum() or c in "-_" else "-" for c in project)
    return env


def port_is_free(port: int) -> bool:
    """Can a listener bind `port` on 127.0.0.1 right now?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_from_os() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class LeaseBook:
    """The machine-wide book of leases. Each method opens, locks, reads, writes, unlocks."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or lease_book_path()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Lease]]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115
        except OSError as exc:
            msg = f"cannot open the lease book {self.path}: {exc}; check that folder's permissions"
            raise StoreError(msg) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            leases = self._read()
            before = dict(leases)
            leases = {key: lease for key, lease in leases.items() if _alive(lease.pid)}
            yield leases
            if leases != before:
                self._write(leases)

    def _read(self) -> dict[str, Lease]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        leases: dict[str, Lease] = {}
        if not isinstance(data, dict):
            return leases
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(value.get("pid"), int):
                ports = tuple(int(p) for p in value.get("ports", []) if isinstance(p, int))
                leases[str(key)] = Lease(key=str(key), pid=value["pid"], ports=ports)
        return leases

    def _write(self, leases: Mapping[str, Lease]) -> None:
        data = {
            key: {"pid": lease.pid, "ports": list(lease.ports)} for key, lease in leases.items()
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def acquire(
        self,
        key: str,
        *,
        ports: int = 0,
        pid: int | None = None,
        max_active: int | None = None,
        keep: tuple[int, ...] = (),
    ) -> Lease | None:
        """Lease `ports` free ports for `key`; None when `max_active` leases are live already.

        A key that holds a lease already keeps it (its pid is updated). `keep`:
        ports the task's process uses already (a task adopted after its
        supervisor died), leased as they are unless another lease holds one.
        """
        pid = pid or os.getpid()
        with self._locked() as leases:
            held = leases.get(key)
            if held is not None:
                lease = Lease(key=key, pid=pid, ports=held.ports)
                leases[key] = lease
                return lease
            if max_active is not None and len(leases) >= max_active:
                return None
            taken = {port for lease in leases.values() for port in lease.ports}
            chosen = [port for port in dict.fromkeys(keep[:ports]) if port not in taken]
            for _ in range(MAX_PORT_TRIES):
                if len(chosen) >= ports:
                    break
                port = _free_port_from_os()
                if port in taken or port in chosen or not port_is_free(port):
                    continue
                chosen.append(port)
            if len(chosen) < ports:
                msg = f"could not find {ports} free TCP ports on 127.0.0.1 for {key}"
                raise StoreError(msg)
            # a kept port stays at its index (LIMITLESS_PORT_<i>); new ones fill the gaps
            fresh = [port for port in chosen if port not in keep]
            kept = {index: port for index, port in enumerate(keep[:ports]) if port in chosen}
            chosen = [kept[index] if index in kept else fresh.pop(0) for index in range(ports)]
            lease = Lease(key=key, pid=pid, ports=tuple(chosen))
            leases[key] = lease
            log.info("ports leased", extra={"key": key, "ports": chosen})
            return lease

    def release(self, key: str) -> None:
        """Drop `key`'s lease (nothing happens if it holds none)."""
        with self._locked() as leases:
            leases.pop(key, None)

    def active(self) -> dict[str, Lease]:
        """The live leases."""
        with self._locked() as leases:
            return dict(leases)
