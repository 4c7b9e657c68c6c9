"""The plan: loading YAML into checked, frozen values with file:line:col errors, stages, the
user config merged in, the task graph (waves, critical path) and declared-scope overlap.

May import: errors, states, fmt, programs.
"""
