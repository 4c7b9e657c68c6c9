"""Git between this repository and a host's clone, over the host's master connection.

The host keeps one bare repository at `<root>/repo.git` (made on first use with
`git init --bare`); task worktrees live at `<root>/worktrees/<run>/<task>`. Pushes and
fetches run the local git with `GIT_SSH_COMMAND` naming the master's control socket, so
they open no new connection. The base commit is pushed to `refs/limitless/base/<run>`
(a ref of its own, so git keeps the objects); branches keep their names. Pushes force:
the local repository is the truth for what it sends, and a fetch back goes to a local
branch the caller names.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from limitless.errors import EnvironmentProblem, GitError
from limitless.git.locks import lock_dir_of, worktree_lock
from limitless.git.runner import git
from limitless.hosts.model import Host
from limitless.hosts.ssh import Result, run, ssh_command

CLONE = "repo.git"


def remote_root(host: Host, state_dir: Path) -> str:
    """The host's `root` as an absolute path there (`~` is the remote HOME)."""
    if host.root.startswith("/"):
        return posixpath.normpath(host.root)
    home = _ok(host, run(host, state_dir, ["sh", "-c", 'printf %s "$HOME"']), "read HOME")
    if host.root == "~":
        return home
    if host.root.startswith("~/"):
        return posixpath.join(home, host.root[2:])
    return posixpath.join(home, host.root)


ROOT_AND_CLONE = r"""
case "$1" in
  "~") root=$HOME ;;
  "~/"*) root="$HOME/${1#"~/"}" ;;
  /*) root=$1 ;;
  *) root="$HOME/$1" ;;
esac
mkdir -p "$root" && { test -d "$root/repo.git" || git init -q --bare "$root/repo.git"; } || exit 1
printf %s "$root"
"""


def root_and_clone(host: Host, state_dir: Path) -> str:
    """The host's root as an absolute path there, its clone made if missing: one command."""
    result = run(host, state_dir, ["sh", "-c", ROOT_AND_CLONE, "sh", host.root])
    return posixpath.normpath(_ok(host, result, "make the clone under its root"))


def ensure_clone(host: Host, state_dir: Path, *, root: str | None = None) -> str:
    """The path of the host's bare clone, made if missing (`root`: the host's, if known)."""
    clone = posixpath.join(root or remote_root(host, state_dir), CLONE)
    argv = ["sh", "-c", 'test -d "$1" || git init -q --bare "$1"', "sh", clone]
    _ok(host, run(host, state_dir, argv), f"create the clone {clone}")
    return clone


def push(
    host: Host,
    state_dir: Path,
    repo: Path,
    *,
    run_id: str,
    base: str,
    branches: Sequence[str] = (),
    root: str | None = None,
    clone_made: bool = False,
) -> str:
    """Push commit `base` and `branches` from `repo` to the host's clone; the clone's path.
    `clone_made`: the caller made sure the clone exists under `root` (one ssh less)."""
    if clone_made and root is not None:
        clone = posixpath.join(root, CLONE)
    else:
        clone = ensure_clone(host, state_dir, root=root)
    refspecs = [f"+{base}:refs/limitless/base/{run_id}"]
    refspecs += [f"+refs/heads/{branch}:refs/heads/{branch}" for branch in branches]
    git(repo, "push", "-q", _url(host, clone), *refspecs, env_extra=_env(host, state_dir))
    return clone


def make_worktree(
    host: Host, state_dir: Path, *, run_id: str, task: str, branch: str, start: str
) -> str:
    """A worktree on the host for `task`, on `branch` made from `start`; its path there."""
    root = remote_root(host, state_dir)
    clone = posixpath.join(root, CLONE)
    path = posixpath.join(root, "worktrees", run_id, task)
    argv = ["git", "-C", clone, "worktree", "add", "-q", "-B", branch, path, start]
    _ok(host, run(host, state_dir, argv), f"make the worktree {path}")
    return path


def fetch(
    host: Host,
    state_dir: Path,
    repo: Path,
    *,
    branch: str,
    into: str | None = None,
    ref: str | None = None,
    root: str | None = None,
) -> str:
    """Fetch `branch` from the host's clone into local branch `into` (default: same), or
    into the full ref name `ref`; its commit. `root`: the host's root, when known."""
    clone = posixpath.join(root or remote_root(host, state_dir), CLONE)
    target = ref or f"refs/heads/{into or branch}"
    refspec = f"+refs/heads/{branch}:{target}"
    # Shared worktree lock: fetch's connectivity check reads every worktree's HEAD, which
    # a `worktree add` beside it (a dependant checked out ahead) holds unborn for a moment
    # ("bad object worktrees/<x>/HEAD").
    with worktree_lock(lock_dir_of(repo), shared=True):
        git(repo, "fetch", "-q", _url(host, clone), refspec, env_extra=_env(host, state_dir))
    return git(repo, "rev-parse", target).stdout.strip()


def _url(host: Host, path: str) -> str:
    if host.ssh is None:
        msg = f"host {host.name!r} is this machine"
        raise GitError(msg)
    return f"{host.ssh}:{path}"  # scp form: the port and identity come from GIT_SSH_COMMAND


def _env(host: Host, state_dir: Path) -> dict[str, str]:
    return {"GIT_SSH_COMMAND": ssh_command(host, state_dir), "GIT_SSH_VARIANT": "ssh"}


def _ok(host: Host, result: Result, what: str) -> str:
    if result.code != 0:
        words = result.stderr.strip() or f"exit {result.code}"
        msg = f"host {host.name}: could not {what}: {words}"
        raise EnvironmentProblem(msg)
    return result.stdout
