"""`limitless doctor`: the checks that tell whether limitless can work here."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import LimitlessError
from limitless.versions import GIT, MIN_PYTHON, TMUX, Tool, dotted, tool_version


@dataclass(frozen=True)
class Check:
    """One doctor check: what was checked, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str
    required: bool = True
    """A failed check that is not required (an agent program the user may not use) is shown
    but does not fail `doctor`."""


def _version_check(tool: Tool) -> Check:
    banner, version = tool_version(tool.argv)
    name, wanted = tool.name, tool.wanted
    if not banner:
        return Check(name, False, f"not found on PATH; install {name} {wanted} or newer")
    if version is None:
        return Check(name, False, f"could not read the version from {banner!r}")
    if version < tool.minimum:
        return Check(name, False, f"{banner} is too old; limitless needs {name} >= {wanted}")
    return Check(name, True, banner)


def run_checks(cwd: Path) -> list[Check]:
    """Every check, in the order a user would fix them."""
    checks = [
        Check(
            "python",
            sys.version_info >= MIN_PYTHON,
            f"Python {sys.version.split()[0]} (needs >= {dotted(MIN_PYTHON)})",
        ),
        _version_check(TMUX),
        _version_check(GIT),
    ]
    checks += _repository_checks(cwd)
    checks += _agent_checks()
    checks += _sandbox_checks()
    return checks


def _sandbox_checks() -> list[Check]:
    from limitless.agents.sandbox import bwrap_version, unavailable

    reason = unavailable()
    if reason is not None:
        detail = f"{reason} (only plans with `sandbox: worktree` need it)"
        return [Check("sandbox", False, detail, required=False)]
    return [Check("sandbox", True, f"{bwrap_version()}: `sandbox: worktree` works here", False)]


def _agent_checks() -> list[Check]:
    from limitless.agents.check import profile_reports
    from limitless.plan import userconfig
    from limitless.programs.profiles import BUILTIN_PROFILES

    profiles = dict(BUILTIN_PROFILES)
    with contextlib.suppress(LimitlessError):  # a broken config is reported by its own commands
        profiles.update(userconfig.load_config().agents)
    return [
        Check(f"agent {report.profile}", report.supported, report.detail, required=False)
        for report in profile_reports(profiles)
    ]


def _repository_checks(cwd: Path) -> list[Check]:
    from limitless.git import repochecks
    from limitless.git.repo import find_repo, state_dir
    from limitless.store import Store

    try:
        repo = find_repo(cwd)
    except LimitlessError as exc:
        return [Check("repository", False, str(exc))]
    checks = [Check("repository", True, f"{repo.root} (branch {repo.current_branch or '-'})")]
    try:
        with Store.open(state_dir(repo)) as store:
            probe = store.state_dir / ".doctor-probe"
            probe.write_text("ok")
            probe.unlink()
        checks.append(Check("store", True, f"{store.path} is writable"))
    except (OSError, LimitlessError) as exc:
        checks.append(Check("store", False, f"{state_dir(repo)} is not writable: {exc}"))
    try:
        found = repochecks.findings(repo.root)
    except LimitlessError as exc:
        found = [repochecks.Finding("repository checks", False, str(exc))]
    checks += [Check(finding.name, finding.ok, finding.detail) for finding in found]
    return checks
