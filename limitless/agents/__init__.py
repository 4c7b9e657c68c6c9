"""Running one agent program in its slot pane: the in-pane wrapper and its pty, the state
watcher (hooks, screen, idle), interactive turns and idle_done, the hook relay, the sandbox,
rate limits, the checks a plan's programs must pass, and the goal planner.

May import: errors, states, fmt, crashpoints, programs, plan, git, store, tmux.
"""
