"""The `hosts:` plan block: `Host` values, and reading them from YAML nodes with located errors.

`parse_hosts` is pure: it takes the node of the `hosts` key (or None when the plan has
none) and returns the hosts or raises one `PlanError` listing every problem as
`PLAN:LINE:COL: hosts[i].key: message`, as the plan loader does. A plan without
`hosts` has one implied host, `local`, with `max_concurrency` slots.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from yaml import MappingNode, Node, ScalarNode, SequenceNode

from limitless.errors import PlanError, Problem

LOCAL = "local"
MAX_SLOTS = 64
KEYS = ("name", "ssh", "port", "identity", "slots", "root", "env_pass")
DEFAULT_ROOT = "~/limitless"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_Fail = Callable[[Node, str, str], None]
_DESTINATION = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._:\[\]-]+$")


@dataclass(frozen=True)
class Host:
    """Where slots live: `local` (this machine), or an SSH destination with a clone under `root`."""

    name: str
    slots: int
    ssh: str | None = None
    port: int | None = None
    identity: str | None = None
    root: str = DEFAULT_ROOT
    env_pass: tuple[str, ...] = field(default=())

    @property
    def is_local(self) -> bool:
        return self.ssh is None


def implied_hosts(max_concurrency: int) -> tuple[Host, ...]:
    """The hosts of a plan without a `hosts` block."""
    return (Host(LOCAL, max_concurrency),)


def parse_hosts(node: Node | None, source: str, max_concurrency: int) -> tuple[Host, ...]:
    """The plan's hosts from the `hosts` value node; PlanError naming every mistake."""
    if node is None:
        return implied_hosts(max_concurrency)
    problems: list[Problem] = []

    def fail(at: Node, path: str, message: str) -> None:
        mark = at.start_mark
        problems.append(Problem(source, mark.line + 1, mark.column + 1, f"{path}: {message}"))

    if not isinstance(node, SequenceNode) or not node.value:
        fail(node, "hosts", "expected a list of hosts, e.g. [{name: local, slots: 2}]")
        raise PlanError(problems)
    hosts: list[Host] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(node.value):
        path = f"hosts[{index}]"
        host = _host(entry, path, fail)
        if host is None:
            continue
        if host.name in seen:
            line = node.value[seen[host.name]].start_mark.line + 1
            fail(
                entry, f"{path}.name", f"duplicate host {host.name!r}; the first is at line {line}"
            )
            continue
        seen[host.name] = index
        hosts.append(host)
    if problems:
        raise PlanError(problems)
    return tuple(hosts)


def _host(entry: Node, path: str, fail: _Fail) -> Host | None:
    if not isinstance(entry, MappingNode):
        fail(entry, path, "expected a mapping like {name: box1, ssh: dev@box1, slots: 4}")
        return None
    values: dict[str, Node] = {}
    ok = True
    for key_node, value_node in entry.value:
        key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
        if key not in KEYS:
            fail(key_node, path, f"unknown key {key!r}; the keys are {', '.join(KEYS)}")
            ok = False
        elif key in values:
            fail(key_node, path, f"duplicate key {key!r}")
            ok = False
        else:
            values[key] = value_node
    if "name" not in values:
        fail(entry, path, "a host needs a name (local, or a short name like box1)")
        return None
    name = _scalar(values["name"])
    if name is None or not _NAME.match(name):
        fail(values["name"], f"{path}.name", "use lowercase letters, digits, - and _ (at most 32)")
        return None
    ssh = _text(values, "ssh", path, fail)
    if name == LOCAL and ssh is not None:
        fail(values["ssh"], f"{path}.ssh", "the host named local is this machine; remove ssh")
        ok = False
    if name != LOCAL and ssh is None and "ssh" not in values:
        fail(entry, path, f"host {name!r} needs ssh: the destination as ssh takes it (user@host)")
        ok = False
    if ssh is not None and (ssh.startswith("-") or not _DESTINATION.match(ssh)):
        fail(values["ssh"], f"{path}.ssh", f"{ssh!r} is not an ssh destination; write user@host")
        ok = False
    slots = _int(values, "slots", path, fail, 1, MAX_SLOTS)
    if slots is None and "slots" not in values:
        fail(entry, path, f"host {name!r} needs slots: how many tasks may run there at once")
    port = _int(values, "port", path, fail, 1, 65535)
    identity = _text(values, "identity", path, fail)
    root = _text(values, "root", path, fail)
    env_pass = _env_pass(values, path, fail)
    if name == LOCAL:
        for key in ("port", "identity", "root", "env_pass"):
            if key in values:
                fail(values[key], f"{path}.{key}", "only hosts reached by ssh take this key")
                ok = False
    if not ok or slots is None or env_pass is None:
        return None
    if ("port" in values and port is None) or ("identity" in values and identity is None):
        return None
    if "root" in values and root is None:
        return None
    return Host(name, slots, ssh, port, identity, root or DEFAULT_ROOT, env_pass)


def _scalar(node: Node) -> str | None:
    if isinstance(node, ScalarNode) and node.tag.endswith((":str", ":int")) and node.value:
        return str(node.value)
    return None


def _text(values: dict[str, Node], key: str, path: str, fail: _Fail) -> str | None:
    if key not in values:
        return None
    value = _scalar(values[key])
    if value is None:
        fail(values[key], f"{path}.{key}", "expected text")
    return value


def _int(
    values: dict[str, Node], key: str, path: str, fail: _Fail, low: int, high: int
) -> int | None:
    if key not in values:
        return None
    node = values[key]
    if isinstance(node, ScalarNode) and node.tag.endswith(":int"):
        number = int(node.value, 0)
        if low <= number <= high:
            return number
    fail(node, f"{path}.{key}", f"expected a whole number from {low} to {high}")
    return None


def _env_pass(values: dict[str, Node], path: str, fail: _Fail) -> tuple[str, ...] | None:
    if "env_pass" not in values:
        return ()
    node = values["env_pass"]
    if not isinstance(node, SequenceNode):
        fail(
            node, f"{path}.env_pass", "expected a list of variable names, e.g. [ANTHROPIC_API_KEY]"
        )
        return None
    names: list[str] = []
    for item in node.value:
        name = _scalar(item)
        if name is None or not _ENV_NAME.match(name):
            fail(
                item, f"{path}.env_pass", f"{getattr(item, 'value', item)!r} is not a variable name"
            )
            return None
        names.append(name)
    return tuple(names)
