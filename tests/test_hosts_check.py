"""limitless.hosts.check against a real sshd: tools, disk, env_pass and the install there."""

from __future__ import annotations

from limitless.hosts.check import EXIT_CODE, HostCheck, check_hosts, failed
from limitless.hosts.model import Host
from limitless.hosts.ssh import run
from tests.sshhosts import Fleet


def by_item(checks: list[HostCheck]) -> dict[str, HostCheck]:
    return {check.item: check for check in checks}


def test_a_host_with_tmux_too_old_fails_naming_it_and_the_fix(fleet: Fleet) -> None:
    """A `tmux` printing `tmux 2.9` first on the host's PATH: exit 3, the host and the fix named."""
    box = fleet.add("box1")
    fake = box.bin / "tmux"
    fake.write_text("#!/bin/sh\necho 'tmux 2.9'\n")
    fake.chmod(0o755)
    checks = check_hosts([Host("local", 2), box.host()], fleet.state_dir, install=False)
    assert failed(checks) and EXIT_CODE == 3
    tmux = by_item(checks)["tmux"]
    assert str(tmux) == "box1: tmux: tmux 2.9 is too old (needs >= 3.2) — install tmux 3.2 or newer"
    assert by_item(checks)["git"].ok and by_item(checks)["reachable"].ok


def test_an_unreachable_host_fails_the_check(fleet: Fleet) -> None:
    """A stopped sshd: one finding, reachable, with the fix to try ssh by hand."""
    box = fleet.add("box1")
    box.stop()
    checks = check_hosts([box.host()], fleet.state_dir)
    assert [(c.item, c.ok) for c in checks] == [("reachable", False)]
    assert "logs in without a prompt" in checks[0].fix


def test_the_install_is_made_once_and_then_up_to_date(fleet: Fleet) -> None:
    """The first check installs limitless under root; the second finds the same stamp."""
    box = fleet.add("box1")
    host = box.host()
    first = by_item(check_hosts([host], fleet.state_dir))
    assert first["install"].ok and "updated to" in first["install"].detail
    second = by_item(check_hosts([host], fleet.state_dir))
    assert "up to date" in second["install"].detail
    root = box.home / "limitless" / "install"
    assert (root / "src" / "limitless" / "__init__.py").is_file()
    python = str(root / "venv" / "bin" / "python")
    shown = run(
        host, fleet.state_dir, [python, "-c", "import limitless; print(limitless.__file__)"]
    )
    assert shown.stdout.strip() == str(root / "src" / "limitless" / "__init__.py")


def test_env_pass_names_the_host_sshd_drops(fleet: Fleet) -> None:
    """AcceptEnv lets LIMITLESS_TEST_* through; another name fails with the sshd_config fix."""
    box = fleet.add("box1")
    host = box.host(env_pass=("LIMITLESS_TEST_KEY", "OTHER_KEY"))
    env_pass = by_item(check_hosts([host], fleet.state_dir, install=False))["env_pass"]
    assert not env_pass.ok and env_pass.detail == "sshd drops OTHER_KEY"
    assert env_pass.fix.startswith("add `AcceptEnv OTHER_KEY`")
