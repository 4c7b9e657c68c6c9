"""Running one agent program in its slot pane: the in-pane wrapper (`wrapper`) and its pty,
its plain-text output (`lines`) and a headless program's events and questions (`headless`),
the state watcher (hooks, screen, idle), interactive turns and idle_done, the hook relay,
the sandbox, rate limits, the checks a plan's programs must pass, and the goal planner.
How a program is started (argv, variables, prompt file) is `programs.launch`, below both
this package and `merge`, which start agents alike.

May import: errors, states, fmt, crashpoints, programs, plan, git, store, tmux.
"""
