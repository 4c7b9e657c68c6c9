"""What the commands print about runs: one `RunSummary` (summary) that every view shares;
status, the report (md/json/html), stats, the headless follower.

May import: errors, states, fmt, programs, plan, git, store, tmux.
"""
