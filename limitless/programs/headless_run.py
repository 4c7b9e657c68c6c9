"""A headless agent program run outside a task's pane: its output read by its adapter.

The goal planner and the merge phase's conflict resolver start agents too, not
through the in-pane wrapper. `run_headless` runs one (stdout and stderr in one
pipe, as the wrapper's pty mixes them), gives each output line to the
adapter's `EventStream` and hands the readable lines to `on_line` as they come;
what the program said about its run (final text, error, cost, denials) is in
the returned facts.

`python -m limitless.programs.headless_run --adapter NAME --approve A --facts FILE
-- ARGV...` does the same on a terminal: the lines are printed (coloured), the
facts written to FILE as JSON, and it exits with the program's exit code. While it
runs, FILE.live holds the figures so far (cost, session, progress), rewritten when
they change: a task on another host is watched through it. The resolver runs so in
a slot pane, where the program's raw JSON events would be unreadable.

Imports: only the standard library and `limitless.programs.*`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from limitless.programs import APPROVE_CHOICES, PaneLine, Program, StreamFacts, adapter
from limitless.programs.base import Approve
from limitless.programs.verdict import judge_stream

MODULE = "limitless.programs.headless_run"
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
"""Terminal escape sequences (colours, titles) some programs print even into a pipe."""
TAIL_LINES = 8
MAX_OUTPUT = 1_000_000
_RESET = "\x1b[0m"
STYLES = {"text": "", "action": "\x1b[36m", "dim": "\x1b[2m", "good": "\x1b[32m", "bad": "\x1b[31m"}


@dataclass(frozen=True)
class HeadlessEnd:
    """How a headless run ended: exit code (None when stopped at its time limit), the
    facts its events told, and its last readable lines."""

    exit_code: int | None
    facts: StreamFacts
    tail: tuple[str, ...] = ()
    verdict: str = ""  # the program's own account of a failure, "" when none
    rate_limit: str = ""
    output: str = ""  # all it printed (escape sequences removed; the first MAX_OUTPUT chars)

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


def run_headless(
    program: Program,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    approve: Approve,
    timeout_s: float | None = None,
    on_line: Callable[[PaneLine], None] | None = None,
    own_group: bool = True,
    stdin_terminal: bool = False,
    on_figures: Callable[[StreamFacts], None] | None = None,
) -> HeadlessEnd:
    """Run `argv` (no shell) in `cwd` with `env`, reading its output through `program`'s
    event reader. `own_group`: in a process group of its own, killed whole at the time
    limit; `stdin_terminal`: keep this process's stdin (else it reads nothing);
    `on_figures`: called with the facts so far whenever cost, session or progress change.
    FileNotFoundError when the program is not there."""
    stream = program.stream(cwd, env)
    if stream is None:  # a program without an event reader: its lines as they are
        msg = f"{program.display} prints no events limitless reads"
        raise ValueError(msg)
    tail: list[str] = []
    output: list[str] = []
    size = 0
    figures: tuple[object, ...] = (None, None, None)

    def told() -> None:
        nonlocal figures
        facts = stream.facts
        now = (facts.cost_usd, facts.session_id, facts.progress)
        if on_figures is not None and now != figures:
            figures = now
            on_figures(facts)

    def say(line: PaneLine) -> None:
        tail.append(line.text)
        del tail[:-TAIL_LINES]
        if on_line is not None:
            on_line(line)

    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=None if stdin_terminal else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=own_group,
    )

    def read() -> None:
        nonlocal size
        assert process.stdout is not None
        for raw in process.stdout:
            whole = ANSI.sub("", raw.decode("utf-8", errors="replace"))
            if size < MAX_OUTPUT:
                output.append(whole)
                size += len(whole)
            text = whole.strip()
            if not text:
                stream.blank()
                continue
            for line in stream.line(text):
                say(line)
            told()

    reader = threading.Thread(target=read, name="headless-output", daemon=True)
    reader.start()
    forward = _forward_signals(process) if not own_group else None
    try:
        code: int | None = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(process, own_group)
        code = None
    except BaseException:  # Ctrl-C: a program in a group of its own would not see it
        _stop(process, own_group)
        raise
    finally:
        if forward is not None:
            forward()
    reader.join(timeout=10)
    for line in stream.finish():
        say(line)
    facts = stream.facts
    if code is not None and code < 0:
        code = 128 - code
    verdict = None
    if code is not None:
        verdict = judge_stream(facts, code, approve, program.display, program.approve_hint(approve))
    return HeadlessEnd(
        exit_code=code,
        facts=facts,
        tail=tuple(tail),
        verdict=verdict.reason if verdict else "",
        rate_limit=verdict.rate_limit if verdict else "",
        output="".join(output)[:MAX_OUTPUT],
    )


def _stop(process: subprocess.Popen[bytes], own_group: bool) -> None:
    """End the program (and, in its own group, everything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if own_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _forward_signals(process: subprocess.Popen[bytes]) -> Callable[[], None]:
    """Pass a SIGTERM or SIGHUP sent to this process on to the program; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def undo() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return undo


def view_argv(
    adapter_name: str,
    approve: Approve,
    facts_file: Path,
    argv: Sequence[str],
    log_file: Path | None = None,
) -> list[str]:
    """`argv` run under `main` by this very interpreter: readable lines (kept in `log_file`
    too), facts in `facts_file`."""
    log = ["--log", str(log_file)] if log_file is not None else []
    return [
        sys.executable,
        "-m",
        MODULE,
        "--adapter",
        adapter_name,
        "--approve",
        approve,
        "--facts",
        str(facts_file),
        *log,
        "--",
        *argv,
    ]


LIVE_SUFFIX = ".live"  # beside the facts file: the figures so far, while the program runs


@dataclass(frozen=True)
class Figures:
    """What a running program has told so far that a dashboard shows."""

    cost_usd: float | None = None
    session_id: str | None = None
    progress: float | None = None


def figures_json(facts: StreamFacts) -> str:
    """The live figures file's text (read back by `parse_figures`)."""
    return json.dumps(
        {"cost_usd": facts.cost_usd, "session_id": facts.session_id, "progress": facts.progress}
    )


def parse_figures(text: str) -> Figures | None:
    """The figures `figures_json` wrote, or None when `text` is not that (none yet, cut)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    cost, session, progress = data.get("cost_usd"), data.get("session_id"), data.get("progress")
    return Figures(
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        session_id=session if isinstance(session, str) else None,
        progress=float(progress) if isinstance(progress, int | float) else None,
    )


def _write_figures(path: Path, facts: StreamFacts) -> None:
    partial = path.with_name(path.name + ".tmp")
    with contextlib.suppress(OSError):
        partial.write_text(figures_json(facts), encoding="utf-8")
        partial.replace(path)


def facts_json(end: HeadlessEnd) -> str:
    """What `main` writes to its facts file (read back by `read_facts`)."""
    return json.dumps(
        {
            "exit_code": end.exit_code,
            "verdict": end.verdict,
            "rate_limit": end.rate_limit,
            "facts": dataclasses.asdict(end.facts),
            "tail": list(end.tail),
        }
    )


def read_facts(path: Path) -> HeadlessEnd | None:
    """The facts `main` wrote to `path`, or None when it wrote none (stopped, lost)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return parse_facts(text)


def parse_facts(text: str) -> HeadlessEnd | None:
    """The facts `main` wrote (the text of its facts file), or None when not facts."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("facts"), dict):
        return None
    known = {f.name for f in dataclasses.fields(StreamFacts)}
    facts = StreamFacts(**{k: v for k, v in data["facts"].items() if k in known})
    code = data.get("exit_code")
    return HeadlessEnd(
        exit_code=code if isinstance(code, int) else None,
        facts=facts,
        tail=tuple(str(line) for line in data.get("tail") or []),
        verdict=str(data.get("verdict") or ""),
        rate_limit=str(data.get("rate_limit") or ""),
    )


def _open_log(path: Path | None) -> TextIO | None:
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8")
    except OSError:
        return None


def main(args: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m limitless.programs.headless_run",
        description="run a headless agent program, showing its events as readable lines",
    )
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--approve", choices=sorted(APPROVE_CHOICES), default="edits")
    parser.add_argument("--facts", type=Path, required=True)
    parser.add_argument("--log", type=Path, default=None, help="also write the lines here")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    options = parser.parse_args(args)
    argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
    program = adapter(options.adapter)
    if program is None or not argv:
        parser.error("an adapter limitless knows and a command after -- are needed")
    assert program is not None

    log = _open_log(options.log)
    live = options.facts.with_name(options.facts.name + LIVE_SUFFIX)
    with contextlib.suppress(OSError):
        live.parent.mkdir(parents=True, exist_ok=True)

    def show(line: PaneLine) -> None:
        colour = STYLES[line.style]
        text = f"{colour}{line.text}{_RESET}" if colour else line.text
        print(text, flush=True)
        if log is not None:
            with contextlib.suppress(OSError):
                log.write(line.text + "\n")
                log.flush()

    try:
        end = run_headless(
            program,
            argv,
            cwd=Path.cwd(),
            env=os.environ,
            approve=APPROVE_CHOICES[options.approve],
            on_line=show,
            own_group=False,
            stdin_terminal=True,
            on_figures=lambda facts: _write_figures(live, facts),
        )
    except FileNotFoundError:
        print(f"{argv[0]}: command not found ({program.install})", file=sys.stderr)
        return 127
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if log is not None:
            log.close()
    partial = options.facts.with_name(options.facts.name + ".tmp")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(facts_json(end), encoding="utf-8")
    partial.replace(options.facts)
    return end.exit_code if end.exit_code is not None else 124


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
