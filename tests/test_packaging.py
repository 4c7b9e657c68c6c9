"""The wheel carries what a plain `pip install .` or `pipx install` needs at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_layouts_stylesheet_and_type_marker(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("limitless-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    layouts = {Path(name).stem for name in names if name.startswith("limitless/layouts/")}
    assert {"default", "grid", "columns", "windows"} <= layouts
    assert "limitless/dashboard/dashboard.tcss" in names
    assert "limitless/py.typed" in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert (
        "limitless = limitless.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
