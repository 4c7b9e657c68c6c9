"""The merge phase: merging done branches in dependency order through a merge worktree, the
gate, conflicts and the resolver agent, and landing on the base branch.

phase (the orchestration: one call of the phase, base moved, idempotence), order (which
tasks, in which order, from which commit), merge_worktree (where it works), steps (one merge
step: merge, gate, undo), ledger (each task's merge status, with its event), resolution (a
resolver agent's rounds and whether its work is taken), resolver (a resolver in a slot
pane), landing (base moves forward), predict (conflicts foreseen while the run goes on).

May import: errors, states, fmt, crashpoints, versions, programs, plan, git, store, tmux.
"""
