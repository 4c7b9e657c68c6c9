"""The demo agent: a simulated coding agent for `limitless demo` and for tests.

Usage::

    python -m limitless.demo.agent --task ID [--model M] PROMPT_FILE

It runs in the task's worktree and behaves like a small coding agent: it reads a
few files, plans, writes real files that depend on the task id and the prompt,
commits them (one to three commits, each message starting with `<task>: `), runs
"tests", prints `progress NN%` lines rising to 100 and ends with a cost line
(`Total cost: $0.NN`). Everything it does is decided up front by a
`random.Random` seeded with the task id, so a task always writes the same files,
takes the same time and costs the same.

The prompt file is data: it is read as text, its first line becomes the commit
subject and a comment in the files written, and nothing in it is ever run.

Where files go: `frontend` -> `apps/web/`, `backend` -> `services/api/`,
`database` -> `db/migrations/` and `db/seeds/`, `api` -> `services/api/src/routes/`,
`frontend-api` -> `apps/web/src/api/`, `payments` -> `services/api/src/payments/`,
`e2e` -> `tests/e2e/`; any other id -> `work/<task>/`. A stage id such as
`api.review` uses the area of the part before the dot.

Knobs (environment variables):

- `LIMITLESS_DEMO_SPEED`: a float multiplier of speed (default 1: about 4-8 s per
  task; 2 is twice as fast). 0, or a very large value, makes the agent near-instant.
- `LIMITLESS_DEMO_FAIL=1`: after writing and committing its first batch of files,
  the test run fails; the agent prints the failures and its cost and exits 1.
- `LIMITLESS_DEMO_TOUCH=path[,path]`: also write these files (relative to the
  worktree) in the last commit: an existing file gets a line appended that names
  the task, a missing one is created. Two tasks touching one path conflict on
  merge, on purpose. Paths outside the worktree are refused with a warning.
- `LIMITLESS_DEMO_WAIT=1`: after planning, ask `Do you want to proceed with these
  edits? (y/n)` and wait for a line on stdin. `n` or `no` stops the agent (exit 1);
  anything else, or end of input, goes on.
- `NO_COLOR` / `FORCE_COLOR`: colours are used on a terminal unless `NO_COLOR` is
  set, or anywhere when `FORCE_COLOR` is set. The progress and cost figures are
  never split by colour codes, so the wrapper's regexes always read them.

Exit codes: 0 done; 1 failed tests (`LIMITLESS_DEMO_FAIL`), a declined question or
a git failure; 2 bad usage or an unreadable prompt file; 130 interrupted.

This module imports only the standard library: it starts once per task.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SPEED_ENV = "LIMITLESS_DEMO_SPEED"
FAIL_ENV = "LIMITLESS_DEMO_FAIL"
TOUCH_ENV = "LIMITLESS_DEMO_TOUCH"
WAIT_ENV = "LIMITLESS_DEMO_WAIT"

MIN_SECONDS = 4.0
MAX_SECONDS = 8.0
INSTANT_SPEED = 1000.0
"""At or above this speed (or at 0) the agent does not pause at all."""

QUESTION = "Do you want to proceed with these edits? (y/n)"
AGENT_NAME = "limitless demo agent"
AGENT_EMAIL = "demo-agent@limitless.invalid"

_GIT_SCRUB = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class FileSpec:
    """One file the agent writes: where, why (a commit subject) and what."""

    path: str
    subject: str
    body: str


@dataclass(frozen=True)
class Area:
    """What the agent does for one kind of task."""

    reads: tuple[str, ...]
    steps: tuple[str, ...]
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class Commit:
    """One commit the agent will make: its message and the files in it."""

    message: str
    files: tuple[tuple[str, str], ...]  # (relative path, full text)


@dataclass(frozen=True)
class Script:
    """Everything one run does, decided up front from the task id and prompt."""

    task: str
    summary: str
    seconds: float
    cost_usd: float
    reads: tuple[str, ...]
    steps: tuple[str, ...]
    commits: tuple[Commit, ...]
    tests: int


def _spec(path: str, subject: str, body: str) -> FileSpec:
    return FileSpec(path, subject, body)


_AREAS: dict[str, Area] = {
    "frontend": Area(
        reads=("apps/web/package.json", "apps/web/index.html", "apps/web/src/main.tsx"),
        steps=(
            "scaffold the storefront shell with a header and a cart badge",
            "add a product grid that renders name, price and an add-to-cart button",
            "cover the shell with a render test",
        ),
        files=(
            _spec(
                "apps/web/src/App.tsx",
                "storefront shell",
                'import { ProductGrid } from "./components/ProductGrid";\n\n'
                "export function App() {\n"
                "  return (\n"
                "    <main>\n"
                "      <header>{{shop}}</header>\n"
                "      <ProductGrid products={[]} />\n"
                "    </main>\n"
                "  );\n"
                "}\n",
            ),
            _spec(
                "apps/web/src/components/ProductGrid.tsx",
                "product grid",
                "export type Product = { id: string; name: string; priceCents: number };\n\n"
                "export function ProductGrid({ products }: { products: Product[] }) {\n"
                "  return (\n"
                "    <ul>\n"
                "      {products.map((p) => (\n"
                "        <li key={p.id}>{p.name} {(p.priceCents / 100).toFixed(2)}</li>\n"
                "      ))}\n"
                "    </ul>\n"
                "  );\n"
                "}\n",
            ),
            _spec(
                "apps/web/src/App.test.tsx",
                "render test for the shell",
                'import { App } from "./App";\n\n'
                'test("renders the shop name", () => {\n'
                "  expect(App).toBeDefined(); // {{n}} products in the fixture\n"
                "});\n",
            ),
        ),
    ),
    "backend": Area(
        reads=("services/api/package.json", "services/api/src/index.ts"),
        steps=(
            "create an HTTP server with JSON logging",
            "add a health route",
            "test the health route",
        ),
        files=(
            _spec(
                "services/api/src/server.ts",
                "HTTP server",
                'import { createServer } from "node:http";\n\n'
                "export function start(port = {{port}}) {\n"
                "  return createServer((req, res) => {\n"
                '    res.setHeader("content-type", "application/json");\n'
                "    res.end(JSON.stringify({ path: req.url }));\n"
                "  }).listen(port);\n"
                "}\n",
            ),
            _spec(
                "services/api/src/routes/health.ts",
                "health route",
                'export const health = () => ({ status: "ok", checks: {{n}} });\n',
            ),
            _spec(
                "services/api/tests/health.test.ts",
                "health route test",
                'import { health } from "../src/routes/health";\n\n'
                'test("health is ok", () => expect(health().status).toBe("ok"));\n',
            ),
        ),
    ),
    "database": Area(
        reads=("db/schema.sql", "db/README.md"),
        steps=(
            "write a migration for products",
            "write a migration for orders and order lines",
            "seed a few products",
        ),
        files=(
            _spec(
                "db/migrations/0001_products.sql",
                "products migration",
                "CREATE TABLE products (\n"
                "  id TEXT PRIMARY KEY,\n"
                "  name TEXT NOT NULL,\n"
                "  price_cents INTEGER NOT NULL CHECK (price_cents >= 0)\n"
                ");\n",
            ),
            _spec(
                "db/migrations/0002_orders.sql",
                "orders migration",
                "CREATE TABLE orders (id TEXT PRIMARY KEY, created_at TEXT NOT NULL);\n"
                "CREATE TABLE order_lines (\n"
                "  order_id TEXT NOT NULL REFERENCES orders(id),\n"
                "  product_id TEXT NOT NULL REFERENCES products(id),\n"
                "  quantity INTEGER NOT NULL DEFAULT 1\n"
                ");\n",
            ),
            _spec(
                "db/seeds/products.sql",
                "product seeds",
                "INSERT INTO products (id, name, price_cents) VALUES\n"
                "  ('p1', '{{product}}', {{price}}),\n"
                "  ('p2', 'Gift card', 2500);\n",
            ),
        ),
    ),
    "api": Area(
        reads=("services/api/src/server.ts", "db/migrations/0001_products.sql"),
        steps=(
            "expose GET /products from the products table",
            "accept POST /orders with validation",
            "test both routes",
        ),
        files=(
            _spec(
                "services/api/src/routes/products.ts",
                "products route",
                "export async function listProducts(limit = {{n}}) {\n"
                '  return { items: [], limit, sort: "name" };\n'
                "}\n",
            ),
            _spec(
                "services/api/src/routes/orders.ts",
                "orders route",
                "export type OrderLine = { productId: string; quantity: number };\n\n"
                "export function validateOrder(lines: OrderLine[]) {\n"
                "  return lines.length > 0 && lines.every((l) => l.quantity > 0);\n"
                "}\n",
            ),
            _spec(
                "services/api/tests/products.test.ts",
                "route tests",
                'import { validateOrder } from "../src/routes/orders";\n\n'
                'test("empty orders are refused", () => expect(validateOrder([])).toBe(false));\n',
            ),
        ),
    ),
    "frontend-api": Area(
        reads=("apps/web/src/App.tsx", "services/api/src/routes/products.ts"),
        steps=(
            "write a typed API client",
            "load products through a hook",
            "test the client against a stub server",
        ),
        files=(
            _spec(
                "apps/web/src/api/client.ts",
                "typed API client",
                'const BASE = import.meta.env.VITE_API_URL ?? "http://localhost:{{port}}";\n\n'
                "export async function getProducts() {\n"
                "  const res = await fetch(`${BASE}/products`);\n"
                "  if (!res.ok) throw new Error(`products: ${res.status}`);\n"
                "  return res.json();\n"
                "}\n",
            ),
            _spec(
                "apps/web/src/hooks/useProducts.ts",
                "useProducts hook",
                'import { useEffect, useState } from "react";\n'
                'import { getProducts } from "../api/client";\n\n'
                "export function useProducts() {\n"
                "  const [items, setItems] = useState([]);\n"
                "  useEffect(() => { getProducts().then((d) => setItems(d.items)); }, []);\n"
                "  return items;\n"
                "}\n",
            ),
            _spec(
                "apps/web/src/api/client.test.ts",
                "client test",
                'import { getProducts } from "./client";\n\n'
                'test("exports getProducts", () => expect(typeof getProducts).toBe("function"));\n',
            ),
        ),
    ),
    "payments": Area(
        reads=("services/api/src/routes/orders.ts", "services/api/package.json"),
        steps=(
            "create checkout sessions for an order",
            "verify and handle payment webhooks",
            "test the webhook signature check",
        ),
        files=(
            _spec(
                "services/api/src/payments/checkout.ts",
                "checkout sessions",
                "export function checkoutSession(orderId: string, amountCents: number) {\n"
                '  return { orderId, amountCents, currency: "{{currency}}" };\n'
                "}\n",
            ),
            _spec(
                "services/api/src/payments/webhooks.ts",
                "payment webhooks",
                'import { createHmac, timingSafeEqual } from "node:crypto";\n\n'
                "export function verify(body: string, signature: string, secret: string) {\n"
                '  const mac = createHmac("sha256", secret).update(body).digest("hex");\n'
                "  return mac.length === signature.length &&\n"
                "    timingSafeEqual(Buffer.from(mac), Buffer.from(signature));\n"
                "}\n",
            ),
            _spec(
                "services/api/tests/payments.test.ts",
                "webhook tests",
                'import { verify } from "../src/payments/webhooks";\n\n'
                'test("bad signatures fail", () => expect(verify("{}", "x", "s")).toBe(false));\n',
            ),
        ),
    ),
    "e2e": Area(
        reads=("apps/web/src/App.tsx", "services/api/src/payments/checkout.ts"),
        steps=(
            "configure Playwright against the dev servers",
            "walk through browse -> cart -> checkout",
            "run the suite headless",
        ),
        files=(
            _spec(
                "tests/e2e/playwright.config.ts",
                "Playwright config",
                "export default {\n"
                '  testDir: ".",\n'
                '  use: { baseURL: "http://localhost:{{port}}" },\n'
                "  retries: 1,\n"
                "};\n",
            ),
            _spec(
                "tests/e2e/browse.spec.ts",
                "browse test",
                'import { test, expect } from "@playwright/test";\n\n'
                'test("home lists products", async ({ page }) => {\n'
                '  await page.goto("/");\n'
                '  await expect(page.getByRole("listitem")).toHaveCount({{n}});\n'
                "});\n",
            ),
            _spec(
                "tests/e2e/checkout.spec.ts",
                "checkout test",
                'import { test, expect } from "@playwright/test";\n\n'
                'test("checkout completes", async ({ page }) => {\n'
                '  await page.goto("/cart");\n'
                '  await page.getByRole("button", { name: "Pay" }).click();\n'
                '  await expect(page.getByText("Thank you")).toBeVisible();\n'
                "});\n",
            ),
        ),
    ),
}


def _generic_area(slug: str) -> Area:
    module = slug.replace("-", "_").replace(".", "_")
    if not module[:1].isalpha():
        module = f"task_{module}"
    root = f"work/{slug}"
    return Area(
        reads=("README.md",),
        steps=(
            f"write down the approach in {root}/NOTES.md",
            f"implement {module}.py",
            f"test {module}.py",
        ),
        files=(
            _spec(
                f"{root}/NOTES.md", "notes", "# Notes\n\n- keep it small\n- {{n}} cases to cover\n"
            ),
            _spec(
                f"{root}/{module}.py",
                "implementation",
                f"def {module}(values: list[int]) -> int:\n"
                "    return sum(v * {{n}} for v in values)\n",
            ),
            _spec(
                f"{root}/test_{module}.py",
                "tests",
                f"from {module} import {module}\n\n\n"
                f"def test_{module}() -> None:\n"
                f"    assert {module}([1]) == {{{{n}}}}\n",
            ),
        ),
    )


def safe_slug(task: str) -> str:
    """`task` made safe as one path component."""
    slug = _SAFE_ID.sub("-", task).strip(".-")
    return slug or "task"


def _area_for(task: str) -> Area:
    return _AREAS.get(task.split(".", 1)[0]) or _generic_area(safe_slug(task))


def _seeded(task: str) -> random.Random:
    return random.Random(f"limitless-demo:{task}")


def seconds_for(task: str) -> float:
    """How long the agent takes for `task` at speed 1, in seconds (4 to 8)."""
    return round(_seeded(task).uniform(MIN_SECONDS, MAX_SECONDS), 1)


def cost_for(task: str) -> float:
    """The cost the agent reports for `task`, in USD (below one dollar)."""
    rng = _seeded(task)
    rng.uniform(MIN_SECONDS, MAX_SECONDS)
    return round(rng.uniform(0.08, 0.96), 2)


def summary_of(prompt: str, task: str) -> str:
    """The prompt's first non-blank line, without control characters, fit for a commit subject."""
    for line in prompt.splitlines():
        text = " ".join("".join(ch if ch.isprintable() else " " for ch in line).split())
        if text:
            return text if len(text) <= 68 else text[:65].rstrip() + "..."
    return f"work on {task}"


