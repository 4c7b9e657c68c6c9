"""The package's layers: imports run downward only, and no modules import each other in a circle.

Each subpackage's docstring says what it may import; this test holds the code to it.
A module may import its own subpackage and any subpackage on a lower layer; packages
on the same layer are independent of each other. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import limitless

PACKAGE = Path(limitless.__file__).parent

# Lowest first. Within a layer, packages do not import each other.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "states", "fmt", "crashpoints", "versions"}),
    frozenset({"programs", "demo", "forkserver"}),
    frozenset({"plan"}),
    frozenset({"store", "git", "tmux"}),
    frozenset({"hosts"}),  # remote slots (issue 16): uses the git runner, so one layer above it
    frozenset({"agents", "merge", "views"}),
    frozenset({"run"}),
    frozenset({"dashboard"}),
    frozenset({"cli", "api", "agenthook", "demo_agent", "__init__"}),
    frozenset({"__main__"}),
)
LAYER_OF = {part: index for index, parts in enumerate(LAYERS) for part in parts}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name or "__init__"] = path
    return found


def imports(path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module) for every limitless module `path` imports."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "limitless":
                targets = [alias.name for alias in node.names]
            elif node.module.startswith("limitless."):
                base = node.module.removeprefix("limitless.")
                targets = [f"{base}.{alias.name}" for alias in node.names]
                targets = [t for t in targets if t in known] or [base]
            else:
                continue
            for target in targets:
                if target in known:
                    yield node.lineno, target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.removeprefix("limitless.")
                if alias.name.startswith("limitless.") and name in known:
                    yield node.lineno, name


def package_of(module: str) -> str:
    return module.split(".")[0]


def test_every_part_of_the_package_has_a_layer() -> None:
    """A new subpackage or top-level module is placed on a layer here, on purpose."""
    unplaced = sorted({package_of(m) for m in modules()} - set(LAYER_OF))
    assert unplaced == []


def test_imports_run_downward_only() -> None:
    """No module imports a package on its own layer (but its own) or on a higher one."""
    known = modules()
    wrong: list[str] = []
    for module, path in sorted(known.items()):
        here = package_of(module)
        for line, target in imports(path, set(known)):
            there = package_of(target)
            if there == here:
                continue
            if LAYER_OF[there] >= LAYER_OF[here]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} -> {target}")
    assert wrong == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    """Following imports from any module never leads back to it."""
    known = modules()
    graph = {m: {t for _, t in imports(p, set(known)) if t != m} for m, p in known.items()}
    circles: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, trail: tuple[str, ...], seen: set[str]) -> None:
        for nxt in graph[node]:
            if nxt == start:
                first = min(range(len(trail)), key=lambda i: trail[i])
                circles.add(trail[first:] + trail[:first])
            elif nxt not in seen and nxt > start:
                seen.add(nxt)
                walk(start, nxt, (*trail, nxt), seen)

    for module in sorted(graph):
        walk(module, module, (module,), {module})
    assert sorted(" -> ".join(circle) for circle in circles) == []
