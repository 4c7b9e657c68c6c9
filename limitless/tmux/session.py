"""The tmux session of a run: layouts, slots, titles, hooks, capture, liveness.

Only this module runs tmux. It builds one session per run, named
`limitless-<run>`, on the server of `socket_name` (None: the user's server, the
one `$TMUX` points at when inside tmux). The session has a `control` window for
the supervisor, agents windows (`agents`, `agents-2`, ...) holding the slot
panes, and a dashboard pane placed by a layout (`limitless/layouts/*.yaml`).

Speed is the reason for the shape of this module. A tmux invocation costs a
fork, an exec and a round trip to the server (about 2-3 ms); libtmux's
`split()` alone makes about ten of them. So everything that touches many panes
is one chained invocation (`tmux cmd1 ; cmd2 ; ...`, the `;` passed as an argv
element of its own): `create()` builds the whole session, its options and its
hooks in one call (several only when tmux's 16 KiB command-line limit forces
it, each with whole windows), `panes()` is one `list-panes`, `capture()` and `snapshot()`
read every pane's last lines in one call, split on a random marker printed
between the commands. libtmux serves the single-command checks (`exists`,
`kill`).

Text from tasks never reaches tmux's parsers: commands are argv elements, an
element ending in `;` (which tmux would take as a command separator) is sent
as `\\;`, and text that tmux expands as a format (titles, messages, start
directories) has every `#` doubled.

Wake-ups: tmux's `wait-for -S` is a toggle, not a counter: two signals with no
waiter cancel out, and a waiter killed on timeout swallows the next signal. So
every signal made here (the session's `pane-died` hook and `signal()`) also
bumps a counter in the session option `@limitless-wake-<channel>`, and `wait()`
only blocks in `wait-for` while that counter still holds the value it last saw.
No wake-up is lost; a spurious one can happen, so callers re-read their state.
"""

from __future__ import annotations

import difflib
import importlib.resources
import logging
import os
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal, get_args

import libtmux
import libtmux.exc
import yaml

from limitless.errors import PlanError, Problem, TmuxError, UsageError
from limitless.versions import TMUX

logger = logging.getLogger(__name__)

SESSION_PREFIX = "limitless-"
CONTROL_WINDOW = "control"
AGENTS_WINDOW = "agents"
DASHBOARD_WINDOW = "dashboard"
TITLE_OPTION = "@limitless-title"
WAKE_OPTION_PREFIX = "@limitless-wake-"
REAP_ASK_INTERVAL_S = 1.0
HISTORY_LIMIT = 10_000
TMUX_TIMEOUT_S = 15.0

# The border shows our title (a pane option that programs cannot overwrite with
# escape sequences, unlike the pane title) and, once the pane died, its status.
EFFECTIVE_TITLE = f"#{{?#{{{TITLE_OPTION}}},#{{{TITLE_OPTION}}},#{{pane_title}}}}"
PANE_BORDER_FORMAT = (
    f" {EFFECTIVE_TITLE}"
    "#{?pane_dead, [exited#{?pane_dead_status, #{pane_dead_status},}"
    "#{?pane_dead_signal, signal #{pane_dead_signal},}],} "
)

_CHANNEL = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PANE_ID = re.compile(r"%\d+")
_DEAD_LINE = re.compile(r"Pane is dead( \(.*\))?")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# ---------------------------------------------------------------------------
# layouts

SlotArrangement = Literal["even-horizontal", "even-vertical", "tiled"]
DashboardPlace = Literal["bottom", "right", "window"]
SLOT_ARRANGEMENTS: tuple[str, ...] = get_args(SlotArrangement)
DASHBOARD_PLACES: tuple[str, ...] = get_args(DashboardPlace)
PANES_PER_WINDOW_RANGE = (1, 16)
DASHBOARD_PERCENT_RANGE = (10, 90)
LAYOUT_KEYS = (
    "description",
    "slot_arrangement",
    "panes_per_window",
    "dashboard",
    "dashboard_size_percent",
)


