"""The merge phase end to end: real runs of `shell` tasks on a private tmux socket."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from limitless.states import MergeStatus, RunStatus
from tests.conftest import git
from tests.engine_helpers import (
    LIMITLESS,
    cli,
    latest_run,
    open_store,
    tasks_of,
    wait_for,
    write_plan,
)

pytestmark = pytest.mark.usefixtures("tmux_socket")

CLASH = """\
name: clash
agent: shell
max_concurrency: 1
merge: {{on_conflict: {on_conflict}{extra}}}
tasks:
  - id: left
    prompt: |
      echo "left side" > README.md && git commit -qam "left: rewrite readme"
  - id: right
    after: [left]
    prompt: |
      echo "right side" > README.md && git commit -qam "right: rewrite readme"
  - id: notes
    depends_on: [right]
    prompt: |
      echo notes > NOTES.md && git add NOTES.md && git commit -qm "notes: add"
"""


def subjects(repo: Path, ref: str) -> list[str]:
    return git(repo, "log", "--format=%s", ref).splitlines()


def merge_message(repo: Path, run_id: str) -> str:
    """What the last merge phase of the run said."""
    with open_store(repo) as store:
        done = [event for event in store.events(run_id) if event.kind == "merge_done"]
    return str(done[-1].data["message"])


def merge_worktree(repo: Path, run_id: str) -> Path:
    return repo.parent / f"{repo.name}.worktrees" / run_id / "_merge"


def test_conflict_stop_then_manual_resolution_lands(repo: Path) -> None:
    """Conflict under stop: exit 1 with how to go on; after a manual fix `limitless merge` lands."""
    base = git(repo, "rev-parse", "main")
    write_plan(repo, CLASH.format(on_conflict="stop", extra=""))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    run = latest_run(repo)
    merge_dir = merge_worktree(repo, run.id)
    right_branch = f"limitless/{run.id}/right"
    how = (
        f"merge stopped at task right: its branch {right_branch} conflicts with the merged "
        f"work in README.md. Nothing was landed: main, your checkout and every task branch "
        f"are unchanged. To continue: cd {merge_dir} && git merge {right_branch}, fix the "
        f"conflicts, git add them and git commit; then run `limitless merge {run.id}`."
    )
    assert merge_message(repo, run.id) == how
    assert how in result.stdout, "the headless run prints how to continue"
    assert "merge" in result.stdout and "right conflicts: README.md" in result.stdout
    assert git(repo, "rev-parse", "main") == base  # base untouched
    assert git(repo, "status", "--porcelain") == "?? limitless.yaml"
    rows = tasks_of(repo, run.id)
    assert rows["left"].merge_status is MergeStatus.MERGED
    assert rows["right"].merge_status is MergeStatus.CONFLICT
    assert rows["right"].conflict_files == ["README.md"]
    assert rows["notes"].merge_status is MergeStatus.UNMERGED

    # `limitless merge` before resolving: the same conflict, the same advice, exit 1
    unresolved = cli(repo, "merge", run.id)
    assert unresolved.returncode == 1, unresolved.stdout + unresolved.stderr
    assert how in unresolved.stdout
    assert git(repo, "rev-parse", "main") == base

    # the user resolves in the merge worktree, as the message says
    merging = subprocess.run(
        ["git", "merge", right_branch], cwd=merge_dir, capture_output=True, check=False
    )
    assert merging.returncode == 1
    (merge_dir / "README.md").write_text("left side\nright side\n")
    git(merge_dir, "commit", "-qam", "resolve readme")

    again = cli(repo, "merge", run.id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "landed on main" in again.stdout
    assert again.stdout.count("landed on main") == 1  # the summary is printed once
    assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", f"limitless/{run.id}/merged")
    assert (repo / "README.md").read_text() == "left side\nright side\n"
    assert (repo / "NOTES.md").read_text() == "notes\n"
    history = subjects(repo, "main")
    assert history.count(f"limitless: merge left ({run.id})") == 1
    assert history.count("resolve readme") == 1
    assert history.count(f"limitless: merge notes ({run.id})") == 1
    assert latest_run(repo).status is RunStatus.DONE

    # once more: nothing is merged twice, nothing moves
    tip = git(repo, "rev-parse", "main")
    third = cli(repo, "merge", run.id)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "merged 0 tasks; 3 already merged" in third.stdout
    assert git(repo, "rev-parse", "main") == tip


RESOLVER = """\
name: fix
agent: shell
max_concurrency: 1
merge: {{on_conflict: agent, resolver: fixer, gate: "! grep -q '<<<<<<<' README.md"}}
agents:
  fixer: {{command: ["bash", "{script}", "{{prompt_file}}"]}}
