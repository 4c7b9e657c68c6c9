"""`limitless cleanup`: remove what a run made, keeping every commit that matters."""

from __future__ import annotations

import shutil
from pathlib import Path

from limitless.errors import UsageError
from limitless.git import worktrees
from limitless.git.refs import branch_exists, branch_name, delete_branch, is_ancestor
from limitless.merge.merge_worktree import MERGED_KEY
from limitless.plan.stored import plan_of
from limitless.run.processes import supervisor_alive
from limitless.store import Store
from limitless.tmux.session import TmuxSession


def cleanup_run(store: Store, run_id: str, *, keep_branches: bool, force: bool) -> list[str]:
    """Remove the run's worktrees and tmux session, and its merged branches; say what."""
    run = store.get_run(run_id)
    if (supervisor_alive(run) or not run.status.finished) and not force:
        msg = (
            f"run {run_id} is still {run.status}; wait for it (`limitless wait {run_id}`) "
            "or pass --force to clean up anyway"
        )
        raise UsageError(msg)
    plan = plan_of(run)
    repo_root = Path(run.repo_root)
    lines: list[str] = []
    session = TmuxSession(run.tmux_socket, run.id)
    if session.exists():
        session.kill()
        lines.append(f"killed tmux session {run.tmux_session}")
    rows = store.get_tasks(run_id)
    seen: set[str] = set()
    for row in rows:
        if row.worktree in seen:
            continue
        seen.add(row.worktree)
        path = Path(row.worktree)
        if plan.artifacts and path.exists():
            copied = _copy_artifacts(
                path, plan.artifacts, store.run_dir(run_id) / "artifacts" / row.id
            )
            if copied:
                lines.append(f"kept {copied} artifact file(s) of {row.id}")
        if path.exists():
            worktrees.commit_all(path, f"limitless: {row.id} — saved before cleanup")
            worktrees.remove_worktree(repo_root, path, force=True)
            lines.append(f"removed worktree {path}")
    merge_dir = Path(run.worktree_root) / run_id / "_merge"
    if merge_dir.exists():
        worktrees.remove_worktree(repo_root, merge_dir, force=True)
        lines.append(f"removed worktree {merge_dir}")
    worktrees.prune(repo_root)
    run_root = Path(run.worktree_root) / run_id
    if run_root.exists() and not any(run_root.iterdir()):
        run_root.rmdir()
    if not keep_branches:
        branches = {row.branch for row in rows} | {branch_name(run_id, MERGED_KEY)}
        lines += _delete_branches(repo_root, run.base, sorted(branches), force)
    return lines or [f"run {run_id}: nothing to clean up"]


def _delete_branches(repo_root: Path, base: str, branches: list[str], force: bool) -> list[str]:
    lines: list[str] = []
    kept: list[str] = []
    for branch in branches:
        if not branch_exists(repo_root, branch):
            continue
        merged = is_ancestor(repo_root, branch, f"refs/heads/{base}")
        if merged or force:
            delete_branch(repo_root, branch, force=True)
            lines.append(f"deleted branch {branch}" + ("" if merged else " (unmerged, --force)"))
        else:
            kept.append(branch)
    if kept:
        lines.append(
            f"kept {len(kept)} unmerged branch(es): {', '.join(kept)} "
            "(merge them, or pass --force to delete them)"
        )
    return lines


def _copy_artifacts(worktree: Path, patterns: tuple[str, ...], target: Path) -> int:
    count = 0
    root = worktree.resolve()
    for pattern in patterns:
        for source in worktree.glob(pattern):
            resolved = source.resolve()
            if not source.is_file() or not resolved.is_relative_to(root):
                continue
            destination = target / source.relative_to(worktree)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(resolved, destination)
            count += 1
    return count