@dataclass(frozen=True)
class Layout:
    """How slots and the dashboard are placed in a run's tmux session.

    `slot_arrangement` is the tmux layout of the slots of one agents window;
    `dashboard` puts the dashboard full width at the `bottom` or full height on
    the `right` of the first agents window (taking `dashboard_size_percent` of
    it), or in a `window` of its own.
    """

    name: str
    description: str = ""
    slot_arrangement: SlotArrangement = "even-horizontal"
    panes_per_window: int = 4
    dashboard: DashboardPlace = "bottom"
    dashboard_size_percent: int = 30

    def slots_per_window(self, slots: int) -> list[int]:
        """How many slots each agents window holds, in window order."""
        full, rest = divmod(slots, self.panes_per_window)
        return [self.panes_per_window] * full + ([rest] if rest else [])

    def window_names(self, slots: int) -> list[str]:
        """The agents windows' names for `slots` slots: agents, agents-2, ..."""
        return [agents_window_name(i) for i in range(len(self.slots_per_window(slots)))]


def agents_window_name(index: int) -> str:
    """The name of the agents window number `index` (from 0): agents, agents-2, ..."""
    return AGENTS_WINDOW if index == 0 else f"{AGENTS_WINDOW}-{index + 1}"


def _layout_dir() -> Traversable:
    return importlib.resources.files("limitless").joinpath("layouts")


