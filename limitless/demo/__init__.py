"""The demo: a throwaway repository and plan (`repo`), and the simulated agent that works
in it (`agent`, running what `script` decides from the task id and prompt).

It runs git itself (it sits below `git/`, to build a repository before anything else
exists); it never touches a repository it did not make.

May import: errors.
"""
