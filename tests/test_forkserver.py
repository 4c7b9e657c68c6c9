"""The fork server on a real tmux server: panes whose program is forked from a warm process.

Each test starts `python -m limitless.forkserver` on its own socket and a private
tmux server (the `tmux_socket` fixture); the pane program is the client, whose
target is tests/forkserver_target.py (or the real wrapper, `limitless _exec`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from limitless.plan.loader import loads
from limitless.run.processes import wrapper_alive
from limitless.states import TaskStatus
from limitless.store import Run, Store, TaskRow
from tests.conftest import git
from tests.engine_helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "limitless" / "forkserver" / "client.py"
PYTHON = sys.executable
TARGETS = [
    "--target", "tests.forkserver_target", "tests.forkserver_target:main",
    "--target", "limitless", "limitless.cli.main:main", "_exec",
    "--preload", "tests.forkserver_target",
    # what docs/FORKSERVER.md tells the supervisor to preload
    "--preload", "limitless.cli.main", "--preload", "limitless.cli.run",
    "--preload", "limitless.cli.agents", "--preload", "limitless.cli.plan",
    "--preload", "limitless.cli.report",
    "--preload", "limitless.agents.wrapper", "--preload", "limitless.agents.depsummary",
    "--preload", "limitless.agents.state", "--preload", "limitless.tmux.session",
    "--preload", "limitless.git.refguard",
]  # fmt: skip


FIELDS = "#{pane_id}/#{pane_dead}/#{pane_dead_status}/#{pane_dead_signal}"


@dataclass
class Tmux:
    """The test's private tmux server (session `t`, panes kept when they die)."""

    socket: str

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            msg = f"tmux {' '.join(args)}: {result.stderr.strip()}"
            raise AssertionError(msg)
        return result.stdout.strip()

    def pane(self, argv: list[str], *, cwd: Path = ROOT) -> str:
        """A new window running `argv` (no shell); its pane id."""
        return self(
            "new-window", "-d", "-P", "-F", "#{pane_id}", "-c", str(cwd),
            "-e", "FORKSERVER_MARKER=from-the-pane", *argv,
        )  # fmt: skip

    def field(self, pane: str, name: str) -> str:
        return self("display-message", "-p", "-t", pane, f"#{{{name}}}")

    def dead(self, pane: str) -> tuple[str, str]:
        """(pane_dead_status, pane_dead_signal) once the pane's program ended."""

        def ended() -> tuple[str, str] | None:
            # tmux 3.3a under load can miss a SIGCHLD: the pane is dead without its status
            # until tmux reaps at its next child's exit (plain panes too, not only ours)
            listing = self("list-panes", "-a", "-F", FIELDS).splitlines()
            _, dead, status, number = next(
                line.split("/") for line in listing if line.startswith(f"{pane}/")
            )
            if dead == "1" and not (status or number):
                self("run-shell", "true")  # a child's exit makes tmux reap the one it missed
                return None
            return (status, number) if dead == "1" else None

        wait_for(lambda: ended() is not None, 30, f"pane {pane} to die")
        result = ended()
        assert result is not None
        return result


@pytest.fixture
def tmux(tmux_socket: str) -> Tmux:
    server = Tmux(tmux_socket)
    server(
        "new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "sleep", "600",
        ";", "set-option", "-g", "remain-on-exit", "on",
    )  # fmt: skip
    return server


@dataclass
class ForkServer:
    process: subprocess.Popen[bytes]
    path: Path


def start_server(path: Path) -> ForkServer:
    process = subprocess.Popen(
        [PYTHON, "-m", "limitless.forkserver", str(path), *TARGETS], cwd=ROOT
    )
    wait_for(lambda: path.is_socket() or process.poll() is not None, 30, "the fork server")
    assert process.poll() is None
    return ForkServer(process, path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ForkServer]:
    started = start_server(tmp_path / "fork.sock")
    yield started
    started.process.kill()
    started.process.wait()


