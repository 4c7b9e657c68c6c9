"""The pane program of the fork server, and the wire protocol both sides speak.

A pane runs `PYTHON -S -I client.py SOCKET COMMAND...`, where COMMAND is the
cold command line the pane would otherwise run (`PYTHON -m limitless _exec ...`).
The client connects to the fork server at SOCKET and hands it the pane: its
stdin, stdout and stderr (SCM_RIGHTS), cwd, umask, environment and COMMAND. A
process forked from the warm server becomes COMMAND's program; the client stays
in the pane, forwards the signals it gets to that process, and exits as it
exited (same code, or killed by the same signal), so tmux sees the right status.

When the server cannot be reached, refuses, or does not answer in time, the
client execs COMMAND itself: a task never fails because of the fork server.

This file is run by path by an isolated interpreter (`-S -I`: no site, no
limitless on sys.path): it imports the standard library only, and the server
imports its protocol from here, so the protocol lives in one place.

The protocol, over one SOCK_STREAM unix connection:
  client -> server  4 bytes (request length) + the request (`encode_request`), the
                    three fds on the first byte
  server -> client  b"ok\n" (request accepted) or b"refused <why>\n"
  client -> server  b"go\n" (the client is still here and commits to this path;
                    without it the server starts nothing: a client that timed out
                    and started cold never gets a second copy of its program)
  server -> client  b"pid <pid>\n" once the program runs
  client -> server  b"signal <n>\n" for each signal to forward; closing the
                    connection (the client died) is a SIGHUP
  server -> client  b"exit <wait status>\n" when the program ended
"""

from __future__ import annotations

# The C modules under `socket` and `signal`: those two import enum, selectors and
# collections, 9 ms of a pane's start-up; `typing` is not imported for the same reason.
import _socket
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # the same names, with stubs
    from collections.abc import Sequence
    from types import FrameType
    from typing import NoReturn
else:
    import _signal

HEADER_SIZE = 4  # the request's length, big-endian
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes with the NUL; keep a margin
START_TIMEOUT_S = 5.0  # how long the client waits for `ok` and `pid` before starting cold
FORWARDED = (
    _signal.SIGWINCH,
    _signal.SIGHUP,
    _signal.SIGTERM,
    _signal.SIGINT,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
)


class Refused(Exception):
    """The server said no, or did not say yes in time."""


def socket_address(path: str) -> tuple[str, int | None]:
    """An address connect()/bind() accept for `path`, and a descriptor to close after.

    A unix socket path is limited to ~107 bytes; a longer one (a deep state dir) is
    reached through its folder opened O_PATH: /proc/self/fd/N/NAME.
    """
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path, None
    folder, name = os.path.split(path)
    fd = os.open(folder or ".", os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd


def encode_request(command: Sequence[str], cwd: str, env: dict[str, str], umask: int) -> bytes:
    """Length + NUL-separated words: cwd, umask, the command's length, its words, NAME=VALUE."""
    words = [cwd, str(umask), str(len(command)), *command]
    words += [f"{name}={value}" for name, value in env.items()]
    data = "\0".join(words).encode("utf-8", "surrogateescape")
    return len(data).to_bytes(HEADER_SIZE, "big") + data


def decode_request(data: bytes) -> tuple[list[str], str, dict[str, str], int]:
    """(command, cwd, env, umask) from `encode_request`'s body; ValueError when malformed."""
    words = data.decode("utf-8", "surrogateescape").split("\0")
    if len(words) < 3:
        msg = "the request has fewer than three words"
        raise ValueError(msg)
    cwd, umask, length = words[0], int(words[1]), int(words[2])
    command, pairs = words[3 : 3 + length], words[3 + length :]
    if len(command) != length or not all("=" in pair for pair in pairs):
        msg = "the request's command or environment is malformed"
        raise ValueError(msg)
    env = dict(pair.split("=", 1) for pair in pairs)
    return command, cwd, env, umask


def read_line(sock: _socket.socket, pending: bytearray) -> bytes:
    """The next line (without its newline) from `sock`; b"" when it closed first."""
    while b"\n" not in pending:
        data = sock.recv(4096)
        if not data:
            return b""
        pending += data
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return line


def connect(path: str, timeout: float) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    address, folder = socket_address(path)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    finally:
        if folder is not None:
            os.close(folder)
    return sock


def send_request(sock: _socket.socket, command: Sequence[str]) -> None:
    umask = os.umask(0)
    os.umask(umask)
    data = encode_request(command, os.getcwd(), dict(os.environ), umask)
    fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))  # an int array
    sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    sock.sendall(data[sent:])


