"""Plan hooks: run on events with the event in env vars, failures recorded, never rerun."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from limitless.run.hooks import HookRunner
from limitless.states import RunStatus
from limitless.store import Run, Store
from tests.engine_helpers import cli, latest_run, open_store, wait_for, write_plan


def make_store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "state")
    store.create_run(
        Run(
            id="h-1",
            plan_name="h",
            plan_path=None,
            plan_json="{}",
            repo_root=str(tmp_path),
            base="main",
            base_sha="0" * 40,
            worktree_root=str(tmp_path / "wt"),
        )
    )
    return store


def drive(runner: HookRunner, until: object, timeout: float = 30.0) -> None:
    """Tick the runner as the supervisor does until `until()` holds."""
    assert callable(until)
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout}s"
            raise AssertionError(msg)
        runner.tick()
        time.sleep(0.05)


def test_event_reaches_the_hook_as_data_never_as_shell(tmp_path: Path) -> None:
    """A reason holding `$(...)` arrives verbatim in LIMITLESS_REASON and is not executed."""
    store = make_store(tmp_path)
    out = tmp_path / "out.txt"
    hostile = "$(touch pwned) `touch pwned2`; rm -rf nothing"
    store.add_event("h-1", "task_failed", "api", exit_code=1, reason=hostile)
    hook = f'printf "%s|%s|%s|%s|%s" "$LIMITLESS_EVENT" "$LIMITLESS_RUN" "$LIMITLESS_TASK" "$LIMITLESS_EXIT_CODE" "$LIMITLESS_REASON" > {out}'  # noqa: E501
    runner = HookRunner(store, "h-1", {"on_task_failed": hook}, tmp_path)
    drive(runner, lambda: any(e.kind == "hook_done" for e in store.events("h-1")))
    assert out.read_text() == f"task_failed|h-1|api|1|{hostile}"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    runner.close()
    store.close()


def test_failing_hook_is_an_event_and_a_line_never_fatal(tmp_path: Path) -> None:
    """A hook exiting 3 gives a `hook_failed` event with its last output line; tick goes on."""
    store = make_store(tmp_path)
    said: list[str] = []
    store.add_event("h-1", "task_done", "ui")
    runner = HookRunner(
        store,
        "h-1",
        {"on_task_done": "echo no token for gh >&2; exit 3"},
        tmp_path,
        out=said.append,
    )
    drive(runner, lambda: any(e.kind == "hook_failed" for e in store.events("h-1")))
    failed = next(e for e in store.events("h-1") if e.kind == "hook_failed")
    assert failed.task_id == "ui"
    assert failed.data["exit_code"] == 3
    assert failed.data["reason"] == "hook on_task_done exited with status 3: no token for gh"
    assert Path(str(failed.data["log"])).read_text() == "no token for gh\n"
    assert said and "hook on_task_done exited with status 3" in said[0]
    runner.close()
    store.close()


def test_resumed_runner_does_not_rerun_handled_events(tmp_path: Path) -> None:
    """A second runner on the same run (a resumed supervisor) only runs hooks of new events."""
    store = make_store(tmp_path)
    out = tmp_path / "out.txt"
    hooks = {"on_task_done": f'echo "$LIMITLESS_TASK" >> {out}'}
    store.add_event("h-1", "task_done", "a")
    first = HookRunner(store, "h-1", hooks, tmp_path)
    first.close()
    assert out.read_text() == "a\n"
    store.add_event("h-1", "task_done", "b")
    second = HookRunner(store, "h-1", hooks, tmp_path)
    second.close()
    assert out.read_text() == "a\nb\n"
    store.close()


def test_on_run_done_starts_after_the_hooks_still_running(tmp_path: Path) -> None:
    """The run's last hook comes last: a slow on_task_done ends before on_run_done starts."""
    store = make_store(tmp_path)
    out = tmp_path / "out.txt"
    hooks = {
        "on_task_done": f'sleep 1; echo "task $LIMITLESS_TASK" >> {out}',
        "on_run_done": f'echo "run $LIMITLESS_RUN" >> {out}',
    }
    runner = HookRunner(store, "h-1", hooks, tmp_path)
    store.add_event("h-1", "task_done", "two")
    runner.tick()
    assert len(runner.running) == 1
    store.add_event("h-1", "run_done", status="done", exit_code=0)
    runner.close()
    assert out.read_text().splitlines() == ["task two", "run h-1"]
    store.close()


