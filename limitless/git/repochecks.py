"""What a repository needs before limitless works in it: a signer that needs no terminal, git-lfs.

Used by `validate`, `doctor` and `run` (before anything is created):

- Signing: with `commit.gpgSign` on, every commit limitless makes is signed, with
  nobody at a terminal to type a passphrase. The signer is tried for real: git
  signs a probe commit of the empty tree (`commit-tree -S`, written into a
  throwaway object folder, so the repository gets nothing), in a session of its
  own without a terminal, `GPG_TTY` unset, stdin closed, stopped after
  `SIGNING_TIMEOUT` seconds. ssh signing passes with a key in ssh-agent or a key
  file without a passphrase, gpg with its passphrase cached in gpg-agent.
- Git LFS: a repository whose `.gitattributes` (at the run's base) send files
  through `filter=lfs` needs git-lfs installed and its filter configured, or the
  worktrees would hold pointer files (or fail to check out).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import EnvironmentProblem, GitError
from limitless.git.runner import git, no_terminal_env

SIGNING_TIMEOUT = 10.0


@dataclass(frozen=True)
class Finding:
    """One check of a repository: its name, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str


def _config(repo: Path, key: str, *, kind: str | None = None) -> str:
    args = ["config", *([f"--type={kind}"] if kind else []), "--get", key]
    return git(repo, *args, check=False).stdout.strip()


def signing(repo: Path, *, timeout: float = SIGNING_TIMEOUT) -> Finding | None:
    """Whether commits can be signed without a terminal; None when signing is off."""
    if _config(repo, "commit.gpgSign", kind="bool") != "true":
        return None
    fmt = _config(repo, "gpg.format") or "openpgp"
    empty_tree = git(repo, "hash-object", "-t", "tree", "/dev/null").stdout.strip()
    with tempfile.TemporaryDirectory(prefix="limitless-signing-") as objects:
        extra = {**no_terminal_env(), "GIT_OBJECT_DIRECTORY": objects}
        try:
            result = git(
                repo,
                "commit-tree",
                "-S",
                empty_tree,
                "-m",
                "limitless: signing probe",
                check=False,
                env_extra=extra,
                detached=True,
                timeout=timeout,
            )
            words = (result.stderr or result.stdout).strip() if result.returncode else ""
        except GitError:
            words = f"the signer was still waiting after {timeout:g}s (a passphrase prompt?)"
    if not words:
        return Finding("signing", True, f"commit.gpgSign is on; {fmt} signing works unattended")
    last = " ".join(words.splitlines()[-3:])
    msg = (
        f"commit.gpgSign is on in {repo}, but git cannot sign without a terminal "
        f"({fmt}: {last}); limitless signs every commit it makes and never waits on a "
        f"passphrase prompt: {_signing_fix(fmt)}, or turn signing off for this repository "
        "(`git config commit.gpgSign false`)"
    )
    return Finding("signing", False, msg)


def _signing_fix(fmt: str) -> str:
    if fmt == "ssh":
        return (
            "load the key into ssh-agent (`ssh-add KEY`) or point user.signingKey at a "
            "key file without a passphrase"
        )
    if fmt == "x509":
        return "unlock the x509 signer (gpgsm) so it signs without asking"
    return (
        "cache the key's passphrase in gpg-agent first (sign anything once, e.g. "
        "`echo test | gpg --clearsign >/dev/null`)"
    )


def uses_lfs(repo: Path, ref: str = "HEAD") -> bool:
    """Whether the `.gitattributes` files at `ref` send any path through `filter=lfs`."""
    args = ("grep", "-q", "-F", "-e", "filter=lfs", ref, "--", ":(glob)**/.gitattributes")
    return git(repo, *args, check=False).returncode == 0


def lfs(repo: Path, ref: str = "HEAD") -> Finding | None:
    """Whether git-lfs is ready for a repository that uses it; None when it uses no LFS."""
    if not uses_lfs(repo, ref):
        return None
    if shutil.which("git-lfs") is None:
        msg = (
            f"the repository {repo} uses Git LFS (filter=lfs in .gitattributes) but git-lfs "
            "is not installed, so worktrees would hold pointer files or fail to check out; "
            "install git-lfs (e.g. `apt-get install git-lfs`) and run `git lfs install`"
        )
        return Finding("git-lfs", False, msg)
    if not (_config(repo, "filter.lfs.process") or _config(repo, "filter.lfs.smudge")):
        msg = (
            f"the repository {repo} uses Git LFS but its filter is not set up, so worktrees "
            "would hold pointer files; run `git lfs install` (once per user)"
        )
        return Finding("git-lfs", False, msg)
    version = git(repo, "lfs", "version", check=False).stdout.strip() or "git-lfs"
    return Finding("git-lfs", True, f"{version}; LFS objects are shared by every worktree")


def is_shallow(repo: Path) -> bool:
    """Whether `repo` is a shallow clone (history cut off at some depth)."""
    found = git(repo, "rev-parse", "--is-shallow-repository", check=False).stdout.strip()
    return found == "true"


def shallow(repo: Path) -> Finding | None:
    """A note for a shallow clone (None otherwise): what limitless does there."""
    if not is_shallow(repo):
        return None
    return Finding(
        "shallow clone",
        True,
        "tasks start at the base's tip, so runs work; a merge that needs history the clone "
        "lacks is refused with `git fetch --unshallow` as the fix",
    )


def findings(repo: Path, ref: str = "HEAD") -> list[Finding]:
    """Every repository check that applies here (signing, LFS, shallow)."""
    return [f for f in (signing(repo), lfs(repo, ref), shallow(repo)) if f is not None]


def check(repo: Path, ref: str = "HEAD") -> None:
    """EnvironmentProblem (exit 3) naming each fix when the repository is not ready."""
    problems = [f.detail for f in findings(repo, ref) if not f.ok]
    if problems:
        raise EnvironmentProblem("; and ".join(problems))