def start(sock: _socket.socket, command: Sequence[str]) -> tuple[int, bytearray]:
    """Hand the pane to the server; the pid of the program it started."""
    pending = bytearray()
    unsent: OSError | None = None
    try:
        send_request(sock, command)
    except OSError as exc:
        unsent = exc  # a refusal may have come before we were done: read it first
    answer = read_line(sock, pending)
    if answer != b"ok":
        if not answer and unsent is not None:
            raise unsent
        why = answer.removeprefix(b"refused ").decode(errors="replace") or "no answer"
        raise Refused(why)
    sock.sendall(b"go\n")
    sock.settimeout(None)  # committed: the program may be starting, never start a second one
    started = read_line(sock, pending)
    if not started.startswith(b"pid "):  # `refused`, or gone before it forked
        why = started.removeprefix(b"refused ").decode(errors="replace") or "no answer"
        raise Refused(why)
    return int(started.split()[1]), pending


def start_cold(command: Sequence[str]) -> NoReturn:
    try:
        os.execvp(command[0], list(command))
    except OSError as exc:
        os.write(2, f"limitless: cannot start {command[0]!r}: {exc.strerror}\n".encode())
    os._exit(127)


def exit_as(status: int) -> NoReturn:
    """End this process the way the program ended: its exit code, or its signal."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:  # SIGKILL and SIGSTOP can be neither caught nor blocked: nothing to undo
            _signal.signal(number, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [number])
        except OSError:
            pass
        os.kill(os.getpid(), number)
        os._exit(128 + number)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def follow(sock: _socket.socket, pid: int, pending: bytearray) -> NoReturn:
    """Forward our signals to the program until the server reports its end."""

    def forward(signum: int, frame: FrameType | None) -> None:
        try:
            sock.sendall(f"signal {signum}\n".encode())
        except OSError:
            pass

    sock.settimeout(None)
    for number in FORWARDED:
        _signal.signal(number, forward)
    while True:
        try:
            line = read_line(sock, pending)
        except OSError:
            line = b""
        if line.startswith(b"exit "):
            exit_as(int(line.split()[1]))
        if not line:
            break
    # The server's watcher of our program died: wait for the program, status unknown.
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        handle = None
    if handle is not None:
        import select

        while True:
            try:
                select.select([handle], [], [])
                break
            except InterruptedError:
                continue
    os.write(2, b"limitless: the fork server lost track of this task's exit status\n")
    os._exit(1)


def main(argv: Sequence[str]) -> NoReturn:
    if len(argv) < 3:
        os.write(2, b"usage: client.py SOCKET COMMAND [ARG...]\n")
        os._exit(2)
    path, command = argv[1], list(argv[2:])
    try:
        sock = connect(path, START_TIMEOUT_S)
    except OSError:
        start_cold(command)  # no server (not started, or gone): the cold path, quietly
    try:
        pid, pending = start(sock, command)
    except (OSError, ValueError, Refused) as exc:
        sock.close()  # before the exec: the server starts nothing without our `go`
        os.write(2, f"limitless: fork server: {exc}; starting cold\n".encode())
        start_cold(command)
    follow(sock, pid, pending)


if __name__ == "__main__":
    main(sys.argv)
