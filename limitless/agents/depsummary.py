"""Results passed on: what a task's dependencies did, for its prompt's `{deps_summary}`.

For each dependency: its commit subjects, its diffstat and the last lines of its
output, bounded to `MAX_LINES` lines in all. A prompt without the placeholder is
left exactly as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from limitless.agents.lines import ANSI
from limitless.errors import LimitlessError
from limitless.git.refs import commits_between, diffstat_text
from limitless.plan.model import Plan, Task
from limitless.store import Run, Store, TaskRow

log = logging.getLogger(__name__)

PLACEHOLDER = "{deps_summary}"
MAX_LINES = 60
MAX_LINE_CHARS = 200
LOG_TAIL_BYTES = 64 * 1024


def uses_summary(prompt: str) -> bool:
    return PLACEHOLDER in prompt


def render_prompt(prompt: str, summary: str) -> str:
    """`prompt` with every `{deps_summary}` replaced by `summary` (inserted text is not re-read)."""
    return prompt.replace(PLACEHOLDER, summary)


def _clip(line: str) -> str:
    line = line.rstrip()
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"


def output_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` non-empty lines of a task log, without terminal escapes."""
    if lines <= 0 or not path.exists():
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    text = ANSI.sub("", data.decode("utf-8", errors="replace"))
    kept = [_clip(piece) for piece in re.split(r"[\r\n]+", text) if piece.strip()]
    return kept[-lines:]


def _block(repo_root: Path, run: Run, row: TaskRow, log_path: Path, budget: int) -> list[str]:
    """The lines about one dependency, at most `budget` of them."""
    header = f"## {row.id} ({row.status})"
    base = row.start_sha or run.base_sha
    head = row.head_sha or row.branch
    subjects: list[str] = []
    stat: list[str] = []
    try:
        subjects = [subject for _, subject in commits_between(repo_root, base, head)]
        stat = [line for line in diffstat_text(repo_root, base, head).splitlines() if line]
    except LimitlessError as exc:
        log.info("dependency summary without git facts", extra={"task": row.id, "error": str(exc)})
    room = max(budget - 1, 0)
    commit_room = min(len(subjects), max(1, room // 3)) if subjects else 0
    stat_room = min(len(stat), max(1, room // 3)) if stat else 0
    out_room = max(room - commit_room - stat_room - 2, 0)
    lines = [header]
    if subjects:
        shown = subjects[-commit_room:]
        more = len(subjects) - len(shown)
        lines.append(f"commits ({len(subjects)}{f', last {len(shown)}' if more else ''}):")
        lines += [f"- {_clip(subject)}" for subject in shown]
    else:
        lines.append("commits: none")
    if stat:
        # the summary line ("N files changed, ...") matters most: keep it
        shown_stat = [*stat[: max(stat_room - 1, 0)], stat[-1]] if len(stat) > stat_room else stat
        lines.append("diffstat:")
        lines += [_clip(line) for line in dict.fromkeys(shown_stat)]
    tail = output_tail(log_path, out_room)
    if tail:
        lines.append(f"last output ({len(tail)} lines):")
        lines += tail
    return lines[:budget]


def dependency_summary(
    store: Store, run: Run, plan: Plan, task: Task, max_lines: int = MAX_LINES
) -> str:
    """What `task`'s dependencies did: commits, diffstat, output tail; at most `max_lines`."""
    deps: Sequence[str] = task.depends_on
    if not deps:
        return "(this task has no dependencies)"
    rows = {row.id: row for row in store.get_tasks(run.id)}
    repo_root = Path(run.repo_root)
    budget = max(max_lines // len(deps), 4)
    lines: list[str] = []
    for dep in deps:
        row = rows.get(dep)
        if row is None or dep not in {t.id for t in plan.tasks}:
            continue
        lines += _block(repo_root, run, row, store.log_path(run.id, dep), budget)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], "… (summary cut to stay short)"]
    return "\n".join(lines)
