"""What an agent's end means: done, or failed with the reason a user needs.

No silent success: an agent program that exits 0 after it was refused a tool,
after its provider failed it, or without changing anything while the task
expects changes has not done its task, whatever its exit code says.
"""

from __future__ import annotations

from dataclasses import dataclass

from limitless.programs.base import Approve, StreamFacts

MAX_LISTED = 4  # denied tool calls named in a reason

NEXT_APPROVE: dict[Approve, str] = {
    "ask": "`approve: edits` lets file edits through, `approve: all` commands too",
    "edits": "`approve: all` lets commands through too",
    "all": "the program refused them itself",
}


@dataclass(frozen=True)
class Verdict:
    """A failure the exit code did not show; `rate_limit` marks a provider's refusal."""

    reason: str
    rate_limit: str = ""


def judge_stream(
    facts: StreamFacts, exit_code: int, approve: Approve, program: str, hint: str | None = None
) -> Verdict | None:
    """A failure that a headless program's events tell, or None when they tell none.
    `hint`: the program's own words for what a looser `approve` allows."""
    if facts.rate_limit:
        return Verdict(f"{program}: {facts.rate_limit}", rate_limit=facts.rate_limit)
    if facts.is_error:
        return Verdict(f"{program} ended on an error: {_short(facts.error)}")
    if facts.denials:
        named = ", ".join(facts.denials[:MAX_LISTED])
        more = len(facts.denials) - MAX_LISTED
        if more > 0:
            named += f" and {more} more"
        return Verdict(
            f"{program} was refused {named} (approve: {approve}; {hint or NEXT_APPROVE[approve]})"
        )
    if exit_code == 0 and not facts.result_seen:
        return Verdict(f"{program} exited without its final result event; see the task log")
    return None


def judge_changes(changed: bool, final_text: str) -> Verdict | None:
    """The agent ended well but left its branch as it found it."""
    if changed:
        return None
    said = f" (its last words: {_short(final_text)})" if final_text else ""
    return Verdict(
        f"the agent changed nothing{said}; if the task may change nothing, set "
        "`changes: optional` on it"
    )


def _short(text: str, limit: int = 160) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"
