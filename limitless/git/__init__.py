"""Everything that runs git.

runner (the one git runner: scrubbed environment, object ids, hooks and signing
rules), repo (which repository, where limitless keeps its state), locks, refs
(branch and ref names, what they point at and hold), status (a checkout's
state), worktrees (create with dependency merges, reset, list, remove,
recover), copy_link (files brought into a worktree), exclude (files kept out of
commits), submodules, sparse cones, repochecks (signing, LFS, shallow history)
and the sandbox's refguard.

May import: errors, states, fmt, crashpoints, versions, programs, plan.
"""
