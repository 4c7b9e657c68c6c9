"""A run over this machine and two hosts on real sshds (loopback), through `limitless run`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from limitless.hosts.ssh import ssh_options
from limitless.plan.hosts import Host
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, wait_for, write_plan
from tests.sshhosts import Fleet, SshHost

pytestmark = pytest.mark.usefixtures("tmux_socket")


def host_line(box: SshHost, slots: int) -> str:
    host = box.host()
    return (
        f"  - {{name: {host.name}, ssh: {host.ssh}, port: {host.port}, "
        f"identity: {host.identity}, slots: {slots}}}"
    )


def fleet_plan(box1: SshHost, box2: SshHost) -> str:
    return "\n".join(
        [
            "name: fleet",
            "agent: shell",
            "hosts:",
            "  - {name: local, slots: 1}",
            host_line(box1, 2),
            host_line(box2, 2),
            "tasks:",
            "  - {id: one, host: box1, prompt: 'echo one > one.txt; echo progress 50%'}",
            "  - {id: two, host: box2, prompt: 'echo two > two.txt'}",
            "  - {id: three, host: local, prompt: 'echo three > three.txt'}",
            "  - id: join",
            "    host: box2",
            "    depends_on: [one, two]",
            "    prompt: 'cat one.txt two.txt > both.txt'",
            "  - id: top",
            "    host: box1",
            "    depends_on: [join, three]",
            "    prompt: 'cat both.txt three.txt > all.txt; echo \"$LIMITLESS_HOST\" > where.txt'",
            "  - {id: free, prompt: 'echo free > free.txt'}",
            "",
        ]
    )


def test_six_tasks_over_local_and_two_hosts_merge_into_base(fleet: Fleet, repo: Path) -> None:
    """Each task runs where its pin says; dependants see their dependencies' work (pushed
    to the host); the merged tree on main is right; the hosts' worktrees are under their
    root; `status --json` names each task's host."""
    fleet.serve(repo)
    box1, box2 = fleet.add("box1"), fleet.add("box2")
    write_plan(repo, fleet_plan(box1, box2))
    git(repo, "add", "limitless.yaml")
    git(repo, "commit", "-qm", "plan")
    result = cli(repo, "run", "--headless", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert {task: row.status for task, row in rows.items()} == dict.fromkeys(rows, "done")
    placed = {task: row.host for task, row in rows.items()}
    assert {k: v for k, v in placed.items() if k != "free"} == {
        "one": "box1",
        "two": "box2",
        "three": "local",
        "join": "box2",
        "top": "box1",
    }
    assert placed["free"] in ("local", "box1", "box2")
    assert git(repo, "show", "main:all.txt").splitlines() == ["one", "two", "three"]
    assert git(repo, "show", "main:where.txt") == "box1"
    assert git(repo, "show", "main:free.txt") == "free"
    for box, tasks in ((box1, ("one", "top")), (box2, ("two", "join"))):
        root = box.home / "limitless"
        for task in tasks:
            assert (root / "worktrees" / run.id / task / ".git").is_file()
    status = json.loads(cli(repo, "status", run.id, "--json").stdout)
    assert {task["id"]: task["host"] for task in status["tasks"]} == placed
    shown = cli(repo, "status", run.id).stdout.splitlines()
    assert shown[1].split()[:3] == ["task", "status", "host"]
    assert next(line for line in shown if line.startswith("join ")).split()[3] == "box2"
    with open_store(repo) as store:
        shown = store.log_path(run.id, "one").read_text()
    assert "progress 50%" in shown and "on box1:" in shown  # the host's output came back
    assert "by host: local " in result.stdout
    report = json.loads(cli(repo, "report", run.id, "--format", "json").stdout)
    by_host = {entry["host"]: entry for entry in report["by_host"]}
    assert sorted(by_host) == ["box1", "box2", "local"]
    assert sum(entry["tasks"] for entry in by_host.values()) == 6
    assert by_host["box2"]["tasks"] >= 2 and by_host["box2"]["task_s"] > 0
    cleaned = cli(repo, "cleanup", run.id)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"removed the worktrees, branches and agents of {run.id} on box1" in cleaned.stdout
    for box in (box1, box2):
        root = box.home / "limitless"
        assert not (root / "worktrees" / run.id).exists() and not (root / "runs" / run.id).exists()
        assert git(root / "repo.git", "for-each-ref", f"refs/heads/limitless/{run.id}/") == ""


WAITING = """\
name: steady
agent: shell
hosts:
  - {{name: local, slots: 1}}
{box}
tasks:
  - id: long
    host: box1
    prompt: |
      echo "waiting for go in $PWD"
      while [ ! -e "$HOME/go" ]; do sleep 0.1; done
      read -r word < "$HOME/go"; echo "$word" > typed.txt
"""


def pane_text(socket: str, pane: str) -> str:
    shown = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-t", pane],
        capture_output=True,
        text=True,
        check=False,
    )
    return shown.stdout


