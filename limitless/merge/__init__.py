"""The merge phase: merging done branches in dependency order through a merge worktree, the
gate, conflicts and the resolver agent, and landing on the base branch.

May import: errors, states, fmt, crashpoints, versions, programs, plan, git, store, tmux.
"""