def available_layouts() -> list[str]:
    """The names of the layouts shipped with limitless, sorted."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _layout_dir().iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    )


def load_layout(name_or_path: str | Path) -> Layout:
    """A built-in layout by name (`default`, `grid`, ...) or a layout file by path.

    Raises UsageError for an unknown name or a missing file and PlanError,
    listing every located problem, for a file that is not a valid layout.
    """
    text = str(name_or_path)
    is_path = (
        isinstance(name_or_path, Path)
        or "/" in text
        or os.sep in text
        or text.endswith((".yaml", ".yml"))
    )
    if is_path:
        path = Path(name_or_path)
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            msg = f"layout file {path} does not exist; give a path to a .yaml file or a name"
            raise UsageError(msg) from None
        except OSError as exc:
            msg = f"cannot read layout file {path}: {exc.strerror or exc}"
            raise UsageError(msg) from exc
        return parse_layout(content, source=str(path), name=path.stem)
    resource = _layout_dir().joinpath(f"{text}.yaml")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text) or not resource.is_file():
        known = ", ".join(available_layouts())
        msg = f"unknown layout {text!r}; built-in layouts: {known}; or give a path to a .yaml file"
        raise UsageError(msg)
    return parse_layout(resource.read_text(encoding="utf-8"), source=str(resource), name=text)


def parse_layout(text: str, *, source: str, name: str) -> Layout:
    """A Layout from YAML `text`; `source` names the file in error messages."""
    problems: list[Problem] = []

    def problem(node: yaml.Node | None, message: str) -> None:
        line, column = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        problems.append(Problem(source, line, column, message))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PlanError(
            [Problem(source, line, column, f"not valid YAML: {exc.problem or exc.context}")]
        ) from None
    if root is None:
        problem(None, 'the layout file is empty; expected keys such as "panes_per_window: 4"')
        raise PlanError(problems)
    if not isinstance(root, yaml.MappingNode):
        problem(root, f"a layout must be a mapping of keys to values, got {_describe(root)}")
        raise PlanError(problems)

    values: dict[str, object] = {}
    seen: dict[str, yaml.Node] = {}
    for key_node, value_node in root.value:
        key = _scalar(key_node)
        if not isinstance(key, str):
            problem(key_node, f"layout keys must be names, got {_describe(key_node)}")
            continue
        if key in seen:
            first = seen[key].start_mark.line + 1
            problem(key_node, f'duplicate key "{key}" (first given on line {first})')
            continue
        seen[key] = key_node
        if key not in LAYOUT_KEYS:
            close = difflib.get_close_matches(key, LAYOUT_KEYS, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            problem(
                key_node,
                f'unknown key "{key}"; {hint}a layout accepts: {", ".join(LAYOUT_KEYS)}',
            )
            continue
        error = _check_layout_value(key, value_node)
        if error is not None:
            problem(value_node, error)
        else:
            values[key] = _scalar(value_node)
    if problems:
        raise PlanError(problems)
    layout = Layout(name=name)
    return Layout(
        name=name,
        description=str(values.get("description", layout.description)),
        slot_arrangement=_as_arrangement(values.get("slot_arrangement", layout.slot_arrangement)),
        panes_per_window=_as_int(values.get("panes_per_window", layout.panes_per_window)),
        dashboard=_as_place(values.get("dashboard", layout.dashboard)),
        dashboard_size_percent=_as_int(
            values.get("dashboard_size_percent", layout.dashboard_size_percent)
        ),
    )


def _check_layout_value(key: str, node: yaml.Node) -> str | None:
    """The message for a bad value of `key`, or None when it is fine."""
    value = _scalar(node)
    if key == "description":
        if not isinstance(value, str):
            return f"description must be a string, got {_describe(node)}"
        return None
    if key in ("slot_arrangement", "dashboard"):
        accepted = SLOT_ARRANGEMENTS if key == "slot_arrangement" else DASHBOARD_PLACES
        if not isinstance(value, str) or value not in accepted:
            return f"{key} must be one of {', '.join(accepted)}; got {_describe(node)}"
        return None
    low, high = PANES_PER_WINDOW_RANGE if key == "panes_per_window" else DASHBOARD_PERCENT_RANGE
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return f"{key} must be a whole number from {low} to {high}; got {_describe(node)}"
    return None


def _scalar(node: yaml.Node) -> object:
    """The Python value of a scalar node; a sentinel for mappings and lists."""
    if not isinstance(node, yaml.ScalarNode):
        return _NOT_SCALAR
    return yaml.SafeLoader("").construct_object(node)


_NOT_SCALAR = object()


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = _scalar(node)
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f'the string "{value}"'
    return str(value)


def _as_int(value: object) -> int:
    if not isinstance(value, int):
        msg = f"expected a whole number, got {value!r}"
        raise TypeError(msg)
    return value


def _as_arrangement(value: object) -> SlotArrangement:
    for choice in get_args(SlotArrangement):
        if value == choice:
            return choice  # type: ignore[no-any-return]
    msg = f"expected a slot arrangement, got {value!r}"
    raise TypeError(msg)


def _as_place(value: object) -> DashboardPlace:
    for choice in get_args(DashboardPlace):
        if value == choice:
            return choice  # type: ignore[no-any-return]
    msg = f"expected a dashboard place, got {value!r}"
    raise TypeError(msg)


# ---------------------------------------------------------------------------
# values


@dataclass(frozen=True)
class SessionPanes:
    """The pane ids (`%3`) of a new session: control, the slots in order, the dashboard."""

    control: str
    slots: tuple[str, ...]
    dashboard: str | None


@dataclass(frozen=True)
class PaneState:
    """One pane as tmux sees it. `title` is limitless's title, else the pane's own.

    `pid` is None once the pane is dead; `dead_status` is the exit code of a
    process that exited, `dead_signal` the signal that killed one. `left` and
    `top` are the pane's position in its window, in cells.
    """

    pane_id: str
    window_name: str
    window_index: int
    index: int
    dead: bool
    dead_status: int | None
    pid: int | None
    title: str
    current_command: str
    width: int
    height: int
    active: bool
    window_id: str = ""
    left: int = 0
    top: int = 0
    dead_signal: int | None = None
    window_active: bool = False


@dataclass(frozen=True)
class Snapshot:
    """Every pane's state and the last lines of the panes that were read, from one call."""

    panes: tuple[PaneState, ...]
    lines: Mapping[str, list[str]] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# helpers


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


def escape_format(text: str) -> str:
    """`text` with every `#` doubled, so tmux shows it instead of expanding it."""
    return text.replace("#", "##")


