"""The `hosts:` block and the task key `host` in a plan; `validate` and `hosts check` on it,
and `run` refusing hosts that fail their check (real sshd for those)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from limitless.errors import PlanError
from limitless.plan import loader
from limitless.plan.hosts import Host
from limitless.plan.model import Plan
from tests.engine_helpers import cli, open_store, write_plan
from tests.sshhosts import Fleet, SshHost

HOSTS = """\
name: hp
agent: shell
hosts:
  - {name: local, slots: 2}
  - {name: box1, ssh: dev@build1, slots: 3, env_pass: [API_KEY]}
tasks:
  - {id: a, prompt: do a, host: box1}
  - {id: b, prompt: do b}
"""


def load(text: str) -> Plan:
    return loader.loads(textwrap.dedent(text), source="plan.yaml", base_dir=Path("/tmp"))


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load(text)
    return [str(problem) for problem in caught.value.problems]


def test_hosts_and_pins_are_read_and_survive_the_stored_plan() -> None:
    """The block becomes Hosts, slots sum to max_concurrency, the stored plan keeps them."""
    plan = load(HOSTS)
    assert plan.hosts == (Host("local", 2), Host("box1", 3, "dev@build1", env_pass=("API_KEY",)))
    assert plan.max_concurrency == 5 and plan.remote
    assert plan.task("a").host == "box1" and plan.task("b").host is None
    assert Plan.from_json(plan.to_json()) == plan


def test_a_plan_without_hosts_is_local_with_max_concurrency_slots() -> None:
    plan = load("max_concurrency: 3\ntasks:\n  - {id: a, prompt: x, host: local}\n")
    assert plan.all_hosts == (Host("local", 3),) and not plan.remote


def test_host_mistakes_are_located() -> None:
    """Unknown pins, a disagreeing max_concurrency, an epic split over hosts, a bad block."""
    text = HOSTS.replace("host: box1}", "host: box9}") + "max_concurrency: 4\n"
    assert problems(text) == [
        "plan.yaml:7:33: tasks[0].host: unknown host 'box9'; the hosts are local, box1",
        "plan.yaml:9:18: max_concurrency: 4 differs from the hosts' slots (5); with `hosts:` "
        "their slots decide: remove max_concurrency or change the slots",
    ]
    split = HOSTS.replace("host: box1}", "host: box1, epic: e}").replace(
        "prompt: do b}", "prompt: do b, epic: e, host: local}"
    )
    assert problems(split) == [
        "plan.yaml:8:42: tasks[1].host: task 'b' of epic 'e' is pinned to local but 'a' to "
        "box1; an epic's tasks share a worktree, pin them alike"
    ]
    assert problems("tasks:\n  - {id: a, prompt: x, host: box1}\n") == [
        "plan.yaml:2:30: tasks[0].host: unknown host 'box1'; the hosts are local (add a "
        "`hosts:` block to run tasks on other machines)"
    ]
    assert problems("hosts: [{name: box1, slots: 2}]\ntasks:\n  - {id: a, prompt: x}\n") == [
        "plan.yaml:1:9: hosts[0]: host 'box1' needs ssh: the destination as ssh takes it "
        "(user@host)"
    ]


def test_validate_shows_the_hosts(repo: Path) -> None:
    write_plan(repo, HOSTS)
    shown = cli(repo, "validate")
    assert shown.returncode == 0, shown.stderr
    assert "  host box1: 3 slots, ssh dev@build1, root ~/limitless, 1 task pinned" in shown.stdout
    as_json = json.loads(cli(repo, "validate", "--json").stdout)
    assert [host["name"] for host in as_json["hosts"]] == ["local", "box1"]
    bad = write_plan(repo, HOSTS.replace("host: box1}", "host: box9}"), "bad.yaml")
    refused = cli(repo, "validate", str(bad))
    assert refused.returncode == 2 and "tasks[0].host: unknown host 'box9'" in refused.stderr


def fleet_plan(*boxes: SshHost, pins: str = "") -> str:
    lines = ["name: hp", "agent: shell", "hosts:", "  - {name: local, slots: 1}"]
    for box in boxes:
        host = box.host()
        lines.append(
            f"  - {{name: {host.name}, ssh: {host.ssh}, port: {host.port}, "
            f"identity: {host.identity}, slots: 2}}"
        )
    lines += ["tasks:", f"  - {{id: a, prompt: 'echo a > a.txt'{pins}}}"]
    return "\n".join(lines) + "\n"


def shadow_tmux(box: SshHost, version: str) -> None:
    fake = box.bin / "tmux"
    fake.write_text(f"#!/bin/sh\necho 'tmux {version}'\n")
    fake.chmod(0o755)


def test_hosts_check_names_a_host_with_tmux_too_old_and_run_refuses(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """`hosts check`: exit 3 naming box2 and the fix; box1 passes (and gets limitless
    installed under its root); `run` refuses before it creates anything."""
    fleet.serve(repo)
    box1, box2 = fleet.add("box1"), fleet.add("box2")
    shadow_tmux(box2, "2.9")
    write_plan(repo, fleet_plan(box1, box2))
    checked = cli(repo, "hosts", "check")
    assert checked.returncode == 3, checked.stdout + checked.stderr
    assert (
        "FAIL box2: tmux: tmux 2.9 is too old (needs >= 3.2) — install tmux 3.2 or newer"
        in checked.stdout.splitlines()
    )
    assert "ok   box1: tmux: tmux 3." in checked.stdout
    assert (box1.home / "limitless" / "install" / "src" / "limitless").is_dir()
    findings = json.loads(cli(repo, "hosts", "check", "--json", "--no-install").stdout)
    assert {(f["host"], f["item"]) for f in findings if not f["ok"]} == {("box2", "tmux")}
    refused = cli(repo, "run", "--detach")
    assert refused.returncode == 3
    assert "box2: tmux: tmux 2.9 is too old" in refused.stderr
    with open_store(repo) as store:
        assert store.latest_run() is None
    (box2.bin / "tmux").unlink()
    assert cli(repo, "hosts", "check", "--no-install").returncode == 0


def test_run_refuses_an_unreachable_host_unless_told_to_skip_it(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """A stopped sshd: `run` exits 3 naming the host and --skip-unreachable; with it, the
    run starts on the hosts left (and a task pinned to the lost host would stop it)."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    write_plan(repo, fleet_plan(box1))
    box1.stop()
    refused = cli(repo, "run", "--detach")
    assert refused.returncode == 3
    assert "box1: reachable:" in refused.stderr and "--skip-unreachable" in refused.stderr
    pinned = write_plan(repo, fleet_plan(box1, pins=", host: box1"), "pinned.yaml")
    still = cli(repo, "run", str(pinned), "--detach", "--skip-unreachable")
    assert still.returncode == 3 and "tasks a are pinned to it" in still.stderr
    started = cli(repo, "run", "--headless", "--skip-unreachable", timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    with open_store(repo) as store:
        run = store.latest_run()
        assert run is not None
        assert [host.name for host in Plan.from_json(run.plan_json).all_hosts] == ["local"]