_COMMENT = {".sql": "--", ".py": "#", ".md": "", ".yaml": "#", ".toml": "#"}


def _render(spec: FileSpec, task: str, summary: str, values: Mapping[str, str]) -> str:
    body = spec.body
    for key, value in values.items():
        body = body.replace("{{" + key + "}}", value)
    marker = _COMMENT.get(Path(spec.path).suffix, "//")
    if not marker:
        return f"<!-- {task}: {summary.replace('--', '- -')} -->\n{body}"
    return f"{marker} {task}: {summary}\n{marker} written by the limitless demo agent\n{body}"


def build_script(task: str, prompt: str) -> Script:
    """What the agent will do for `task` and `prompt`; the same inputs give the same script."""
    rng = _seeded(task)
    seconds = round(rng.uniform(MIN_SECONDS, MAX_SECONDS), 1)
    cost = round(rng.uniform(0.08, 0.96), 2)
    summary = summary_of(prompt, task)
    area = _area_for(task)
    values = {
        "n": str(rng.randint(3, 12)),
        "port": str(rng.choice((3000, 4000, 5173, 8080))),
        "price": str(rng.randrange(500, 9900, 100)),
        "product": rng.choice(("Canvas tote", "Espresso cups", "Wool scarf", "Desk lamp")),
        "currency": rng.choice(("usd", "eur", "gbp")),
        "shop": rng.choice(("Corner Shop", "The Little Store", "Shopfront")),
    }
    groups = rng.randint(1, len(area.files))
    cuts = sorted(rng.sample(range(1, len(area.files)), groups - 1))
    bounds = [0, *cuts, len(area.files)]
    commits: list[Commit] = []
    for number, (start, end) in enumerate(itertools.pairwise(bounds)):
        specs = area.files[start:end]
        subject = summary if number == 0 else f"add {specs[0].subject}"
        files = tuple((s.path, _render(s, task, summary, values)) for s in specs)
        commits.append(Commit(f"{task}: {subject}", files))
    return Script(
        task=task,
        summary=summary,
        seconds=seconds,
        cost_usd=cost,
        reads=area.reads,
        steps=area.steps,
        commits=tuple(commits),
        tests=rng.randint(4, 24),
    )


