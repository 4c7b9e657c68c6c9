"""Tests of limitless.tmux.session against a real tmux server on a private socket."""

from __future__ import annotations

import importlib.resources
import json
import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest
from libtmux.test.retry import retry_until

from limitless.errors import PlanError, TmuxError, UsageError
from limitless.tmux.commands import MAX_CALL_BYTES, call_bytes, pack
from limitless.tmux.layouts import Layout, available_layouts, load_layout
from limitless.tmux.panes import PaneState, SessionPanes
from limitless.tmux.session import (
    TmuxSession,
    session_name,
    socket_path,
)
from limitless.versions import MIN_TMUX, parse_version, tmux_version

SLEEP = ["sleep", "600"]
WRITE_ARGV = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


def tmux(socket: str, *args: str) -> str:
    """Run tmux on the private socket (tests only) and return its stdout."""
    result = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        msg = f"tmux {' '.join(args)} failed: {result.stderr.strip()}"
        raise AssertionError(msg)
    return result.stdout


def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for `condition` with a deadline (never a fixed sleep)."""
    retry_until(condition, seconds, interval=0.02)


def make(
    socket: str,
    tmp_path: Path,
    *,
    run: str = "r-1",
    layout: str | Layout = "default",
    slots: int = 3,
    idle_argv: list[str] | None = None,
    control_argv: list[str] | None = None,
    dashboard_argv: list[str] | None = SLEEP,
    env: dict[str, str] | None = None,
    width: int = 200,
    height: int = 50,
) -> tuple[TmuxSession, SessionPanes]:
    """A session on the private socket with sensible test defaults."""
    return TmuxSession.create(
        socket,
        run,
        layout=layout if isinstance(layout, Layout) else load_layout(layout),
        slots=slots,
        cwd=tmp_path,
        control_argv=control_argv or SLEEP,
        dashboard_argv=dashboard_argv,
        idle_argv=idle_argv or SLEEP,
        env=env or {},
        wake_channel="limitless-wake-r-1",
        width=width,
        height=height,
    )


def by_id(states: list[PaneState]) -> dict[str, PaneState]:
    return {state.pane_id: state for state in states}


# ---------------------------------------------------------------------------
# version


class VersionCase(NamedTuple):
    test_id: str
    text: str
    expected: tuple[int, int] | None


VERSION_CASES = [
    VersionCase("release", "tmux 3.3a\n", (3, 3)),
    VersionCase("plain", "tmux 3.2", (3, 2)),
    VersionCase("next", "tmux next-3.4", (3, 4)),
    VersionCase("rc", "tmux 3.5-rc", (3, 5)),
    VersionCase("old", "tmux 2.9a", (2, 9)),
    VersionCase("master", "tmux master", (99, 0)),
    VersionCase("openbsd", "tmux openbsd-7.4", (99, 0)),
    VersionCase("garbage", "not tmux at all", None),
    VersionCase("empty", "", None),
]


@pytest.mark.parametrize("case", VERSION_CASES, ids=[c.test_id for c in VERSION_CASES])
def test_parse_tmux_version(case: VersionCase) -> None:
    """`tmux -V` output is read as (major, minor)."""
    assert parse_version(case.text) == case.expected


def test_installed_tmux_is_new_enough() -> None:
    """The tmux on this machine reports a version at least MIN_TMUX."""
    version = tmux_version()
    assert version is not None
    assert version >= MIN_TMUX


def test_tmux_version_none_without_tmux(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without tmux on PATH the version is None, not an exception."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert tmux_version() is None


# ---------------------------------------------------------------------------
# layouts

LAYOUT_FILES = sorted(
    entry.name
    for entry in importlib.resources.files("limitless").joinpath("layouts").iterdir()
    if entry.is_file()
)


@pytest.mark.parametrize("file_name", LAYOUT_FILES)
def test_every_layout_file_loads(file_name: str) -> None:
    """Every file shipped in limitless/layouts/ is a valid layout, loadable by name."""
    assert file_name.endswith(".yaml")
    name = file_name.removesuffix(".yaml")
    layout = load_layout(name)
    assert layout.name == name
    assert layout.description


def test_available_layouts() -> None:
    """The four documented layouts ship with the package."""
    assert available_layouts() == ["columns", "default", "grid", "windows"]


class LayoutCase(NamedTuple):
    test_id: str
    name: str
    expected: Layout


LAYOUT_CASES = [
    LayoutCase(
        "default",
        "default",
        Layout("default", "", "even-horizontal", 4, "bottom", 30),
    ),
    LayoutCase("grid", "grid", Layout("grid", "", "tiled", 6, "bottom", 30)),
    LayoutCase("columns", "columns", Layout("columns", "", "even-horizontal", 4, "right", 30)),
    LayoutCase("windows", "windows", Layout("windows", "", "tiled", 1, "window", 30)),
]


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=[c.test_id for c in LAYOUT_CASES])
def test_builtin_layout_values(case: LayoutCase) -> None:
    """The built-in layouts say what their documentation says."""
    layout = load_layout(case.name)
    assert layout == Layout(**{**case.expected.__dict__, "description": layout.description})


def test_load_layout_from_path(tmp_path: Path) -> None:
    """A layout file given by path loads, named after its stem, with defaults filled in."""
    path = tmp_path / "wide.yaml"
    path.write_text("panes_per_window: 8\ndashboard: right\n")
    assert load_layout(path) == Layout("wide", "", "even-horizontal", 8, "right", 30)
    assert load_layout(str(path)) == load_layout(path)


class BadLayoutCase(NamedTuple):
    test_id: str
    text: str
    messages: list[str]


BAD_LAYOUT_CASES = [
    BadLayoutCase(
        "every-kind",
        "description: 42\n"
        "slot_arrangement: diagonal\n"
        "panes_per_window: 0\n"
        "dashbord: bottom\n"
        "dashboard_size_percent: true\n"
        "panes_per_window: 3\n",
        [
            "L:1:14: description must be a string, got 42",
            "L:2:19: slot_arrangement must be one of even-horizontal, even-vertical, tiled;"
            ' got the string "diagonal"',
            "L:3:19: panes_per_window must be a whole number from 1 to 16; got 0",
            'L:4:1: unknown key "dashbord"; did you mean "dashboard"? a layout accepts:'
            " description, slot_arrangement, panes_per_window, dashboard,"
            " dashboard_size_percent",
            "L:5:25: dashboard_size_percent must be a whole number from 10 to 90;"
            " got the boolean true",
            'L:6:1: duplicate key "panes_per_window" (first given on line 3)',
        ],
    ),
    BadLayoutCase(
        "wrong-shapes",
        "dashboard: [bottom]\npanes_per_window: {n: 2}\ndashboard_size_percent: 95\n",
        [
            "L:1:12: dashboard must be one of bottom, right, window; got a list",
            "L:2:19: panes_per_window must be a whole number from 1 to 16; got a mapping",
            "L:3:25: dashboard_size_percent must be a whole number from 10 to 90; got 95",
        ],
    ),
    BadLayoutCase(
        "no-close-match",
        "colour: red\n",
        [
            'L:1:1: unknown key "colour"; a layout accepts: description, slot_arrangement,'
            " panes_per_window, dashboard, dashboard_size_percent",
        ],
    ),
    BadLayoutCase(
        "syntax",
        "panes_per_window: [1, 2\n",
        ["L:2:1: not valid YAML: expected ',' or ']', but got '<stream end>'"],
    ),
    BadLayoutCase(
        "list",
        "- default\n",
        ["L:1:1: a layout must be a mapping of keys to values, got a list"],
    ),
    BadLayoutCase(
        "empty",
        "# nothing here\n",
        ['L:1:1: the layout file is empty; expected keys such as "panes_per_window: 4"'],
    ),
]


@pytest.mark.parametrize("case", BAD_LAYOUT_CASES, ids=[c.test_id for c in BAD_LAYOUT_CASES])
def test_bad_layout_file_gives_located_messages(case: BadLayoutCase, tmp_path: Path) -> None:
    """A bad layout file lists every problem with its file, line and column."""
    path = tmp_path / "bad.yaml"
    path.write_text(case.text)
    with pytest.raises(PlanError) as caught:
        load_layout(path)
    expected = [message.replace("L:", f"{path}:", 1) for message in case.messages]
    assert [str(problem) for problem in caught.value.problems] == expected
    assert str(caught.value) == "\n".join(expected)


def test_unknown_layout_name() -> None:
    """An unknown layout name is a usage error listing the built-in ones."""
    with pytest.raises(UsageError) as caught:
        load_layout("spiral")
    assert str(caught.value) == (
        "unknown layout 'spiral'; built-in layouts: columns, default, grid, windows;"
        " or give a path to a .yaml file"
    )


def test_missing_layout_file(tmp_path: Path) -> None:
    """A layout path that does not exist is a usage error naming it."""
    with pytest.raises(UsageError, match="does not exist"):
        load_layout(tmp_path / "nope.yaml")


class SpillCase(NamedTuple):
    test_id: str
    per_window: int
    slots: int
    counts: list[int]
    names: list[str]


SPILL_CASES = [
    SpillCase("one", 4, 1, [1], ["agents"]),
    SpillCase("exact", 4, 8, [4, 4], ["agents", "agents-2"]),
    SpillCase("rest", 4, 9, [4, 4, 1], ["agents", "agents-2", "agents-3"]),
    SpillCase("single", 1, 3, [1, 1, 1], ["agents", "agents-2", "agents-3"]),
]


@pytest.mark.parametrize("case", SPILL_CASES, ids=[c.test_id for c in SPILL_CASES])
def test_slots_spill_into_windows(case: SpillCase) -> None:
    """Slots beyond panes_per_window go to agents-2, agents-3, ..."""
    layout = Layout("x", panes_per_window=case.per_window)
    assert layout.slots_per_window(case.slots) == case.counts
    assert layout.window_names(case.slots) == case.names


# ---------------------------------------------------------------------------
# small helpers


def test_session_name() -> None:
    """Session names are limitless-<run> with characters tmux reserves replaced."""
    assert session_name("shop-3") == "limitless-shop-3"
    assert session_name("a.b:c d") == "limitless-a_b_c_d"
    with pytest.raises(ValueError, match="run id"):
        session_name("")


def test_pack_keeps_groups_whole_and_calls_small() -> None:
    """create()'s command groups are packed into as few calls as fit tmux's limit."""
    group = [["set-option", "-t", "x", "y" * 1000]] * 3
    batches = pack([group] * 10)  # about 3 KB a group: three groups a call
    assert [len(batch) for batch in batches] == [9, 9, 9, 3]
    assert all(len(batch) % 3 == 0 for batch in batches)
    assert all(call_bytes(batch) <= MAX_CALL_BYTES for batch in batches)
    assert pack([[["a"]], [["b"]]]) == [[["a"], ["b"]]]


class BadArgsCase(NamedTuple):
    test_id: str
    call: Callable[[TmuxSession], object]
    match: str


BAD_ARGS_CASES = [
    BadArgsCase("pane-id", lambda s: s.set_title("3", "x"), "pane id '3' is not valid"),
    BadArgsCase("channel", lambda s: s.signal("a;b"), "wake channel 'a;b' is not valid"),
    BadArgsCase(
        "empty-argv",
        lambda s: s.respawn("%1", [], cwd=Path("/"), env={}),
        "argv must name a program",
    ),
    BadArgsCase(
        "env-name",
        lambda s: s.respawn("%1", ["true"], cwd=Path("/"), env={"A-B": "1"}),
        "environment variable name 'A-B'",
    ),
    BadArgsCase("lines", lambda s: s.capture(["%1"], lines=0), "lines must be at least 1"),
]


@pytest.mark.parametrize("case", BAD_ARGS_CASES, ids=[c.test_id for c in BAD_ARGS_CASES])
def test_bad_arguments_are_refused_before_tmux_runs(case: BadArgsCase) -> None:
    """Malformed pane ids, channels, argv and env names raise ValueError without tmux."""
    session = TmuxSession("limitless-test-never-started", "r-1")
    with pytest.raises(ValueError, match=case.match):
        case.call(session)


# ---------------------------------------------------------------------------
# creating sessions


class CreateCase(NamedTuple):
    test_id: str
    layout: str
    slots: int
    windows: list[str]
    dashboard_window: str


def _agents(count: int) -> list[str]:
    return ["agents"] + [f"agents-{n}" for n in range(2, count + 1)]


CREATE_CASES = [
    CreateCase("default-1", "default", 1, ["control", "agents"], "agents"),
    CreateCase("default-3", "default", 3, ["control", "agents"], "agents"),
    CreateCase("default-9", "default", 9, ["control", *_agents(3)], "agents"),
    CreateCase("grid-1", "grid", 1, ["control", "agents"], "agents"),
    CreateCase("grid-3", "grid", 3, ["control", "agents"], "agents"),
    CreateCase("grid-9", "grid", 9, ["control", *_agents(2)], "agents"),
    CreateCase("columns-1", "columns", 1, ["control", "agents"], "agents"),
    CreateCase("columns-3", "columns", 3, ["control", "agents"], "agents"),
    CreateCase("columns-9", "columns", 9, ["control", *_agents(3)], "agents"),
    CreateCase("windows-1", "windows", 1, ["control", "dashboard", "agents"], "dashboard"),
    CreateCase("windows-3", "windows", 3, ["control", "dashboard", *_agents(3)], "dashboard"),
    CreateCase("windows-9", "windows", 9, ["control", "dashboard", *_agents(9)], "dashboard"),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c.test_id for c in CREATE_CASES])
def test_create_builds_the_layout(case: CreateCase, tmux_socket: str, tmp_path: Path) -> None:
    """create() makes the control window, every slot and the dashboard where the layout says."""
    session, panes = make(tmux_socket, tmp_path, layout=case.layout, slots=case.slots)
    assert session.exists()
    assert session.name == "limitless-r-1"
    states = session.panes()
    assert len(states) == case.slots + 2
    assert len(panes.slots) == case.slots
    assert panes.dashboard is not None
    windows = sorted({(s.window_index, s.window_name) for s in states})
    assert [name for _, name in windows] == case.windows
    panes_by_id = by_id(states)
    assert panes_by_id[panes.control].window_name == "control"
    dashboard = panes_by_id[panes.dashboard]
    assert dashboard.window_name == case.dashboard_window
    assert dashboard.active and dashboard.window_active
    per_window = load_layout(case.layout).panes_per_window
    for number, pane in enumerate(panes.slots):
        assert panes_by_id[pane].window_name == _agents(99)[number // per_window]
        assert panes_by_id[pane].title == f"slot {number + 1}"
    assert panes_by_id[panes.control].title == "control"
    assert dashboard.title == "dashboard"


def test_default_layout_geometry(tmux_socket: str, tmp_path: Path) -> None:
    """default: slots side by side on top, the dashboard full width along the bottom, ~30 %."""
    session, panes = make(tmux_socket, tmp_path, layout="default", slots=4)
    states = by_id(session.panes())
    slots = [states[pane] for pane in panes.slots]
    assert panes.dashboard is not None
    dashboard = states[panes.dashboard]
    assert {slot.top for slot in slots} == {slots[0].top}
    assert [slot.left for slot in slots] == sorted(slot.left for slot in slots)
    assert len({slot.left for slot in slots}) == 4
    assert all(abs(slot.width - slots[0].width) <= 1 for slot in slots)
    assert dashboard.left == 0
    assert dashboard.width == 200
    assert all(dashboard.top > slot.top + slot.height for slot in slots)
    assert 12 <= dashboard.height <= 17


def test_columns_layout_geometry(tmux_socket: str, tmp_path: Path) -> None:
    """columns: full-height slot columns, the dashboard the last column on the right."""
    session, panes = make(tmux_socket, tmp_path, layout="columns", slots=3)
    states = by_id(session.panes())
    slots = [states[pane] for pane in panes.slots]
    assert panes.dashboard is not None
    dashboard = states[panes.dashboard]
    assert [slot.left for slot in slots] == sorted(slot.left for slot in slots)
    assert all(slot.height == dashboard.height for slot in slots)
    assert all(dashboard.left > slot.left + slot.width for slot in slots)
    assert dashboard.left + dashboard.width == 200
    assert 55 <= dashboard.width <= 65


def test_grid_layout_geometry(tmux_socket: str, tmp_path: Path) -> None:
    """grid: six slots tiled (tmux makes 3 rows of 2) above a full-width dashboard."""
    session, panes = make(tmux_socket, tmp_path, layout="grid", slots=6)
    states = by_id(session.panes())
    slots = [states[pane] for pane in panes.slots]
    assert panes.dashboard is not None
    dashboard = states[panes.dashboard]
    assert len({slot.top for slot in slots}) == 3
    assert len({slot.left for slot in slots}) == 2
    assert dashboard.width == 200
    assert all(dashboard.top > slot.top for slot in slots)


def test_create_without_dashboard(tmux_socket: str, tmp_path: Path) -> None:
    """With dashboard_argv None there is no dashboard pane."""
    session, panes = make(tmux_socket, tmp_path, slots=2, dashboard_argv=None)
    assert panes.dashboard is None
    assert len(session.panes()) == 3


def test_status_line_shows_the_whole_session_name(tmux_socket: str, tmp_path: Path) -> None:
    """tmux's default status-left width (10) would cut `[limitless-shop-12]` short."""
    make(tmux_socket, tmp_path, run="shop-12")
    line = tmux(
        tmux_socket, "display-message", "-p", "-t", "=limitless-shop-12:", "#{T:status-left}"
    )
    width = int(
        tmux(tmux_socket, "show-options", "-v", "-t", "=limitless-shop-12:", "status-left-length")
    )
    assert "limitless-shop-12" in line
    assert width >= len(line.rstrip("\n"))