def through(server_path: Path, command: list[str]) -> list[str]:
    """The pane argv that runs `command` through the fork server at `server_path`."""
    return [PYTHON, "-S", "-I", str(CLIENT), str(server_path), *command]


def target(out: Path, *extra: str) -> list[str]:
    return [PYTHON, "-m", "tests.forkserver_target", str(out), *extra]


def lines(out: Path, count: int = 1) -> list[dict[str, object]]:
    """The target's report and signal lines, once there are `count` of them."""

    def read() -> list[dict[str, object]]:
        if not out.exists():
            return []
        return [json.loads(line) for line in out.read_text().splitlines()]

    wait_for(lambda: len(read()) >= count, 30, f"{count} lines in {out.name}")
    return read()


SAME_AS_COLD = (
    "isatty", "size", "cwd", "marker", "umask", "fds", "threads",
    "sigint_default", "sigpipe_ignored", "sigterm_default", "blocked",
)  # fmt: skip


def test_a_forked_program_sees_its_pane_as_a_cold_one_does(
    tmux: Tmux, server: ForkServer, tmp_path: Path
) -> None:
    """Terminal, size, cwd, env, umask, fds, handlers, session: as cold, but forked and reseeded."""
    cold = target(tmp_path / "cold.json")
    forked = [through(server.path, target(tmp_path / f"forked{n}.json")) for n in (1, 2)]
    panes = [tmux.pane(cold), *(tmux.pane(argv) for argv in forked)]
    assert [tmux.dead(pane) for pane in panes] == [("0", "")] * 3
    seen = [lines(tmp_path / name)[0] for name in ("cold.json", "forked1.json", "forked2.json")]
    assert [s["forked"] for s in seen] == [False, True, True]
    for number, forked_seen in enumerate(seen[1:], start=1):
        assert {k: forked_seen[k] for k in SAME_AS_COLD} == {k: seen[0][k] for k in SAME_AS_COLD}
        assert forked_seen["pid"] == forked_seen["pgid"] == forked_seen["sid"]
        assert forked_seen["cmdline"] == target(tmp_path / f"forked{number}.json")
    assert seen[0]["cmdline"] == cold
    assert seen[0]["isatty"] == [True, True, True, True]
    assert seen[0]["size"] == [30, 100]
    assert seen[0]["marker"] == "from-the-pane"
    assert seen[1]["random"] != seen[2]["random"]


def test_resize_reaches_the_program_and_its_exit_code_is_the_panes(
    tmux: Tmux, server: ForkServer, tmp_path: Path
) -> None:
    """A resized window sends SIGWINCH with the new size; exit 3 is pane_dead_status 3."""
    out, go = tmp_path / "out.json", tmp_path / "go"
    pane = tmux.pane(through(server.path, target(out, "--exit", "3", "--until", str(go))))
    assert lines(out)[0]["forked"] is True
    tmux("resize-window", "-t", pane, "-x", "120", "-y", "40")
    assert lines(out, 2)[1] == {"signal": "SIGWINCH", "size": [40, 120]}
    go.touch()
    assert tmux.dead(pane) == ("3", "")


def test_respawn_k_hangs_up_the_program(tmux: Tmux, server: ForkServer, tmp_path: Path) -> None:
    """`respawn-pane -k` (what tmux does to a pane's program) reaches the forked one as SIGHUP."""
    out = tmp_path / "out.json"
    pane = tmux.pane(through(server.path, target(out, "--until", str(tmp_path / "never"))))
    program = int(str(lines(out)[0]["pid"]))
    tmux("respawn-pane", "-k", "-t", pane, "sleep", "600")
    assert lines(out, 2)[1] == {"signal": "SIGHUP"}
    wait_for(lambda: not _alive(program), 10, "the program's end")


def test_a_client_killed_with_sigkill_hangs_up_the_program(
    tmux: Tmux, server: ForkServer, tmp_path: Path
) -> None:
    """The client's connection closes: the program gets SIGHUP, as from a closed terminal."""
    out = tmp_path / "out.json"
    pane = tmux.pane(through(server.path, target(out, "--until", str(tmp_path / "never"))))
    lines(out)
    os.kill(int(tmux.field(pane, "pane_pid")), signal.SIGKILL)
    assert lines(out, 2)[1] == {"signal": "SIGHUP"}
    assert tmux.dead(pane) == ("", "9")


