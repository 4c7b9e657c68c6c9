"""The tmux session of a run: made, read, steered, and woken up, through one class.

Only the `tmux` package runs tmux. `TmuxSession` is one session per run, named
`limitless-<run>`, on the server of `socket_name` (None: the user's server, the
one `$TMUX` points at when inside tmux). Its rooms: `layouts` (how slots and the
dashboard are placed), `building` (the commands that make a session),
`panes` (what tmux reports about panes), `commands` (command lines and the text
safety rules), `wakeups` (signals that are never lost), `pane_programs` (what
the panes of a run run).

Speed is the reason for the shape of this module. A tmux invocation costs a
fork, an exec and a round trip to the server (about 2-3 ms); libtmux's
`split()` alone makes about ten of them. So everything that touches many panes
is one chained invocation (`tmux cmd1 ; cmd2 ; ...`, the `;` passed as an argv
element of its own): `create()` builds the whole session, its options and its
hooks in one call (several only when tmux's 16 KiB command-line limit forces
it, each with whole windows), `panes()` is one `list-panes`, `capture()` and `snapshot()`
read every pane's last lines in one call, split on a random marker printed
between the commands. libtmux serves `kill`, imported there only: importing it
costs about 60 ms, which a run's start (the CLI, the supervisor) does not pay.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from limitless.errors import TmuxError
from limitless.tmux.building import (
    create_commands,
    session_target,
    slots_commands,
    title_commands,
)
from limitless.tmux.commands import (
    ChainFailed,
    chain,
    env_flags,
    escape_format,
    pack,
    printable,
    program,
    shown,
)
from limitless.tmux.layouts import Layout
from limitless.tmux.panes import (
    PANE_FORMAT,
    PaneState,
    SessionPanes,
    Snapshot,
    capture_command,
    check_pane,
    last_lines,
    parse_created,
    parse_panes,
)
from limitless.tmux.wakeups import check_channel, signal_commands, wait_commands
from limitless.versions import TMUX

# What tmux says when the session (or its whole server) is not there.
SESSION_GONE = ("can't find session", "no server running", "error connecting")

logger = logging.getLogger(__name__)

SESSION_PREFIX = "limitless-"
REAP_ASK_INTERVAL_S = 1.0
TMUX_TIMEOUT_S = 15.0

# ---------------------------------------------------------------------------
# names


def socket_path(name: str, env: Mapping[str, str] | None = None) -> Path:
    """Where `tmux -L NAME` puts its server's socket (`$TMUX_TMPDIR/tmux-<uid>/NAME`)."""
    tmpdir = (env if env is not None else os.environ).get("TMUX_TMPDIR") or "/tmp"
    return Path(tmpdir) / f"tmux-{os.getuid()}" / name


def session_name(run_id: str) -> str:
    """The tmux session name of a run: `limitless-<run>`, other characters than
    letters, digits, `-` and `_` replaced by `_` (tmux forbids `.` and `:`)."""
    if not run_id:
        msg = "a run id is needed to name a tmux session"
        raise ValueError(msg)
    return SESSION_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", run_id)


# ---------------------------------------------------------------------------
# the session


