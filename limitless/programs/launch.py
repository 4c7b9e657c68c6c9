"""Starting an agent program: the one way a profile and a prompt become an argv, the
variables it runs with and the folder it runs in.

The in-pane wrapper (a task's agent), the merge phase (a conflict resolver) and
the goal planner all start agents through `agent_start`. The prompt is written
to `prompt_file` first (a profile may name `{prompt_file}` instead of
`{prompt}`). With a permission policy (`approve`) the profile's adapter adds its
flags and its variables for an unattended start; without one the profile's argv
runs as it stands (the resolver and the planner start agents so, as they always
have).

This lives beside the adapters, below both the in-pane wrapper (`agents`) and the
merge phase (`merge`), which sit on one layer and may not import each other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from limitless.programs import adapter
from limitless.programs.base import Approve
from limitless.programs.profiles import (
    AgentContext,
    AgentProfile,
    render_argv,
    render_resume_argv,
)


@dataclass(frozen=True)
class AgentStart:
    """How to start one agent: `argv` in `cwd`, with `env` set on top of what it inherits."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment: `base` (default this process's) with `env` on top."""
        return {**(os.environ if base is None else base), **self.env}

    def argv_with_env(self) -> list[str]:
        """`argv` that sets `env` itself (`env -- NAME=VALUE ... argv`): for a pane whose
        environment is the pane's own."""
        if not self.env:
            return list(self.argv)
        return ["env", "--", *(f"{name}={value}" for name, value in self.env.items()), *self.argv]


def resolver_approve(plan_approve: Approve) -> Approve:
    """The permission policy a conflict resolver runs with: the plan's `approve`, but at
    least `edits` (editing the conflicted files is its whole job, and nobody answers a
    headless program's questions). A task's own `approve` does not apply to it."""
    return "edits" if plan_approve == "ask" else plan_approve


def agent_env(
    profile: AgentProfile,
    *,
    approve: Approve | None = None,
    state_folder: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables an agent of `profile` gets on top of what it inherits: its adapter's
    for an unattended start under `approve` (and its own state in `state_folder`), the
    profile's `env`, then `extra`."""
    env: dict[str, str] = {}
    program = adapter(profile.adapter)
    if program is not None and approve is not None:
        env.update(program.environment())
        env.update(program.approve_env(approve))
        if state_folder is not None:
            env.update(program.state_env(state_folder))
    env.update(profile.env)
    env.update(extra or {})
    return env


def agent_start(
    profile: AgentProfile,
    prompt: str,
    *,
    prompt_file: Path,
    cwd: Path,
    task: str,
    branch: str = "",
    model: str | None = None,
    approve: Approve | None = None,
    resume_session: str | None = None,
    state_folder: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    confined: bool = False,
    extra_args: Sequence[str] = (),
) -> AgentStart:
    """Write `prompt` to `prompt_file` and say how to start `profile` on it in `cwd`.

    `resume_session`: continue that conversation (the profile's `resume_command`).
    `approve`: the permission policy, given to the profile's adapter (see the module).
    `confined`: the agent will run inside limitless's sandbox (`sandbox: worktree`).
    `extra_args`: flags for this start (a helper's, e.g. `Program.answer_only_args`), put
    before a last `-- PROMPT`.
    """
    prompt_file.parent.mkdir(parents=True, exist_ok=True)
    prompt_file.write_text(prompt, encoding="utf-8")
    context = AgentContext(
        prompt=prompt,
        prompt_file=str(prompt_file),
        task=task,
        worktree=str(cwd),
        branch=branch,
        model=model,
    )
    if resume_session:
        argv = render_resume_argv(profile, context, resume_session)
    else:
        argv = render_argv(profile, context)
    program = adapter(profile.adapter)
    if program is not None and approve is not None:
        argv = program.command(argv, approve, prompt, confined=confined)
    if extra_args:
        tail = argv[-2:] if argv[-2:] == ["--", prompt] else []
        argv = [*argv[: len(argv) - len(tail)], *extra_args, *tail]
    env = agent_env(profile, approve=approve, state_folder=state_folder, extra=extra_env)
    return AgentStart(argv=argv, cwd=cwd, env=env)
