"""Import hygiene: only limitless/dashboard/ imports textual."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import limitless


def core_modules() -> list[str]:
    """Every module of limitless outside limitless.dashboard but its data model (`__main__`
    runs the CLI when imported; it only imports `limitless.cli.main`, which is checked)."""
    found = ["limitless"]
    for info in pkgutil.walk_packages(limitless.__path__, prefix="limitless."):
        outside = info.name in ("limitless.dashboard", "limitless.dashboard.model")
        if info.name.startswith("limitless.dashboard") and not outside:
            continue
        if info.name.endswith(".__main__"):
            continue
        found.append(info.name)
    return sorted(found)


def test_the_module_list_is_not_empty() -> None:
    """The walk finds the core modules (so the hygiene test below tests something)."""
    modules = core_modules()
    assert {"limitless.store.store", "limitless.dashboard.model", "limitless.cli.main"} <= set(
        modules
    )


@pytest.mark.parametrize("module", core_modules())
def test_core_module_does_not_import_textual(module: str) -> None:
    """Importing the module in a fresh interpreter leaves textual unimported."""
    code = f"import {module}, sys; assert 'textual' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_dashboard_does_import_textual() -> None:
    """The check would notice textual: the dashboard app does pull it in."""
    code = "import limitless.dashboard.app, sys; assert 'textual' in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
