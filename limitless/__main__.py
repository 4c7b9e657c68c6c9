from __future__ import annotations

from limitless.cli.main import main

raise SystemExit(main())
