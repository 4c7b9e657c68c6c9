"""Before a run on other machines: are its hosts fit (`limitless hosts check`, and `run`
before it creates anything)?

`check_plan_hosts` opens each remote host's master connection in the repository's short
control folder and checks it (`limitless.hosts.check`). `fit_hosts` turns the findings
into the hosts a run may use: any failure stops it with exit 3 naming the host and the
fix, unless `--skip-unreachable` leaves out the hosts that could not be reached at all
(a pinned task of such a host still stops the run: it would never start).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from limitless.errors import EnvironmentProblem
from limitless.hosts.check import HostCheck, check_hosts, failed
from limitless.hosts.ssh import control_dir
from limitless.plan.model import Plan


def check_plan_hosts(plan: Plan, state_dir: Path, *, install: bool = True) -> list[HostCheck]:
    """Every finding about the plan's remote hosts ([] for a plan on this machine only)."""
    if not plan.remote:
        return []
    return check_hosts(plan.all_hosts, control_dir(state_dir), install=install)


def fit_hosts(plan: Plan, checks: list[HostCheck], *, skip_unreachable: bool) -> Plan:
    """The plan with only the hosts a run may use; EnvironmentProblem (exit 3) when a
    host failed its check (or, with `skip_unreachable`, when nothing is left to run on)."""
    unreachable = {c.host for c in checks if c.item == "reachable" and not c.ok}
    problems = [c for c in checks if not c.ok and not (skip_unreachable and c.host in unreachable)]
    if problems:
        hint = (
            "; or pass --skip-unreachable to run without the hosts that cannot be reached"
            if unreachable and not skip_unreachable
            else ""
        )
        raise EnvironmentProblem("; ".join(str(c) for c in problems) + hint)
    if not unreachable:
        return plan
    hosts = tuple(host for host in plan.all_hosts if host.name not in unreachable)
    pinned = sorted({t.id for t in plan.tasks if t.host in unreachable})
    if pinned or not hosts:
        names = ", ".join(sorted(unreachable))
        why = f"tasks {', '.join(pinned)} are pinned to it" if pinned else "no host is left"
        msg = f"cannot leave out {names} (unreachable): {why}"
        raise EnvironmentProblem(msg)
    return dataclasses.replace(plan, hosts=hosts, max_concurrency=sum(h.slots for h in hosts))


__all__ = ["HostCheck", "check_plan_hosts", "failed", "fit_hosts"]