class TmuxSession:
    """The tmux session `limitless-<run_id>` on the server of `socket_name`.

    `socket_name` is a `tmux -L` name; None means the user's server (the one
    `$TMUX` names when inside tmux, else the default socket). Creating the
    object runs nothing; `create()` builds a new session.
    """

    def __init__(self, socket_name: str | None, run_id: str) -> None:
        self.socket_name = socket_name
        self.run_id = run_id
        self.name = session_name(run_id)
        self._wake_seen: dict[str, str] = {}
        self._known_panes: tuple[str, ...] = ()
        self._reap_asked_at = -REAP_ASK_INTERVAL_S

    def __repr__(self) -> str:
        return f"TmuxSession(socket_name={self.socket_name!r}, name={self.name!r})"

    # -- plumbing ----------------------------------------------------------

    @property
    def _target(self) -> str:
        """This session as a tmux target, matched exactly (never by prefix)."""
        return session_target(self.name)

    def _base(self) -> list[str]:
        return ["tmux", "-L", self.socket_name] if self.socket_name else ["tmux"]

    def _argv(self, commands: Sequence[Sequence[str]]) -> list[str]:
        return self._base() + chain(commands)

    def _call(
        self, commands: Sequence[Sequence[str]], *, timeout: float = TMUX_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """Run `commands` in one tmux invocation; never raises for tmux's exit status."""
        argv = self._argv(commands)
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            msg = f"tmux is not installed or not on PATH; install tmux {TMUX.wanted} or newer"
            raise TmuxError(msg) from None
        except subprocess.TimeoutExpired:
            msg = f"`{shown(argv)}` did not finish within {timeout:g} s"
            raise TmuxError(msg) from None
        logger.debug(
            "tmux ran",
            extra={
                "argv": argv[:12],
                "commands": len(commands),
                "returncode": proc.returncode,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return proc

    def _run(self, commands: Sequence[Sequence[str]], *, timeout: float = TMUX_TIMEOUT_S) -> str:
        """Run `commands` in one tmux invocation and return stdout; TmuxError on failure."""
        proc = self._call(commands, timeout=timeout)
        if proc.returncode != 0:
            raise self._error(commands, proc)
        return proc.stdout

    def _error(
        self, commands: Sequence[Sequence[str]], proc: subprocess.CompletedProcess[str]
    ) -> TmuxError:
        words = proc.stderr.strip() or f"exit status {proc.returncode}"
        return TmuxError(f"`{shown(self._argv(commands))}` failed: {words}")

    def _sectioned(self, commands: Sequence[Sequence[str]]) -> list[str]:
        """Each command's stdout, from one invocation; ChainFailed names the one that failed."""
        marker = f"limitless:{uuid.uuid4().hex}:end"
        chained: list[Sequence[str]] = []
        for command in commands:
            chained += [command, ["display-message", "-p", marker]]
        proc = self._call(chained)
        parts = proc.stdout.split(marker + "\n")
        sections = parts[:-1]
        if proc.returncode != 0:
            raise ChainFailed(sections, len(sections), proc.stderr.strip())
        return sections

    # -- building ----------------------------------------------------------

    @classmethod
    def create(
        cls,
        socket_name: str | None,
        name: str,
        *,
        layout: Layout,
        slots: int,
        cwd: Path,
        control_argv: list[str],
        dashboard_argv: list[str] | None,
        idle_argv: list[str],
        env: Mapping[str, str],
        wake_channel: str,
        width: int = 200,
        height: int = 50,
    ) -> tuple[TmuxSession, SessionPanes]:
        """Build the session of run `name` and return its panes, in one tmux invocation.

        The session `limitless-<name>` gets a `control` window running
        `control_argv`, `slots` slot panes running `idle_argv` spread over
        agents windows as `layout` says, and a dashboard running
        `dashboard_argv` (none when it is None). Options and the `pane-died`
        hook (which signals `wake_channel`) are set by the same invocation that
        starts the panes, so a command that exits at once still leaves a dead
        pane and a signal. `env` is the session's environment; every pane
        starts in `cwd`. A session too big for one tmux command line (about
        40 windows, or long argv) is built in several calls, each holding whole
        windows with their options. If tmux fails half-way the new session is
        killed; an existing session of that name is never touched (TmuxError).
        """
        if slots < 1:
            msg = f"a session needs at least one slot, got {slots}"
            raise ValueError(msg)
        if width < 20 or height < 10:
            msg = f"a session must be at least 20x10 cells, got {width}x{height}"
            raise ValueError(msg)
        session = cls(socket_name, name)
        groups = create_commands(
            session.name,
            layout=layout,
            slots=slots,
            cwd=cwd,
            control_argv=control_argv,
            dashboard_argv=dashboard_argv,
            idle_argv=idle_argv,
            env=env,
            wake_channel=check_channel(wake_channel),
            width=width,
            height=height,
        )
        started = time.perf_counter()
        printed: list[str] = []
        batches = pack(groups)
        for batch in batches:
            proc = session._call(batch)
            printed += proc.stdout.split()
            if proc.returncode != 0:
                if printed[:1] == ["control"]:
                    # The session was made by this call or an earlier one: undo it.
                    session.kill()
                raise session._error(batch, proc)
        panes = parse_created(printed, slots)
        session._wake_seen[wake_channel] = "0"
        session._known_panes = (panes.control, *panes.slots) + (
            (panes.dashboard,) if panes.dashboard else ()
        )
        logger.info(
            "session created",
            extra={
                "session": session.name,
                "socket": socket_name,
                "layout": layout.name,
                "slots": slots,
                "tmux_calls": len(batches),
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return session, panes

    def add_slots(
        self,
        count: int,
        *,
        first_number: int,
        layout: Layout,
        cwd: Path,
        idle_argv: list[str],
        wake_channel: str,
    ) -> list[str]:
        """`count` more slot panes running `idle_argv` (a run that grew), in new agents
        windows after the existing ones, set up as create() sets up its windows
        (options, pane-died hook, titles `slot <first_number>`, ...); their pane ids."""
        if count < 1:
            return []
        output = self._run([["list-windows", "-t", self._target, "-F", "#{window_name}"]])
        commands = slots_commands(
            self.name,
            existing=set(output.split()),
            count=count,
            first_number=first_number,
            layout=layout,
            cwd=cwd,
            idle_argv=idle_argv,
            wake_channel=wake_channel,
        )
        printed = self._run(commands).split()
        panes = [printed[i + 1] for i in range(0, len(printed) - 1, 2) if printed[i] == "slot"]
        self._known_panes = (*self._known_panes, *panes)
        logger.info("slots added", extra={"session": self.name, "panes": panes})
        return panes

    # -- life --------------------------------------------------------------

    def exists(self) -> bool:
        """Whether this session is alive on its server."""
        # Any refusal means no such session: "can't find session", "no server running",
        # "no current target" (a server without sessions).
        return self._call([["has-session", "-t", f"={self.name}"]]).returncode == 0

    def server_running(self) -> bool:
        """Whether this session's tmux server runs (with or without sessions)."""
        proc = self._call([["list-sessions", "-F", "."]])
        return proc.returncode == 0 or not any(words in proc.stderr for words in SESSION_GONE)

    def kill(self) -> None:
        """Kill this session (only it); nothing happens when it is already gone."""
        import libtmux  # imported here: ~60 ms that no run's start should pay

        proc = libtmux.Server(socket_name=self.socket_name).cmd(
            "kill-session", target=f"={self.name}"
        )
        stderr = "\n".join(proc.stderr)
        if proc.returncode not in (0, None) or stderr:
            if any(words in stderr for words in SESSION_GONE):
                return
            msg = f"tmux kill-session -t ={self.name} failed: {stderr}"
            raise TmuxError(msg)
        logger.info("session killed", extra={"session": self.name})

    # -- panes -------------------------------------------------------------

    def respawn(self, pane_id: str, argv: list[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        """Run `argv` (exec'd as is, no shell) in `pane_id`, killing what ran there.

        The pane's scrollback is cleared, so its lines belong to the new program.
        """
        check_pane(pane_id)
        self._run(
            [
                [
                    "respawn-pane",
                    "-k",
                    "-t",
                    pane_id,
                    "-c",
                    escape_format(str(cwd)),
                    *env_flags(env),
                    "--",
                    *program(argv, "argv"),
                ],
                ["clear-history", "-t", pane_id],
            ]
        )
        logger.debug("pane respawned", extra={"pane": pane_id, "program": argv[0]})

    def set_server_option(self, name: str, value: str) -> None:
        """Set a server option (`set-option -s`), for every session on this server."""
        self._run([["set-option", "-s", name, value]])

    def set_title(self, pane_id: str, title: str) -> None:
        """Show `title` on the pane's border, verbatim: tmux formats in it are not expanded."""
        check_pane(pane_id)
        self._run(title_commands(pane_id, title))

    def panes(self) -> list[PaneState]:
        """Every pane of the session, from one `list-panes` call."""
        output = self._run([["list-panes", "-s", "-t", self._target, "-F", PANE_FORMAT]])
        states = parse_panes(output)
        self._ask_to_reap_lost_exits(states)
        self._known_panes = tuple(state.pane_id for state in states)
        return states

    def _ask_to_reap_lost_exits(self, states: list[PaneState]) -> None:
        """Ask tmux to reap the exited pane programs it missed, if `states` shows one.

        tmux 3.3a now and then misses the SIGCHLD of a pane program that exits
        while the machine is busy (about 1 in 7 quick exits under load in our
        runs): the pane is dead, but it has no exit status, its pane-died hook
        has not run, and the program stays a zombie until tmux reaps another
        child. `run-shell -b true` gives tmux that child (in the background, so
        no call here can hang on it); the status shows on a later read. At most
        once a second, as a pane that closed its terminal but runs on looks alike.
        """
        unreported = any(
            state.dead and state.dead_status is None and state.dead_signal is None
            for state in states
        )
        now = time.monotonic()
        if unreported and now - self._reap_asked_at >= REAP_ASK_INTERVAL_S:
            self._reap_asked_at = now
            self._run([["run-shell", "-b", "-t", self._target, "true"]])

    def capture(self, pane_ids: Iterable[str], lines: int = 5) -> dict[str, list[str]]:
        """The last `lines` non-empty lines of each pane, from one tmux call.

        Panes that no longer exist are left out of the result (each one
        costs one more call for the panes after it).
        """
        if lines < 1:
            msg = f"lines must be at least 1, got {lines}"
            raise ValueError(msg)
        remaining = [check_pane(pane) for pane in dict.fromkeys(pane_ids)]
        result: dict[str, list[str]] = {}
        while remaining:
            commands = [capture_command(pane, lines) for pane in remaining]
            try:
                sections = self._sectioned(commands)
            except ChainFailed as failed:
                sections = failed.sections
                if "can't find pane" not in failed.stderr:
                    msg = f"tmux capture-pane of {remaining[failed.index]} failed: {failed.stderr}"
                    raise TmuxError(msg) from None
            for pane, text in zip(remaining, sections, strict=False):
                result[pane] = last_lines(text, lines)
            remaining = remaining[len(sections) + 1 :]
        return result

    def snapshot(self, lines: int = 5, pane_ids: Iterable[str] | None = None) -> Snapshot:
        """Every pane's state and the last lines of `pane_ids`, in one tmux call.

        Without `pane_ids` the panes seen by the previous `panes()`,
        `snapshot()` or `create()` of this object are read (the first call
        without them makes two calls); a pane that appeared since is read on
        the next call.
        """
        if lines < 1:
            msg = f"lines must be at least 1, got {lines}"
            raise ValueError(msg)
        if pane_ids is None and not self._known_panes:
            states = self.panes()
            return Snapshot(tuple(states), self.capture(self._known_panes, lines))
        wanted = [
            check_pane(pane)
            for pane in dict.fromkeys(self._known_panes if pane_ids is None else pane_ids)
        ]
        commands = [["list-panes", "-s", "-t", self._target, "-F", PANE_FORMAT]]
        commands += [capture_command(pane, lines) for pane in wanted]
        try:
            sections = self._sectioned(commands)
        except ChainFailed as failed:
            if failed.index == 0:
                msg = f"tmux list-panes -s -t {self._target} failed: {failed.stderr}"
                raise TmuxError(msg) from None
            # A pane vanished between ticks: read again, knowing which panes exist.
            states = self.panes()
            alive = {state.pane_id for state in states}
            captured = self.capture([pane for pane in wanted if pane in alive], lines)
            return Snapshot(tuple(states), captured)
        states = parse_panes(sections[0])
        self._ask_to_reap_lost_exits(states)
        self._known_panes = tuple(state.pane_id for state in states)
        captured = {
            pane: last_lines(text, lines) for pane, text in zip(wanted, sections[1:], strict=True)
        }
        return Snapshot(tuple(states), captured)

    def select(self, pane_id: str) -> None:
        """Make `pane_id` the current pane: its window current, the pane active."""
        check_pane(pane_id)
        self._run([["select-window", "-t", pane_id], ["select-pane", "-t", pane_id]])
        self._follow_with_client(pane_id)

    def _follow_with_client(self, pane_id: str) -> None:
        """From a pane of another session on this server (a dashboard opened elsewhere),
        move that session's client to the selected pane too. Best effort."""
        here = os.environ.get("TMUX_PANE")
        server = os.environ.get("TMUX", "").split(",")[0]
        if not here or Path(server).name != (self.socket_name or "default"):
            return
        proc = self._call(
            [
                ["display-message", "-p", "-t", here, "#{session_name}"],
                ["list-clients", "-F", "#{client_tty}\t#{session_name}"],
            ]
        )
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 or not lines or lines[0] == self.name:
            return
        ttys = [
            tty
            for tty, _, session in (ln.partition("\t") for ln in lines[1:])
            if session == lines[0]
        ]
        if ttys:
            self._call([["switch-client", "-c", ttys[0], "-t", pane_id]])

    def zoom(self, pane_id: str) -> None:
        """Select `pane_id` and toggle its zoom (`resize-pane -Z`)."""
        check_pane(pane_id)
        self._run(
            [
                ["select-window", "-t", pane_id],
                ["select-pane", "-t", pane_id],
                ["resize-pane", "-Z", "-t", pane_id],
            ]
        )

    def keep_rows(self, pane_id: str, rows: int, *, leave: int, server: str) -> bool:
        """Grow `pane_id` to `rows` rows when it is shorter, shares a window of this
        session and the window still leaves `leave` rows to the others (a client
        attached from a small terminal shrinks the run's bottom pane to 2 rows).
        `server` is the socket path the pane id comes from (`$TMUX`): a pane of
        another server is left alone. Never shrinks a pane. Whether it grew."""
        check_pane(pane_id)
        fields = (
            "#{socket_path}\t#{session_name}\t#{window_panes}\t#{pane_height}\t#{window_height}"
        )
        try:
            output = self._run([["display-message", "-p", "-t", pane_id, fields]]).strip()
        except TmuxError:
            return False  # no such pane on this server
        if output.count("\t") != 4:
            return False
        socket, session, panes, height, window_height = output.split("\t")
        if socket != server or session != self.name or int(panes) < 2:
            return False
        if int(height) >= rows or int(window_height) < rows + leave:
            return False
        self._run([["resize-pane", "-t", pane_id, "-y", str(rows)]])
        return True

    # -- clients -----------------------------------------------------------

    def clients(self) -> list[tuple[str, str]]:
        """(client name, client tty) of every client attached to this session."""
        output = self._run(
            [["list-clients", "-t", self._target, "-F", "#{client_name}\x1f#{client_tty}"]]
        )
        found: list[tuple[str, str]] = []
        for line in output.splitlines():
            name, _, tty = line.partition("\x1f")
            if name:
                found.append((name, tty))
        return found

    def message(self, text: str) -> None:
        """Show `text` (verbatim) in the status line of every client of this session."""
        clients = self.clients()
        if not clients:
            logger.debug("message not shown: no client", extra={"session": self.name})
            return
        shown = escape_format(printable(text))
        self._run([["display-message", "-c", name, "--", shown] for name, _ in clients])

    def bell(self) -> None:
        """Ring the terminal bell of every client of this session."""
        for name, tty in self.clients():
            try:
                with open(tty, "wb", buffering=0) as terminal:
                    terminal.write(b"\a")
            except OSError as exc:
                logger.debug("bell not rung", extra={"client": name, "error": str(exc)})

    def attach(self, *, replace_process: bool = False) -> int:
        """Show this session in the terminal and return tmux's exit status.

        Inside tmux on the same server this is `switch-client` (returns at
        once); otherwise `attach-session`, which returns when the user
        detaches. With `replace_process` the attach replaces this process
        (`os.execvpe`) and never returns. Needs a real terminal.
        """
        inside = os.environ.get("TMUX", "")
        if inside and self._same_server(inside):
            argv = self._argv([["switch-client", "-t", self._target]])
            return subprocess.run(argv, check=False).returncode
        environment = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        argv = self._argv([["attach-session", "-t", self._target]])
        if replace_process:
            os.execvpe(argv[0], argv, environment)
        return subprocess.run(argv, env=environment, check=False).returncode

    def _same_server(self, tmux_env: str) -> bool:
        if self.socket_name is None:
            return True
        ours = self._run([["display-message", "-p", "-t", self._target, "#{socket_path}"]])
        return ours.strip() == tmux_env.split(",")[0]

    # -- wake-ups ----------------------------------------------------------

    def signal(self, channel: str) -> None:
        """Wake whoever `wait()`s on `channel` (now or later: the wake is kept)."""
        self._run(signal_commands(self._target, channel))

    def wait(self, channel: str, timeout: float) -> bool:
        """Block until `channel` is signalled or `timeout` seconds pass (then False).

        Returns at once when a signal came since this object's last wait
        (or since create()). Can return True without a new signal; re-check.
        """
        commands = wait_commands(self._target, channel, self._wake_seen.get(channel))
        argv = self._argv(commands)
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except FileNotFoundError:
            msg = f"tmux is not installed or not on PATH; install tmux {TMUX.wanted} or newer"
            raise TmuxError(msg) from None
        try:
            stdout, stderr = child.communicate(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return False
        if child.returncode != 0:
            msg = f"`{shown(argv)}` failed: {stderr.strip() or f'exit status {child.returncode}'}"
            raise TmuxError(msg)
        self._wake_seen[channel] = stdout.strip()
        return True


# tmux refuses a command line longer than its message size (16 KiB, "command too
