"""The git data of a sandboxed task: a private place for what its agent writes, and the check.

A linked worktree shares its repository's common git folder: the objects and
every branch live there. Inside a `sandbox: worktree` the common folder is
read-only and three private folders (under `<state dir>/sandbox/<run>/<key>/`)
are mounted over the parts a commit on the task's own branch writes:

- `objects/` over `<common>/objects`: new objects land here; the repository's
  own objects are read through `info/alternates` (they are mounted read-only at
  `shared/`), so the agent can add objects but never delete or rewrite one;
- `refs/` over `<common>/refs/heads/<branch's folder>` (for `limitless/<run>/<key>`
  the folder `refs/heads/limitless/<run>`), holding a copy of the task's branch
  only: a commit moves that copy; any other ref written there stays there;
- `logs/` over the same folder of `<common>/logs/` (the branch's reflog).

`Guard.publish` (every second while the agent runs, and at the end) copies new
objects into the repository through git (`pack-objects | unpack-objects`, so
every object is hashed again and a forged one cannot take a real name), then
moves the real branch to the private copy's value. The check at the end lists
every other ref the agent wrote into its private folder, and a worktree HEAD
that no longer names the task's branch: those are never applied (HEAD is put
back), and the task fails naming them. The user's refs are never written by
the agent, so nothing has to be undone in them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import GitError
from limitless.git.refs import ATTEMPT_REF_PREFIX
from limitless.git.runner import OBJECT_ID, git_bytes
from limitless.git.runner import git as _git

log = logging.getLogger(__name__)

LOOSE_DIR = re.compile(r"[0-9a-f]{2}")
LOOSE_NAME = re.compile(r"[0-9a-f]{38}(?:[0-9a-f]{24})?")  # sha1 or sha256, minus the folder
PUBLISH_TIMEOUT_S = 120.0


class SandboxGitError(GitError):
    """The private git folders of a sandbox could not be made or read."""


@dataclass(frozen=True)
class Mount:
    """One bind mount of the sandbox: `source` (outside) shown at `dest` (inside)."""

    source: Path
    dest: Path
    writable: bool


@dataclass(frozen=True)
class RefChange:
    """A ref the agent wrote that it may not: never applied to the repository."""

    ref: str
    value: str  # what the agent wrote ("" when it deleted the ref)
    note: str = ""

    def describe(self) -> str:
        if self.note:
            return f"{self.ref} ({self.note})"
        if not self.value:
            return f"{self.ref} (deleted; not applied)"
        return f"{self.ref} (set to {self.value[:10]}; not applied)"


def git_dir_of(worktree: Path) -> Path:
    """The worktree's own git folder, from its `.git` file (`gitdir: …`)."""
    dot_git = worktree / ".git"
    try:
        text = dot_git.read_text(encoding="utf-8")
    except IsADirectoryError:
        msg = f"{worktree} is a main checkout, not a linked worktree: it cannot be sandboxed"
        raise SandboxGitError(msg) from None
    except OSError as exc:
        msg = f"cannot read {dot_git}: {exc.strerror or exc}"
        raise SandboxGitError(msg) from None
    if not text.startswith("gitdir:"):
        msg = f"{dot_git} does not name a git folder (it says {text[:60]!r})"
        raise SandboxGitError(msg)
    found = Path(text.removeprefix("gitdir:").strip())
    return found if found.is_absolute() else (worktree / found).resolve()


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".limitless")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _read_ref(path: Path) -> str | None:
    """A loose ref file's value (an object id or `ref: …`), or None when there is none."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def checkouts(common_dir: Path) -> list[Path]:
    """Every checkout of the repository: the main one and each linked worktree, read from
    the git folder as git does (`worktrees/*/gitdir`), without starting git."""
    found: list[Path] = []
    if common_dir.name == ".git":
        found.append(common_dir.parent)
    else:  # a bare repository or a separate git folder: ask git where the main checkout is
        out = _git(common_dir, "rev-parse", "--show-toplevel", check=False).stdout.strip()
        if out:
            found.append(Path(out))
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(common_dir / "worktrees"):
            pointer = _read_ref(Path(entry.path) / "gitdir")  # "<worktree>/.git"
            if pointer:
                found.append(Path(pointer).parent)
    return found


class Guard:
    """The private git folders of one attempt of one sandboxed task, and their check."""

    def __init__(
        self, worktree: Path, git_dir: Path, common_dir: Path, branch: str, private: Path
    ) -> None:
        self.worktree = worktree
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.branch = branch
        self.ref = f"refs/heads/{branch}"
        self.private = private
        parent, _, self.name = self.ref.rpartition("/")
        self.ref_folder = common_dir / parent  # <common>/refs/heads/limitless/<run>
        self.log_folder = common_dir / "logs" / parent
        self.objects = private / "objects"
        self.refs = private / "refs"
        self.logs = private / "logs"
        self.shared = private / "shared"
        self.start_value = ""
        self.published = ""
        self.sent: set[str] = set()  # object names and packs already copied out
        self.errors: list[str] = []
        self.others: dict[str, RefChange] = {}  # other refs seen in the private folder
        self._lock = threading.Lock()

    # ------------------------------------------------------------ before

    @classmethod
    def prepare(
        cls, worktree: Path, common_dir: Path, branch: str, state_dir: Path, run_id: str, key: str
    ) -> Guard:
        """Make the private folders for a new attempt (a previous attempt's are removed)."""
        guard = cls(
            worktree,
            git_dir_of(worktree),
            common_dir,
            branch,
            state_dir / "sandbox" / run_id / key,
        )
        guard._make()
        return guard

    def _make(self) -> None:
        if (self.common_dir / "reftable").exists():
            msg = (
                f"{self.common_dir} keeps its refs in a reftable, which `sandbox: worktree` "
                "cannot confine; use `sandbox: none` for this repository"
            )
            raise SandboxGitError(msg)
        loose = _read_ref(self.ref_folder / self.name)
        if loose is None or not OBJECT_ID.fullmatch(loose):  # packed, or not there
            found = _git(self.worktree, "rev-parse", "--verify", "-q", self.ref, check=False)
            loose = found.stdout.strip()
        self.start_value = self.published = loose
        if not OBJECT_ID.fullmatch(self.start_value):
            msg = f"the task's branch {self.branch} does not exist; cannot sandbox the task"
            raise SandboxGitError(msg)
        if self.private.exists():
            self._rescue()
            shutil.rmtree(self.private, ignore_errors=True)
        for folder in (self.objects / "info", self.refs, self.logs, self.shared):
            folder.mkdir(parents=True, exist_ok=True)  # git makes objects/pack when it packs
        (self.objects / "info" / "alternates").write_text(
            "\n".join([str(self.shared), *self._real_alternates()]) + "\n", encoding="utf-8"
        )
        (self.refs / self.name).write_text(self.start_value + "\n", encoding="ascii")
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(self.log_folder / self.name, self.logs / self.name)
        # The mount points must exist outside (git makes them lazily, packed refs never).
        for folder in (self.ref_folder, self.log_folder):
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
        # Bound read-only over themselves below: they tell git outside where this
        # worktree's repository is, and config.worktree could name programs to run.
        config = self.git_dir / "config.worktree"
        if not config.exists():
            config.touch()

    def _rescue(self) -> None:
        """A previous attempt's private folders are still there (its wrapper was killed
        before it copied everything out): copy its objects in, and keep its branch's last
        value under `refs/limitless/<run>/<key>/sandbox-<time>` when the real branch does
        not have it, so no commit of it is lost."""
        with contextlib.suppress(GitError, OSError, subprocess.SubprocessError):
            self._send_objects()
            value = _read_ref(self.refs / self.name)
            if value and OBJECT_ID.fullmatch(value) and value != self.published:
                run_id, key = self.private.parent.name, self.private.name
                keep = f"{ATTEMPT_REF_PREFIX}/{run_id}/{key}/sandbox-{int(time.time())}"
                _git(self.worktree, "update-ref", keep, value)
                log.warning("sandbox leftovers kept", extra={"ref": keep, "sha": value})

    def _real_alternates(self) -> list[str]:
        """The repository's own alternates, made absolute (relative ones are relative to
        its objects folder, which the sandbox shows at another place)."""
        real = self.common_dir / "objects"
        try:
            lines = (real / "info" / "alternates").read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        return [
            str((real / line).resolve()) if not line.startswith("/") else line
            for line in (raw.strip() for raw in lines)
            if line and not line.startswith("#")
        ]

    def mounts(self) -> list[Mount]:
        """The git part of the sandbox, in mount order (after the common folder, read-only)."""
        git_dir = self.git_dir
        return [
            Mount(git_dir, git_dir, writable=True),
            Mount(git_dir / "commondir", git_dir / "commondir", writable=False),
            Mount(git_dir / "gitdir", git_dir / "gitdir", writable=False),
            Mount(git_dir / "config.worktree", git_dir / "config.worktree", writable=False),
            Mount(self.objects, self.common_dir / "objects", writable=True),
            Mount(self.common_dir / "objects", self.shared, writable=False),
            Mount(self.refs, self.ref_folder, writable=True),
            Mount(self.logs, self.log_folder, writable=True),
        ]

    # ------------------------------------------------------------ during

    def publish(self) -> None:
        """Copy the agent's new objects into the repository, then move the real branch to
        where the agent's private copy of it points. Safe to call from any thread."""
        with self._lock:
            # Noted at every pass: deleting the evidence later does not hide a write.
            self.others.update((change.ref, change) for change in self._other_refs())
            # The branch is read before the objects are listed: git writes a commit's
            # objects before it moves the ref, so every object the value needs is listed.
            # (Read after, a commit made in between named objects not yet copied.)
            value = _read_ref(self.refs / self.name)
            try:
                self._send_objects()
                self._move_branch(value)
            except (GitError, OSError, subprocess.SubprocessError) as exc:
                text = str(exc)
                if text not in self.errors:
                    self.errors.append(text)
                log.warning("sandbox publish failed", extra={"error": text})

    def _send_objects(self) -> None:
        loose: list[str] = []
        packs: list[Path] = []
        with contextlib.suppress(FileNotFoundError):
            for folder in os.scandir(self.objects):
                if not (folder.is_dir() and LOOSE_DIR.fullmatch(folder.name)):
                    continue
                for entry in os.scandir(folder.path):
                    name = folder.name + entry.name
                    if LOOSE_NAME.fullmatch(entry.name) and name not in self.sent:
                        loose.append(name)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.objects / "pack"):
                pack = Path(entry.path)
                # a pack is complete once its index is written
                complete = pack.suffix == ".pack" and pack.with_suffix(".idx").exists()
                if complete and pack.name not in self.sent:
                    packs.append(pack)
        if loose:
            self._unpack(self._pack_loose(loose))
            self.sent.update(loose)
        for pack in packs:
            self._unpack(pack.read_bytes())
            self.sent.add(pack.name)

    def _private_env(self) -> dict[str, str]:
        return {
            "GIT_DIR": str(self.common_dir),
            "GIT_OBJECT_DIRECTORY": str(self.objects),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.common_dir / "objects"),
        }

    def _pack_loose(self, names: list[str]) -> bytes:
        result = git_bytes(
            self.private,
            "pack-objects",
            "--stdout",
            "-q",
            input=("\n".join(names) + "\n").encode(),
            env_extra=self._private_env(),
            timeout=PUBLISH_TIMEOUT_S,
        )
        if result.returncode != 0:
            words = result.stderr.decode(errors="replace").strip()
            msg = f"reading the sandbox's new objects in {self.objects} failed: {words}"
            raise SandboxGitError(msg)
        return result.stdout

    def _unpack(self, pack: bytes) -> None:
        """Write a pack's objects into the repository; git hashes each one again."""
        result = git_bytes(
            self.common_dir,
            "unpack-objects",
            "-q",
            input=pack,
            env_extra={"GIT_DIR": str(self.common_dir)},
            timeout=PUBLISH_TIMEOUT_S,
        )
        if result.returncode != 0:
            words = result.stderr.decode(errors="replace").strip()
            msg = f"copying the sandbox's objects into {self.common_dir} failed: {words}"
            raise SandboxGitError(msg)

    def _move_branch(self, value: str | None) -> None:
        if value is None or not OBJECT_ID.fullmatch(value) or value == self.published:
            return  # deleted or made symbolic: reported by `changes`
        message = self._reflog_message() or "sandboxed agent"
        _git(
            self.worktree,
            "update-ref",
            "-m",
            f"limitless sandbox: {message}",
            self.ref,
            value,
            self.published,
            env_extra={"GIT_DIR": str(self.common_dir)},
        )
        self.published = value

    def _reflog_message(self) -> str:
        """The message of the agent's last move of its branch (`commit: add x`)."""
        try:
            lines = (self.logs / self.name).read_text(encoding="utf-8").splitlines()
        except OSError:
            return ""
        last = lines[-1] if lines else ""
        return last.partition("\t")[2].strip()

    # ------------------------------------------------------------ after

    def dirty(self) -> bool:
        """Whether the worktree has changes not committed (untracked files count)."""
        status = _git(self.worktree, "--no-optional-locks", "status", "--porcelain", check=False)
        return status.returncode != 0 or bool(status.stdout.strip())

    def _other_refs(self) -> list[RefChange]:
        """The refs in the private folder that are not the task's branch."""
        found: list[RefChange] = []
        prefix = self.ref.rpartition("/")[0]
        for folder, _dirs, files in os.walk(self.refs):
            for file in sorted(files):
                if file.endswith(".lock"):
                    continue  # a git the sandbox killed left it; not a ref
                path = Path(folder) / file
                ref = f"{prefix}/{path.relative_to(self.refs).as_posix()}"
                if ref != self.ref:
                    found.append(RefChange(ref, _read_ref(path) or ""))
        return found

    def changes(self) -> list[RefChange]:
        """Every ref other than its own branch the agent wrote into its private folder,
        now or at any `publish` before (deleting them later hides nothing)."""
        with self._lock:
            self.others.update((change.ref, change) for change in self._other_refs())
            return list(self.others.values())

    def repair(self) -> list[RefChange]:
        """Undo what the agent did to the git data of its own worktree that would break it
        for limitless: HEAD moved off the branch (or deleted: git then no longer sees a
        repository), its branch deleted or garbled (put back where it last was), the
        private objects' link to the repository's objects removed. Each is returned."""
        found: list[RefChange] = []
        path = self.git_dir / "HEAD"
        head = _read_ref(path)
        if head != f"ref: {self.ref}":
            _write(path, f"ref: {self.ref}\n")  # as git writes it, through a rename
            if head and OBJECT_ID.fullmatch(head):
                note = f"detached at {head[:10]}"
            else:
                note = f"made to say {head[:60]!r}" if head else "deleted"
            found.append(RefChange("HEAD", head or "", f"{note}; put back on {self.branch}"))
        own = _read_ref(self.refs / self.name)
        if own is None or not OBJECT_ID.fullmatch(own):
            self.refs.mkdir(parents=True, exist_ok=True)
            _write(self.refs / self.name, self.published + "\n")
            what = "deleted" if own is None else f"made to say {own[:60]!r}"
            note = f"its own branch, {what}; put back at {self.published[:10]}"
            found.append(RefChange(self.ref, own or "", note))
        alternates = self.objects / "info" / "alternates"
        wanted = "\n".join([str(self.shared), *self._real_alternates()]) + "\n"
        if _read_ref(alternates) != wanted.strip():
            alternates.parent.mkdir(parents=True, exist_ok=True)
            _write(alternates, wanted)
        return found

    def close(self) -> bool:
        """Forget the private folders once `publish` copied everything out; when it could
        not, they stay (False) so that no commit of the agent is lost."""
        if self.errors:
            return False
        shutil.rmtree(self.private, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.private.parent.rmdir()  # the run's folder, once its last task is done
            self.private.parent.parent.rmdir()
        return True
