"""Run one program in a pseudo-terminal, copying its output out and our input in.

The agent keeps a real terminal (colours, TUIs, prompts work as they do when a
user starts it by hand), while every byte it prints also reaches a callback
(the log and the progress parsers). Keys typed in the tmux pane go to the agent.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
import tty
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import psutil

STDIN = 0
STDOUT = 1


@dataclass(frozen=True)
class PtyResult:
    """How the program ended: its exit code (negative: killed by that signal)."""

    exit_code: int
    timed_out: bool
    stopped: bool


def kill_tree(pid: int, grace: float = 2.0) -> None:
    """SIGTERM a process and all its descendants, then SIGKILL whatever remains."""
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(family, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)


def end_strays(variables: Mapping[str, str], markers: Sequence[str]) -> list[str]:
    """End the processes a program left running detached (a daemon it started, now a
    child of init): those whose environment holds all of `variables` (the attempt's
    LIMITLESS_* values, which only what the attempt started inherits) and whose command
    line contains one of `markers`. Returns the command lines it ended."""
    if not markers or not variables:
        return []
    ended: list[str] = []
    own = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == own:
            continue
        command = " ".join(proc.info.get("cmdline") or [])
        if not any(marker in command for marker in markers):
            continue
        try:
            environ = proc.environ()
        except psutil.Error:
            continue  # gone, or another user's
        if all(environ.get(name) == value for name, value in variables.items()):
            kill_tree(proc.pid)
            ended.append(command)
    return ended


def _copy_winsize(source_fd: int, target_fd: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source_fd, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(target_fd, termios.TIOCSWINSZ, size)


class PtyProcess:
    """A program started in a new pty; `pump()` moves bytes until it ends."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        on_output: Callable[[bytes], None],
        echo_to_stdout: bool = True,
        on_input: Callable[[bytes], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.on_output = on_output
        self.on_input = on_input  # keys the user typed in the pane (already forwarded)
        self.on_tick = on_tick  # called at least every 0.2 s while the program runs
        self.echo = echo_to_stdout
        self.on_tick = on_tick  # called about 5 times a second while the program runs
        self._stop_requested = False
        pid, master = pty.fork()
        if pid == 0:  # child: the agent
            try:
                os.chdir(cwd)
                os.execvpe(argv[0], list(argv), dict(env))
            except OSError as exc:
                os.write(2, f"limitless: cannot start {argv[0]!r}: {exc.strerror}\n".encode())
            os._exit(127)
        self.pid = pid
        self.master = master
        if os.isatty(STDOUT):
            _copy_winsize(STDOUT, master)

    def request_stop(self) -> None:
        """Ask `pump()` to end the program (from a signal handler)."""
        self._stop_requested = True

    def send(self, data: bytes) -> None:
        """Type `data` into the program, as if on its keyboard."""
        with contextlib.suppress(OSError):
            os.write(self.master, data)

    def pump(self, *, timeout_s: float | None = None) -> PtyResult:
        """Copy output and input until the program exits, times out or is stopped."""
        deadline = time.monotonic() + timeout_s if timeout_s else None
        stdin_open = os.isatty(STDIN)
        saved_tty = None
        if stdin_open:
            with contextlib.suppress(termios.error):
                saved_tty = termios.tcgetattr(STDIN)
                tty.setraw(STDIN)
        previous_winch = signal.getsignal(signal.SIGWINCH)

        def on_winch(signum: int, frame: FrameType | None) -> None:
            _copy_winsize(STDOUT, self.master)

        if os.isatty(STDOUT):
            signal.signal(signal.SIGWINCH, on_winch)
        timed_out = False
        status: int | None = None
        try:
            while status is None:
                if self._stop_requested:
                    kill_tree(self.pid)
                    status = self._wait(block=True)
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    timed_out = True
                    kill_tree(self.pid)
                    status = self._wait(block=True)
                    break
                readers = [self.master] + ([STDIN] if stdin_open else [])
                try:
                    ready, _, _ = select.select(readers, [], [], 0.2)
                except InterruptedError:
                    continue
                if self.master in ready and not self._read_output():
                    status = self._wait(block=True)
                    break
                if STDIN in ready:
                    stdin_open = self._forward_input()
                if self.on_tick is not None:
                    self.on_tick()
                status = self._wait(block=False)
            self._drain()
        finally:
            if saved_tty is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(STDIN, termios.TCSAFLUSH, saved_tty)
            signal.signal(signal.SIGWINCH, previous_winch)
            with contextlib.suppress(OSError):
                os.close(self.master)
        return PtyResult(
            exit_code=os.waitstatus_to_exitcode(status if status is not None else 0),
            timed_out=timed_out,
            stopped=self._stop_requested and not timed_out,
        )

    def _read_output(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:  # the program closed its terminal
                return False
            raise
        if not data:
            return False
        if self.echo:
            with contextlib.suppress(OSError):
                os.write(STDOUT, data)
        self.on_output(data)
        return True

    def _forward_input(self) -> bool:
        try:
            data = os.read(STDIN, 4096)
        except OSError:
            return False
        if not data:
            return False
        with contextlib.suppress(OSError):
            os.write(self.master, data)
        if self.on_input is not None:
            self.on_input(data)
        return True

    def _drain(self, limit_s: float = 0.5) -> None:
        """Output written just before the exit is still in the pty: read it out."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.02)
            except (InterruptedError, OSError):
                return
            if not ready:
                return
            try:
                if not self._read_output():
                    return
            except OSError:
                return

    def _wait(self, *, block: bool) -> int | None:
        while True:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except InterruptedError:
                continue
            except ChildProcessError:
                return 0
            return status if pid else None