def test_create_many_windows_packs_calls(tmux_socket: str, tmp_path: Path) -> None:
    """Twenty one-slot windows exceed one tmux command line; create() still builds them."""
    session, panes = make(tmux_socket, tmp_path, layout="windows", slots=20)
    states = session.panes()
    assert len(states) == 22
    assert sorted(s.window_name for s in states if s.pane_id in panes.slots) == sorted(_agents(20))


def test_create_sets_env_and_cwd(tmux_socket: str, tmp_path: Path) -> None:
    """The session's environment and start directory reach its panes' programs."""
    cwd = tmp_path / "dir #{pane_id} x"
    cwd.mkdir()
    out = tmp_path / "out.json"
    control = [
        sys.executable,
        "-c",
        f"import json, os; open({str(out)!r}, 'w').write("
        "json.dumps([os.getcwd(), os.environ.get('LIMITLESS_RUN'), os.environ.get('ODD')]))",
    ]
    TmuxSession.create(
        tmux_socket,
        "r-1",
        layout=load_layout("default"),
        slots=1,
        cwd=cwd,
        control_argv=control,
        dashboard_argv=None,
        idle_argv=SLEEP,
        env={"LIMITLESS_RUN": "r-1", "ODD": "a $HOME #{x};"},
        wake_channel="w",
    )
    until(lambda: out.exists() and out.read_text() != "")
    assert json.loads(out.read_text()) == [str(cwd), "r-1", "a $HOME #{x};"]


