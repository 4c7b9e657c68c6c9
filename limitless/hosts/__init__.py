"""Slots on other machines over SSH (issue 16, groundwork): the `hosts:` plan block as
`Host` values, one SSH master connection per host that carries every command, the
host check (tools, disk, the limitless install under the host's `root`) and git sync
between this repository and the host's clone. Not wired into plan, run or cli yet:
docs/HOSTS.md lists what the integration needs.

May import: errors, states, fmt, crashpoints, programs, plan (models, read only), git.
"""
