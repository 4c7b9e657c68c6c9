"""The plan: loading YAML into checked, frozen values with file:line:col errors, stages, the
user config merged in, the task graph (waves, critical path) and declared-scope overlap.

`model` (the values and their JSON round trip), `yamlread` (YAML with positions and
located problems), `loader` (load/loads, the key readers), `stages`, `example`,
`stored` (a run's stored plan and DAG, parsed once), `userconfig`, `graph`, `overlap`.

May import: errors, states, fmt, programs.
"""
