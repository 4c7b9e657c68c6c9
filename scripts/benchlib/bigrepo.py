"""The `bigrepo` group: worktree setup in a 100,000-file repository, limitless against plain git.

The repository is built once with `git fast-import` (no files written, a few
seconds) and kept in the system's temporary folder, named by its file count, so
later runs reuse it. Each round times, side by side on the same tree:

- `git worktree add` with git's defaults (the baseline);
- limitless's `prepare_worktree` (add under the lock, then a parallel checkout,
  `checkout.workers` one per core);
- limitless's sparse worktree (cone mode, one folder of the tree), as a task
  that declares `files` gets with the plan key `sparse`.

Every worktree is removed again; the cached repository keeps no branch of ours.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib.harness import BenchError, Harness
from limitless.git import worktrees

FILES = int(os.environ.get("LIMITLESS_BENCH_BIGREPO_FILES", "100000"))
"""100,000; the environment variable makes a small one for the bench's own test."""
FOLDERS = 1_000 if FILES >= 10_000 else 10


def cached_repo(h: Harness, files: int) -> Path:
    """The synthetic repository with `files` files, built on first use."""
    repo = Path(tempfile.gettempdir()) / f"limitless-bench-bigrepo-{files}"
    done = repo / ".git" / "limitless-bench-complete"
    if done.exists():
        h.say(f"  reusing {repo}")
        return repo
    if repo.exists():
        subprocess.run(["rm", "-rf", str(repo)], check=True)
    repo.mkdir(parents=True)
    h.git(repo, "init", "-q", "-b", "main")
    started = time.monotonic()
    stream = _fast_import_stream(files)
    result = subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=repo,
        input=stream,
        env=h.env,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        msg = f"git fast-import failed: {result.stderr.decode(errors='replace').strip()}"
        raise BenchError(msg)
    h.git(repo, "read-tree", "main")  # an index for the main checkout, files stay unwritten
    h.git(repo, "gc", "-q")
    done.write_text("ok\n")
    h.say(f"  built {repo} ({files} files) in {time.monotonic() - started:.1f}s")
    return repo


def _fast_import_stream(files: int) -> bytes:
    """One commit of `files` small source files in FOLDERS folders, blobs inline."""
    parts: list[bytes] = []
    for i in range(files):
        body = f'"""module {i}"""\n\ndef f(x):\n    return x * {i}\n'.encode()
        parts.append(b"blob\nmark :%d\ndata %d\n%s\n" % (i + 1, len(body), body))
    message = b"synthetic repository"
    parts.append(b"commit refs/heads/main\n")
    parts.append(b"committer limitless bench <bench@limitless.invalid> 1700000000 +0000\n")
    parts.append(b"data %d\n%s\n" % (len(message), message))
    for i in range(files):
        path = f"src/pkg{i % FOLDERS:04d}/mod{i:06d}.py".encode()
        parts.append(b"M 100644 :%d %s\n" % (i + 1, path))
    parts.append(b"\n")
    return b"".join(parts)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(h: Harness, quick: bool) -> dict[str, float]:
    """Median seconds of each way of making a worktree, over alternating rounds."""
    repo = cached_repo(h, FILES)
    base = h.git(repo, "rev-parse", "main")
    root = h.workdir / "bigrepo-worktrees"
    locks = h.workdir / "bigrepo-locks"
    rounds = 1 if quick else 3
    times: dict[str, list[float]] = {"git": [], "limitless": [], "sparse": []}
    for n in range(rounds):
        for kind in ("git", "limitless", "sparse"):
            path = root / f"{kind}-{n}"
            branch = f"bench-bigrepo/{kind}-{n}"
            if kind == "git":

                def make(path: Path = path, branch: str = branch) -> object:
                    return h.git(repo, "worktree", "add", "-q", "-b", branch, str(path), base)
            else:

                def make(path: Path = path, branch: str = branch, kind: str = kind) -> object:
                    return worktrees.prepare_worktree(
                        repo,
                        path=path,
                        branch=branch,
                        base_sha=base,
                        lock_dir=locks,
                        sparse=(f"src/pkg{1:04d}",) if kind == "sparse" else None,
                    )

            times[kind].append(_timed(make))
            count = int(
                subprocess.run(
                    f"find {path} -name '*.py' | wc -l",
                    shell=True,
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip()
                or 0
            )
            expected = FILES // FOLDERS if kind == "sparse" else FILES
            if count != expected:
                msg = f"bigrepo: the {kind} worktree holds {count} files, not {expected}"
                raise BenchError(msg)
            h.git(repo, "worktree", "remove", "--force", str(path))
            h.git(repo, "branch", "-D", branch)
            h.say(f"  round {n + 1}: {kind} {times[kind][-1]:.2f}s")
    h.git(repo, "worktree", "prune")
    return {kind: statistics.median(values) for kind, values in times.items()}
