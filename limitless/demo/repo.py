"""The demo: a throwaway web-shop repository and a plan run by the demo agent.

`create_demo_repo(parent)` makes `parent/shop`, a git repository on `main` with a
small web-shop skeleton and a committed `limitless.yaml` (so the checkout and
every worktree start clean). The plan is shaped like an e-commerce build:

    frontend ─────────────────────────┐
    backend ──┬─► api ─┬─► frontend-api ─┬─► e2e
    database ─┘        └─► payments ─────┘

Every task uses the `demo` agent (`limitless.demo.agent`), whose pace is set by
the task's `LIMITLESS_DEMO_SPEED`. Fewer than seven tasks keeps the first ones
whose dependencies are kept; more adds independent `feature-N` tasks.

This module is the one exception to "only worktrees.py and merge.py run git":
building the demo repository is fixture work, and all of its git calls go
through `_git`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from limitless.demo.agent import INSTANT_SPEED
from limitless.demo.script import seconds_for
from limitless.errors import EnvironmentProblem, GitError, UsageError

DEMO_PLAN_NAME = "shop"
PLAN_FILE = "limitless.yaml"
MAX_TASKS = 500
DEMO_IDENTITY = ("limitless demo", "demo@limitless.invalid")

_GIT_SCRUB = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")


@dataclass(frozen=True)
class DemoRepo:
    """A demo repository and its plan file."""

    repo: Path
    plan_path: Path


@dataclass(frozen=True)
class DemoTask:
    """One task of the demo plan."""

    id: str
    prompt: str
    depends_on: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


BASE_TASKS: tuple[DemoTask, ...] = (
    DemoTask(
        "frontend",
        "Set up the storefront in apps/web with React and Vite.\n"
        "Add an App shell with a header and a cart badge, a ProductGrid component\n"
        "showing name, price and an add-to-cart button, and a render test.\n",
        files=("apps/web/**",),
    ),
    DemoTask(
        "backend",
        "Create the API service in services/api.\n"
        "A Node HTTP server with JSON logging and a GET /health route, with a test.\n",
        files=("services/api/**",),
    ),
    DemoTask(
        "database",
        "Write the first database migrations in db/migrations.\n"
        "Tables for products, orders and order lines, plus seed data with a few products.\n",
        files=("db/**",),
    ),
    DemoTask(
        "api",
        "Expose the catalogue and orders through the API.\n"
        "GET /products reads the products table; POST /orders validates its lines.\n"
        "Test both routes.\n",
        depends_on=("backend", "database"),
        files=("services/api/src/routes/**", "services/api/tests/products.test.ts"),
    ),
    DemoTask(
        "frontend-api",
        "Connect the storefront to the API.\n"
        "A typed client in apps/web/src/api, a useProducts hook, and a test of the client.\n",
        depends_on=("frontend", "api"),
        files=("apps/web/src/api/**", "apps/web/src/hooks/**"),
    ),
    DemoTask(
        "payments",
        "Add payments to the API.\n"
        "Checkout sessions for an order and a webhook handler that verifies signatures;\n"
        "test the signature check.\n",
        depends_on=("api",),
        files=("services/api/src/payments/**", "services/api/tests/payments.test.ts"),
    ),
    DemoTask(
        "e2e",
        "Write end-to-end tests with Playwright in tests/e2e.\n"
        "Browse the catalogue, add a product to the cart and complete a checkout.\n",
        depends_on=("frontend-api", "payments"),
        files=("tests/e2e/**",),
    ),
)

_BACKLOG = (
    "a wishlist",
    "product reviews",
    "discount codes",
    "search suggestions",
    "order history",
    "a newsletter signup",
    "low-stock alerts",
    "gift wrapping",
    "saved addresses",
    "currency display",
    "recently viewed items",
    "a size guide",
)


def _feature(number: int) -> DemoTask:
    task_id = f"feature-{number}"
    name = _BACKLOG[(number - 1) % len(_BACKLOG)]
    prompt = (
        f"Build backlog item {number}: {name}.\n"
        f"Keep it self-contained under work/{task_id} with notes, code and a test.\n"
    )
    return DemoTask(task_id, prompt, files=(f"work/{task_id}/**",))


def demo_tasks(tasks: int = 7) -> tuple[DemoTask, ...]:
    """The first `tasks` demo tasks: base tasks whose dependencies are kept, then features."""
    _check_tasks(tasks)
    kept: list[DemoTask] = []
    for task in BASE_TASKS:
        if len(kept) == tasks:
            break
        names = {k.id for k in kept}
        if all(dep in names for dep in task.depends_on):
            kept.append(task)
    kept += [_feature(n) for n in range(1, tasks - len(kept) + 1)]
    return tuple(kept)


def _check_tasks(tasks: int) -> None:
    if isinstance(tasks, bool) or not isinstance(tasks, int) or not 1 <= tasks <= MAX_TASKS:
        msg = f"demo tasks {tasks!r} is out of range; use a whole number from 1 to {MAX_TASKS}"
        raise UsageError(msg)


def _check_speed(speed: float) -> None:
    if not isinstance(speed, int | float) or not math.isfinite(speed) or speed < 0:
        msg = (
            f"demo speed {speed!r} is not a speed; "
            "use a number >= 0 (2 = twice as fast, 0 = instant)"
        )
        raise UsageError(msg)


def _quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def _estimate(task_id: str, speed: float) -> str:
    """The agent's own duration for `task_id` at `speed` (0 and huge speeds count as instant)."""
    effective = INSTANT_SPEED if speed == 0 else min(speed, INSTANT_SPEED)
    return f"{seconds_for(task_id) / effective:.3g}s"