class _Style:
    """ANSI colours when wanted; plain text otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)


def _colour_wanted(env: Mapping[str, str]) -> bool:
    if "NO_COLOR" in env:
        return False
    if env.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    return sys.stdout.isatty()


def parse_speed(raw: str | None) -> float:
    """The speed multiplier from `LIMITLESS_DEMO_SPEED`; 0 means no pauses at all."""
    if raw is None or not raw.strip():
        return 1.0
    try:
        speed = float(raw)
    except ValueError:
        speed = math.nan
    if math.isnan(speed) or speed < 0:
        print(
            f"demo agent: {SPEED_ENV}={raw!r} is not a speed; use a number >= 0 "
            "(2 = twice as fast, 0 = instant); going on at speed 1",
            file=sys.stderr,
        )
        return 1.0
    return speed


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_SCRUB}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


class _GitFailed(Exception):
    pass


class Agent:
    """One run of the demo agent in `cwd`."""

    def __init__(
        self,
        script: Script,
        cwd: Path,
        *,
        model: str | None,
        env: Mapping[str, str],
        out: Callable[[str], None],
        readline: Callable[[], str],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.script = script
        self.cwd = cwd
        self.model = model
        self.out = out
        self.readline = readline
        self.sleep = sleep
        self.style = _Style(_colour_wanted(env))
        speed = parse_speed(env.get(SPEED_ENV))
        self.scale = 0.0 if speed == 0 or speed >= INSTANT_SPEED else 1.0 / speed
        self.fail = _flag(env, FAIL_ENV)
        self.wait = _flag(env, WAIT_ENV)
        self.warnings: list[str] = []
        self.touch = self._touch_paths(env.get(TOUCH_ENV, ""))
        self.commits = script.commits[:1] if self.fail else script.commits
        files = sum(len(c.files) for c in self.commits) + len(self.touch)
        self.total_steps = len(script.reads) + 1 + files + len(self.commits) + 1
        self.step = 0
        self.pause = script.seconds * self.scale / self.total_steps
        self.identity: tuple[str, ...] | None = None

    def _touch_paths(self, raw: str) -> tuple[str, ...]:
        """The `LIMITLESS_DEMO_TOUCH` paths that stay inside the worktree, as posix paths."""
        root = self.cwd.resolve()
        kept: list[str] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            rel = Path(item)
            target = (root / rel).resolve()
            if (
                rel.is_absolute()
                or ".." in rel.parts
                or ".git" in rel.parts
                or target == root
                or not target.is_relative_to(root)
            ):
                self.warnings.append(
                    f"warning: {TOUCH_ENV} path {item!r} is not a file inside the worktree; skipped"
                )
                continue
            posix = target.relative_to(root).as_posix()
            if posix not in kept:
                kept.append(posix)
        return tuple(kept)

    def say(self, text: str = "") -> None:
        self.out(text)

    def advance(self) -> None:
        """Pause for one step's share of the run, then report progress."""
        if self.pause > 0:
            self.sleep(self.pause)
        self.step = min(self.step + 1, self.total_steps)
        percent = 100 * self.step // self.total_steps
        filled = percent // 5
        bar = "#" * filled + "-" * (20 - filled)
        # Plain words around the figure: a colour code glued to "progress" would hide it
        # from the wrapper's regex (no word boundary between "m" and "p").
        self.say(f"progress {percent}% " + self.style.dim(f"[{bar}]"))

    def run(self) -> int:
        """Do the whole script; returns the exit code."""
        s, script = self.style, self.script
        model = self.model or "demo-sim-1"
        self.say(s.bold(f"demo agent - task {script.task}") + s.dim(f" (model: {model})"))
        self.say(s.dim(f"cwd: {self.cwd}"))
        self.say(f"Task: {script.summary}")
        for warning in self.warnings:
            self.say(s.yellow(warning))
        in_repo = _git(self.cwd, "rev-parse", "--is-inside-work-tree").returncode == 0
        if not in_repo:
            self.say(s.yellow("warning: not inside a git repository; files will not be committed"))
        for path in script.reads:
            missing = "" if (self.cwd / path).exists() else " (not found, skipping)"
            self.say(s.cyan("Reading ") + path + s.dim(missing))
            self.advance()
        self.say(s.bold("Planning: ") + script.summary)
        for number, step in enumerate(script.steps, start=1):
            self.say(f"  {number}. {step}")
        self.advance()
        if self.wait and not self._ask():
            return self._finish(1, s.red("Stopped: the edits were declined."))
        written = 0
        for index, commit in enumerate(self.commits):
            files = list(commit.files)
            if index == len(self.commits) - 1:
                files += [(rel, self._touched_text(rel, files)) for rel in self.touch]
            try:
                self._write_and_commit(commit.message, files, in_repo)
            except _GitFailed as exc:
                return self._finish(1, s.red(f"Error: {exc}"))
            written += len(files)
        if self.fail:
            return self._fail_tests()
        self.say(
            s.cyan("Running tests: ") + s.green(f"{script.tests} passed") + s.dim(" (0 failed)")
        )
        self.advance()
        count = len(self.commits)
        done = f"Done: {written} files written in {count} commit{'s' if count > 1 else ''}."
        return self._finish(0, s.green(done))

    def _ask(self) -> bool:
        self.say(self.style.yellow(QUESTION))
        answer = self.readline()
        if answer.strip().lower() in ("n", "no"):
            return False
        self.say(self.style.dim("continuing" if answer else "no answer (end of input); continuing"))
        return True

    def _touched_text(self, rel: str, pending: Sequence[tuple[str, str]]) -> str:
        """Touched file `rel`: its current text (or ours) plus a line naming the task."""
        line = f"{self.script.task} was here: {self.script.summary}\n"
        ours = dict(pending)
        path = self.cwd / rel
        old = ours.get(rel) or (path.read_text(errors="replace") if path.is_file() else "")
        if old and not old.endswith("\n"):
            old += "\n"
        return old + line

    def _write_and_commit(
        self, message: str, files: Sequence[tuple[str, str]], in_repo: bool
    ) -> None:
        s = self.style
        for rel, text in files:
            path = self.cwd / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            self.say(s.green("Writing ") + rel + s.dim(f" (+{text.count(chr(10))} lines)"))
            self.advance()
        if not in_repo:
            self.advance()
            return
        self._git_ok("add", "add", "--", *(rel for rel, _ in files))
        if _git(self.cwd, "diff", "--cached", "--quiet").returncode == 0:
            self.say(s.dim("nothing new to commit"))
            self.advance()
            return
        self._git_ok(
            "commit",
            *self._identity(),
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--no-verify",
            "-q",
            "-m",
            message,
        )
        head = self._git_ok("rev-parse", "rev-parse", "--short", "HEAD").strip()
        self.say(s.cyan("Committed ") + s.dim(f"[{head}]") + f" {message}")
        self.advance()

    def _identity(self) -> tuple[str, ...]:
        """`-c` options naming the agent when the repository has no identity of its own."""
        if self.identity is None:
            if _git(self.cwd, "config", "user.email").returncode == 0:
                self.identity = ()
            else:
                self.identity = ("-c", f"user.name={AGENT_NAME}", "-c", f"user.email={AGENT_EMAIL}")
        return self.identity

    def _git_ok(self, name: str, *args: str) -> str:
        result = _git(self.cwd, *args)
        if result.returncode != 0:
            words = (result.stderr or result.stdout).strip().splitlines()
            reason = words[-1] if words else f"exit status {result.returncode}"
            msg = f"git {name} failed: {reason}"
            raise _GitFailed(msg)
        return result.stdout

    def _fail_tests(self) -> int:
        s, script = self.style, self.script
        failed = 1 + script.tests % 3
        self.say(s.cyan("Running tests: ") + s.red(f"{failed} failed") + f", {script.tests} passed")
        self.say(s.red(f"FAILED tests/{safe_slug(script.task)}.test.ts::renders without errors"))
        self.say("    AssertionError: expected status 200, received 500")
        return self._finish(1, s.red(f"Error: {failed} tests failed; giving up on this attempt."))

    def _finish(self, code: int, line: str) -> int:
        self.say(line)
        self.say(f"Total cost: ${self.script.cost_usd:.2f}")
        return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m limitless.demo.agent",
        description="A simulated coding agent for limitless demos and tests.",
    )
    parser.add_argument("--task", required=True, help="the task id (decides files, time, cost)")
    parser.add_argument("--model", default=None, help="a model name (shown, otherwise unused)")
    parser.add_argument("prompt_file", type=Path, help="a file holding the task's prompt")
    return parser


def _print(text: str) -> None:
    print(text, flush=True)


def _readline() -> str:
    return sys.stdin.readline() if sys.stdin is not None else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo agent; returns the process exit code."""
    args = _parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        prompt = args.prompt_file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(
            f"demo agent: cannot read the prompt file {args.prompt_file}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    script = build_script(args.task, prompt)
    agent = Agent(
        script, Path.cwd(), model=args.model, env=os.environ, out=_print, readline=_readline
    )
    try:
        return agent.run()
    except KeyboardInterrupt:
        _print("Interrupted.")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