def test_create_duplicate_session_fails_and_keeps_the_first(
    tmux_socket: str, tmp_path: Path
) -> None:
    """Creating a session whose name is taken raises TmuxError and leaves the first alone."""
    first, _ = make(tmux_socket, tmp_path, slots=1)
    with pytest.raises(TmuxError, match="duplicate session: limitless-r-1"):
        make(tmux_socket, tmp_path, slots=1)
    assert first.exists()
    assert len(first.panes()) == 3


def test_create_failure_removes_the_half_built_session(tmux_socket: str, tmp_path: Path) -> None:
    """When a later command fails (no room for the panes) the new session is killed."""
    crowded = Layout("crowded", panes_per_window=16, slot_arrangement="even-horizontal")
    with pytest.raises(TmuxError, match="no space for new pane"):
        make(tmux_socket, tmp_path, layout=crowded, slots=16, width=20, height=10)
    assert not TmuxSession(tmux_socket, "r-1").exists()


# ---------------------------------------------------------------------------
# dead panes and wake-ups


def test_remain_on_exit_keeps_fast_exits(tmux_socket: str, tmp_path: Path) -> None:
    """Slots whose program exits at once stay as dead panes with the exit status."""
    session, panes = make(
        tmux_socket,
        tmp_path,
        slots=3,
        idle_argv=["sh", "-c", "exit 7"],
        control_argv=["sh", "-c", "exit 3"],
    )
    expected = {*panes.slots, panes.control}

    def all_dead() -> bool:
        states = by_id(session.panes())
        return all(states[pane].dead for pane in expected)

    until(all_dead)
    states = by_id(session.panes())
    assert [states[pane].dead_status for pane in panes.slots] == [7, 7, 7]
    assert states[panes.control].dead_status == 3
    assert all(states[pane].pid is None for pane in expected)
    assert panes.dashboard is not None
    assert not states[panes.dashboard].dead


