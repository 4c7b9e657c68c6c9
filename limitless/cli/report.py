"""Command line of reports: report, events, stats. Parsing and printing only."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from limitless.cli.common import Command, print_json
from limitless.errors import UsageError

FOLLOW_POLL_S = 0.2


def add_commands(command: Command) -> None:
    """Register this module's commands with the main parser."""
    p = command("report", "report a run: figures, tasks, timeline (md, json, html)", cmd_report)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument(
        "--format",
        choices=("md", "json", "html", "ascii"),
        default=None,
        help="default: an ASCII timeline on a terminal, markdown otherwise",
    )
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write to FILE")

    p = command("events", "print a run's event log", cmd_events)
    p.add_argument("run", nargs="?", default=None)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--kind", action="append", default=None, help="only events of this kind")

    p = command("stats", "time, tasks, success rate and cost over all runs", cmd_stats)
    p.add_argument("--by", choices=("agent", "model", "run", "day"), default="agent")
    p.add_argument("--since", metavar="DATE", default=None, help="YYYY-MM-DD (UTC)")
    p.add_argument("--json", action="store_true")


def cmd_report(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.views.report import build_report, render

    fmt = args.format or ("ascii" if sys.stdout.isatty() and not args.output else "md")
    with open_context() as ctx:
        run = ctx.run(args.run)
        report = build_report(ctx.store, run.id)
    text = render(report, fmt)
    if args.output:
        path = Path(args.output)
        try:
            path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as exc:
            msg = f"cannot write the report to {path}: {exc.strerror}; pick a writable -o FILE"
            raise UsageError(msg) from exc
        print(f"wrote the {fmt} report of {run.id} to {path}")
        return 0
    print(text)
    return 0


def event_json(event: object) -> str:
    from limitless.fmt import iso
    from limitless.store import Event

    assert isinstance(event, Event)
    return json.dumps(
        {
            "id": event.id,
            "run": event.run_id,
            "task": event.task_id,
            "ts": event.ts,
            "time": iso(event.ts),
            "kind": event.kind,
            "data": event.data,
        },
        ensure_ascii=False,
        default=str,
    )


def event_line(event: object) -> str:
    from limitless.fmt import clock_ms
    from limitless.store import Event
    from limitless.views.follow import describe

    assert isinstance(event, Event)
    stamp = clock_ms(event.ts)  # an event log: hand-offs are tens of milliseconds apart
    text = describe(event)
    if text is None:
        detail = " ".join(f"{k}={v}" for k, v in event.data.items())
        text = " ".join(part for part in (event.kind, event.task_id or "", detail) if part)
    return f"{stamp} {text}"


def cmd_events(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context

    kinds = set(args.kind) if args.kind else None
    show = event_json if args.json else event_line
    with open_context() as ctx:
        run = ctx.run(args.run)
        after = 0
        while True:
            for event in ctx.store.events(run.id, after_id=after):
                after = event.id
                if kinds is None or event.kind in kinds:
                    print(show(event), flush=args.follow)
            if not args.follow or ctx.store.get_run(run.id).status.finished:
                if args.follow:  # events written just before the run ended
                    for event in ctx.store.events(run.id, after_id=after):
                        if kinds is None or event.kind in kinds:
                            print(show(event), flush=True)
                return 0
            time.sleep(FOLLOW_POLL_S)


def cmd_stats(args: argparse.Namespace) -> int:
    from limitless.run.context import open_context
    from limitless.views.stats import collect, parse_since, render_table, to_json

    since = parse_since(args.since) if args.since else None
    with open_context() as ctx:
        table = collect(ctx.store, by=args.by, since=since)
    if args.json:
        print_json(to_json(table))
        return 0
    print(render_table(table))
    return 0