def test_a_program_killed_with_sigkill_ends_its_pane_by_signal_9(
    tmux: Tmux, server: ForkServer, tmp_path: Path
) -> None:
    """kill -9 of the forked program (what the crash tests do to a wrapper): the pane ends
    by signal 9, as a cold one would, not with the client's own failure."""
    out = tmp_path / "out.json"
    pane = tmux.pane(through(server.path, target(out, "--until", str(tmp_path / "never"))))
    program = int(str(lines(out)[0]["pid"]))
    os.kill(program, signal.SIGKILL)
    assert tmux.dead(pane) == ("", "9")


def test_ctrl_c_in_the_pane_ends_the_program_by_sigint(
    tmux: Tmux, server: ForkServer, tmp_path: Path
) -> None:
    """SIGINT is forwarded; a program killed by a signal makes the pane die of that signal."""
    out = tmp_path / "out.json"
    pane = tmux.pane(through(server.path, target(out, "--until", str(tmp_path / "never"))))
    lines(out)
    tmux("send-keys", "-t", pane, "C-c")
    assert tmux.dead(pane) == ("", "2")


def test_the_server_killed_mid_task_lets_it_finish_and_new_panes_start_cold(
    tmux: Tmux, server: ForkServer, tmp_path: Path
) -> None:
    """kill -9 of the server: a running task still reports its end; the next one starts cold."""
    first, go = tmp_path / "first.json", tmp_path / "go"
    pane = tmux.pane(through(server.path, target(first, "--exit", "3", "--until", str(go))))
    assert lines(first)[0]["forked"] is True
    server.process.kill()
    server.process.wait()
    go.touch()
    assert tmux.dead(pane) == ("3", "")
    second = tmp_path / "second.json"
    pane = tmux.pane(through(server.path, target(second, "--exit", "4")))
    assert tmux.dead(pane) == ("4", "")
    assert lines(second)[0]["forked"] is False


