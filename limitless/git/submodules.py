"""Submodules in limitless's worktrees: checked out offline, at the recorded commits.

`git worktree add` leaves a submodule's folder empty, and `git submodule update`
in a new worktree would clone it again from its URL (the network). Instead each
submodule is cloned from the module repository the user's checkout already has
(`.git/modules/<name>`, for a nested one `.git/modules/<name>/modules/<inner>`),
given to `git submodule update` as a command-line `submodule.<name>.url`, so the
user's configuration is never written. A local clone hard-links its objects: it
costs little room and no network. The clone lives in the worktree's own git
folder (`.git/worktrees/<wt>/modules/<name>`), as git puts it, and its `origin`
is set back to the URL the user's module repository uses.

A recorded commit the user's module repository lacks was made by an agent in
another worktree's clone (a task that moved a submodule pointer). It is fetched
from that clone into the user's module repository under
`refs/limitless/submodule-commits/<sha>`, so it is neither downloaded nor lost
when that worktree goes, and checked out from there.

A submodule the user's checkout never initialised (no module repository) is
left empty, as it is in the user's checkout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import GitError
from limitless.git.runner import git, out

log = logging.getLogger(__name__)

KEPT_PREFIX = "refs/limitless/submodule-commits"
_GITLINK = "160000"
_LOCAL_CLONES = ("-c", "protocol.file.allow=always")
_ANY_SHA = "git -c uploadpack.allowAnySHA1InWant=true upload-pack"


@dataclass(frozen=True)
class Submodule:
    name: str
    path: str
    sha: str


def has_submodules(worktree: Path) -> bool:
    """Whether the checkout at `worktree` declares submodules (a `.gitmodules` file)."""
    return (Path(worktree) / ".gitmodules").is_file()


def recorded(worktree: Path) -> list[Submodule]:
    """The submodules `worktree`'s index records (gitlinks named in `.gitmodules`)."""
    if not has_submodules(worktree):
        return []
    links: dict[str, str] = {}
    for entry in git(worktree, "ls-files", "-s", "-z").stdout.split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[0] == _GITLINK:
            links[path] = parts[1]
    if not links:
        return []
    found = git(
        worktree,
        "config",
        "-f",
        ".gitmodules",
        "-z",
        "--get-regexp",
        r"^submodule\..*\.path$",
        check=False,
    ).stdout
    result: list[Submodule] = []
    for record in found.split("\0"):
        key, _, path = record.partition("\n")
        name = key.removeprefix("submodule.").removesuffix(".path")
        if path in links and name:
            result.append(Submodule(name, path, links.pop(path)))
    return result


