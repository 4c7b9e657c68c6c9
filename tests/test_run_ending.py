"""The end of a run (run/ending.py): the supervisor and `limitless merge` end a run alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from limitless.states import RunStatus
from tests.engine_helpers import cli, latest_run, open_store, write_plan

pytestmark = pytest.mark.usefixtures("tmux_socket")

PLAN = """\
name: ending
agent: shell
merge: {land: manual}
tasks:
  - id: one
    prompt: |
      echo one > one.txt && git add one.txt && git commit -qm "one: add"
"""


def test_the_supervisor_and_limitless_merge_record_the_same_run_done(repo: Path) -> None:
    """A run ended by its supervisor and ended again by `limitless merge` records one
    `run_done` event each, of the same shape, with the reason the run row holds."""
    write_plan(repo, PLAN)
    ran = cli(repo, "run", "--headless", "--no-merge")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        by_supervisor = [e for e in store.events(run.id) if e.kind == "run_done"]
    assert len(by_supervisor) == 1
    assert by_supervisor[0].data == {
        "status": "done",
        "exit_code": 0,
        "reason": "1/1 tasks done; merge skipped (--no-merge): branches left for `limitless merge`",
    }
    assert run.reason == by_supervisor[0].data["reason"]

    merged = cli(repo, "merge", run.id)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        ends = [e for e in store.events(run.id) if e.kind == "run_done"]
    assert len(ends) == 2
    assert set(ends[1].data) == set(ends[0].data)
    assert ends[1].data == {"status": "done", "exit_code": 0, "reason": "1/1 tasks done"}
    assert run.status is RunStatus.DONE
    assert run.reason == "1/1 tasks done"
    assert not run.no_merge
