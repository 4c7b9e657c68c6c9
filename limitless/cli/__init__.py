"""The command line: argument parsing and printing, one module per group of commands
(`plan`, `run`, `watch`, `control`, `report`, `agents`, `internal`), wired in `main`.

May import everything; decides nothing itself.
"""
