"""The run's own processes seen from outside: is a task's wrapper, or a run's supervisor,
alive; what ports a wrapper was given; stopping a wrapper.

A recorded pid counts only while its process runs the program the pane contract
(`limitless.tmux.pane_programs`) says it does: pids are reused.
"""

from __future__ import annotations

import contextlib

import psutil

from limitless.run.ports import ports_in_env
from limitless.store import Run, TaskRow
from limitless.tmux.pane_programs import runs_supervisor, runs_wrapper
from limitless.tmux.panes import PaneState


def supervisor_alive(run: Run) -> bool:
    """Is the recorded supervisor pid a live `limitless _supervise` of this run?"""
    if not run.supervisor_pid:
        return False
    try:
        cmdline = psutil.Process(run.supervisor_pid).cmdline()
    except psutil.Error:
        return False
    return runs_supervisor(cmdline, run.id)


def wrapper_alive(row: TaskRow) -> bool:
    """Is the recorded wrapper pid a live `limitless _exec` for this task?"""
    if not row.pid:
        return True  # launched, wrapper not yet up: the pane tells
    try:
        cmdline = psutil.Process(row.pid).cmdline()
    except psutil.Error:
        return False
    return runs_wrapper(cmdline, row.id)


def pane_runs_wrapper(pane: PaneState | None, row: TaskRow) -> bool:
    """Does the pane live and run `limitless _exec` for this task (not the idle command)?"""
    if pane is None or pane.dead or not pane.pid:
        return False
    try:
        cmdline = psutil.Process(pane.pid).cmdline()
    except (psutil.Error, ValueError):
        return False
    return runs_wrapper(cmdline, row.id)


def wrapper_ports(row: TaskRow, pane: PaneState | None) -> tuple[int, ...]:
    """The ports the task's running wrapper was started with (none if unreadable).

    Read from the pane's own process: a wrapper forked by the fork server shows the
    server's environment in /proc, the pane's client the one the pane was given.
    """
    pid = pane.pid if pane is not None and pane.pid else row.pid
    if not pid:
        return ()
    try:
        return ports_in_env(psutil.Process(pid).environ())
    except psutil.Error:
        return ()


def stop_wrapper(row: TaskRow) -> None:
    """SIGTERM the task's wrapper (it kills its agent's process tree and records the end)."""
    if row.pid and wrapper_alive(row):
        with contextlib.suppress(psutil.Error):
            psutil.Process(row.pid).terminate()
