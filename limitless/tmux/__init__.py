"""The run's tmux session: layouts, slot panes, titles, options and hooks, capture, wake-ups.

May import: errors, states, fmt, versions.
"""