def master_pid(host: Host, control: Path) -> int | None:
    argv = ["ssh", *ssh_options(host, control), "-O", "check", host.ssh or ""]
    shown = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = re.search(r"pid=(\d+)", shown.stderr)
    return int(found.group(1)) if found else None


def test_a_killed_connection_leaves_the_agent_running_and_the_pane_reconnects(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """The slot pane shows the agent's screen from the host; killing the ssh master (the
    connection under the pane) does not end the agent; the pane attaches again and the
    task ends done with its work on main."""
    control = fleet.serve(repo)
    box1 = fleet.add("box1")
    write_plan(repo, WAITING.format(box=host_line(box1, 1)))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)
    wait_for(
        lambda: (
            tasks_of(repo, run.id)["long"].status == "running"
            and "waiting for go"
            in pane_text(tmux_socket, tasks_of(repo, run.id)["long"].pane_id or "")
        ),
        timeout=30,
        what="the host's agent on the slot pane",
    )
    row = tasks_of(repo, run.id)["long"]
    shown = pane_text(tmux_socket, row.pane_id or "")
    assert f"waiting for go in {box1.home}/limitless/worktrees/{run.id}/long" in shown
    first = master_pid(box1.host(), control)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    with open_store(repo) as store:
        log = store.log_path(run.id, "long")
    wait_for(lambda: "reconnecting" in log.read_text(), timeout=30, what="the pane to reconnect")
    wait_for(
        lambda: master_pid(box1.host(), control) not in (None, first),
        timeout=30,
        what="a new master connection",
    )
    (box1.home / "go").write_text("again\n")
    waited = cli(repo, "wait", run.id, timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert tasks_of(repo, run.id)["long"].status == "done"
    assert git(repo, "show", "main:typed.txt") == "again"


LOSING = """\
name: losing
agent: shell
host_timeout: 2s
hosts:
  - {{name: local, slots: 2}}
{box}
tasks:
  - id: slow
    prompt: |
      echo "working on ${{LIMITLESS_HOST:-local}}"
      if [ -n "$LIMITLESS_HOST" ]; then sleep 600; fi
      echo slow > slow.txt
  - {{id: after, depends_on: [slow], prompt: 'cat slow.txt > after.txt'}}
  - id: hold
    host: local
    prompt: |
      while [ ! -e {marker} ]; do sleep 0.1; done
      echo held > held.txt
"""


def test_a_host_lost_mid_run_sends_its_task_elsewhere_and_comes_back(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """box1's sshd and its sessions stop while its task runs: after host_timeout the task
    is retried (uncounted) on this machine and box1 takes nothing more; box1 comes back:
    the agent its lost attempt left there is stopped and the host taken back; the run
    merges everything."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    marker = repo.parent / "release"
    write_plan(repo, LOSING.format(box=host_line(box1, 3), marker=marker))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        log = store.log_path(run.id, "slow")

    def kinds() -> list[str]:
        with open_store(repo) as store:
            return [event.kind for event in store.events(run.id)]

    wait_for(
        lambda: log.is_file() and "working on box1" in log.read_text(),
        timeout=30,
        what="slow working on box1",
    )
    box1.stop()
    wait_for(lambda: "host_lost" in kinds(), timeout=30, what="box1 lost")
    left = ["tmux", "-S", str(box1.home / "limitless" / "tmux" / f"{run.id}.slow"), "has-session"]
    assert subprocess.run(left, check=False).returncode == 0  # its agent still sleeps there
    box1.start(same_port=True)
    wait_for(lambda: "host_back" in kinds(), timeout=40, what="box1 back")
    assert subprocess.run(left, check=False, capture_output=True).returncode != 0
    marker.write_text("go\n")
    waited = cli(repo, "wait", run.id, timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rows = tasks_of(repo, run.id)
    assert rows["slow"].status == "done" and rows["slow"].host == "local"
    assert git(repo, "show", "main:after.txt") == "slow"
    assert git(repo, "show", "main:held.txt") == "held"
    assert "task_host_lost" in kinds()
    with open_store(repo) as store:
        attempts = store.attempts(run.id, "slow")
    assert [(a.host, (a.reason or "").split(":")[0]) for a in attempts] == [
        ("box1", "lost host box1"),
        ("local", ""),
    ]


def test_kill_9_of_the_supervisor_while_a_host_runs_a_task_then_resume_finishes(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """The wrapper of a remote task lives on in its pane; `resume` adopts it, nothing runs
    twice, and the run merges its dependant's work too."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    plan = WAITING.format(box=host_line(box1, 1))
    plan += "  - {id: next, depends_on: [long], prompt: 'cat typed.txt > next.txt'}\n"
    write_plan(repo, plan)
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        log = store.log_path(run.id, "long")
    wait_for(lambda: log.is_file() and "waiting for go" in log.read_text(), 30, "long on box1")
    pid = latest_run(repo).supervisor_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), 10, "supervisor gone")
    resumed = cli(repo, "resume", "--detach")
    assert resumed.returncode == 0, resumed.stderr
    (box1.home / "go").write_text("resumed\n")
    waited = cli(repo, "wait", run.id, "--timeout", "90", "--quiet", timeout=120)
    rows = tasks_of(repo, run.id)
    events = cli(repo, "events", run.id).stdout
    assert waited.returncode == 0, (waited.stdout, {t: r.reason for t, r in rows.items()}, events)
    assert {(task, row.status, row.attempt) for task, row in rows.items()} == {
        ("long", "done", 1),
        ("next", "done", 1),
    }
    assert git(repo, "show", "main:next.txt") == "resumed"


