"""The `hosts:` plan block's values live in `limitless.plan.hosts` (the plan reads them and
`plan` sits below `hosts`); re-exported here for the hosts package and its users."""

from limitless.plan.hosts import (
    DEFAULT_ROOT,
    LOCAL,
    MAX_SLOTS,
    Host,
    implied_hosts,
    parse_hosts,
)

__all__ = ["DEFAULT_ROOT", "LOCAL", "MAX_SLOTS", "Host", "implied_hosts", "parse_hosts"]
