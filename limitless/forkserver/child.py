"""What the fork server's children do: take over a pane, become the program, report its end.

For each connection the server forks a watcher; the watcher reads the request,
checks it against the allow-list, forks the program (which becomes the target
function in a fresh session, on the pane's descriptors, with the client's cwd,
umask and environment, and signal handlers as a fresh interpreter has them),
then relays the client's signals to it and its wait status back to the client.
The watcher is not the server: a server killed with -9 leaves it running, so a
task started before still reports its end.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import io
import logging
import os
import random
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from limitless.forkserver.client import (
    HEADER_SIZE,
    MAX_REQUEST_BYTES,
    START_TIMEOUT_S,
    decode_request,
    read_line,
)

log = logging.getLogger(__name__)

Entry = Callable[[list[str]], object]


@dataclass(frozen=True)
class Target:
    """A program the server may become, named as its cold command line names it:
    `PYTHON -m MODULE [COMMAND] ...` runs `FUNCTION([COMMAND, ...])` (a `main(argv)`)."""

    module: str  # what `-m` names in the cold command
    function: str  # "package.module:attribute", called with the words after `-m MODULE`
    commands: tuple[str, ...] = ()  # the first words allowed after the module (empty: any)

    def arguments(self, command: Sequence[str]) -> list[str] | None:
        """The function's argv for this cold command, or None when it is not this target."""
        if len(command) < 3 or list(command[1:3]) != ["-m", self.module]:
            return None
        args = list(command[3:])
        if self.commands and (not args or args[0] not in self.commands):
            return None
        return args

    def load(self) -> Entry:
        module_name, _, attribute = self.function.partition(":")
        entry = getattr(importlib.import_module(module_name), attribute)
        if not callable(entry):
            msg = f"{self.function} is not callable"
            raise TypeError(msg)
        return entry  # type: ignore[no-any-return]


class Refusal(Exception):
    """A request the server will not run; the client starts cold."""


@dataclass(frozen=True)
class Request:
    command: list[str]
    cwd: str
    env: dict[str, str]
    umask: int
    fds: list[int]


def parse_request(data: bytes, fds: list[int]) -> Request:
    try:
        command, cwd, env, umask = decode_request(data)
    except ValueError as exc:
        msg = f"unreadable request: {exc}"
        raise Refusal(msg) from exc
    if not command:
        msg = "the request names no command"
        raise Refusal(msg)
    if len(fds) != 3:
        msg = f"expected stdin, stdout and stderr, got {len(fds)} descriptors"
        raise Refusal(msg)
    return Request(command, cwd, env, umask, fds)


def receive(conn: socket.socket) -> Request:
    """Read one request and the pane's descriptors from a new connection."""
    data, fds, _, _ = socket.recv_fds(conn, 65536, 3)
    while len(data) < HEADER_SIZE:
        more = conn.recv(65536)
        if not more:
            break
        data += more
    if len(data) < HEADER_SIZE:
        msg = "the connection closed before the request"
        raise Refusal(msg)
    size = int.from_bytes(data[:HEADER_SIZE], "big")
    if size > MAX_REQUEST_BYTES:
        msg = f"request of {size} bytes, over {MAX_REQUEST_BYTES}"
        raise Refusal(msg)
    body = bytearray(data[HEADER_SIZE:])
    while len(body) < size:
        more = conn.recv(min(1 << 20, size - len(body)))
        if not more:
            msg = "the connection closed inside the request"
            raise Refusal(msg)
        body += more
    return parse_request(bytes(body[:size]), fds)


def choose(targets: Sequence[Target], command: Sequence[str]) -> tuple[Entry, list[str]]:
    for target in targets:
        args = target.arguments(command)
        if args is not None:
            return target.load(), args
    msg = f"{' '.join(command[1:4])!r} is not a program this server runs"
    raise Refusal(msg)


def watch(
    conn: socket.socket, listener: socket.socket | None, targets: Sequence[Target]
) -> NoReturn:
    """The watcher (forked by the server for one connection): never returns."""
    try:
        if listener is not None:
            os.close(listener.detach())
        os.setsid()  # out of the server's session: signals to its terminal do not reach us
        _watch(conn, targets)
    except BaseException:  # a watcher must end here, never back in the server's loop
        with contextlib.suppress(BaseException):
            log.exception("fork server watcher failed")
        os._exit(1)
    os._exit(0)


def _watch(conn: socket.socket, targets: Sequence[Target]) -> None:
    conn.settimeout(START_TIMEOUT_S)
    fds: list[int] = []
    try:
        request = receive(conn)
        fds = request.fds
        entry, args = choose(targets, request.command)
    except (Refusal, OSError, ImportError, AttributeError, TypeError) as exc:
        with contextlib.suppress(OSError):
            conn.sendall(f"refused {exc}\n".encode())
        return
    pending = bytearray()
    conn.sendall(b"ok\n")
    if read_line(conn, pending) != b"go":
        return  # the client gave up (and started cold): start nothing
    try:
        pid = os.fork()
    except OSError as exc:
        conn.sendall(f"refused cannot fork: {exc.strerror}\n".encode())
        return
    if pid == 0:
        become(conn, request, entry, args)
    for fd in fds:
        os.close(fd)
    conn.settimeout(None)
    conn.sendall(f"pid {pid}\n".encode())
    relay(conn, pid, pending)


