"""`limitless validate`: a plan checked as `run` would read it, before anything runs.

Three outcomes: problems in the plan itself (exit 2, each with its place),
problems of this machine or repository that would stop the run (exit 3), or a
plan that runs, perhaps with warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from limitless.errors import LimitlessError, PlanError, Problem
from limitless.plan.model import Plan


@dataclass(frozen=True)
class Validation:
    """What `validate` found: `problems` in the plan, else the `environment`'s problems
    and `warnings` about a plan that loads."""

    plan: Plan | None
    problems: list[Problem] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate(path: Path) -> Validation:
    """Check the plan at `path`, with the user config's defaults and agent profiles."""
    from limitless.agents.check import plan_problems
    from limitless.plan import userconfig
    from limitless.plan.overlap import overlap_warnings

    try:
        plan = userconfig.load_plan(path)
    except PlanError as exc:
        return Validation(plan=None, problems=list(exc.problems))
    # A program missing here may be there where the plan runs; a refusal is the plan's.
    programs = plan_problems(plan)
    warnings = overlap_warnings(plan) + [p.message for p in programs if p.kind != "refused"]
    environment = repository_problems(plan.base)
    environment += [p.message for p in programs if p.kind == "refused"]
    return Validation(plan=plan, environment=environment, warnings=warnings)


def repository_problems(base: str | None) -> list[str]:
    """What the repository here lacks for a run (signing, git-lfs); [] outside a repository."""
    from limitless.git import repochecks
    from limitless.git.repo import find_repo

    try:
        repo = find_repo(Path.cwd())
        ref = f"refs/heads/{base}" if base else "HEAD"
        return [f.detail for f in repochecks.findings(repo.root, ref) if not f.ok]
    except LimitlessError:
        return []
