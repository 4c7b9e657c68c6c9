"""Where the real agent programs are: the one place tests ask.

`./scripts/test.sh` (the dev bootstrap) installs them, pinned, into
`<repo>/.agents/` (or `$LIMITLESS_AGENTS_DIR`): the npm programs under
`npm/node_modules/.bin`, aider in its own venv `aider-venv/bin`. A program that
is not there makes its tests skip, naming why (no node, or the registry could
not be reached when the bootstrap ran).

    path = program("claude")              # Path, or pytest.skip(reason)
    find("codex").missing                  # None, or the reason it is absent
    env["PATH"] = agent_path(env["PATH"])  # the programs' folders first
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The versions the tests were written against; scripts/_bootstrap.sh installs
# these (a test checks the two lists agree).
PINNED: dict[str, str] = {
    "claude": "@anthropic-ai/claude-code@2.1.197",
    "codex": "@openai/codex@0.171.0",
    "opencode": "opencode-ai@1.18.33",
    "gemini": "@google/gemini-cli@0.61.0",
    "aider": "aider-chat==0.86.2",
}
NPM_PROGRAMS = ("claude", "codex", "opencode", "gemini")


def agents_dir() -> Path:
    override = os.environ.get("LIMITLESS_AGENTS_DIR")
    return Path(override) if override else REPO_ROOT / ".agents"


def npm_bin() -> Path:
    return agents_dir() / "npm" / "node_modules" / ".bin"


def aider_bin() -> Path:
    return agents_dir() / "aider-venv" / "bin"


@dataclass(frozen=True)
class Program:
    name: str
    pinned: str
    path: Path | None
    missing: str | None  # why it is not installed (None when `path` is set)


def find(name: str) -> Program:
    """Where `name` is installed, or why it is not."""
    if name not in PINNED:
        msg = f"unknown agent program {name!r}; known: {', '.join(PINNED)}"
        raise ValueError(msg)
    pinned = PINNED[name]
    folder = aider_bin() if name == "aider" else npm_bin()
    path = folder / name
    if path.is_file() and os.access(path, os.X_OK):
        return Program(name, pinned, path, None)
    if name in NPM_PROGRAMS and shutil.which("node") is None:
        why = f"{name} is not installed: node/npm is not on PATH (the bootstrap needs them)"
    elif name in NPM_PROGRAMS:
        log = agents_dir() / "npm" / ".npm-install.log"
        why = (
            f"{name} is not installed in {folder}: run ./scripts/test.sh with the npm "
            f"registry reachable (installs {pinned}; see {log})"
        )
    else:
        log = agents_dir() / "aider-venv" / ".pip-install.log"
        why = (
            f"aider is not installed in {folder}: run ./scripts/test.sh with PyPI "
            f"reachable (installs {pinned}; see {log})"
        )
    return Program(name, pinned, None, why)


def program(name: str) -> Path:
    """The program's path; skips the calling test (naming why) when it is not installed."""
    found = find(name)
    if found.path is None:
        pytest.skip(found.missing or f"{name} is not installed")
    return found.path


def agent_path(path: str | None = None) -> str:
    """A PATH with the agent programs' folders first (`path` defaults to $PATH)."""
    rest = os.environ.get("PATH", "") if path is None else path
    return os.pathsep.join(
        [str(npm_bin()), str(aider_bin()), *filter(None, rest.split(os.pathsep))]
    )