def test_pane_died_hook_wakes_waiter(tmux_socket: str, tmp_path: Path) -> None:
    """A pane that dies signals the wake channel: wait() returns True."""
    session, panes = make(tmux_socket, tmp_path, slots=2, idle_argv=["sh", "-c", "exit 7"])
    until(lambda: [s.dead_status for s in session.panes() if s.pane_id in panes.slots] == [7, 7])
    assert session.wait("limitless-wake-r-1", timeout=10)


def test_wait_blocks_until_a_pane_dies(tmux_socket: str, tmp_path: Path) -> None:
    """A waiter blocked in wait() is woken by a death that happens while it waits."""
    session, panes = make(tmux_socket, tmp_path, slots=1)
    assert not session.wait("limitless-wake-r-1", timeout=0.2)
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(session.wait("limitless-wake-r-1", 10)))
    waiter.start()
    # Whether the waiter is already blocked or not yet, this death must wake it.
    session.respawn(panes.slots[0], ["sh", "-c", "exit 4"], cwd=tmp_path, env={})
    # The supervisor reads the panes every tick; that read also makes tmux
    # reap an exit whose SIGCHLD it missed (tmux 3.3a, under load).
    until(lambda: by_id(session.panes())[panes.slots[0]].dead_status == 4)
    waiter.join(15)
    assert woke == [True]


