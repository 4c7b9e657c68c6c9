"""What state a checkout is in: HEAD, changed and conflicted files, an operation under way,
and the dashboard's summary of a task's worktree (`inspect`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import GitError
from limitless.git.runner import failure as _failure
from limitless.git.runner import git as _git
from limitless.git.runner import git_all, is_object_id
from limitless.git.runner import out as _out

_SHORTSTAT_RE = re.compile(r"(\d+) (file|insertion|deletion)")


@dataclass(frozen=True)
class WorktreeState:
    """What the dashboard shows about one worktree."""

    head: str | None
    """None when the worktree folder is gone."""
    ahead: int
    files_changed: int
    insertions: int
    deletions: int
    dirty_files: tuple[str, ...]


def inspect(worktree: Path, base_sha: str) -> WorktreeState:
    """HEAD, commits ahead of `base_sha`, diffstat since it, dirty files (three git calls)."""
    worktree = Path(worktree)
    if not (worktree / ".git").exists():
        return WorktreeState(None, 0, 0, 0, 0, ())
    calls = {
        "status": ("--no-optional-locks", "status", "--porcelain=v2", "--branch", "-z"),
        "count": ("rev-list", "--count", f"{base_sha}..HEAD"),
        "stat": ("diff", "--no-ext-diff", "--no-color", "--shortstat", f"{base_sha}...HEAD"),
    }
    # `--shortstat` words are translated otherwise
    results = git_all(worktree, calls, env_extra={"LC_ALL": "C"})
    out: dict[str, str] = {}
    failed: GitError | None = None
    for name, result in results.items():
        if result.returncode != 0 and failed is None:
            failed = _failure(worktree, calls[name], result.returncode, result.stderr)
        out[name] = result.stdout
    if failed is not None:
        if not (worktree / ".git").exists():
            return WorktreeState(None, 0, 0, 0, 0, ())
        raise failed
    return state_of(out["status"], out["count"], out["stat"])


def state_of(status: str, count: str, shortstat: str) -> WorktreeState:
    """The state `inspect`'s three git calls tell (their outputs, here or on a host):
    `status --porcelain=v2 --branch -z`, `rev-list --count`, `diff --shortstat`."""
    head, dirty = parse_status(status)
    numbers = {word: int(n) for n, word in _SHORTSTAT_RE.findall(shortstat)}
    ahead = count.strip()
    return WorktreeState(
        head=head,
        ahead=int(ahead) if ahead.isdigit() else 0,
        files_changed=numbers.get("file", 0),
        insertions=numbers.get("insertion", 0),
        deletions=numbers.get("deletion", 0),
        dirty_files=tuple(dirty),
    )


def dirty_files(worktree: Path) -> list[str]:
    """Changed, untracked and ignored-but-listed paths: anything `git status` shows."""
    out = _git(worktree, "--no-optional-locks", "status", "--porcelain=v2", "-z").stdout
    return parse_status(out)[1]


def parse_status(out: str) -> tuple[str | None, list[str]]:
    """(HEAD from `# branch.oid`, changed paths) of `status --porcelain=v2 -z [--branch]`."""
    head: str | None = None
    files: list[str] = []
    fields = iter(out.split("\0"))
    for field in fields:
        if not field:
            continue
        kind = field[0]
        if field.startswith("# branch.oid "):
            oid = field.removeprefix("# branch.oid ")
            head = oid if is_object_id(oid) else None
        elif kind == "1":
            files.append(field.split(" ", 8)[8])
        elif kind == "2":
            files.append(field.split(" ", 9)[9])
            next(fields, None)  # the original path of a rename or copy
        elif kind == "u":
            files.append(field.split(" ", 10)[10])
        elif kind in "?!":
            files.append(field[2:])
    return head, files


def conflicted_files(worktree: Path) -> tuple[str, ...]:
    """Paths with unmerged index entries."""
    out = _git(worktree, "diff", "--name-only", "--diff-filter=U", "-z").stdout
    return tuple(dict.fromkeys(name for name in out.split("\0") if name))


def tracked_changes(worktree: Path) -> list[str]:
    """Staged or unstaged changes to tracked files (untracked files are not counted)."""
    out = _git(worktree, "--no-optional-locks", "status", "--porcelain", "-z", "-uno").stdout
    files: list[str] = []
    fields = iter(out.split("\0"))
    for entry in fields:
        if not entry:
            continue
        files.append(entry[3:])
        if entry[0] in "RC":
            next(fields, None)  # the original path of a rename or copy
    return files


def head_sha(worktree: Path) -> str:
    """The commit checked out in `worktree`."""
    return _out(worktree, "rev-parse", "HEAD")


def head_ref(worktree: Path) -> str | None:
    """The full name of the checked-out branch; None when HEAD is detached."""
    result = _git(worktree, "symbolic-ref", "-q", "HEAD", check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def git_dir(worktree: Path) -> Path:
    """The worktree's own git folder (absolute)."""
    return Path(_out(worktree, "rev-parse", "--absolute-git-dir"))


def operation_in_progress(worktree: Path) -> str | None:
    """ "merge", "rebase", "cherry-pick" or "revert" when one is under way in `worktree`."""
    folder = git_dir(worktree)
    if (folder / "rebase-merge").exists() or (folder / "rebase-apply").exists():
        return "rebase"
    for name, op in (("MERGE_HEAD", "merge"), ("CHERRY_PICK_HEAD", "cherry-pick")):
        if (folder / name).exists():
            return op
    if (folder / "REVERT_HEAD").exists():
        return "revert"
    return None
