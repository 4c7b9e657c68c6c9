"""The plan's `copy` and `link` globs: files of the user's checkout brought into a new worktree
(copied, or symlinked), never from outside the repository."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from limitless.errors import UsageError

log = logging.getLogger(__name__)


def match_globs(
    repo_root: Path, patterns: Iterable[str], kind: str
) -> list[tuple[str, Path, Path]]:
    """(kind, resolved source, path relative to the root) for every match; UsageError if unsafe."""
    lexical_root = Path(os.path.normpath(repo_root.absolute()))
    real_root = repo_root.resolve()
    found: list[tuple[str, Path, Path]] = []
    for pattern in patterns:
        if not pattern or Path(pattern).is_absolute():
            msg = (
                f"{kind} glob {pattern!r} must be a relative path inside the repository {real_root}"
            )
            raise UsageError(msg)
        for match in sorted(lexical_root.glob(pattern)):
            normal = Path(os.path.normpath(match))
            if not normal.is_relative_to(lexical_root) or not match.resolve().is_relative_to(
                real_root
            ):
                _refuse(match, kind, pattern, real_root)
            rel = normal.relative_to(lexical_root)
            if rel.parts[:1] == (".git",) or rel == Path("."):
                continue
            found.append((kind, match.resolve(), rel))
            if kind == "copy" and match.is_dir():
                for sub in sorted(match.rglob("*")):
                    if not sub.resolve().is_relative_to(real_root):
                        _refuse(sub, kind, pattern, real_root)
    return found


def _refuse(match: Path, kind: str, pattern: str, root: Path) -> NoReturn:
    msg = (
        f"{kind} glob {pattern!r} matched {match}, which resolves to {match.resolve()}, "
        f"outside the repository {root}; only files inside it can be brought along"
    )
    raise UsageError(msg)


def place(kind: str, source: Path, dest: Path) -> None:
    """Copy or symlink `source` to `dest`, keeping whatever already exists there."""
    if dest.exists() or dest.is_symlink():
        if kind == "copy" and source.is_dir() and dest.is_dir() and not dest.is_symlink():
            _copy_tree(source, dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "link":
        dest.symlink_to(source, target_is_directory=source.is_dir())
        log.debug("file linked", extra={"source": str(source), "dest": str(dest)})
    elif source.is_dir():
        _copy_tree(source, dest)
    else:
        shutil.copy2(source, dest)
        log.debug("file copied", extra={"source": str(source), "dest": str(dest)})


def _copy_tree(source: Path, dest: Path) -> None:
    for folder, _dirs, files in os.walk(source):
        target = dest / Path(folder).relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            out = target / name
            if not (out.exists() or out.is_symlink()):
                shutil.copy2(Path(folder) / name, out)