DEMO = """\
name: talk
agent: demo
hosts:
  - {{name: local, slots: 1}}
{box}
tasks:
  - id: api
    host: box1
    prompt: add the api routes
    env: {{LIMITLESS_DEMO_SPEED: "20", LIMITLESS_DEMO_WAIT: "1"}}
  - id: database
    host: box1
    prompt: add the tables
    env: {{LIMITLESS_DEMO_SPEED: "20"}}
"""


def test_the_user_answers_a_host_agent_in_its_slot_pane(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """Demo agents on box1 (started with the install's python there): one asks (y/n) and
    the `n` typed in the local slot pane reaches it (it stops, exit 1); the other commits
    there as the user here would, and its progress and cost arrive."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    write_plan(repo, DEMO.format(box=host_line(box1, 2)))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)

    def pane() -> str:
        return tasks_of(repo, run.id)["api"].pane_id or ""

    wait_for(lambda: "(y/n)" in pane_text(tmux_socket, pane()), 60, "the question on the pane")
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", pane(), "n", "Enter"], check=True)
    waited = cli(repo, "wait", run.id, "--timeout", "90", "--quiet", timeout=120)
    assert waited.returncode != 0
    api, database = tasks_of(repo, run.id)["api"], tasks_of(repo, run.id)["database"]
    assert (api.status, api.exit_code, api.host) == ("failed", 1, "box1")
    assert database.status == "done" and database.host == "box1" and database.commits >= 1
    assert database.cost_usd is not None and database.cost_usd > 0
    subjects = git(repo, "log", "--format=%s|%an", "main").splitlines()
    assert any(s.startswith("database: ") and s.endswith("|Limitless Test") for s in subjects)
    assert (box1.home / "limitless" / "install" / "venv" / "bin" / "python").exists()


def test_a_pane_that_cannot_attach_shows_the_agents_output_instead(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """A host whose tmux refuses every attach: after a few tries the pane follows the
    agent's log instead of reconnecting for ever, and the task ends done."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    refusing = box1.bin / "tmux"
    refusing.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        '  [ "$a" = attach-session ] && { echo "no attaching" >&2; exit 1; }\n'
        "done\n"
        'exec /usr/bin/tmux "$@"\n'
    )
    refusing.chmod(0o755)
    plan = WAITING.format(box=host_line(box1, 1)).replace(
        'while [ ! -e "$HOME/go" ]; do sleep 0.1; done\n', "sleep 9; echo after the wait\n"
    )
    write_plan(repo, plan.replace('read -r word < "$HOME/go"; ', "word=followed; "))
    result = cli(repo, "run", "--headless", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        shown = store.log_path(run.id, "long").read_text()
    assert "showing its output here instead" in shown and "after the wait" in shown
    assert git(repo, "show", "main:typed.txt") == "followed"


SETUP = """\
name: prepared
agent: shell
setup:
  - echo "set up on $LIMITLESS_HOST" > setup.txt
  - test ! -e "$HOME/break-setup"
hosts:
  - {{name: local, slots: 1}}
{box}
tasks:
  - {{id: one, host: box1, prompt: 'cat setup.txt > one.txt'}}
"""


def test_setup_commands_run_on_the_host_and_a_failing_one_fails_the_task(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """The plan's setup runs in the worktree there, with the task's variables, before the
    agent; a setup command that fails there fails the task, naming the command."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    write_plan(repo, SETUP.format(box=host_line(box1, 1)))
    result = cli(repo, "run", "--headless", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert git(repo, "show", "main:one.txt") == "set up on box1"
    (box1.home / "break-setup").write_text("")
    failed = cli(repo, "run", "--headless", timeout=120)
    assert failed.returncode == 1
    row = tasks_of(repo, latest_run(repo).id)["one"]
    assert row.status == "failed" and row.host == "box1"
    assert row.reason.startswith('setup command `test ! -e "$HOME/break-setup"` exited with 1')


def test_env_pass_reaches_the_agent_on_the_host_and_nothing_is_written_there(
    fleet: Fleet, repo: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An env_pass value set here is in the agent's environment there; no file under the
    host's HOME holds it and no process there has it on its command line."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    secret = "s3cret-value-4711"
    monkeypatch.setenv("LIMITLESS_TEST_KEY", secret)
    host = host_line(box1, 1).replace("slots: 1}", "slots: 1, env_pass: [LIMITLESS_TEST_KEY]}")
    write_plan(
        repo,
        "\n".join(
            [
                "name: secret",
                "agent: shell",
                "hosts:",
                "  - {name: local, slots: 1}",
                host,
                "tasks:",
                "  - id: key",
                "    host: box1",
                "    prompt: |",
                '      [ "$LIMITLESS_TEST_KEY" = ' + secret + " ] && echo seen > key.txt",
                '      ps -eo args | grep -F "$HOME" > processes.txt',  # the host's own
                "",
            ]
        ),
    )
    result = cli(repo, "run", "--headless", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert git(repo, "show", "main:key.txt") == "seen"
    there = git(repo, "show", "main:processes.txt").splitlines()
    assert len(there) > 2 and not [line for line in there if secret in line]
    written = [
        path
        for path in box1.home.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]
    prompt_copies = [path for path in written if path.suffix == ".md"]
    assert written == prompt_copies  # only the prompt itself names it (it is in the plan)


def test_an_agent_program_missing_on_the_host_fails_its_task_naming_it(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """A task pinned to a host is not refused for a program missing here (it runs there);
    missing there, the task fails saying so."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    write_plan(
        repo,
        "\n".join(
            [
                "name: ghost",
                "agents: {ghost: {command: [no-such-agent-xyz, '{prompt}']}}",
                "hosts:",
                "  - {name: local, slots: 1}",
                host_line(box1, 1),
                "tasks:",
                "  - {id: boo, host: box1, agent: ghost, prompt: hello}",
                "",
            ]
        ),
    )
    result = cli(repo, "run", "--headless", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    row = tasks_of(repo, latest_run(repo).id)["boo"]
    assert (row.status, row.exit_code) == ("failed", 127)
    assert row.reason == (
        "agent command `no-such-agent-xyz` not found on PATH there; install it on the host"
    )


def test_the_local_tmux_dying_leaves_the_host_agent_running_and_resume_takes_it_up(
    fleet: Fleet, repo: Path, tmux_socket: str
) -> None:
    """The run's tmux server here is killed (panes, wrappers and supervisor with it) while
    box1 runs a task: its agent goes on there; `resume` makes the session anew and a new
    pane takes the same attempt up; it ends done, attempt 1, its work merged."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    plan = WAITING.format(box=host_line(box1, 1))
    plan += "  - {id: next, depends_on: [long], prompt: 'cat typed.txt > next.txt'}\n"
    write_plan(repo, plan)
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        log = store.log_path(run.id, "long")
    wait_for(lambda: log.is_file() and "waiting for go" in log.read_text(), 30, "long on box1")
    supervisor = latest_run(repo).supervisor_pid
    subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], check=True)
    assert supervisor is not None
    wait_for(lambda: not psutil.pid_exists(supervisor), 10, "supervisor gone")
    agent = ["tmux", "-S", str(box1.home / "limitless" / "tmux" / f"{run.id}.long"), "has-session"]
    assert subprocess.run(agent, check=False).returncode == 0  # still running there
    resumed = cli(repo, "resume", "--detach")
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: "taken up again on box1" in log.read_text(), 30, "a new pane on long")
    (box1.home / "go").write_text("taken up\n")
    waited = cli(repo, "wait", run.id, "--timeout", "90", "--quiet", timeout=120)
    rows = tasks_of(repo, run.id)
    events = cli(repo, "events", run.id).stdout
    assert waited.returncode == 0, (waited.stdout, {t: r.reason for t, r in rows.items()}, events)
    assert {(task, row.status, row.attempt) for task, row in rows.items()} == {
        ("long", "done", 1),
        ("next", "done", 1),
    }
    assert git(repo, "show", "main:next.txt") == "taken up"


COMMITTING = """\
name: figures
agent: shell
hosts:
  - {{name: local, slots: 1}}
{box}
tasks:
  - id: busy
    host: box1
    prompt: |
      printf 'one\\ntwo\\nthree\\n' > counted.txt
      git add counted.txt
      git -c user.name=Agent -c user.email=agent@example.com commit -qm "counted"
      echo "committed; waiting for go"
      while [ ! -e "$HOME/go" ]; do sleep 0.1; done
"""


def test_a_remote_task_s_commits_show_here_while_it_runs(fleet: Fleet, repo: Path) -> None:
    """The worktree here of a remote task stays at its start commit until the end, yet
    `status --json` shows the commits and diffstat the agent made there while it still
    runs (read on the host by its wrapper), and they land at the end."""
    fleet.serve(repo)
    box1 = fleet.add("box1")
    write_plan(repo, COMMITTING.format(box=host_line(box1, 1)))
    started = cli(repo, "run", "--detach")
    assert started.returncode == 0, started.stderr
    run = latest_run(repo)

    def reported() -> dict[str, object]:
        shown = cli(repo, "status", run.id, "--json")
        assert shown.returncode == 0, shown.stderr
        return next(t for t in json.loads(shown.stdout)["tasks"] if t["id"] == "busy")

    try:
        wait_for(lambda: reported()["commits"] == 1, timeout=60, what="the remote commit here")
        live = reported()
        assert live["status"] == "running" and live["host"] == "box1"
        assert (live["files_changed"], live["insertions"]) == (1, 3)
        here = Path(str(live["worktree"]))
        assert not (here / "counted.txt").exists()  # the commit is on the host only
    finally:
        (box1.home / "go").write_text("go\n")
    waited = cli(repo, "wait", run.id, timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert git(repo, "show", "main:counted.txt") == "one\ntwo\nthree"
