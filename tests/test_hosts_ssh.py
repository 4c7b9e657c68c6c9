"""limitless.hosts.ssh against a real sshd: one master connection carries every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from limitless.errors import EnvironmentProblem
from limitless.hosts.model import Host
from limitless.hosts.ssh import connect, control_path, is_connected, remote_command, run
from tests.sshhosts import Fleet


def test_commands_ride_one_master_connection(fleet: Fleet) -> None:
    """Three commands after connect: sshd accepted one login, and `ssh -O check` answers."""
    box = fleet.add("box1")
    host = box.host()
    connect(host, fleet.state_dir)
    for _ in range(3):
        assert run(host, fleet.state_dir, ["true"]).code == 0
    assert is_connected(host, fleet.state_dir)
    assert box.handshakes() == 1


def test_each_host_has_its_own_home_and_path(fleet: Fleet) -> None:
    """The harness gives every test host its own HOME and a bin first on PATH."""
    box = fleet.add("box1")
    result = run(box.host(), fleet.state_dir, ["sh", "-c", 'echo "$HOME"; echo "${PATH%%:*}"'])
    assert result.stdout.splitlines() == [str(box.home), str(box.bin)]


def test_an_argument_reaches_the_remote_program_as_one_argument(fleet: Fleet) -> None:
    """Quotes, $(...), backticks, newlines and ; in an argv element are data there."""
    box = fleet.add("box1")
    hostile = 'it\'s "a" $(touch pwned) `touch pwned`; rm -rf x\nline two *'
    result = run(box.host(), fleet.state_dir, ["printf", "%s|", hostile, "--", "-n"])
    assert result.stdout == f"{hostile}|--|-n|"
    assert not (box.home / "pwned").exists()


def test_env_pass_values_travel_in_the_environment_only(fleet: Fleet) -> None:
    """An env_pass value arrives there; it is in no ssh argument; other names are refused."""
    box = fleet.add("box1")
    host = box.host(env_pass=("LIMITLESS_TEST_KEY",))
    result = run(
        host,
        fleet.state_dir,
        ["printenv", "LIMITLESS_TEST_KEY"],
        env={"LIMITLESS_TEST_KEY": "s3cret"},
    )
    assert result.stdout == "s3cret\n"
    with pytest.raises(EnvironmentProblem, match="HOME is not in its env_pass"):
        run(host, fleet.state_dir, ["true"], env={"HOME": "/x"})


def test_an_unreachable_host_is_an_environment_problem(fleet: Fleet) -> None:
    """A stopped sshd: connect names the host and ssh's words."""
    box = fleet.add("box1")
    box.stop()
    with pytest.raises(EnvironmentProblem, match=r"^host box1: cannot connect to .*refused"):
        connect(box.host(), fleet.state_dir)


def test_a_control_socket_path_too_long_is_refused() -> None:
    """Unix socket paths end near 104 bytes: the message names the fix."""
    host = Host("box1", 1, "dev@box1")
    with pytest.raises(EnvironmentProblem, match="use a shorter state dir"):
        control_path(host, Path("/tmp") / ("x" * 120))


def test_remote_command_quotes_every_element() -> None:
    """The string ssh sends is shlex.join of the argv."""
    assert remote_command(["git", "commit", "-m", "a b; c"]) == "git commit -m 'a b; c'"