def test_an_exit_tmux_missed_is_reported_once_reaped(tmux_socket: str, tmp_path: Path) -> None:
    """Quick exits right after respawns (where tmux 3.3a loses a SIGCHLD under load)
    all end up with their exit status and a wake-up, as the supervisor reads them."""
    session, panes = make(tmux_socket, tmp_path, slots=4)
    for round_number in range(5):
        for pane in panes.slots:
            session.respawn(pane, ["sh", "-c", f"exit {round_number + 10}"], cwd=tmp_path, env={})

        def all_reported(expected: int = round_number + 10) -> bool:
            states = by_id(session.panes())
            return all(states[pane].dead_status == expected for pane in panes.slots)

        until(all_reported)
        assert session.wait("limitless-wake-r-1", timeout=10)


def test_a_pane_that_closed_its_terminal_is_dead_without_status(
    tmux_socket: str, tmp_path: Path
) -> None:
    """A program that closes its terminal and ignores SIGHUP runs on: dead, no status,
    no signal, and reading the panes again does not invent one."""
    release = tmp_path / "release"
    program = (
        "trap '' HUP; exec </dev/null >/dev/null 2>&1; "
        f"while [ ! -e {release} ]; do sleep 0.05; done"
    )
    session, panes = make(tmux_socket, tmp_path, slots=1)
    session.respawn(panes.slots[0], ["sh", "-c", program], cwd=tmp_path, env={})
    until(lambda: by_id(session.panes())[panes.slots[0]].dead)
    for _ in range(3):
        state = by_id(session.panes())[panes.slots[0]]
        assert (state.dead, state.dead_status, state.dead_signal) == (True, None, None)
    release.touch()
    until(lambda: by_id(session.panes())[panes.slots[0]].dead_status == 0)


def test_two_deaths_before_a_wait_are_not_lost(tmux_socket: str, tmp_path: Path) -> None:
    """Two signals with nobody waiting still wake the next wait (tmux alone would cancel them)."""
    session, panes = make(tmux_socket, tmp_path, slots=2)
    for pane in panes.slots:
        session.respawn(pane, ["sh", "-c", "exit 1"], cwd=tmp_path, env={})
    until(lambda: all(s.dead for s in session.panes() if s.pane_id in panes.slots))
    assert session.wait("limitless-wake-r-1", timeout=10)


def test_signal_after_a_timed_out_wait_is_not_lost(tmux_socket: str, tmp_path: Path) -> None:
    """The killed waiter of a timed-out wait() does not swallow the next signal."""
    session, _ = make(tmux_socket, tmp_path, slots=1)
    assert not session.wait("limitless-wake-r-1", timeout=0.2)
    other = TmuxSession(tmux_socket, "r-1")
    other.signal("limitless-wake-r-1")
    assert session.wait("limitless-wake-r-1", timeout=10)
    assert not session.wait("limitless-wake-r-1", timeout=0.2)


def test_signal_wakes_a_fresh_handle(tmux_socket: str, tmp_path: Path) -> None:
    """signal() then wait() on handles made after create() (another process's view)."""
    make(tmux_socket, tmp_path, slots=1)
    TmuxSession(tmux_socket, "r-1").signal("done-channel")
    assert TmuxSession(tmux_socket, "r-1").wait("done-channel", timeout=10)