def _printable(text: str) -> str:
    """`text` with control characters (which tmux refuses in titles) as spaces."""
    return _CONTROL_CHARS.sub(" ", text)


def _arg(value: str) -> str:
    """One argv element as tmux must receive it: a final `;` escaped as `\\;`."""
    return value[:-1] + "\\;" if value.endswith(";") else value


def _chain(commands: Sequence[Sequence[str]]) -> list[str]:
    """The argv of several tmux commands run by one client, in order."""
    argv: list[str] = []
    for position, command in enumerate(commands):
        if position:
            argv.append(";")
        argv.extend(_arg(part) for part in command)
    return argv


def _program(argv: Sequence[str], what: str) -> list[str]:
    """`argv` made safe to give tmux as a program: tmux runs a single element
    through `sh -c`, so that case is routed through `env` to be exec'd as is."""
    if not argv:
        msg = f"{what} must name a program to run, got an empty argv"
        raise ValueError(msg)
    return ["env", "--", argv[0]] if len(argv) == 1 else list(argv)


def _env_flags(env: Mapping[str, str]) -> list[str]:
    flags: list[str] = []
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            msg = f"environment variable name {name!r} is not valid; use letters, digits and _"
            raise ValueError(msg)
        flags += ["-e", f"{name}={value}"]
    return flags


def _check_channel(channel: str) -> str:
    if not _CHANNEL.fullmatch(channel):
        msg = f"wake channel {channel!r} is not valid; use 1 to 200 letters, digits, ., - and _"
        raise ValueError(msg)
    return channel


def _check_pane(pane_id: str) -> str:
    if not _PANE_ID.fullmatch(pane_id):
        msg = f"pane id {pane_id!r} is not valid; pane ids look like %3"
        raise ValueError(msg)
    return pane_id


def _show(argv: Sequence[str], limit: int = 400) -> str:
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last_lines(text: str, lines: int) -> list[str]:
    """The last `lines` non-empty lines of a capture, tmux's "Pane is dead" note dropped."""
    kept = [line.rstrip() for line in text.split("\n")]
    kept = [line for line in kept if line.strip()]
    if kept and _DEAD_LINE.fullmatch(kept[-1]):
        kept.pop()
    return kept[-lines:]


_PANE_FIELDS = (
    "pane_id",
    "window_id",
    "window_name",
    "window_index",
    "pane_index",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "pane_pid",
    "pane_current_command",
    "pane_width",
    "pane_height",
    "pane_left",
    "pane_top",
    "pane_active",
    "window_active",
)
_RECORD = "\x1e"
_FIELD = "\x1f"
PANE_FORMAT = (
    _RECORD + _FIELD.join(f"#{{{name}}}" for name in _PANE_FIELDS) + _FIELD + EFFECTIVE_TITLE
)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.strip().lstrip("-").isdigit() else None


def _parse_panes(output: str) -> list[PaneState]:
    states: list[PaneState] = []
    for record in output.split(_RECORD)[1:]:
        parts = record.removesuffix("\n").split(_FIELD, len(_PANE_FIELDS))
        if len(parts) != len(_PANE_FIELDS) + 1:
            logger.warning("pane record skipped", extra={"record": record})
            continue
        f = dict(zip(_PANE_FIELDS, parts, strict=False))
        dead = f["pane_dead"] == "1"
        states.append(
            PaneState(
                pane_id=f["pane_id"],
                window_name=f["window_name"],
                window_index=int(f["window_index"]),
                index=int(f["pane_index"]),
                dead=dead,
                dead_status=_int_or_none(f["pane_dead_status"]) if dead else None,
                pid=None if dead else _int_or_none(f["pane_pid"]),
                title=parts[-1],
                current_command=f["pane_current_command"],
                width=int(f["pane_width"]),
                height=int(f["pane_height"]),
                active=f["pane_active"] == "1",
                window_id=f["window_id"],
                left=int(f["pane_left"]),
                top=int(f["pane_top"]),
                dead_signal=_int_or_none(f["pane_dead_signal"]) if dead else None,
                window_active=f["window_active"] == "1",
            )
        )
    return states