tasks:
  - id: left
    prompt: |
      echo "left side" > README.md && git commit -qam "left: rewrite readme"
  - id: right
    after: [left]
    prompt: |
      echo "right side" > README.md && git commit -qam "right: rewrite readme"
"""

RESOLVES = """\
set -e
grep -q -- '- README.md' "$1"
grep -q 'Task right asked for' "$1" && grep -q 'Already merged task left asked for' "$1"
printf 'left side\\nright side\\n' > README.md
git add README.md
git commit -q --no-edit
"""


def test_agent_resolver_in_a_slot_fixes_the_conflict(repo: Path, tmp_path: Path) -> None:
    """on_conflict agent: a shell resolver in a slot pane fixes the file; the result lands."""
    script = tmp_path / "resolve.sh"
    script.write_text(RESOLVES)
    write_plan(repo, RESOLVER.format(script=script))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["right"].merge_status is MergeStatus.MERGED
    assert rows["right"].merge_reason == "conflict in README.md resolved by fixer"
    assert (repo / "README.md").read_text() == "left side\nright side\n"
    assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", f"limitless/{run.id}/merged")
    with open_store(repo) as store:
        kinds = [event.kind for event in store.events(run.id)]
    assert "resolver_started" in kinds and "resolver_done" in kinds


@pytest.mark.slow  # the unit tests in test_merge.py cover the logic
def test_agent_resolver_that_leaves_markers_falls_back_to_stop(repo: Path, tmp_path: Path) -> None:
    """A resolver that leaves the markers is refused: the phase stops, base untouched."""
    base = git(repo, "rev-parse", "main")
    script = tmp_path / "resolve.sh"
    script.write_text('grep -q README.md "$1"\n')
    write_plan(repo, RESOLVER.format(script=script))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["right"].merge_status is MergeStatus.CONFLICT
    assert "the resolver left conflict markers in README.md" in rows["right"].merge_reason
    assert git(repo, "rev-parse", "main") == base
    merge_dir = merge_worktree(repo, run.id)
    assert git(merge_dir, "status", "--porcelain", "-uno") == ""


MOVING = """\
name: moving
agent: shell
max_concurrency: 2
tasks:
  - id: wait
    prompt: |
      while [ ! -f "{flag}" ]; do sleep 0.1; done
      echo feature > feature.txt && git add feature.txt && git commit -qm "feature: add"
"""


def test_base_moved_during_the_run_is_merged_again_on_the_new_tip(
    repo: Path, tmp_path: Path
) -> None:
    """Someone commits to base mid-run: the merge is redone on the new tip, nothing is lost."""
    flag = tmp_path / "go"
    write_plan(repo, MOVING.format(flag=flag))
    run_proc = subprocess.Popen(
        [*LIMITLESS, "run", "--headless"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: _running(repo, "wait"),
            timeout=60,
            what="task wait to run",
        )
        (repo / "upstream.txt").write_text("upstream\n")
        git(repo, "add", "upstream.txt")
        git(repo, "commit", "-qm", "upstream: meanwhile on main")
        upstream = git(repo, "rev-parse", "main")
        status = cli(repo, "status")
        assert f"stale base: main moved to {upstream[:10]}" in status.stdout, status.stdout
        document = json.loads(cli(repo, "status", "--json").stdout)
        assert document["run"]["base_moved_to"] == upstream
        flag.write_text("go\n")
        output, _ = run_proc.communicate(timeout=120)
    finally:
        if run_proc.poll() is None:
            run_proc.kill()
            run_proc.communicate()
    assert run_proc.returncode == 0, output
    run = latest_run(repo)
    assert "landed on main" in output
    with open_store(repo) as store:
        redone = [event.data for event in store.events(run.id) if event.kind == "merge_redone"]
    assert len(redone) == 1
    assert redone[0]["new_base"] == upstream
    assert redone[0]["kept"] == ""  # base moved before any merge: nothing to keep
    assert subjects(repo, "main").count(f"limitless: merge wait ({run.id})") == 1
    assert git(repo, "merge-base", "--is-ancestor", upstream, "main") == ""
    assert (repo / "feature.txt").read_text() == "feature\n"
    assert (repo / "upstream.txt").read_text() == "upstream\n"
    assert run.base_sha == upstream
    assert run.landed


def _running(repo: Path, task_id: str) -> bool:
    try:
        run = latest_run(repo)
    except AssertionError:
        return False
    rows = tasks_of(repo, run.id)
    return task_id in rows and str(rows[task_id].status) == "running"


ONE_TASK = """\
name: one
agent: shell
tasks:
  - id: add
    prompt: |
      echo added > added.txt && git add added.txt && git commit -qm "add: file"