def test_wait_leaves_no_child_behind(tmux_socket: str, tmp_path: Path) -> None:
    """A timed-out wait() kills its own `tmux wait-for` client."""
    session, _ = make(tmux_socket, tmp_path, slots=1)
    assert not session.wait("quiet-channel", timeout=0.2)
    waiters = [
        process.pid
        for process in psutil.process_iter(["cmdline"])
        if tmux_socket in (process.info["cmdline"] or [])
        and "wait-for" in (process.info["cmdline"] or [])
        and "new-session" not in (process.info["cmdline"] or [])
    ]
    assert waiters == []


# ---------------------------------------------------------------------------
# respawn and titles


ODD_ARGS = [
    "$(touch pwned)",
    "`touch pwned`",
    "a;",
    ";",
    "b\\;",
    "x ; touch pwned",
    "#{pane_id}",
    "$HOME",
    "~",
    "'quoted' \"twice\"",
    "line\nbreak",
    "",
    "-t",
    "{",
]


def test_respawn_runs_argv_verbatim(tmux_socket: str, tmp_path: Path) -> None:
    """respawn() execs argv as given: no shell, no tmux parsing of `;`, `#{}` or `$()`."""
    session, panes = make(tmux_socket, tmp_path, slots=1)
    out = tmp_path / "argv.json"
    session.respawn(
        panes.slots[0],
        [sys.executable, "-c", WRITE_ARGV, str(out), *ODD_ARGS],
        cwd=tmp_path,
        env={},
    )
    until(lambda: out.exists() and out.read_text() != "")
    assert json.loads(out.read_text()) == ODD_ARGS
    assert not (tmp_path / "pwned").exists()
    assert not any(Path.cwd().glob("pwned"))


def test_respawn_single_element_argv_is_not_shell_parsed(tmux_socket: str, tmp_path: Path) -> None:
    """A one-element argv (which tmux would hand to sh -c) is exec'd as a program path."""
    folder = tmp_path / "my tools"
    folder.mkdir()
    program = folder / "prog;x"
    out = tmp_path / "ran"
    program.write_text(f"#!/bin/sh\necho ran > '{out}'\n")
    program.chmod(0o755)
    session, panes = make(tmux_socket, tmp_path, slots=1)
    session.respawn(panes.slots[0], [str(program)], cwd=tmp_path, env={})
    until(out.exists)
    assert out.read_text() == "ran\n"


def test_respawn_sets_cwd_and_env(tmux_socket: str, tmp_path: Path) -> None:
    """respawn() starts the program in cwd (even with # in it) with env added."""
    session, panes = make(tmux_socket, tmp_path, slots=1)
    cwd = tmp_path / "work #{pane_id}"
    cwd.mkdir()
    out = tmp_path / "env.json"
    program = (
        "import json, os, sys; open(sys.argv[1], 'w').write("
        "json.dumps([os.getcwd(), os.environ['TASK'], os.environ['TRICKY']]))"
    )
    session.respawn(
        panes.slots[0],
        [sys.executable, "-c", program, str(out)],
        cwd=cwd,
        env={"TASK": "api", "TRICKY": "$(touch pwned);"},
    )
    until(lambda: out.exists() and out.read_text() != "")
    assert json.loads(out.read_text()) == [str(cwd), "api", "$(touch pwned);"]


def test_respawn_replaces_a_running_program_and_clears_history(
    tmux_socket: str, tmp_path: Path
) -> None:
    """A reused slot kills its old program and shows only the new program's lines."""
    session, panes = make(
        tmux_socket, tmp_path, slots=1, idle_argv=["sh", "-c", "echo old-output; exec sleep 600"]
    )
    slot = panes.slots[0]
    until(lambda: session.capture([slot])[slot] == ["old-output"])
    session.respawn(slot, ["sh", "-c", "echo new-output; exec sleep 600"], cwd=tmp_path, env={})
    until(lambda: session.capture([slot], lines=50)[slot] == ["new-output"])
    assert not by_id(session.panes())[slot].dead


class TitleCase(NamedTuple):
    test_id: str
    title: str
    shown: str


TITLE_CASES = [
    TitleCase("plain", "api · running · 1m02s", "api · running · 1m02s"),
    TitleCase("job", "#(touch pwned)", "#(touch pwned)"),
    TitleCase("format", "#{pane_id} ##{pane_id}", "#{pane_id} ##{pane_id}"),
    TitleCase("style", "#[fg=red]red", "#[fg=red]red"),
    TitleCase("semicolon", "fix a;", "fix a;"),
    TitleCase("control", "tab\there\nnewline", "tab here newline"),
]


@pytest.mark.parametrize("case", TITLE_CASES, ids=[c.test_id for c in TITLE_CASES])
def test_set_title_is_verbatim(case: TitleCase, tmux_socket: str, tmp_path: Path) -> None:
    """Titles are shown as written: tmux formats and #() jobs in them are not expanded."""
    session, panes = make(tmux_socket, tmp_path, slots=1, dashboard_argv=None)
    slot = panes.slots[0]
    session.set_title(slot, case.title)
    assert by_id(session.panes())[slot].title == case.shown
    # tmux prints a style sequence it stores as "##[" so that it stays literal.
    raw = tmux(tmux_socket, "display-message", "-p", "-t", slot, "#{pane_title}")
    assert raw == case.shown.replace("#[", "##[") + "\n"
    border = tmux(tmux_socket, "display-message", "-p", "-t", slot, "#{T:pane-border-format}")
    assert case.shown in border
    assert not (tmp_path / "pwned").exists()
    assert not any(Path.cwd().glob("pwned"))


