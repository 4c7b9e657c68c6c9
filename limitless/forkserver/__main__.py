from __future__ import annotations

from limitless.forkserver.server import main

raise SystemExit(main())
