"""A run's stored plan (`runs.plan_json`) as values: parsed once per process for each
plan text, not on every read of the run (the supervisor, the wrapper, the dashboard,
the views and the merge phase all ask for it)."""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from limitless.plan.graph import Dag
from limitless.plan.model import Plan


class StoredRun(Protocol):
    """Anything that carries a plan as `Plan.to_json` wrote it (a store's `Run`)."""

    @property
    def plan_json(self) -> str: ...


def plan_of(run: StoredRun) -> Plan:
    """The run's plan (shared: a `Plan` is frozen)."""
    return _plan(run.plan_json)


def dag_of(run: StoredRun) -> Dag:
    """The DAG of the run's plan (shared: do not change it)."""
    return _dag(run.plan_json)


@lru_cache(maxsize=32)
def _plan(text: str) -> Plan:
    return Plan.from_json(text)


@lru_cache(maxsize=32)
def _dag(text: str) -> Dag:
    return Dag.from_tasks(_plan(text).tasks)