def test_a_program_off_the_allow_list_is_refused_and_starts_cold(server: ForkServer) -> None:
    """Only `-m` targets the server was given are forked; anything else runs cold, said once."""
    result = subprocess.run(
        through(server.path, [PYTHON, "-c", "print('cold'); raise SystemExit(5)"]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (5, "cold\n")
    assert result.stderr == (
        "limitless: fork server: \"-c print('cold'); raise SystemExit(5)\" is not a program "
        "this server runs; starting cold\n"
    )


def test_a_socket_path_longer_than_a_unix_address_works(tmux: Tmux, tmp_path: Path) -> None:
    """A state dir deep enough that its socket path passes 108 bytes still gets a server."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    started = start_server(deep / "fork.sock")
    try:
        out = tmp_path / "out.json"
        # a command longer than the server's own: it is shown space-separated (ps, psutil)
        there = deep / ("f" * 200)
        there.touch()
        longer = target(out, "--exit", "6", "--until", str(there))
        pane = tmux.pane(through(started.path, longer))
        assert tmux.dead(pane) == ("6", "")
        assert lines(out)[0]["forked"] is True
        assert lines(out)[0]["cmdline"] == longer
    finally:
        started.process.kill()
        started.process.wait()


NOBODY = 65534


def interpreter_for(uid: int) -> str | None:
    """A Python 3 that `uid` may run (ours may sit in root's private home), or None."""
    for candidate in (PYTHON, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            probe = subprocess.run(
                [candidate, "-S", "-I", "-c", "pass"], user=uid, capture_output=True, check=False
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another uid")
def test_a_client_of_another_uid_is_refused(tmp_path: Path) -> None:
    """SO_PEERCRED: a client of another uid is refused even when the socket lets it in."""
    python = interpreter_for(NOBODY)
    if python is None:
        pytest.skip(f"no Python interpreter that uid {NOBODY} may run")
    folder = Path(tempfile.mkdtemp(prefix="fs-uid-"))
    try:
        folder.chmod(0o755)
        started = start_server(folder / "fork.sock")
        (folder / "fork.sock").chmod(0o777)
        client = folder / "client.py"
        shutil.copy(CLIENT, client)
        client.chmod(0o644)
        try:
            result = subprocess.run(
                [python, "-S", "-I", str(client), str(folder / "fork.sock"), "/bin/echo", "cold"],
                capture_output=True,
                text=True,
                user=NOBODY,
                cwd="/",
                timeout=30,
                check=False,
            )
        finally:
            started.process.kill()
            started.process.wait()
    finally:
        shutil.rmtree(folder)
    assert result.stdout == "cold\n"
    assert result.stderr == (
        f"limitless: fork server: uid {NOBODY} is not the server's (0); starting cold\n"
    )


PLAN = """\
name: fs
agent: shell
tasks:
  - id: a
    prompt: "echo hello > a.txt && sleep 1 && echo the shell task ran"
"""


def make_task(store: Store, repo: Path, run_id: str, socket: str) -> None:
    """A run with one running shell task and its worktree, as the supervisor leaves it."""
    plan = loads(PLAN, source="limitless.yaml", base_dir=repo)
    base_sha = git(repo, "rev-parse", "HEAD")
    worktree = repo.parent / "worktrees" / run_id / "a"
    git(repo, "worktree", "add", "-q", "-b", f"limitless/{run_id}/a", str(worktree), base_sha)
    store.create_run(
        Run(
            id=run_id, plan_name="fs", plan_path=None, plan_json=plan.to_json(),
            repo_root=str(repo), base="main", base_sha=base_sha,
            worktree_root=str(worktree.parent.parent), created_at=time.time(), tmux_socket=socket,
        )
    )  # fmt: skip
    store.add_tasks(
        run_id,
        [
            TaskRow(
                run_id=run_id, id="a", position=0, agent="shell", branch=f"limitless/{run_id}/a",
                worktree=str(worktree), status=TaskStatus.RUNNING, attempt=1, start_sha=base_sha,
            )
        ],
    )  # fmt: skip


def exec_command(run_id: str, state_dir: Path) -> list[str]:
    """The cold pane command of today (supervisor.exec_argv)."""
    return [
        PYTHON, "-m", "limitless", "_exec",
        "--run", run_id, "--task", "a", "--state-dir", str(state_dir),
    ]  # fmt: skip


def test_the_wrapper_forked_runs_a_shell_task_as_exec_does(
    tmux: Tmux, server: ForkServer, repo: Path, tmp_path: Path
) -> None:
    """`limitless _exec` through the fork server: same row, events, commit and log as cold."""
    state_dir = tmp_path / "state"
    with Store.open(state_dir) as store:
        for run_id in ("fs-1", "fs-2"):
            make_task(store, repo, run_id, tmux.socket)
    cold = tmux.pane(exec_command("fs-1", state_dir), cwd=repo)
    forked = tmux.pane(through(server.path, exec_command("fs-2", state_dir)), cwd=repo)
    with Store.open(state_dir) as store:
        wait_for(lambda: store.get_task("fs-2", "a").pid is not None, 30, "the forked wrapper")
        running = store.get_task("fs-2", "a")
    # the supervisor's and recovery's liveness check, unchanged, knows the forked wrapper
    assert wrapper_alive(running)
    assert [tmux.dead(cold), tmux.dead(forked)] == [("0", ""), ("0", "")]
    with Store.open(state_dir) as store:
        rows = [store.get_task(run_id, "a") for run_id in ("fs-1", "fs-2")]
        events = [[e.kind for e in store.events(run_id)] for run_id in ("fs-1", "fs-2")]
        logs = [store.log_path(run_id, "a").read_text() for run_id in ("fs-1", "fs-2")]
    for row in rows:
        assert (row.status, row.exit_code, row.commits, row.files_changed, row.reason) == (
            TaskStatus.DONE, 0, 1, 1, "",
        )  # fmt: skip
    assert rows[1].pid != int(tmux.field(forked, "pane_pid"))  # the forked wrapper's own pid
    assert rows[1].pane_id == forked
    assert events[0] == events[1] == ["task_started", "agent_started", "task_done"]
    assert same_log(logs[0]).replace("fs-1", "fs-2") == same_log(logs[1])
    assert "the shell task ran" in logs[1]
    assert "the shell task ran" in tmux("capture-pane", "-p", "-t", forked)


def same_log(text: str) -> str:
    """A task log without what differs between two runs of one task (shas, times)."""
    text = re.sub(r"\b[0-9a-f]{10,40}\b", "SHA", text)
    return re.sub(r" in [0-9.]+ ?m?s\b", " in TIME", text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


SPAWNER = """
import sys, time
from pathlib import Path
from limitless.forkserver.child import Target
from limitless.forkserver.server import spawn
pid = spawn(Path(sys.argv[1]), [Target("tests.forkserver_target", "tests.forkserver_target:main")],
            ["tests.forkserver_target"])
print(pid, flush=True)
sys.stdin.read()
"""


def test_a_spawned_server_serves_and_ends_with_the_process_that_forked_it(
    tmux: Tmux, tmp_path: Path
) -> None:
    """spawn(): a server forked from its owner (the supervisor) serves until the owner ends."""
    path = tmp_path / "fork.sock"
    owner = subprocess.Popen(
        [PYTHON, "-c", SPAWNER, str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    server_pid = int(owner.stdout.readline())
    wait_for(path.is_socket, 30, "the spawned server")
    out = tmp_path / "out.json"
    pane = tmux.pane(through(path, target(out, "--exit", "7")))
    assert tmux.dead(pane) == ("7", "")
    assert lines(out)[0]["forked"] is True
    owner.kill()
    owner.wait()
    wait_for(lambda: not _alive(server_pid), 10, "the server's end")
    assert not path.exists()


def test_an_interactive_agent_runs_under_a_forked_wrapper_and_gets_the_keys_typed(
    repo: Path, tmux_socket: str
) -> None:
    """`limitless run` forks an interactive agent's wrapper too: Escape, y and Enter typed
    in its pane reach the agent, which goes on and ends the task done."""
    from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan

    ask = Path(__file__).parent / "fake_agents" / "ask.py"
    write_plan(
        repo,
        f"""\
name: keys
agent: ask
changes: optional
merge: {{land: manual}}
agents:
  ask:
    command: ["{{python}}", "{ask}", "--ticks", "1"]
    interactive: true
    waiting_regex: '\\(y/n\\)\\s*$'
tasks:
  - {{id: ask, prompt: "ask me"}}
""",
    )
    started = cli(repo, "run", "--detach", "--no-merge")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = latest_run(repo).id
    wait_for(lambda: tasks_of(repo, run_id)["ask"].status is TaskStatus.WAITING, 60, "asking")
    row = tasks_of(repo, run_id)["ask"]
    assert row.pid and row.pane_id
    shown = subprocess.run(
        ["tmux", "-L", tmux_socket, "display", "-p", "-t", row.pane_id, "#{pane_pid}"],
        capture_output=True,
        text=True,
        check=True,
    )
    with open(f"/proc/{row.pid}/stat") as stat:
        parent = int(stat.read().rsplit(")", 1)[1].split()[1])
    # cold, the pane's process is the wrapper (or its parent); forked, a watcher is
    assert int(shown.stdout) not in (row.pid, parent), "the interactive wrapper started cold"
    subprocess.run(
        ["tmux", "-L", tmux_socket, "send-keys", "-t", row.pane_id, "Escape", "y", "Enter"],
        check=True,
    )
    waited = cli(repo, "wait", run_id, "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert tasks_of(repo, run_id)["ask"].status is TaskStatus.DONE
    with open_store(repo) as store:
        log = store.log_path(run_id, "ask").read_text(errors="replace")
    assert "answer was '\\x1by'; applying the change" in log
