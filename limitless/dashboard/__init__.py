"""The dashboard: the only part of limitless that imports textual.

`limitless.dashboard.app.run_dashboard(state_dir, run_id, socket_name=...)`
shows a run's dashboard until the user quits; the data comes from
`limitless.dashboard.model`, which knows nothing of textual.
"""

from __future__ import annotations
