"""A dependant continues in its finished dependency's worktree (the hand-on): no checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limitless.git import worktrees
from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan

CHAIN = """\
name: chain
agent: shell
max_concurrency: 2
{extra}tasks:
  - id: base
    prompt: |
      echo base > base.txt && mkdir -p build && echo cache > build/out.o
      git add base.txt && git commit -qm 'base: add'
  - id: side
    prompt: echo side > side.txt && git add side.txt && git commit -qm 'side add'
  - id: next
    depends_on: [base, side]
    prompt: |
      test -f base.txt && test -f side.txt && echo next > next.txt
      git add next.txt && git commit -qm 'next: add'
  - id: last
    depends_on: [next]
    prompt: |
      test -f next.txt && echo last > last.txt
      git add last.txt && git commit -qm 'last: add'
"""


def events_of(repo: Path, run_id: str, kind: str) -> dict[str, dict[str, object]]:
    with open_store(repo) as store:
        return {e.task_id or "": e.data for e in store.events(run_id) if e.kind == kind}


@pytest.mark.usefixtures("tmux_socket")
def test_a_chain_continues_in_one_worktree_and_merges_everything(repo: Path) -> None:
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore build output")
    write_plan(repo, CHAIN.format(extra=""))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}
    for name in ("base", "side", "next", "last"):
        assert (repo / f"{name}.txt").read_text() == f"{name}\n", "merged onto main"

    handed = events_of(repo, run.id, "worktree_handed_on")
    checked_out = events_of(repo, run.id, "worktree_checked_out")
    assert handed["last"] == {"from": "next"}
    assert handed["next"]["from"] in ("base", "side")
    assert set(checked_out) == {"base", "side"}, "dependants need no checkout of their own"

    # the folders: the chain's worktree is now `last`'s, on its branch; the donors' are gone
    donor = str(handed["next"]["from"])
    assert not Path(rows[donor].worktree).exists()
    assert not Path(rows["next"].worktree).exists()
    last = Path(rows["last"].worktree)
    assert git(last, "symbolic-ref", "--short", "HEAD") == rows["last"].branch
    if donor == "base":
        assert (last / "build" / "out.o").exists(), "ignored build output goes along"
    listed = git(repo, "worktree", "list", "--porcelain")
    assert f"worktree {last}\n" in listed + "\n"
    assert f"worktree {rows[donor].worktree}\n" not in listed + "\n"

    # every branch keeps its own work, and each dependant's holds its dependencies'
    subject = {"base": "base: add", "side": "side add"}[donor]
    assert git(repo, "log", "--format=%s", rows[donor].branch).splitlines()[0] == subject
    subjects = git(repo, "log", "--format=%s", rows["last"].branch).splitlines()
    assert {"base: add", "side add", "next: add", "last: add"} <= set(subjects)

    # what a user reads: the done donor still shows its commit and files
    status = json.loads(cli(repo, "status", run.id, "--json").stdout)
    by_id = {task["id"]: task for task in status["tasks"]}
    assert by_id[donor]["commits"] == 1
    assert by_id["next"]["commits"] == 1, "only its own commit counts, not its donor's"
    assert by_id[donor]["worktree_handed_to"] == "next"
    assert by_id["next"]["worktree_handed_to"] == "last"
    assert by_id["last"]["worktree_handed_to"] is None

    cleaned = cli(repo, "cleanup", run.id)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not last.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


@pytest.mark.usefixtures("tmux_socket")
def test_a_plan_with_artifacts_keeps_every_task_worktree(repo: Path) -> None:
    """Artifacts are collected from each task's worktree at cleanup: nothing is handed on."""
    write_plan(repo, CHAIN.format(extra="artifacts: ['*.txt']\n"))
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert {row.status for row in rows.values()} == {TaskStatus.DONE}, result.stdout
    assert events_of(repo, run.id, "worktree_handed_on") == {}
    assert all(Path(row.worktree).exists() for row in rows.values())


def _worktree_on(repo: Path, path: Path, branch: str) -> None:
    git(repo, "worktree", "add", "-q", "-b", branch, str(path), "main")
    (path / "done.txt").write_text("done\n")
    git(path, "add", "done.txt")
    git(path, "commit", "-qm", "donor: add")


def test_hand_on_moves_the_worktree_and_starts_the_branch_at_its_tip(
    repo: Path, tmp_path: Path
) -> None:
    donor, heir = tmp_path / "wt" / "donor", tmp_path / "wt" / "heir"
    _worktree_on(repo, donor, "t/donor")
    tip = git(repo, "rev-parse", "t/donor")
    assert worktrees.hand_on(
        repo, donor=donor, donor_branch="t/donor", path=heir, branch="t/heir", lock_dir=tmp_path
    )
    assert not donor.exists()
    assert (heir / "done.txt").read_text() == "done\n"
    assert git(heir, "symbolic-ref", "--short", "HEAD") == "t/heir"
    assert git(repo, "rev-parse", "t/heir") == tip
    assert git(repo, "rev-parse", "t/donor") == tip, "the donor's branch is kept"


@pytest.mark.parametrize("why", ["dirty", "untracked", "branch exists", "other branch"])
def test_hand_on_refuses_and_changes_nothing(repo: Path, tmp_path: Path, why: str) -> None:
    donor, heir = tmp_path / "wt" / "donor", tmp_path / "wt" / "heir"
    _worktree_on(repo, donor, "t/donor")
    expected_branch = "t/donor"
    if why == "dirty":
        (donor / "done.txt").write_text("changed, not committed\n")
    elif why == "untracked":
        (donor / "new.txt").write_text("somebody's work\n")
    elif why == "branch exists":
        git(repo, "branch", "t/heir", "main")
    else:
        git(donor, "checkout", "-q", "-b", "t/elsewhere")
        expected_branch = "t/elsewhere"
    before = git(donor, "status", "--porcelain")
    assert not worktrees.hand_on(
        repo, donor=donor, donor_branch="t/donor", path=heir, branch="t/heir", lock_dir=tmp_path
    )
    assert donor.exists() and not heir.exists()
    assert git(donor, "status", "--porcelain") == before
    assert git(donor, "symbolic-ref", "--short", "HEAD") == expected_branch


def test_a_hand_on_cut_short_after_the_move_is_finished_by_the_next_preparation(
    repo: Path, tmp_path: Path
) -> None:
    """A crash between the move and the new branch: preparing the heir finishes it."""
    donor, heir = tmp_path / "wt" / "donor", tmp_path / "wt" / "heir"
    _worktree_on(repo, donor, "t/donor")
    git(repo, "worktree", "move", str(donor), str(heir))
    prepared = worktrees.prepare_worktree(
        repo,
        path=heir,
        branch="t/heir",
        base_sha=git(repo, "rev-parse", "main"),
        merge_branches=["t/donor"],
        lock_dir=tmp_path,
    )
    assert git(heir, "symbolic-ref", "--short", "HEAD") == "t/heir"
    assert prepared.start_sha == git(repo, "rev-parse", "t/donor")
    assert prepared.merged == ()
