"""The fork server's listening process: warm imports, one unix socket, one fork per request.

`serve()` imports what it is told to preload, freezes the imported objects out of
the garbage collector's reach (so children share those pages instead of copying
them), listens on a unix socket only this user may use, and forks a watcher
(`child.watch`) for each connection from a process of the same uid. It stays
single-threaded, so every fork is safe, and it never opens the store. It ends
when the process that started it (the supervisor) is gone, or on SIGTERM.

`spawn()` forks a server from the calling process; `python -m limitless.forkserver`
starts one on its own (tests, benchmarks).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from limitless.errors import EnvironmentProblem
from limitless.forkserver.child import Target, watch
from limitless.forkserver.client import socket_address

log = logging.getLogger(__name__)

PARENT_CHECK_S = 1.0  # how often the server looks whether its parent still lives
UCRED = struct.Struct("3i")  # pid, uid, gid (SO_PEERCRED)


def preload(modules: Sequence[str]) -> None:
    """Import `modules` and keep the garbage collector off everything imported so far."""
    for name in modules:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


def listen(path: Path) -> socket.socket:
    """A listening unix socket at `path` (any length), usable by this user only."""
    if path.is_socket():
        if _answers(path):
            msg = f"a fork server already listens on {path}"
            raise EnvironmentProblem(msg)
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address, folder = socket_address(str(path))
    mask = os.umask(0o177)
    try:
        listener.bind(address)
    except OSError as exc:
        listener.close()
        msg = f"cannot listen on {path}: {exc.strerror or exc}"
        raise EnvironmentProblem(msg) from exc
    finally:
        os.umask(mask)
        if folder is not None:
            os.close(folder)
    listener.listen(128)
    return listener


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address, folder = socket_address(str(path))
    try:
        probe.connect(address)
    except OSError:
        return False
    finally:
        probe.close()
        if folder is not None:
            os.close(folder)
    return True


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of `conn` (the kernel's word, SO_PEERCRED)."""
    _, uid, _ = UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size))
    return int(uid)


class ForkServer:
    """Accepts connections and forks one watcher per request (see `child`)."""

    def __init__(
        self,
        path: Path,
        targets: Sequence[Target],
        *,
        parent: int | None,
        once: bool = False,
        wait_s: float | None = None,
    ) -> None:
        self.path = path
        self.targets = tuple(targets)
        self.parent = parent
        self.once = once  # end after the first fork (the supervisor's start)
        self.give_up_at = None if wait_s is None else time.monotonic() + wait_s
        self.listener = listen(path)
        self.stopping = False

    def serve(self) -> None:
        """Serve until SIGTERM or the parent's end; the socket file is removed after."""
        signal.signal(signal.SIGTERM, self._stop)
        log.info("fork server listening", extra={"path": str(self.path)})
        try:
            while not self.stopping and self._parent_lives() and not self._given_up():
                try:
                    ready, _, _ = select.select([self.listener], [], [], PARENT_CHECK_S)
                except InterruptedError:
                    continue
                if ready:
                    self._accept()
                self._reap()
        finally:
            self.listener.close()
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(self.path.lstat().st_mode):
                    self.path.unlink()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _given_up(self) -> bool:
        return self.give_up_at is not None and time.monotonic() >= self.give_up_at

    def _parent_lives(self) -> bool:
        return self.parent is None or os.getppid() == self.parent

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            refusal = self._refusal(conn)
            if refusal:
                log.warning("fork request refused", extra={"why": refusal})
                with contextlib.suppress(OSError):
                    conn.sendall(f"refused {refusal}\n".encode())
                return
            try:
                pid = os.fork()
            except OSError as exc:
                with contextlib.suppress(OSError):
                    conn.sendall(f"refused cannot fork: {exc.strerror}\n".encode())
                return
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                watch(conn, self.listener, self.targets)
            self.stopping = self.once

    def _refusal(self, conn: socket.socket) -> str:
        uid = peer_uid(conn)
        if uid != os.getuid():
            return f"uid {uid} is not the server's ({os.getuid()})"
        if threading.active_count() != 1:
            return "the server has threads: it cannot fork safely"
        return ""

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def serve(
    path: Path,
    targets: Sequence[Target],
    modules: Sequence[str] = (),
    *,
    parent: int | None,
    once: bool = False,
    wait_s: float | None = None,
) -> None:
    """Listen on `path`, preload `modules`, then serve in this process until told to
    stop (a client that comes while the modules load waits in the listen queue)."""
    server = ForkServer(path, targets, parent=parent, once=once, wait_s=wait_s)
    preload(modules)
    server.serve()


def spawn(
    path: Path,
    targets: Sequence[Target],
    modules: Sequence[str] = (),
    *,
    once: bool = False,
    wait_s: float | None = None,
) -> int:
    """Fork a fork server from this process (which must have no other thread yet).

    Returns its pid; it serves until this process ends. Clients that come before it
    listens start cold. `once`: it ends after its first fork, or after `wait_s`
    without one, and its stdin/stdout/stderr are /dev/null (this process's may be a
    pipe someone reads to its end, which a server kept open would hold up).
    """
    if threading.active_count() != 1:
        msg = "a fork server must be forked before any thread starts"
        raise EnvironmentProblem(msg)
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        os.setsid()
        for number in (signal.SIGINT, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)  # the supervisor's pane is not ours
        if once:
            quiet_stdio()
        serve(path, targets, modules, parent=parent, once=once, wait_s=wait_s)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            log.exception("fork server failed")
            # the owner's pane is the one place a user looks
            print(f"fork server failed ({exc}): wrappers start cold", file=sys.stderr, flush=True)
        code = 1
    os._exit(code)


def quiet_stdio() -> None:
    """stdin, stdout and stderr on /dev/null (a pipe a caller reads to its end is let go)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m limitless.forkserver SOCKET [--preload M]... [--target MODULE FUNCTION [C]...]`"""
    parser = argparse.ArgumentParser(prog="python -m limitless.forkserver")
    parser.add_argument("socket", type=Path)
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE")
    parser.add_argument(
        "--target",
        action="append",
        nargs="+",
        default=[],
        metavar="WORD",
        help="MODULE FUNCTION [COMMAND ...]: `-m MODULE [COMMAND]` runs FUNCTION(argv)",
    )
    args = parser.parse_args(argv)
    targets = []
    for words in args.target:
        if len(words) < 2:
            parser.error("--target needs MODULE FUNCTION [COMMAND ...]")
        targets.append(Target(words[0], words[1], tuple(words[2:])))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    serve(args.socket, targets, args.preload, parent=None)
    return 0