class _ChainFailed(Exception):
    """A sectioned chain stopped at one command; the sections before it are complete."""

    def __init__(self, sections: list[str], index: int, stderr: str) -> None:
        super().__init__(stderr)
        self.sections = sections
        self.index = index
        self.stderr = stderr


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
        return f"={self.name}:"

    def _window(self, window: str) -> str:
        return f"={self.name}:={window}"

    def _base(self) -> list[str]:
        return ["tmux", "-L", self.socket_name] if self.socket_name else ["tmux"]

    def _argv(self, commands: Sequence[Sequence[str]]) -> list[str]:
        return self._base() + _chain(commands)

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
            msg = f"`{_show(argv)}` did not finish within {timeout:g} s"
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
        return TmuxError(f"`{_show(self._argv(commands))}` failed: {words}")

    def _sectioned(self, commands: Sequence[Sequence[str]]) -> list[str]:
        """Each command's stdout, from one invocation; _ChainFailed names the one that failed."""
        marker = f"limitless:{uuid.uuid4().hex}:end"
        chained: list[Sequence[str]] = []
        for command in commands:
            chained += [command, ["display-message", "-p", marker]]
        proc = self._call(chained)
        parts = proc.stdout.split(marker + "\n")
        sections = parts[:-1]
        if proc.returncode != 0:
            raise _ChainFailed(sections, len(sections), proc.stderr.strip())
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
        groups = session._create_commands(
            layout=layout,
            slots=slots,
            cwd=cwd,
            control_argv=control_argv,
            dashboard_argv=dashboard_argv,
            idle_argv=idle_argv,
            env=env,
            wake_channel=_check_channel(wake_channel),
            width=width,
            height=height,
        )
        started = time.perf_counter()
        printed: list[str] = []
        batches = _pack(groups)
        for batch in batches:
            proc = session._call(batch)
            printed += proc.stdout.split()
            if proc.returncode != 0:
                if printed[:1] == ["control"]:
                    # The session was made by this call or an earlier one: undo it.
                    session.kill()
                raise session._error(batch, proc)
        panes = _parse_created(printed, slots)
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

    def _create_commands(
        self,
        *,
        layout: Layout,
        slots: int,
        cwd: Path,
        control_argv: list[str],
        dashboard_argv: list[str] | None,
        idle_argv: list[str],
        env: Mapping[str, str],
        wake_channel: str,
        width: int,
        height: int,
    ) -> list[list[list[str]]]:
        """create()'s commands in groups: the session with its options and hook, then
        one group per window. A group is never split across tmux calls, so a
        window's options are always set by the call that starts its panes."""
        directory = escape_format(str(cwd))
        idle = _program(idle_argv, "idle_argv")
        control = _program(control_argv, "control_argv")
        dashboard = _program(dashboard_argv, "dashboard_argv") if dashboard_argv else None
        wake_option = WAKE_OPTION_PREFIX + wake_channel
        hook = self._wake_hook(wake_channel)

        new_session = ["new-session", "-d", "-s", self.name, "-n", CONTROL_WINDOW]
        size = ["-x", str(width), "-y", str(height)]
        commands: list[list[str]] = [
            [*new_session, *size, *_env_flags(env), *_started(directory, "control", control)],
            ["set-option", "-t", self._target, "destroy-unattached", "off"],
            ["set-option", "-t", self._target, "history-limit", str(HISTORY_LIMIT)],
            # the default 10 columns cut `[limitless-shop-1]` to `[limitless`
            ["set-option", "-t", self._target, "status-left-length", "40"],
            ["set-option", "-t", self._target, wake_option, "0"],
            *self._window_setup(CONTROL_WINDOW, hook),
            *self._title_commands(self._window(CONTROL_WINDOW), "control"),
        ]
        groups = [commands]

        def new_window(window: str, label: str, argv: list[str]) -> None:
            nonlocal commands
            commands = [
                [
                    "new-window",
                    "-d",
                    "-t",
                    self._target,
                    "-n",
                    window,
                    *_started(directory, label, argv),
                ]
            ]
            commands.extend(self._window_setup(window, hook))
            groups.append(commands)

        def split(window: str, label: str, argv: list[str], flags: list[str]) -> None:
            target = self._window(window)
            commands.append(
                ["split-window", "-t", target, *flags, *_started(directory, label, argv)]
            )

        if dashboard and layout.dashboard == "window":
            new_window(DASHBOARD_WINDOW, "dashboard", dashboard)
            commands.extend(self._title_commands(self._window(DASHBOARD_WINDOW), "dashboard"))
        direction = "-v" if layout.slot_arrangement == "even-vertical" else "-h"
        number = 0
        for index, count in enumerate(layout.slots_per_window(slots)):
            window = agents_window_name(index)
            for position in range(count):
                number += 1
                if position == 0:
                    new_window(window, "slot", idle)
                else:
                    split(window, "slot", idle, [direction])
                    # Re-arranging after each split keeps room for the next one.
                    commands.append(
                        ["select-layout", "-t", self._window(window), layout.slot_arrangement]
                    )
                # A split makes the new pane active: the window's active pane is this slot.
                commands.extend(self._title_commands(self._window(window), f"slot {number}"))
            if index == 0 and dashboard and layout.dashboard != "window":
                share = f"{layout.dashboard_size_percent}%"
                flags = ["-v" if layout.dashboard == "bottom" else "-h", "-f", "-l", share]
                split(window, "dashboard", dashboard, flags)
                commands.extend(self._title_commands(self._window(window), "dashboard"))
        first = DASHBOARD_WINDOW if dashboard and layout.dashboard == "window" else AGENTS_WINDOW
        commands.append(["select-window", "-t", self._window(first)])
        return groups

    def _wake_hook(self, wake_channel: str) -> str:
        """The pane-died hook: bump the wake counter, then signal the channel."""
        option = WAKE_OPTION_PREFIX + wake_channel
        return (
            f"set-option -F -t '{self._target}' {option} '#{{e|+:#{{{option}}},1}}' ; "
            f"wait-for -S {wake_channel}"
        )

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
        existing = set(output.split())
        directory = escape_format(str(cwd))
        idle = _program(idle_argv, "idle_argv")
        hook = self._wake_hook(_check_channel(wake_channel))
        direction = "-v" if layout.slot_arrangement == "even-vertical" else "-h"
        commands: list[list[str]] = []
        number = first_number
        index = 1
        for in_window in layout.slots_per_window(count):
            while agents_window_name(index) in existing:
                index += 1
            window = agents_window_name(index)
            existing.add(window)
            target = self._window(window)
            new_window = ["new-window", "-d", "-t", self._target, "-n", window]
            commands.append([*new_window, *_started(directory, "slot", idle)])
            commands.extend(self._window_setup(window, hook))
            commands.extend(self._title_commands(target, f"slot {number}"))
            for _ in range(in_window - 1):
                number += 1
                commands.append(
                    ["split-window", "-t", target, direction, *_started(directory, "slot", idle)]
                )
                commands.append(["select-layout", "-t", target, layout.slot_arrangement])
                commands.extend(self._title_commands(target, f"slot {number}"))
            number += 1
        printed = self._run(commands).split()
        panes = [printed[i + 1] for i in range(0, len(printed) - 1, 2) if printed[i] == "slot"]
        self._known_panes = (*self._known_panes, *panes)
        logger.info("slots added", extra={"session": self.name, "panes": panes})
        return panes

    def _window_setup(self, window: str, hook: str) -> list[list[str]]:
        """Options and the pane-died hook of every limitless window (never global ones).

        pane-died is a pane hook: tmux 3.3 keeps it in pane or window options
        only (`set-hook -t session` would land on the current window), so each
        window gets it.
        """
        target = self._window(window)
        return [
            *(
                ["set-option", "-w", "-t", target, name, value]
                for name, value in (
                    ("remain-on-exit", "on"),
                    ("pane-border-status", "top"),
                    ("pane-border-format", PANE_BORDER_FORMAT),
                    ("allow-rename", "off"),
                    ("automatic-rename", "off"),
                )
            ),
            ["set-hook", "-w", "-t", target, "pane-died", hook],
        ]

    def _title_commands(self, target: str, title: str) -> list[list[str]]:
        clean = _printable(title)
        return [
            ["select-pane", "-t", target, "-T", escape_format(clean)],
            ["set-option", "-p", "-t", target, TITLE_OPTION, clean],
        ]

    # -- life --------------------------------------------------------------

    def _server(self) -> libtmux.Server:
        return libtmux.Server(socket_name=self.socket_name)

    def exists(self) -> bool:
        """Whether this session is alive on its server."""
        try:
            return bool(self._server().has_session(self.name, exact=True))
        except libtmux.exc.LibTmuxException as exc:
            msg = f"tmux has-session -t ={self.name} failed: {exc}"
            raise TmuxError(msg) from exc

    def kill(self) -> None:
        """Kill this session (only it); nothing happens when it is already gone."""
        proc = self._server().cmd("kill-session", target=f"={self.name}")
        stderr = "\n".join(proc.stderr)
        if proc.returncode not in (0, None) or stderr:
            gone = ("can't find session", "no server running", "error connecting")
            if any(words in stderr for words in gone):
                return
            msg = f"tmux kill-session -t ={self.name} failed: {stderr}"
            raise TmuxError(msg)
        logger.info("session killed", extra={"session": self.name})

    # -- panes -------------------------------------------------------------

    def respawn(self, pane_id: str, argv: list[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        """Run `argv` (exec'd as is, no shell) in `pane_id`, killing what ran there.

        The pane's scrollback is cleared, so its lines belong to the new program.
        """
        _check_pane(pane_id)
        self._run(
            [
                [
                    "respawn-pane",
                    "-k",
                    "-t",
                    pane_id,
                    "-c",
                    escape_format(str(cwd)),
                    *_env_flags(env),
                    "--",
                    *_program(argv, "argv"),
                ],
                ["clear-history", "-t", pane_id],
            ]
        )
        logger.debug("pane respawned", extra={"pane": pane_id, "program": argv[0]})

    def set_title(self, pane_id: str, title: str) -> None:
        """Show `title` on the pane's border, verbatim: tmux formats in it are not expanded."""
        _check_pane(pane_id)
        self._run(self._title_commands(pane_id, title))

    def panes(self) -> list[PaneState]:
        """Every pane of the session, from one `list-panes` call."""
        output = self._run([["list-panes", "-s", "-t", self._target, "-F", PANE_FORMAT]])
        states = _parse_panes(output)
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
        remaining = [_check_pane(pane) for pane in dict.fromkeys(pane_ids)]
        result: dict[str, list[str]] = {}
        while remaining:
            commands = [_capture_command(pane, lines) for pane in remaining]
            try:
                sections = self._sectioned(commands)
            except _ChainFailed as failed:
                sections = failed.sections
                if "can't find pane" not in failed.stderr:
                    msg = f"tmux capture-pane of {remaining[failed.index]} failed: {failed.stderr}"
                    raise TmuxError(msg) from None
            for pane, text in zip(remaining, sections, strict=False):
                result[pane] = _last_lines(text, lines)
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
            _check_pane(pane)
            for pane in dict.fromkeys(self._known_panes if pane_ids is None else pane_ids)
        ]
        commands = [["list-panes", "-s", "-t", self._target, "-F", PANE_FORMAT]]
        commands += [_capture_command(pane, lines) for pane in wanted]
        try:
            sections = self._sectioned(commands)
        except _ChainFailed as failed:
            if failed.index == 0:
                msg = f"tmux list-panes -s -t {self._target} failed: {failed.stderr}"
                raise TmuxError(msg) from None
            # A pane vanished between ticks: read again, knowing which panes exist.
            states = self.panes()
            alive = {state.pane_id for state in states}
            captured = self.capture([pane for pane in wanted if pane in alive], lines)
            return Snapshot(tuple(states), captured)
        states = _parse_panes(sections[0])
        self._ask_to_reap_lost_exits(states)
        self._known_panes = tuple(state.pane_id for state in states)
        captured = {
            pane: _last_lines(text, lines) for pane, text in zip(wanted, sections[1:], strict=True)
        }
        return Snapshot(tuple(states), captured)

    def select(self, pane_id: str) -> None:
        """Make `pane_id` the current pane: its window current, the pane active."""
        _check_pane(pane_id)
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
        _check_pane(pane_id)
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
        _check_pane(pane_id)
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
        shown = escape_format(_printable(text))
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
        option = WAKE_OPTION_PREFIX + _check_channel(channel)
        self._run(
            [
                ["set-option", "-F", "-t", self._target, option, f"#{{e|+:#{{{option}}},1}}"],
                ["wait-for", "-S", channel],
            ]
        )

    def wait(self, channel: str, timeout: float) -> bool:
        """Block until `channel` is signalled or `timeout` seconds pass (then False).

        Returns at once when a signal came since this object's last wait
        (or since create()). Can return True without a new signal; re-check.
        """
        option = WAKE_OPTION_PREFIX + _check_channel(channel)
        seen = self._wake_seen.get(channel)
        wait_command = ["wait-for", channel]
        first = (
            wait_command
            if seen is None
            else [
                "if-shell",
                "-F",
                "-t",
                self._target,
                f"#{{==:#{{{option}}},{seen}}}",
                shlex.join(wait_command),
            ]
        )
        commands = [first, ["display-message", "-p", "-t", self._target, f"#{{{option}}}"]]
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
            msg = f"`{_show(argv)}` failed: {stderr.strip() or f'exit status {child.returncode}'}"
            raise TmuxError(msg)
        self._wake_seen[channel] = stdout.strip()
        return True


# tmux refuses a command line longer than its message size (16 KiB, "command too
# long"); create() stays well below it, one call whenever it fits.
MAX_CALL_BYTES = 12_000


def _started(directory: str, label: str, argv: list[str]) -> list[str]:
    """Flags and program of a command that starts a pane and prints `label <pane id>`."""
    return ["-c", directory, "-P", "-F", f"{label} #{{pane_id}}", "--", *argv]


def _call_bytes(commands: Sequence[Sequence[str]]) -> int:
    return sum(len(part.encode()) + 1 for part in _chain(commands))


def _pack(groups: Sequence[Sequence[list[str]]]) -> list[list[list[str]]]:
    """Whole groups of commands packed, in order, into as few tmux calls as fit."""
    batches: list[list[list[str]]] = []
    size = 0
    for group in groups:
        group_size = _call_bytes(group) + 2
        if not batches or size + group_size > MAX_CALL_BYTES:
            batches.append([])
            size = 0
        batches[-1].extend(group)
        size += group_size
    return batches


def _capture_command(pane_id: str, lines: int) -> list[str]:
    return ["capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{lines}"]


def _parse_created(printed: list[str], slots: int) -> SessionPanes:
    """SessionPanes from create()'s `-P` output: "control %0 slot %1 ... dashboard %5"."""
    labelled = list(zip(printed[::2], printed[1::2], strict=False))
    control = [pane for label, pane in labelled if label == "control"]
    slot_panes = tuple(pane for label, pane in labelled if label == "slot")
    dashboard = [pane for label, pane in labelled if label == "dashboard"]
    panes = [*control, *slot_panes, *dashboard]
    if (
        len(control) != 1
        or len(slot_panes) != slots
        or not all(_PANE_ID.fullmatch(pane) for pane in panes)
    ):
        msg = f"tmux printed unexpected pane ids while creating the session: {printed!r}"
        raise TmuxError(msg)
    return SessionPanes(control[0], slot_panes, dashboard[0] if dashboard else None)
