"""What a demo agent does for a task, decided up front from its id and prompt: the
files it writes (by area), its commits, how long it takes and what it costs.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_SECONDS = 4.0  # a task's time at speed 1: seeded by its id, between these
MAX_SECONDS = 8.0

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


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