def sync(worktree: Path, source: Path) -> list[str]:
    """Check out `worktree`'s submodules (nested too) at the commits it records, from the
    module repositories of the user's checkout `source`; the paths checked out."""
    worktree, source = Path(worktree), Path(source)
    if not has_submodules(worktree):
        return []
    source_git_dir = Path(out(source, "rev-parse", "--absolute-git-dir"))
    common = Path(out(source, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    roots = [source_git_dir] + ([common] if common != source_git_dir else [])
    done: list[str] = []
    _sync_level(worktree, roots, common, (), done, "")
    if done:
        log.info("submodules checked out", extra={"worktree": str(worktree), "paths": done})
    return done


def _sync_level(
    worktree: Path,
    roots: Sequence[Path],
    common: Path,
    chain: tuple[str, ...],
    done: list[str],
    prefix: str,
) -> None:
    modules = recorded(worktree)
    if not modules:
        return
    wanted: list[tuple[Submodule, Path]] = []
    for module in modules:
        names = (*chain, module.name)
        source = _module_repo(roots, names)
        if source is None:
            log.info("submodule not initialised in the checkout", extra={"path": module.path})
            continue
        _ensure_commit(source, module.sha, _other_clones(common, names))
        checkout = worktree / module.path
        if (checkout / ".git").exists():
            _fetch_if_missing(checkout, source, module.sha)
        wanted.append((module, source))
    if not wanted:
        return
    urls: list[str] = []
    for module, source in wanted:
        urls += ["-c", f"submodule.{module.name}.url={source}"]
    paths = [module.path for module, _ in wanted]
    # --checkout: the recorded commit, whatever `submodule.<name>.update` says;
    # --no-fetch: every commit is there already, nothing is downloaded
    update = ("submodule", "update", "--quiet", "--checkout", "--no-fetch", "--", *paths)
    git(worktree, *_LOCAL_CLONES, *urls, *update)
    for module, source in wanted:
        checkout = worktree / module.path
        _point_at_upstream(checkout, source)
        if chain:
            _record_in_parent(worktree, module, roots, chain)
        done.append(prefix + module.path)
        _sync_level(checkout, roots, common, (*chain, module.name), done, f"{prefix}{module.path}/")


def _modules_path(git_dir: Path, names: Sequence[str]) -> Path:
    path = git_dir
    for name in names:
        path = path / "modules" / name
    return path


def _is_repo(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _module_repo(roots: Sequence[Path], names: Sequence[str]) -> Path | None:
    for root in roots:
        candidate = _modules_path(root, names)
        if _is_repo(candidate):
            return candidate
    return None


def _other_clones(common: Path, names: Sequence[str]) -> list[Path]:
    """The clones of one module in every linked worktree's git folder (agents' commits)."""
    folder = common / "worktrees"
    if not folder.is_dir():
        return []
    return [
        clone
        for entry in sorted(folder.iterdir())
        if _is_repo(clone := _modules_path(entry, names))
    ]


def _has_commit(repo: Path, sha: str) -> bool:
    return git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0


def _ensure_commit(source: Path, sha: str, clones: Sequence[Path]) -> None:
    """Bring `sha` into the module repository `source` from a worktree's clone that has it."""
    if _has_commit(source, sha):
        return
    for clone in clones:
        if clone == source or not _has_commit(clone, sha):
            continue
        ref = f"{KEPT_PREFIX}/{sha}"
        git(source, "fetch", "-q", "--no-tags", f"--upload-pack={_ANY_SHA}", str(clone), sha)
        git(source, "update-ref", "-m", "limitless: keep a submodule commit", ref, sha)
        log.info("submodule commit kept", extra={"repo": str(source), "sha": sha})
        return
    msg = (
        f"submodule commit {sha} is neither in {source} nor in any worktree's clone of it; "
        "fetch it there (`git -C <submodule> fetch`) and try again"
    )
    raise GitError(msg)


def _fetch_if_missing(checkout: Path, source: Path, sha: str) -> None:
    """An existing clone lacking `sha` gets it from the module repository, not its remote."""
    if _has_commit(checkout, sha):
        return
    git(checkout, "fetch", "-q", "--no-tags", f"--upload-pack={_ANY_SHA}", str(source), sha)


def _point_at_upstream(checkout: Path, source: Path) -> None:
    """The clone's origin becomes the URL the user's module repository fetches from."""
    upstream = git(source, "config", "--get", "remote.origin.url", check=False).stdout.strip()
    current = git(checkout, "config", "--get", "remote.origin.url", check=False).stdout.strip()
    if upstream and upstream != current:
        git(checkout, "remote", "set-url", "origin", upstream)


def _record_in_parent(
    parent: Path, module: Submodule, roots: Sequence[Path], chain: tuple[str, ...]
) -> None:
    """A nested submodule is marked initialised in its parent clone's own config (private
    to this worktree), with the URL the user's parent module repository has for it."""
    key = f"submodule.{module.name}.url"
    if git(parent, "config", "--get", key, check=False).stdout.strip():
        return
    parent_repo = _module_repo(roots, chain)
    url = ""
    if parent_repo is not None:
        url = git(parent_repo, "config", "--get", key, check=False).stdout.strip()
    if not url:
        url = git(parent, "config", "-f", ".gitmodules", "--get", key, check=False).stdout.strip()
    if url:
        git(parent, "config", key, url)
        git(parent, "config", f"submodule.{module.name}.active", "true")


def keep_commits(worktree: Path, source: Path) -> bool:
    """Keep what agents committed in `worktree`'s submodule clones before it is removed.

    Each clone's HEAD and branch tips that the user's module repository lacks are
    fetched there under `refs/limitless/submodule-commits/<sha>`. Whether the
    worktree holds any checked-out submodule.
    """
    worktree, source = Path(worktree), Path(source)
    if not has_submodules(worktree):
        return False
    git_dir = Path(out(source, "rev-parse", "--absolute-git-dir"))
    common = Path(out(source, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    roots = [git_dir] + ([common] if common != git_dir else [])
    return _keep_level(worktree, roots, ())


def _keep_level(worktree: Path, roots: Sequence[Path], chain: tuple[str, ...]) -> bool:
    populated = False
    for module in recorded(worktree):
        checkout = worktree / module.path
        if not (checkout / ".git").exists():
            continue
        populated = True
        names = (*chain, module.name)
        source = _module_repo(roots, names)
        if source is not None:
            tips = git(
                checkout, "for-each-ref", "--format=%(objectname)", "refs/heads/", check=False
            ).stdout.split()
            head = git(checkout, "rev-parse", "-q", "--verify", "HEAD", check=False).stdout.strip()
            for sha in dict.fromkeys([head, *tips]):
                if sha and not _has_commit(source, sha):
                    _ensure_commit(source, sha, [git_dir_of(checkout)])
        _keep_level(checkout, roots, names)
    return populated


def git_dir_of(checkout: Path) -> Path:
    """The git folder of a checkout (a submodule's lives under its superproject's)."""
    return Path(out(checkout, "rev-parse", "--absolute-git-dir"))


def moved(repo: Path, old: str, new: str) -> list[str]:
    """Paths of submodules whose recorded commit differs between commits `old` and `new`."""
    found = git(repo, "diff", "--raw", "-z", "--no-renames", old, new, check=False).stdout
    fields = found.split("\0")
    paths: list[str] = []
    for meta, path in zip(fields[::2], fields[1::2], strict=False):
        parts = meta.lstrip(":").split()
        if len(parts) >= 2 and "160000" in (parts[0], parts[1]):
            paths.append(path)
    return paths
