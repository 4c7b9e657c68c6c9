"""Group `forkserver`: a task's pane program started cold or forked from a warm server.

One tmux pane is respawned (`respawn-pane -k`, as the supervisor starts a task)
with a bare isolated interpreter that only stamps the time (the floor of any Python
pane program), the cold command (`python -m benchlib.forkprobe`, which imports what
`limitless _exec` imports, then stamps the time its main() is entered) or the
same command through the fork server's client; alternating, `runs` of each. The
start figure is respawn → main() entered. Then the memory of one of each, held
at main(): USS of the cold program, of the forked program, of the client and of
the server's watcher beside it (psutil `memory_full_info().uss`).

The lead registers it in groups.py: `"forkserver": forkserver_group.measure,`
(with `from benchlib import forkserver as forkserver_group`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from benchlib.harness import BenchError, Harness, percentile, wait_until

if TYPE_CHECKING:
    from benchlib.figures import Figure

SCRIPTS = Path(__file__).resolve().parent.parent
CLIENT = SCRIPTS.parent / "limitless" / "forkserver" / "client.py"
PROBE = [sys.executable, "-m", "benchlib.forkprobe"]
START_GOAL_MS = 20.0  # the brief: the client's own start-up ≤ 20 ms
USS_GOAL_MB = 10.0  # issue 15: memory per running task beyond the agent program
# The floor: the least a Python pane program can cost (an isolated interpreter, no imports).
FLOOR = "import os, sys, time; open(sys.argv[1], 'w').write(f'{time.time()} {os.getpid()}\\n')"


def _tmux(h: Harness, *args: str) -> str:
    result = subprocess.run(
        ["tmux", "-L", h.socket, *args], env=h.env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        msg = f"tmux {' '.join(args)}: {result.stderr.strip()}"
        raise BenchError(msg)
    return result.stdout.strip()


def _start(h: Harness, pane: str, argv: list[str], stamp: Path) -> tuple[float, int]:
    """Respawn the pane with `argv`; (seconds to main(), the program's pid)."""
    stamp.unlink(missing_ok=True)
    began = time.time()
    _tmux(h, "respawn-pane", "-k", "-t", pane, "-c", str(SCRIPTS), *argv)
    wait_until(lambda: stamp.exists() and stamp.read_text().endswith("\n"), 30, "main()")
    entered, pid = stamp.read_text().split()
    return float(entered) - began, int(pid)


def _uss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_full_info().uss) / 2**20


def measure(h: Harness, quick: bool) -> list[Figure]:
    """Pane start → main() and memory per task, cold against forked."""
    from benchlib.figures import at_most, info

    runs = 5 if quick else 20
    folder = h.workdir / "forkserver"
    folder.mkdir(parents=True, exist_ok=True)
    sock, stamp, hold = folder / "fork.sock", folder / "stamp", folder / "hold"
    server = subprocess.Popen(
        [
            sys.executable, "-m", "limitless.forkserver", str(sock),
            "--preload", "benchlib.forkprobe",
            "--target", "benchlib.forkprobe", "benchlib.forkprobe:main",
        ],
        cwd=SCRIPTS,
        env=h.env,
    )  # fmt: skip
    try:
        wait_until(sock.is_socket, 30, "the fork server")
        pane = _tmux(
            h, "new-session", "-d", "-P", "-F", "#{pane_id}", "-s", "forkserver",
            "-x", "120", "-y", "40", "sleep", "600",
        )  # fmt: skip
        _tmux(h, "set-option", "-t", "forkserver", "remain-on-exit", "on")
        cold_argv = [*PROBE, str(stamp)]
        forked_argv = [sys.executable, "-S", "-I", str(CLIENT), str(sock), *cold_argv]
        floor_argv = [sys.executable, "-S", "-I", "-c", FLOOR, str(stamp)]
        times: dict[str, list[float]] = {"floor": [], "cold": [], "forked": []}
        modes = (("floor", floor_argv), ("cold", cold_argv), ("forked", forked_argv))
        for _ in range(runs):
            for mode, argv in modes:
                seconds, _ = _start(h, pane, argv, stamp)
                times[mode].append(seconds * 1000)
        uss: dict[str, float] = {}
        hold.unlink(missing_ok=True)
        _, cold_pid = _start(h, pane, [*cold_argv, str(hold)], stamp)
        uss["cold program"] = _uss_mb(cold_pid)
        hold.touch()
        hold.unlink()
        _, forked_pid = _start(h, pane, [*forked_argv, str(hold)], stamp)
        program = psutil.Process(forked_pid)
        uss["forked program"] = _uss_mb(forked_pid)
        uss["watcher"] = _uss_mb(program.ppid())
        uss["client"] = _uss_mb(int(_tmux(h, "display-message", "-p", "-t", pane, "#{pane_pid}")))
        uss["server"] = _uss_mb(server.pid)
        hold.touch()
        _tmux(h, "kill-session", "-t", "forkserver")
    finally:
        server.kill()
        server.wait()
    for mode, values in times.items():
        h.say(f"  {mode}: respawn → main() ms " + " ".join(f"{v:.0f}" for v in values))
    h.say("  USS MiB: " + ", ".join(f"{name} {value:.1f}" for name, value in uss.items()))
    floor_ms, cold_ms, forked_ms = (statistics.median(times[m]) for m, _ in modes)
    per_task = uss["forked program"] + uss["watcher"] + uss["client"]
    return [
        info("forkserver.floor_start_p50", floor_ms, "ms"),
        info("forkserver.floor_start_p95", percentile(times["floor"], 0.95), "ms"),
        info("forkserver.cold_start_p50", cold_ms, "ms"),
        info("forkserver.cold_start_p95", percentile(times["cold"], 0.95), "ms"),
        info("forkserver.forked_start_p50", forked_ms, "ms"),
        at_most("forkserver.forked_over_floor_p50", forked_ms - floor_ms, "ms", START_GOAL_MS),
        info("forkserver.forked_start_p95", percentile(times["forked"], 0.95), "ms"),
        info("forkserver.cold_program_uss", uss["cold program"], "MiB"),
        info("forkserver.forked_program_uss", uss["forked program"], "MiB"),
        info("forkserver.client_uss", uss["client"], "MiB"),
        info("forkserver.watcher_uss", uss["watcher"], "MiB"),
        at_most("forkserver.forked_per_task_uss", per_task, "MiB", USS_GOAL_MB),
    ]