def demo_plan_text(tasks: int = 7, speed: float = 1.0) -> str:
    """The demo plan as commented YAML, for `tasks` tasks at `speed`."""
    _check_tasks(tasks)
    _check_speed(speed)
    chosen = demo_tasks(tasks)
    lines = [
        f"# limitless demo plan: a small web shop built by {len(chosen)} simulated agents.",
        "# Every task runs the built-in `demo` agent (python -m limitless.demo.agent): it prints",
        "# believable work, writes real files in its worktree and commits them.",
        "# LIMITLESS_DEMO_SPEED scales how long each agent takes (2 = twice as fast, 0 = instant).",
        f"name: {DEMO_PLAN_NAME}",
        "base: main",
        "agent: demo",
        "max_concurrency: 3",
        "merge:",
        "  strategy: merge",
        "  gate: null",
        "tasks:",
    ]
    speed_text = _quoted(f"{speed:g}")
    for task in chosen:
        lines.append(f"  - id: {task.id}")
        lines.append("    prompt: |")
        lines += [f"      {line}" for line in task.prompt.splitlines()]
        if task.depends_on:
            lines.append(f"    depends_on: [{', '.join(task.depends_on)}]")
        lines.append(f"    files: [{', '.join(_quoted(f) for f in task.files)}]")
        lines.append(f"    estimate: {_estimate(task.id, speed)}")
        lines.append(f"    env: {{LIMITLESS_DEMO_SPEED: {speed_text}}}")
    return "\n".join(lines) + "\n"


_SKELETON: dict[str, str] = {
    "README.md": (
        "# shop\n\n"
        "A tiny web shop, built in parallel by simulated agents: a throwaway repository\n"
        "made by `limitless demo`.\n\n"
        "- `apps/web`: the storefront (React + Vite)\n"
        "- `services/api`: the API (Node)\n"
        "- `db`: schema, migrations and seeds\n"
        "- `tests`: smoke and end-to-end tests\n\n"
        "The plan is in `limitless.yaml`; try `limitless graph` to see it.\n"
    ),
    ".gitignore": "node_modules/\ndist/\n.env\n*.log\n",
    "package.json": (
        "{\n"
        '  "name": "shop",\n'
        '  "private": true,\n'
        '  "workspaces": ["apps/*", "services/*"],\n'
        '  "scripts": {"test": "echo \\"no tests yet\\""}\n'
        "}\n"
    ),
    "apps/web/package.json": (
        '{\n  "name": "@shop/web",\n  "private": true,\n'
        '  "scripts": {"dev": "vite", "build": "vite build"}\n}\n'
    ),
    "apps/web/index.html": (
        "<!doctype html>\n<html>\n  <head><title>shop</title></head>\n"
        '  <body>\n    <div id="root"></div>\n'
        '    <script type="module" src="/src/main.tsx"></script>\n  </body>\n</html>\n'
    ),
    "apps/web/src/main.tsx": (
        'import { createRoot } from "react-dom/client";\n\n'
        'createRoot(document.getElementById("root")!).render(<p>Coming soon</p>);\n'
    ),
    "services/api/package.json": (
        '{\n  "name": "@shop/api",\n  "private": true,\n'
        '  "scripts": {"start": "node src/index.ts"}\n}\n'
    ),
    "services/api/src/index.ts": 'console.log("shop api: nothing here yet");\n',
    "db/README.md": "# db\n\nMigrations go in `db/migrations`, numbered; seeds in `db/seeds`.\n",
    "db/schema.sql": "-- The schema grows through migrations in db/migrations.\n",
    "tests/README.md": "# tests\n\nSmoke tests here; browser tests in `tests/e2e`.\n",
    "tests/smoke.test.ts": 'test("the repository is alive", () => expect(1 + 1).toBe(2));\n',
}


def _git(repo: Path, *args: str) -> None:
    """Run git in `repo` (without inherited GIT_DIR and friends); raise GitError on failure."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_SCRUB}
    try:
        result = subprocess.run(
            ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        msg = "git is not installed or not on PATH; install git 2.38 or newer"
        raise EnvironmentProblem(msg) from exc
    if result.returncode != 0:
        msg = f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}"
        raise GitError(msg)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")


def _commit(repo: Path, message: str, paths: Sequence[str]) -> None:
    _git(repo, "add", "--", *paths)
    _git(repo, "commit", "--no-verify", "-q", "-m", message)


def create_demo_repo(parent: Path, *, tasks: int = 7, speed: float = 1.0) -> DemoRepo:
    """Make `parent/shop`: a git repository on `main` with a shop skeleton and the demo plan."""
    plan_text = demo_plan_text(tasks, speed)
    repo = Path(parent).absolute() / DEMO_PLAN_NAME
    if repo.exists() or repo.is_symlink():
        msg = f"{repo} already exists; pick another folder for the demo (or remove it)"
        raise UsageError(msg)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    name, email = DEMO_IDENTITY
    for key, value in (
        ("user.name", name),
        ("user.email", email),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
        ("core.autocrlf", "false"),
    ):
        _git(repo, "config", "--local", key, value)
    _write(repo, _SKELETON)
    _commit(repo, "Web shop skeleton", sorted(_SKELETON))
    plan_path = repo / PLAN_FILE
    plan_path.write_text(plan_text, encoding="utf-8", newline="\n")
    _commit(repo, f"Add the limitless demo plan ({len(demo_tasks(tasks))} tasks)", [PLAN_FILE])
    return DemoRepo(repo=repo, plan_path=plan_path)
