"""limitless.hosts.model: the hosts: block read from YAML nodes, with located errors."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import yaml

from limitless.errors import PlanError
from limitless.hosts.model import Host, implied_hosts, parse_hosts


def parse(text: str) -> tuple[Host, ...]:
    node = yaml.compose(text)
    assert isinstance(node, yaml.MappingNode)
    hosts = next((value for key, value in node.value if key.value == "hosts"), None)
    return parse_hosts(hosts, "plan.yaml", 3)


def test_no_hosts_block_means_local_with_max_concurrency_slots() -> None:
    """A plan without hosts runs on this machine with max_concurrency slots."""
    assert parse("name: x\n") == implied_hosts(3) == (Host("local", 3),)


def test_a_full_block_becomes_host_values() -> None:
    """Every key of the contract lands in the Host; root defaults to ~/limitless."""
    text = """\
hosts:
  - {name: local, slots: 2}
  - name: box1
    ssh: dev@build1.example
    port: 2222
    identity: ~/.ssh/id_ed25519
    slots: 6
    env_pass: [ANTHROPIC_API_KEY]
  - {name: box2, ssh: build2, slots: 1, root: /srv/limitless}
"""
    assert parse(text) == (
        Host("local", 2),
        Host(
            "box1",
            6,
            "dev@build1.example",
            2222,
            "~/.ssh/id_ed25519",
            "~/limitless",
            ("ANTHROPIC_API_KEY",),
        ),
        Host("box2", 1, "build2", None, None, "/srv/limitless"),
    )


class Bad(NamedTuple):
    test_id: str
    text: str
    problems: list[str]


BAD = [
    Bad(
        "not-a-list",
        "hosts: box1\n",
        ["plan.yaml:1:8: hosts: expected a list of hosts, e.g. [{name: local, slots: 2}]"],
    ),
    Bad(
        "unknown-key",
        "hosts:\n  - {name: box1, ssh: a@b, slots: 1, user: me}\n",
        [
            "plan.yaml:2:38: hosts[0]: unknown key 'user'; "
            "the keys are name, ssh, port, identity, slots, root, env_pass"
        ],
    ),
    Bad(
        "no-ssh",
        "hosts:\n  - {name: box1, slots: 1}\n",
        [
            "plan.yaml:2:5: hosts[0]: host 'box1' needs ssh: "
            "the destination as ssh takes it (user@host)"
        ],
    ),
    Bad(
        "no-slots",
        "hosts:\n  - {name: box1, ssh: a@b}\n",
        ["plan.yaml:2:5: hosts[0]: host 'box1' needs slots: how many tasks may run there at once"],
    ),
    Bad(
        "zero-slots",
        "hosts:\n  - {name: box1, ssh: a@b, slots: 0}\n",
        ["plan.yaml:2:35: hosts[0].slots: expected a whole number from 1 to 64"],
    ),
    Bad(
        "bad-port",
        "hosts:\n  - {name: box1, ssh: a@b, slots: 1, port: 70000}\n",
        ["plan.yaml:2:44: hosts[0].port: expected a whole number from 1 to 65535"],
    ),
    Bad(
        "option-as-destination",
        "hosts:\n  - {name: box1, ssh: -oProxyCommand=x, slots: 1}\n",
        [
            "plan.yaml:2:23: hosts[0].ssh: "
            "'-oProxyCommand=x' is not an ssh destination; write user@host"
        ],
    ),
    Bad(
        "local-with-ssh",
        "hosts:\n  - {name: local, ssh: a@b, slots: 1}\n",
        ["plan.yaml:2:24: hosts[0].ssh: the host named local is this machine; remove ssh"],
    ),
    Bad(
        "bad-name",
        "hosts:\n  - {name: Box 1, ssh: a@b, slots: 1}\n",
        ["plan.yaml:2:12: hosts[0].name: use lowercase letters, digits, - and _ (at most 32)"],
    ),
    Bad(
        "bad-env-name",
        "hosts:\n  - {name: box1, ssh: a@b, slots: 1, env_pass: [A-KEY]}\n",
        ["plan.yaml:2:49: hosts[0].env_pass: 'A-KEY' is not a variable name"],
    ),
    Bad(
        "duplicate-and-more",
        "hosts:\n  - {name: box1, ssh: a@b, slots: 1}\n  - {name: box1, ssh: c@d, slots: 2}\n"
        "  - {name: box2, ssh: e@f, slots: x}\n",
        [
            "plan.yaml:3:5: hosts[1].name: duplicate host 'box1'; the first is at line 2",
            "plan.yaml:4:35: hosts[2].slots: expected a whole number from 1 to 64",
        ],
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[case.test_id for case in BAD])
def test_a_bad_block_is_a_plan_error_naming_each_place(case: Bad) -> None:
    """Every problem is listed with its line, column and the fix; exit code 2."""
    with pytest.raises(PlanError) as caught:
        parse(case.text)
    assert [str(problem) for problem in caught.value.problems] == case.problems
    assert caught.value.exit_code == 2
