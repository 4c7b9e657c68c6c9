"""A whole run: the launcher (checks, store rows, tmux session), the supervisor that schedules
tasks into slots and ends the run, recovery (resume), cleanup, ports, user hooks, doctor.

May import every layer below it: agents, merge, views and theirs.
"""
