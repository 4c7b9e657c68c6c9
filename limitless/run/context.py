"""Where a command finds its repository, its store and its run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from limitless.errors import UsageError
from limitless.git.repo import RepoInfo, find_repo, state_dir
from limitless.store import Run, Store
from limitless.tmux.pane_programs import SOCKET_ENV


@dataclass
class Context:
    """The repository a command works on and its open store."""

    repo: RepoInfo
    store: Store

    def run(self, run_id: str | None) -> Run:
        """The named run, or the newest one of this repository."""
        if run_id:
            return self.store.get_run(run_id)
        latest = self.store.latest_run()
        if latest is None:
            msg = "no runs yet in this repository; start one with `limitless run [PLAN]`"
            raise UsageError(msg)
        return latest

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_context(cwd: Path | None = None) -> Context:
    """Find the git repository around `cwd` and open its store."""
    repo = find_repo(cwd or Path.cwd())
    return Context(repo=repo, store=Store.open(state_dir(repo)))


def socket_name(flag: str | None) -> str | None:
    """The tmux socket: `--socket`, else $LIMITLESS_TMUX_SOCKET, else the default server."""
    return flag or os.environ.get(SOCKET_ENV) or None