def relay(conn: socket.socket, pid: int, pending: bytearray) -> None:
    """Forward the client's signals to the program; send its wait status when it ends."""
    handle = os.pidfd_open(pid)
    readers: list[int | socket.socket] = [handle, conn]
    while True:
        try:
            ready, _, _ = select.select(readers, [], [])
        except InterruptedError:
            continue
        if handle in ready:
            _, status = os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                conn.sendall(f"exit {status}\n".encode())
            return
        if conn in ready:
            for line in _lines(conn, pending):
                if line is None:  # the client is gone (killed, or its pane closed)
                    readers.remove(conn)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGHUP)
                    break
                _forward(pid, line)


def _lines(conn: socket.socket, pending: bytearray) -> list[bytes | None]:
    try:
        data = conn.recv(4096)
    except OSError:
        data = b""
    if not data:
        return [None]
    pending += data
    *lines, rest = bytes(pending).split(b"\n")
    pending[:] = rest
    return list(lines)


# Signals the kernel sends a terminal's foreground process group; the others go to
# the program alone (a hangup reaches the session leader only).
GROUP_SIGNALS = {signal.SIGWINCH, signal.SIGINT, signal.SIGQUIT}


def _forward(pid: int, line: bytes) -> None:
    word, _, number = line.partition(b" ")
    if word != b"signal" or not number.isdigit():
        return
    signum = int(number)
    if signum not in {int(s) for s in signal.valid_signals()}:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if signum in GROUP_SIGNALS:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def become(conn: socket.socket, request: Request, entry: Entry, args: list[str]) -> NoReturn:
    """In the program's process: take the client's place, run the entry, exit as it ends."""
    code = 1
    try:
        os.setsid()
        for number, fd in enumerate(request.fds):
            os.dup2(fd, number, inheritable=True)
        os.close(conn.detach())
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # nothing of the server's stays open
        _fresh_streams()
        os.chdir(request.cwd)
        os.umask(request.umask)
        os.environ.clear()
        os.environ.update(request.env)
        _fresh_signals()
        retitle(request.command)  # after the environment: libc no longer points into it
        random.seed()
        atexit._clear()  # the server's exit functions are not the program's
        sys.argv = [request.command[2], *args]
        code = _run(entry, args)
        atexit._run_exitfuncs()
    except BaseException:  # nothing may unwind into the server's code
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def retitle(words: Sequence[str]) -> bool:
    """Show `words` as this process's command line (ps, psutil) instead of the server's.

    The kernel reads /proc/PID/cmdline from the memory that held the process's
    first argv (and environment, unused once the environment was replaced): the
    words are written there, NUL-separated when they fit in the argv area, else as
    one space-separated string running on into the environment area (what
    setproctitle does; psutil splits it on spaces). False when they do not fit.
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        # fields[0] is the stat file's field 3; arg_start..env_end are fields 48-51
        arg_start, arg_end, env_start, env_end = (int(f) for f in fields[45:49])
    except (OSError, ValueError, IndexError):
        return False
    encoded = [os.fsencode(word) for word in words]
    exact = b"\0".join(encoded) + b"\0"
    if len(exact) <= arg_end - arg_start:
        data = exact.ljust(arg_end - arg_start, b"\0")
    else:
        data = b" ".join(encoded) + b"\0"
        if env_start != arg_end or len(data) > env_end - arg_start:
            return False
    ctypes.memmove(arg_start, data, len(data))
    return True


def _run(entry: Entry, args: list[str]) -> int:
    """Call the entry as `python -m` would: its return value or SystemExit is the code."""
    try:
        return _exit_code(entry(args))
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as Python does: die of the signal
        return 130
    except BaseException:
        traceback.print_exc()
        return 1


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _fresh_streams() -> None:
    """sys.stdin/stdout/stderr on the pane's descriptors, as an interpreter opens them."""
    encoding = sys.stdout.encoding if sys.stdout is not None else "utf-8"

    def text(fd: int, mode: str, errors: str) -> io.TextIOWrapper:
        binary = io.FileIO(fd, mode, closefd=False)
        buffered: io.BufferedReader | io.BufferedWriter = (
            io.BufferedReader(binary) if mode == "r" else io.BufferedWriter(binary)
        )
        line_buffering = mode == "w" and (os.isatty(fd) or fd == 2)
        return io.TextIOWrapper(
            buffered, encoding=encoding, errors=errors, line_buffering=line_buffering
        )

    streams = (text(0, "r", "strict"), text(1, "w", "strict"), text(2, "w", "backslashreplace"))
    sys.stdin, sys.stdout, sys.stderr = streams
    # the interpreter's own copies, which the program may restore from
    for name, stream in zip(("__stdin__", "__stdout__", "__stderr__"), streams, strict=True):
        setattr(sys, name, stream)


def _fresh_signals() -> None:
    """Every handler as a new interpreter has it, and no signal blocked."""
    for number in signal.valid_signals():
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
