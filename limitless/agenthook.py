"""The hook relay's old place: hooks written into worktrees before the package was
reorganised (2026-12) run this file by its path; it runs `agents/hookrelay.py`.

Run as `python -S -I limitless/agenthook.py`: no site packages, no script folder on
sys.path, so the relay is run by its path too.
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(
        str(Path(__file__).resolve().parent / "agents" / "hookrelay.py"), run_name="__main__"
    )
