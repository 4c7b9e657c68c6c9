"""CPU and memory of each running task's process tree, cheaply, poll after poll.

Each tree is walked through `/proc/<pid>/task/<tid>/children` (Linux; elsewhere
one `psutil.process_iter` scan builds a parent → children map). CPU is measured
between two readings of `/proc/<pid>/stat`, or (without /proc) by `Process`
objects kept between polls, so `cpu_percent` measures the time since the last one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import psutil


def _proc_children(pid: int) -> list[int]:
    """The children of `pid`, from `/proc/<pid>/task/<tid>/children` of each of its threads."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


_PROC_CHILDREN = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
"""Whether this kernel lists a thread's children in /proc (Linux with CONFIG_PROC_CHILDREN)."""


_PROC_STAT = os.path.exists(f"/proc/{os.getpid()}/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if _PROC_STAT else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if _PROC_STAT else 4096


@dataclass(frozen=True)
class ProcSample:
    """One process as `/proc/<pid>/stat` shows it: enough for CPU % between two samples."""

    started: int  # clock ticks after boot: a reused pid has another
    cpu_s: float  # user + system time so far
    rss: int  # bytes
    at: float  # time.monotonic() of the reading


def read_proc_stat(pid: int) -> ProcSample | None:
    """One read of `/proc/<pid>/stat` (Linux); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        utime, stime = int(fields[11]), int(fields[12])
        started, rss_pages = int(fields[19]), int(fields[21])
    except (IndexError, ValueError):
        return None
    return ProcSample(
        started=started,
        cpu_s=(utime + stime) / _CLOCK_TICKS,
        rss=rss_pages * _PAGE_SIZE,
        at=time.monotonic(),
    )


@dataclass(frozen=True)
class Usage:
    """What one task's process tree uses: CPU (% of one core) and memory."""

    cpu_percent: float
    rss_mb: float


class ProcessWatch:
    """`usage` of process trees, poll after poll, with last poll's readings kept."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._samples: dict[int, ProcSample] = {}

    def usage(self, roots: Mapping[str, Sequence[int]]) -> dict[str, Usage]:
        """Task id → what the process trees under its root pids use (each process once)."""
        if not roots:
            self._procs.clear()
            self._samples.clear()
            return {}
        children_of = self._children_reader()
        usage: dict[str, Usage] = {}
        kept: dict[int, psutil.Process] = {}
        samples: dict[int, ProcSample] = {}
        for task_id, root in roots.items():
            cpu = rss = 0.0
            todo = list(root)
            seen: set[int] = set()
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                todo.extend(children_of(pid))
                if _PROC_STAT:
                    sample = read_proc_stat(pid)
                    if sample is None:
                        continue
                    cpu += self._cpu_since_last(pid, sample)
                    rss += sample.rss
                    samples[pid] = sample
                    continue
                # Last poll's object for a pid that was not reused, so cpu_percent
                # measures the time since then.
                member = self._process(pid)
                if member is None:
                    continue
                try:
                    with member.oneshot():
                        cpu += member.cpu_percent(None)
                        rss += member.memory_info().rss
                except psutil.Error:
                    continue
                kept[pid] = member
            usage[task_id] = Usage(cpu_percent=cpu, rss_mb=rss / (1 << 20))
        self._procs = kept
        self._samples = samples
        return usage

    def _cpu_since_last(self, pid: int, sample: ProcSample) -> float:
        """CPU % of one core since the last poll's sample of the same process (0 at first)."""
        last = self._samples.get(pid)
        if last is None or last.started != sample.started or sample.at <= last.at:
            return 0.0
        return max(0.0, (sample.cpu_s - last.cpu_s) / (sample.at - last.at) * 100)

    def _children_reader(self) -> Callable[[int], list[int]]:
        """pid → its children's pids: from /proc (a few small reads per tree) where the
        kernel lists children, else from one scan of every process."""
        if _PROC_CHILDREN:
            return _proc_children
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            ppid = proc.info.get("ppid")
            if ppid is not None:
                children.setdefault(int(ppid), []).append(proc.pid)
        return lambda pid: children.get(pid, [])

    def _process(self, pid: int) -> psutil.Process | None:
        """The kept `Process` of `pid` (unless the pid was reused), else a new one."""
        kept = self._procs.get(pid)
        if kept is not None and kept.is_running():
            return kept
        try:
            return psutil.Process(pid)
        except psutil.Error:
            return None
