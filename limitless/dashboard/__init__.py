"""The dashboard: the only part of limitless that imports textual.

`limitless.dashboard.app.run_dashboard(state_dir, run_id, socket_name=...)`
shows a run's dashboard until the user quits. Its rooms: `app` (polls, draws,
turns keys into requests), `widgets/` (the main screen, one widget a file),
`screens/` (the views and dialogs over it, one a file), and `model/` (the data
the app draws, gathered without textual). May import everything below it.
"""

from __future__ import annotations
