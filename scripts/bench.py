#!/usr/bin/env python3
"""limitless benchmarks: scheduling, setup, hand-off, done detection, dashboard, merge, scale.

    .venv/bin/python scripts/bench.py [--quick] [--json FILE] [--only GROUP ...]

Builds its own repositories (2,000 files each) and plans in a temporary folder,
runs every run on a private tmux socket (killed at the end; no other server is
touched) and prints a table of figures with their goals. Exit 0 when every group
was measured (goals may still be missed: see the `ok` column), 1 when a group
could not be measured, 2 on bad usage or a missing bootstrap.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    import psutil
    from benchlib.figures import Figure
    from benchlib.groups import group_names, run_group
    from benchlib.harness import BenchError, Harness

    import limitless
except ImportError as exc:  # pragma: no cover - depends on how the script is started
    print(
        f"bench: cannot import limitless ({exc}); run it with the project's venv: "
        ".venv/bin/python scripts/bench.py (bootstrap: ./scripts/test.sh)",
        file=sys.stderr,
    )
    raise SystemExit(2) from exc

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a reduced set, under 3 minutes")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument(
        "--only",
        metavar="GROUP",
        action="append",
        choices=group_names(),
        help=f"run only this group (repeatable): {', '.join(group_names())}",
    )
    parser.add_argument(
        "--socket", metavar="NAME", help="private tmux socket name (default: a fresh one)"
    )
    parser.add_argument(
        "--files", type=int, default=2000, help="files in each synthetic repository (2000)"
    )
    parser.add_argument(
        "--loose-objects",
        action="store_true",
        help="leave the synthetic repositories' objects unpacked (figures before 2026-12-05 "
        "afternoon); by default they are packed, as a clone's are",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "missing"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(quick: bool) -> dict[str, object]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m_at_start": round(load[0], 2),
        "python": platform.python_version(),
        "tmux": _version(["tmux", "-V"]),
        "git": _version(["git", "--version"]),
        "limitless_commit": _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "quick": quick,
    }


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "goal", "ok")]
    for f in figures:
        ok = "info" if f.goal is None else "ok" if f.ok else "MISSED"
        rows.append((f.name, f"{f.value:.3g}", f.unit, f.goal or "-", ok))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("tmux") is None:
        print("bench: tmux is not installed", file=sys.stderr)
        return 2
    groups = args.only or group_names()
    # Byte-code for limitless itself, as an installed wheel has it: where
    # PYTHONDONTWRITEBYTECODE is set, every supervisor and wrapper would compile
    # the package's sources again (0.25 s of each start-up, measured here).
    compileall.compile_dir(str(Path(limitless.__file__).parent), quiet=1)
    socket = args.socket or f"limitless-bench-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="limitless-bench-"))
    info = machine(args.quick)
    say(f"bench: groups {', '.join(groups)}; tmux socket {socket}; folder {workdir}")
    info["files_per_repository"] = args.files
    harness = Harness(workdir, socket, say, files=args.files, packed=not args.loose_objects)
    figures: list[Figure] = []
    failed = False
    started = time.monotonic()
    try:
        for name in groups:
            say(f"bench: {name} ...")
            t0 = time.monotonic()
            try:
                measured = run_group(name, harness, args.quick)
                figures += measured
                for figure in measured:
                    say(
                        f"  {figure.name} = {figure.value:.3g} {figure.unit} "
                        f"(goal {figure.goal or '-'})"
                    )
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                failed = True
                say(f"bench: {name} could not be measured: {exc}")
                figures.append(Figure(f"{name}.error", 0.0, "", "measured", False))
            say(f"bench: {name} took {time.monotonic() - t0:.0f}s")
            if args.json:  # after every group, so a long bench that stops keeps its figures
                write_json(Path(args.json), info, figures)
    finally:
        harness.kill_server()
        if args.keep:
            say(f"bench: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info["bench_seconds"] = round(time.monotonic() - started, 1)
    print(table(figures))
    if args.json:
        write_json(Path(args.json), info, figures)
    return 1 if failed else 0


def write_json(path: Path, info: dict[str, object], figures: list[Figure]) -> None:
    document = {"machine": info, "figures": [f.to_json() for f in figures]}
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
