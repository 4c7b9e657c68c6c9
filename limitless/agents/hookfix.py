"""A repository hook's refusal of an interactive agent's leftovers, told to the agent.

When an interactive agent's turn ends and `idle_done` runs out, the wrapper
commits what the agent left while the agent is still open (`InteractiveDriver`).
A commit hook that refuses it (`CommitRejected`: a secret scanner, a linter, a
message rule) is typed into the agent as its next prompt, so it can fix its
work; the refusal before MAX_REJECTIONS ends the task failed with the hook's
output. The text is typed as keys into the agent's own terminal, never through
a shell: it is one line (Enter would send it early), without control characters.
"""

from __future__ import annotations

import re

from limitless.git.runner import CommitRejected

MAX_REJECTIONS = 3  # the third refusal fails the task: the agent had two turns to fix it
PROMPT_CHARS = 700  # of the hook's words, typed (a TUI folds a longer paste away)
REASON_CHARS = 160  # of the hook's first line, in the task's status reason
# Escape sequences (colours a hook prints), then any other control character.
ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|.)")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(text: str, limit: int) -> str:
    """`text` as one printable line: its lines joined by " / ", cut at `limit` characters."""
    text = CONTROL.sub("", ESCAPE.sub("", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    joined = " / ".join(line for line in lines if line)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def fix_prompt(rejected: CommitRejected) -> str:
    """What the agent is asked after `rejected`: what was refused, by which hook, its words."""
    said = one_line(rejected.output, PROMPT_CHARS) or "(it printed nothing)"
    return (
        f"limitless could not commit your work: the repository's {rejected.hook} hook "
        f"rejected the commit and said: {said} — Please fix what it reports in the files "
        "(do not bypass or change the hook); your work is committed again when your "
        "turn ends."
    )


def status_reason(rejected: CommitRejected, count: int) -> str:
    """The task's reason while the agent fixes it: `status` and the dashboard show it."""
    lines = rejected.output.strip().splitlines()
    first = one_line(lines[0], REASON_CHARS) if lines else ""
    said = f": {first}" if first else ""
    return (
        f"the {rejected.hook} hook refused the commit of its work "
        f"({count} of {MAX_REJECTIONS}){said} — the agent was asked to fix it"
    )


def gave_up_reason(rejected: CommitRejected, asked: int) -> str:
    """Why the task failed, before the hook's own message (`str(rejected)`), when the
    agent was asked `asked` times to fix what a hook refused."""
    times = "once" if asked == 1 else f"{asked} times"
    return (
        f"the agent was asked {times} to fix what the {rejected.hook} hook refused, "
        "and the hook refused the commit again"
    )