"""


def test_dirty_checkout_is_left_alone_and_the_result_waits_on_the_merged_branch(
    repo: Path,
) -> None:
    """Base checked out with changes: not touched; the message names the merged branch."""
    base = git(repo, "rev-parse", "main")
    write_plan(repo, ONE_TASK)
    (repo / "README.md").write_text("my unsaved edit\n")
    result = cli(repo, "run", "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    run = latest_run(repo)
    merged = f"limitless/{run.id}/merged"
    advice = (
        f"main is checked out in {repo} with uncommitted changes (README.md): it was not "
        f"touched. The result is on {merged}; land it with `git merge --ff-only {merged}` "
        f"in {repo} once it is clean."
    )
    assert advice in merge_message(repo, run.id)
    assert advice in result.stdout, "the headless run prints where the result waits"
    assert git(repo, "rev-parse", "main") == base
    assert (repo / "README.md").read_text() == "my unsaved edit\n"
    assert "add: file" in subjects(repo, merged)
    assert not latest_run(repo).landed

    # `limitless merge` says the same and still leaves the checkout alone
    again = cli(repo, "merge", run.id)
    assert again.returncode == 1, again.stdout + again.stderr
    assert advice in again.stdout
    assert (repo / "README.md").read_text() == "my unsaved edit\n"

    # once the checkout is clean, it lands without merging anything twice
    git(repo, "checkout", "--", "README.md")
    landed = cli(repo, "merge", run.id)
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert "merged 0 tasks; 1 already merged" in landed.stdout
    assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", merged)
    assert (repo / "added.txt").read_text() == "added\n"


STRATEGY_SUBJECTS = {
    "merge": "limitless: merge add ({run})",
    "squash": 'add: echo added > added.txt && git add added.txt && git commit -qm "add: file"',
    "rebase": "add: file",
}


@pytest.mark.parametrize("strategy", sorted(STRATEGY_SUBJECTS))
def test_no_merge_then_limitless_merge(repo: Path, strategy: str) -> None:
    """`run --no-merge` leaves the branches; `limitless merge` merges them with the run's
    strategy (`--merge-strategy`) and lands them later."""
    base = git(repo, "rev-parse", "main")
    write_plan(repo, ONE_TASK)
    result = cli(repo, "run", "--headless", "--no-merge", "--merge-strategy", strategy)
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    assert git(repo, "rev-parse", "main") == base
    assert tasks_of(repo, run.id)["add"].merge_status is MergeStatus.UNMERGED
    merged = cli(repo, "merge")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "merged 1 task" in merged.stdout and "landed on main" in merged.stdout
    assert (repo / "added.txt").read_text() == "added\n"
    latest = subjects(repo, "main")[0]
    assert latest == STRATEGY_SUBJECTS[strategy].format(run=run.id)
    assert latest_run(repo).status is RunStatus.DONE
    assert not latest_run(repo).no_merge


CRASHY = """\
name: crashy
agent: shell
merge:
  gate: |
    if [ ! -e "{flag}" ]; then touch "{flag}"; kill -9 $PPID; fi
tasks:
  - id: one
    prompt: |
      echo one > one.txt && git add one.txt && git commit -qm "one: add"
  - id: two
    prompt: |
      echo two > two.txt && git add two.txt && git commit -qm "two: add"
"""


@pytest.mark.slow  # the unit tests in test_merge.py cover the logic
def test_kill_9_between_a_merge_and_its_gate_then_merge_again(repo: Path, tmp_path: Path) -> None:
    """`limitless merge` killed after a merge, before its gate: the next call undoes the half
    step (keeping it under a ref), merges each task once and lands."""
    flag = tmp_path / "killed-once"
    write_plan(repo, CRASHY.format(flag=flag))
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    killed = cli(repo, "merge", run.id)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert flag.exists()
    interrupted = [row for row in tasks_of(repo, run.id).values() if row.merge_status == "merging"]
    assert len(interrupted) == 1
    first = interrupted[0].id

    again = cli(repo, "merge", run.id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"undid the interrupted merge of {first}" in again.stdout
    assert "landed on main" in again.stdout
    history = subjects(repo, "main")
    for task_id in ("one", "two"):
        assert history.count(f"limitless: merge {task_id} ({run.id})") == 1
        assert history.count(f"{task_id}: add") == 1
    kept = f"refs/limitless/{run.id}/merged/interrupted-{first}"
    assert f"limitless: merge {first} ({run.id})" in subjects(repo, kept)
    assert {row.merge_status for row in tasks_of(repo, run.id).values()} == {MergeStatus.MERGED}
