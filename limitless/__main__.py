from __future__ import annotations

from limitless.cli import main

raise SystemExit(main())
