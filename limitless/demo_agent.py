"""The demo agent's old module name: runs started before the package was reorganised
(2026-12) keep `python -m limitless.demo_agent` in their stored plan, and a resumed run
starts its tasks with it. The agent is `limitless.demo.agent`."""

from limitless.demo.agent import main

if __name__ == "__main__":
    raise SystemExit(main())
