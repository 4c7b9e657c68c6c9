"""Whether the agent programs a plan starts are here, new enough, and allowed to run as asked.

`run` refuses a plan whose programs fail these checks before anything is made
(exit 3); `validate` and `doctor` say the same. A program's version is read
once (`PROGRAM --version`) and remembered by the executable's path, size and
modification time in the user's cache folder, so the check costs no start-up
of the program on later runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from limitless.plan.model import Plan, Task
from limitless.programs import Program, adapter
from limitless.programs.launch import resolver_approve
from limitless.programs.profiles import AgentContext, AgentProfile, render_argv


@dataclass(frozen=True)
class ProgramProblem:
    """One reason the plan cannot start some of its tasks here."""

    message: str
    kind: Literal["missing", "version", "refused", "sandbox"]


@dataclass(frozen=True)
class ProgramReport:
    """What `doctor` shows for one agent profile's program."""

    profile: str
    executable: str
    path: str | None
    version: str | None
    tested_version: str | None
    supported: bool
    detail: str


def _executable(profile: AgentProfile, task: Task | None = None) -> tuple[str, str | None]:
    """The program a profile starts and where it is found on the PATH the task will have."""
    context = AgentContext(
        prompt="", prompt_file="", task=task.id if task else "", worktree="", branch=""
    )
    argv = render_argv(profile, context)
    program = argv[0] if argv else ""
    env = task.env if task else {}
    path = env.get("PATH") or profile.env.get("PATH") or os.environ.get("PATH")
    return program, shutil.which(program, path=path) if program else None


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "limitless" / "program-versions.json"


def program_version(program: Program, path: str) -> str | None:
    """The version of the program at `path`, from the cache when the file is unchanged."""
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
    except OSError:
        return None
    key = f"{real}:{stat.st_size}:{stat.st_mtime_ns}"
    cache_file = _cache_file()
    cache: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(cache_file.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            cache = {str(k): str(v) for k, v in loaded.items()}
    if key in cache:
        return cache[key]
    version = program.version(path)
    if version is not None:
        cache[key] = version
        with contextlib.suppress(OSError):
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_file.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(cache, indent=1), encoding="utf-8")
            temporary.replace(cache_file)
    return version


def _shown(tasks: list[str]) -> str:
    return ", ".join(tasks[:3]) + (f" and {len(tasks) - 3} more" if len(tasks) > 3 else "")


def plan_problems(plan: Plan, *, is_root: bool | None = None) -> list[ProgramProblem]:
    """Every reason the plan's agent programs cannot run its tasks here, grouped by program."""
    is_root = os.geteuid() == 0 if is_root is None else is_root
    missing: dict[tuple[str, str], list[str]] = {}
    old: dict[tuple[str, str, str], list[str]] = {}
    refused: dict[str, list[str]] = {}
    for task in plan.tasks:
        profile = plan.profile(task)
        program, path = _executable(profile, task)
        known = adapter(profile.adapter)
        if path is None:
            missing.setdefault((program, profile.name), []).append(task.id)
            continue
        if known is None:
            continue
        version = program_version(known, path)
        if version is not None and not known.supports(version):
            old.setdefault((program, profile.name, version), []).append(task.id)
        env = {**os.environ, **known.environment(), **profile.env, **task.env}
        refusal = known.refusal(plan.approve_of(task), env, is_root)
        if refusal is not None:
            refused.setdefault(refusal.message, []).append(task.id)
    resolver = _resolver_problem(plan, is_root)
    problems: list[ProgramProblem] = [resolver] if resolver is not None else []
    for (program, profile_name), tasks in missing.items():
        known = adapter(plan.agents[profile_name].adapter)
        how = f"install it ({known.install})" if known else "install it"
        problems.append(
            ProgramProblem(
                f"agent command {program!r} (profile {profile_name}, for {_shown(tasks)}) is "
                f"not on PATH; {how}, or give these tasks another agent (`agent:` in the plan, "
                "`--agent` with --prompt)",
                "missing",
            )
        )
    for (_program, profile_name, version), tasks in old.items():
        known = adapter(plan.agents[profile_name].adapter)
        assert known is not None
        wanted = ".".join(map(str, known.min_version))
        problems.append(
            ProgramProblem(
                f"{known.display} {version} (profile {profile_name}, for {_shown(tasks)}) is "
                f"older than limitless supports ({wanted}; tested with {known.tested_version}); "
                f"upgrade it: {known.install}",
                "version",
            )
        )
    for message, tasks in refused.items():
        problems.append(ProgramProblem(f"{message} (tasks {_shown(tasks)})", "refused"))
    from limitless.agents.sandbox import plan_problem

    confinement = plan_problem(plan)  # bubblewrap missing, or no user namespaces
    if confinement is not None:
        problems.append(ProgramProblem(confinement, "sandbox"))
    return problems


def _resolver_problem(plan: Plan, is_root: bool) -> ProgramProblem | None:
    """Why the conflict resolver the plan names (`merge.resolver`) cannot run here."""
    name = plan.merge.resolver
    if plan.merge.on_conflict != "agent" or not name or name not in plan.agents:
        return None
    profile = plan.agents[name]
    program, path = _executable(profile)
    known = adapter(profile.adapter)
    if path is None:
        how = f"install it ({known.install})" if known else "install it"
        return ProgramProblem(
            f"the conflict resolver's command {program!r} (merge.resolver: {name}) is not on "
            f"PATH; {how}, or name another profile",
            "missing",
        )
    if known is None:
        return None
    approve = resolver_approve(plan.approve)
    refusal = known.refusal(approve, {**os.environ, **known.environment(), **profile.env}, is_root)
    if refusal is None:
        return None
    return ProgramProblem(f"{refusal.message} (the conflict resolver, {name})", "refused")


def profile_reports(profiles: dict[str, AgentProfile]) -> list[ProgramReport]:
    """For `doctor`: every profile that drives a known program, its program and version."""
    reports: list[ProgramReport] = []
    for profile in profiles.values():
        known = adapter(profile.adapter)
        if known is None:
            continue
        program, path = _executable(profile)
        version = program_version(known, path) if path else None
        supported = version is not None and known.supports(version)
        if path is None:
            detail = f"{program} not on PATH; install it: {known.install}"
        elif version is None:
            detail = f"{path}: could not read its version"
        else:
            tested = (
                "the tested version"
                if version == known.tested_version
                else (f"tested with {known.tested_version}")
            )
            detail = f"{known.display} {version} at {path} ({tested})"
            if not supported:
                detail += f"; too old, upgrade: {known.install}"
        reports.append(
            ProgramReport(
                profile=profile.name,
                executable=program,
                path=path,
                version=version,
                tested_version=known.tested_version,
                supported=supported,
                detail=detail,
            )
        )
    return reports
