"""Everything that runs git: the one runner (scrubbed environment, hooks and signing rules),
worktrees (create, set up, inspect, reset, remove), submodules, sparse cones, repository
checks (signing, LFS, shallow history) and the sandbox's ref guard.

May import: errors, states, fmt, crashpoints, versions, programs, plan.
"""