def test_hook_running_too_long_is_killed_and_recorded(tmp_path: Path) -> None:
    """A hook past its timeout is killed (its whole process group) and recorded as failed."""
    store = make_store(tmp_path)
    store.add_event("h-1", "run_done", status="done", exit_code=0)
    runner = HookRunner(store, "h-1", {"on_run_done": "sleep 60"}, tmp_path, timeout_s=0.5)
    runner.tick()
    process = runner.running[0].process
    drive(runner, lambda: any(e.kind == "hook_failed" for e in store.events("h-1")))
    assert process.poll() is not None
    failed = next(e for e in store.events("h-1") if e.kind == "hook_failed")
    assert failed.data["reason"] == "hook on_run_done timed out after 0.5s"
    store.close()


def test_events_without_a_hook_start_nothing(tmp_path: Path) -> None:
    """Only events mapped to a configured hook start a process."""
    store = make_store(tmp_path)
    store.add_event("h-1", "task_launched", "a")
    store.add_event("h-1", "task_done", "a")
    runner = HookRunner(store, "h-1", {"on_run_done": "true"}, tmp_path)
    runner.tick()
    assert runner.running == []
    store.close()


HOOKED = """\
name: hooked
agent: shell
max_concurrency: 2
merge: {{land: manual}}
hooks:
  on_task_done: 'echo "done $LIMITLESS_TASK" >> {out}'
  on_run_done: 'echo "run $LIMITLESS_RUN $LIMITLESS_STATUS $LIMITLESS_EXIT_CODE" >> {out}; exit 7'
tasks:
  - {{id: one, prompt: "echo 1 > one.txt"}}
  - {{id: two, prompt: "echo 2 > two.txt"}}
"""


@pytest.mark.usefixtures("tmux_socket")
def test_hooks_run_in_a_real_run_and_a_failing_one_is_not_fatal(repo: Path, tmp_path: Path) -> None:
    """A real run calls on_task_done per task and on_run_done once; its failure is shown only."""
    out = tmp_path / "hooks.txt"
    write_plan(repo, HOOKED.format(out=out))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    assert run.status is RunStatus.DONE

    def failed_recorded() -> bool:
        with open_store(repo) as store:
            return any(e.kind == "hook_failed" for e in store.events(run.id))

    wait_for(failed_recorded, timeout=60, what="the on_run_done hook's failure")
    lines = out.read_text().splitlines()
    assert sorted(lines[:2]) == ["done one", "done two"]
    assert lines[2:] == [f"run {run.id} done 0"]
    events = cli(repo, "events", run.id).stdout
    assert "⚠ hook on_run_done exited with status 7" in events


def test_merge_conflict_hook_gets_the_files(tmp_path: Path) -> None:
    """on_merge_conflict sees the conflicted files, one a line, in LIMITLESS_FILES."""
    store = make_store(tmp_path)
    out = tmp_path / "files.txt"
    store.add_event("h-1", "merge_conflict", "api", files=["a b.py", "c.py"], on_conflict="skip")
    runner = HookRunner(
        store, "h-1", {"on_merge_conflict": f'echo "$LIMITLESS_FILES" > {out}'}, tmp_path
    )
    runner.close()
    assert out.read_text() == "a b.py\nc.py\n"
    assert [e.kind for e in store.events("h-1")][-1] == "hook_done"
    store.close()