def test_title_survives_programs_renaming_the_pane(tmux_socket: str, tmp_path: Path) -> None:
    """A program's own terminal title (OSC 2) does not replace limitless's title."""
    session, panes = make(tmux_socket, tmp_path, slots=1)
    slot = panes.slots[0]
    session.set_title(slot, "api · running")
    session.respawn(
        slot,
        ["sh", "-c", "printf '\\033]2;agent title\\033\\\\'; exec sleep 600"],
        cwd=tmp_path,
        env={},
    )

    def renamed() -> bool:
        raw = tmux(tmux_socket, "display-message", "-p", "-t", slot, "#{pane_title}")
        return raw.strip() == "agent title"

    until(renamed)
    assert by_id(session.panes())[slot].title == "api · running"


# ---------------------------------------------------------------------------
# reading panes


def test_capture_reads_last_lines_in_one_call(
    tmux_socket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """capture() returns each pane's last non-empty lines from a single tmux call."""
    script = 'for i in $(seq 1 30); do echo "$0 line $i"; echo; done; exec sleep 600'
    names = ["alpha", "beta", "gamma", "delta"]
    session, panes = make(tmux_socket, tmp_path, slots=4, dashboard_argv=None)
    for pane, name in zip(panes.slots, names, strict=True):
        session.respawn(pane, ["sh", "-c", script, name], cwd=tmp_path, env={})
    targets = list(panes.slots)
    expected = {
        pane: [f"{name} line {i}" for i in (28, 29, 30)]
        for pane, name in zip(targets, names, strict=True)
    }
    until(lambda: session.capture(targets, lines=3) == expected)
    calls: list[int] = []
    real_call = TmuxSession._call

    def counting(self: TmuxSession, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_call(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TmuxSession, "_call", counting)
    assert session.capture(targets, lines=3) == expected
    assert len(calls) == 1


def test_capture_drops_the_dead_pane_note(tmux_socket: str, tmp_path: Path) -> None:
    """A dead pane's last lines are its program's, without tmux's line under it
    ("ended: exit 2 · 21:03", short for narrow panes)."""
    session, panes = make(
        tmux_socket, tmp_path, slots=1, idle_argv=["sh", "-c", "echo one; echo two; exit 2"]
    )
    slot = panes.slots[0]
    until(lambda: by_id(session.panes())[slot].dead)
    until(lambda: session.capture([slot])[slot] == ["one", "two"])
    # what the user sees under it: a short line that fits a narrow pane
    screen = tmux(tmux_socket, "capture-pane", "-p", "-t", slot).split("\n")
    ended = [line for line in screen if line.startswith("ended:")]
    assert len(ended) == 1 and re.fullmatch(r"ended: exit 2 · \d\d:\d\d", ended[0]), screen


def test_capture_skips_vanished_panes(tmux_socket: str, tmp_path: Path) -> None:
    """A pane that no longer exists is left out; the others are still read."""
    session, panes = make(
        tmux_socket, tmp_path, slots=3, idle_argv=["sh", "-c", "echo hello; exec sleep 600"]
    )
    first, gone, last = panes.slots
    tmux(tmux_socket, "kill-pane", "-t", gone)
    until(lambda: session.capture([first, last]) == {first: ["hello"], last: ["hello"]})
    assert session.capture([first, gone, "%9999", last]) == {
        first: ["hello"],
        last: ["hello"],
    }


def test_snapshot_is_one_call(
    tmux_socket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snapshot() reads every pane's state and last lines in one call once panes are known."""
    session, panes = make(
        tmux_socket, tmp_path, slots=3, idle_argv=["sh", "-c", "echo ready; exec sleep 600"]
    )
    until(lambda: all(v == ["ready"] for v in session.capture(panes.slots).values()))
    calls: list[int] = []
    real_call = TmuxSession._call

    def counting(self: TmuxSession, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_call(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TmuxSession, "_call", counting)
    snap = session.snapshot(lines=2)
    assert len(calls) == 1
    assert len(snap.panes) == 5
    assert {pane: snap.lines[pane] for pane in panes.slots} == {
        pane: ["ready"] for pane in panes.slots
    }
    tmux(tmux_socket, "kill-pane", "-t", panes.slots[1])
    snap = session.snapshot(lines=2)
    assert panes.slots[1] not in snap.lines
    assert len(snap.panes) == 4


def test_panes_of_a_missing_session_raise(tmux_socket: str, tmp_path: Path) -> None:
    """Asking a session that is gone raises TmuxError naming the command and tmux's words."""
    make(tmux_socket, tmp_path, run="other", slots=1)
    with pytest.raises(TmuxError) as caught:
        TmuxSession(tmux_socket, "r-9").panes()
    assert "list-panes" in str(caught.value)
    assert "can't find session" in str(caught.value)


# ---------------------------------------------------------------------------
# selecting, killing


def test_select_and_zoom(tmux_socket: str, tmp_path: Path) -> None:
    """select() makes a pane of another window current; zoom() toggles its zoom."""
    session, panes = make(tmux_socket, tmp_path, slots=6)
    target = panes.slots[5]
    session.select(target)
    state = by_id(session.panes())[target]
    assert state.window_name == "agents-2"
    assert state.active and state.window_active
    session.zoom(target)
    assert tmux(tmux_socket, "display-message", "-p", "-t", target, "#{window_zoomed_flag}") == (
        "1\n"
    )
    session.zoom(target)
    assert tmux(tmux_socket, "display-message", "-p", "-t", target, "#{window_zoomed_flag}") == (
        "0\n"
    )


def test_kill_removes_only_this_session(tmux_socket: str, tmp_path: Path) -> None:
    """kill() ends its own session; a second session on the same server survives."""
    mine, _ = make(tmux_socket, tmp_path, run="r-1", slots=2)
    other, _ = make(tmux_socket, tmp_path, run="r-10", slots=2)
    mine.kill()
    assert not mine.exists()
    assert other.exists()
    assert len(other.panes()) == 4
    mine.kill()  # already gone: nothing happens
    assert other.exists()


def test_exists_without_server() -> None:
    """exists() is False when the private server is not even running."""
    assert not TmuxSession("limitless-test-no-such-server", "r-1").exists()
    TmuxSession("limitless-test-no-such-server", "r-1").kill()


def test_message_and_bell_without_clients(tmux_socket: str, tmp_path: Path) -> None:
    """message() and bell() do nothing when nobody is attached."""
    session, _ = make(tmux_socket, tmp_path, slots=1)
    assert session.clients() == []
    session.message("task #{pane_id} failed")
    session.bell()


# ---------------------------------------------------------------------------
# an attached client (a pseudo-terminal, never the test runner's terminal)


class PtyClient:
    """A process attached to a pty whose output is collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.output = bytearray()
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        os.close(self.master)


@pytest.fixture
def attached(tmux_socket: str, tmp_path: Path) -> Iterator[tuple[TmuxSession, PtyClient]]:
    """A session with a client attached through attach(), in a pty."""
    session, _ = make(tmux_socket, tmp_path, slots=2)
    env = {**os.environ, "TERM": "xterm-256color"}
    program = (
        "import sys; from limitless.tmux.session import TmuxSession; "
        f"sys.exit(TmuxSession({tmux_socket!r}, 'r-1').attach())"
    )
    client = PtyClient([sys.executable, "-c", program], env)
    try:
        until(lambda: len(session.clients()) == 1)
        yield session, client
    finally:
        client.close()


def test_attach_message_and_bell(attached: tuple[TmuxSession, PtyClient]) -> None:
    """attach() shows the session; message() reaches the client verbatim; bell() rings it."""
    session, client = attached
    session.message("task #{pane_id} needs you")
    until(lambda: b"task #{pane_id} needs you" in client.output)
    before = client.output.count(b"\a")
    session.bell()
    until(lambda: client.output.count(b"\a") > before)
    tmux(session.socket_name or "", "detach-client", "-s", f"={session.name}")
    assert client.process.wait(10) == 0


def test_select_from_another_session_moves_its_client(
    tmux_socket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard opened in another session: `enter` brings the user's client to the pane."""
    session, panes = make(tmux_socket, tmp_path, slots=2)
    tmux(tmux_socket, "new-session", "-d", "-s", "elsewhere", "-x", "80", "-y", "24", *SLEEP)
    here = tmux(tmux_socket, "display-message", "-p", "-t", "=elsewhere:", "#{pane_id}").strip()
    env = {**os.environ, "TERM": "xterm-256color"}
    client = PtyClient(["tmux", "-L", tmux_socket, "attach", "-t", "=elsewhere"], env)
    try:
        until(lambda: "elsewhere" in tmux(tmux_socket, "list-clients", "-F", "#{session_name}"))
        monkeypatch.setenv("TMUX", f"/tmp/tmux-{os.getuid()}/{tmux_socket},1,0")
        monkeypatch.setenv("TMUX_PANE", here)
        session.select(panes.slots[1])
        clients = tmux(tmux_socket, "list-clients", "-F", "#{session_name} #{pane_id}")
        assert clients.split() == [session.name, panes.slots[1]]
    finally:
        client.close()


def test_keep_rows_grows_the_dashboard_pane_back_and_nothing_else(
    tmux_socket: str, tmp_path: Path
) -> None:
    """A small client squeezed the bottom pane to 2 rows: keep_rows gives it 7 back,
    once; never for a pane of another server, or when the window has no room."""
    session, panes = make(tmux_socket, tmp_path, slots=3, width=80, height=24)
    dashboard = panes.dashboard
    assert dashboard is not None
    server = str(socket_path(tmux_socket))

    def height() -> int:
        return by_id(session.panes())[dashboard].height

    tmux(tmux_socket, "resize-pane", "-t", dashboard, "-y", "2")
    assert height() == 2
    assert not session.keep_rows(dashboard, 7, leave=12, server="/tmp/elsewhere/default")
    assert height() == 2
    assert session.keep_rows(dashboard, 7, leave=12, server=server)
    assert height() == 7
    assert not session.keep_rows(dashboard, 7, leave=12, server=server)
    assert not session.keep_rows("%999", 7, leave=12, server=server)
    tmux(tmux_socket, "resize-pane", "-t", dashboard, "-y", "2")
    assert not session.keep_rows(dashboard, 7, leave=30, server=server)
    assert height() == 2
