"""`sandbox: worktree`: agents under real bubblewrap, through `limitless run`.

A hostile `shell` task tries to harm the user's checkout, another task's
worktree, HOME, secrets, refs and the system, and fails at each; the honest
tasks of the same plan work, commit, merge and land as they do unsandboxed; the
real Claude Code (the scripted model server on loopback) works inside. What a
user would check is asserted: files and refs byte for byte, the run report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.agents import sandbox
from limitless.git.refguard import Guard
from limitless.plan.loader import loads
from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan
from tests.realagents.homes import AgentSetup
from tests.realagents.modelserver import ModelServer
from tests.realagents.script import Script, run, say, write

RUN_TIMEOUT = 240.0
NO_SANDBOX = sandbox.unavailable()
needs_bwrap = pytest.mark.skipif(NO_SANDBOX is not None, reason=f"no sandbox here: {NO_SANDBOX}")


def _hash_tree(root: Path, skip: tuple[str, ...] = (".git",)) -> dict[str, str]:
    """Every file under `root` (not under `skip`) → sha256 of its bytes and its mode."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(folder) / name
            if path.is_socket():
                data = b"a socket"
            elif path.is_symlink():
                data = os.readlink(path).encode()
            else:
                data = path.read_bytes()
            mode = oct(path.lstat().st_mode)
            found[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest() + mode
    return found


def _user_refs(repo: Path) -> dict[str, str]:
    """The user's refs (limitless's own, under limitless/, left out)."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return {
        name: sha
        for name, sha in (line.split() for line in out.splitlines())
        if "/limitless/" not in name and not name.startswith("refs/limitless/")
    }


# ----------------------------------------------------------------------- the plan keys


class KeyCase(NamedTuple):
    test_id: str
    text: str
    message: str


KEY_CASES = [
    KeyCase(
        "unknown-mode",
        "sandbox: docker\ntasks: [{id: a, prompt: x}]\n",
        "plan.yaml:1:10: sandbox: unknown value 'docker' (accepted: none, worktree)",
    ),
    KeyCase(
        "relative-path",
        "sandbox_write: [~/.cache/, cache]\ntasks: [{id: a, prompt: x}]\n",
        "plan.yaml:1:28: sandbox_write[1]: 'cache' is not an absolute path; write /path/to/it "
        "or ~/path",
    ),
    KeyCase(
        "network-not-a-flag",
        "tasks: [{id: a, prompt: x, sandbox_network: maybe}]\n",
        "plan.yaml:1:45: tasks[0].sandbox_network: expected true or false, got a string",
    ),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=[c.test_id for c in KEY_CASES])
def test_a_bad_sandbox_key_is_a_located_error(case: KeyCase, tmp_path: Path) -> None:
    """Sandbox keys are checked like the others: file, line, column, the fix."""
    from limitless.errors import PlanError

    with pytest.raises(PlanError) as caught:
        loads(case.text, source="plan.yaml", base_dir=tmp_path)
    assert [str(p) for p in caught.value.problems] == [case.message]


def test_a_task_s_sandbox_keys_win_over_the_plan_s_and_programs_name_their_state(
    tmp_path: Path,
) -> None:
    """A task's sandbox, network and paths come before the plan's; the claude profile's
    program makes its own state writable."""
    plan = loads(
        "sandbox: worktree\nsandbox_hide: [/srv/data]\nsandbox_write: [~/.cache/]\n"
        "sandbox_network: false\ntasks:\n"
        "  - {id: a, prompt: x, agent: shell, sandbox: none}\n"
        "  - {id: b, prompt: x, sandbox_write: /opt/out, sandbox_network: true}\n",
        source="plan.yaml",
        base_dir=tmp_path,
    )
    a, b = (sandbox.policy(plan, plan.task(t)) for t in ("a", "b"))
    assert not a.confined and a.write == ("~/.cache/",) and not a.network
    assert b.confined and b.network and b.hide == ("/srv/data",)
    assert b.write == ("~/.claude/", "~/.claude.json", "~/.cache/", "/opt/out")
    assert type(plan).from_json(plan.to_json()) == plan


def test_userns_hint_names_the_setting_that_keeps_namespaces_off(tmp_path: Path) -> None:
    """The hint reads the kernel's switches (a /proc/sys copy here) and gives the fix."""
    (tmp_path / "kernel").mkdir()
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "max_user_namespaces").write_text("15000\n")
    assert sandbox.userns_hint(tmp_path) == ""
    (tmp_path / "kernel" / "unprivileged_userns_clone").write_text("0\n")
    assert sandbox.userns_hint(tmp_path) == (
        "user namespaces are off (kernel.unprivileged_userns_clone = 0): "
        "sysctl -w kernel.unprivileged_userns_clone=1"
    )


@pytest.fixture
def path_without_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with git, tmux, a shell and Python, and no bwrap (as on a machine without it)."""
    folder = tmp_path / "bin-without-bwrap"
    folder.mkdir()
    for name in ("git", "tmux", "sh", "bash", "env", "cat", "true"):
        found = shutil.which(name)
        if found:
            (folder / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_without_bwrap_validate_warns_doctor_says_so_and_run_refuses(
    repo: Path, path_without_bwrap: Path, tmux_socket: str
) -> None:
    """bwrap missing: `validate` warns naming the tasks, `doctor` shows it, `run` exits 3
    with the install hint and makes nothing."""
    write_plan(
        repo, "name: box\nagent: shell\nsandbox: worktree\ntasks: [{id: a, prompt: 'true'}]\n"
    )
    validate = cli(repo, "validate")
    assert validate.returncode == 0, validate.stderr
    assert (
        "warning: bubblewrap (bwrap) is not installed, and `sandbox: worktree` needs it; install "
        "it (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) or use "
        "`sandbox: none` (tasks with `sandbox: worktree`: a)"
    ) in validate.stderr
    doctor = cli(repo, "doctor")
    assert "--   sandbox" in doctor.stdout
    assert "bubblewrap (bwrap) is not installed" in doctor.stdout
    started = cli(repo, "run", "--headless")
    assert started.returncode == 3, started.stdout + started.stderr
    assert "apt-get install bubblewrap" in started.stderr
    assert git(repo, "branch", "--list", "limitless/*") == ""
    with open_store(repo) as store:
        assert store.latest_run() is None


@needs_bwrap
def test_doctor_says_the_sandbox_works(repo: Path) -> None:
    """Where bwrap runs, `doctor` names its version and says sandbox: worktree works."""
    doctor = cli(repo, "doctor")
    line = next(line for line in doctor.stdout.splitlines() if " sandbox " in f" {line} ")
    assert line.startswith("ok   sandbox") and "bubblewrap 0." in line, doctor.stdout


# ----------------------------------------------------------------------- the hostile plan

HOSTILE = r"""set +e
try() {{  # try WHAT COMMAND...: the command must fail
  what="$1"; shift
  if "$@" >/dev/null 2>&1; then echo "BREACH: $what"; else echo "blocked: $what"; fi
}}
try "write in the main checkout" sh -c 'echo pwned > {main}/pwned.txt'
try "overwrite the user's uncommitted notes" sh -c 'echo pwned > {main}/notes.txt'
try "delete in the main checkout" rm -r {main}/README.md {main}/notes.txt
try "read the main checkout" cat {main}/notes.txt
try "write in another task's worktree" sh -c 'echo pwned > {other}/pwned.txt'
try "read another task's worktree" cat {other}/helper.txt
try "append to ~/.bashrc" sh -c 'echo pwned >> ~/.bashrc'
try "read ~/.ssh/id_ed25519" cat ~/.ssh/id_ed25519
try "git update-ref main" git update-ref refs/heads/main HEAD
try "git update-ref the user's feature branch" git update-ref refs/heads/feature HEAD
try "git tag" git tag -f v1 HEAD
try "git push into main" git push -q {main} HEAD:main
try "git push into main past denyCurrentBranch" git push -q \
  --receive-pack='git -c receive.denyCurrentBranch=updateInstead receive-pack' {main} HEAD:main
try "write /etc/hosts" sh -c 'echo 6.6.6.6 evil >> /etc/hosts'
try "rewrite the repository's config" sh -c 'echo "[core] hooksPath = /tmp" >> {common}/config'
try "point the worktree at another repository" sh -c 'echo "gitdir: /tmp" > .git'
try "delete the repository's objects" \
  sh -c 'find "$(head -n1 {common}/objects/info/alternates)" -type f -delete'
try "run a command outside through the run's tmux server" \
  tmux -L {socket} run-shell 'touch {main}/tmux-pwned'
try "ask a server outside on a Unix socket (docker, systemd, dbus)" python3 -c \
  'import socket; s = socket.socket(socket.AF_UNIX); s.connect("{server}"); s.sendall(b"pwn")'
echo allowed > {main}/../written-beside.txt || echo "sandbox_write refused"
echo mine > mine.txt && git add mine.txt && git commit -qm "hostile: its own work"
git update-ref refs/heads/limitless/box-1/honest HEAD && echo "wrote honest's branch, privately"
sleep 1.5  # limitless looks at the private refs every second: deleting them hides nothing
try "delete the repository" rm -r {common}
echo "hostile finished"
"""

ATTEMPTS = [
    "write in the main checkout",
    "overwrite the user's uncommitted notes",
    "delete in the main checkout",
    "read the main checkout",
    "write in another task's worktree",
    "read another task's worktree",
    "append to ~/.bashrc",
    "read ~/.ssh/id_ed25519",
    "git update-ref main",
    "git update-ref the user's feature branch",
    "git tag",
    "git push into main",
    "git push into main past denyCurrentBranch",
    "write /etc/hosts",
    "rewrite the repository's config",
    "point the worktree at another repository",
    "delete the repository's objects",
    "run a command outside through the run's tmux server",
    "ask a server outside on a Unix socket (docker, systemd, dbus)",
    "delete the repository",
]

HONEST = """\
echo "progress 10%"
mkdir -p src && echo "honest work" > src/honest.txt
git add src/honest.txt && git commit -qm "honest: add src/honest.txt"
{python} -m limitless signal waiting "checking in from the sandbox"
echo 'total cost $0.25'
echo "progress 90%"
echo "left for the autocommit" > src/left.txt
"""


@pytest.fixture
def user_home() -> Iterator[Path]:
    """The test's HOME with a ~/.bashrc and an ssh key to steal."""
    home = Path(os.environ["HOME"])
    (home / ".bashrc").write_text("# the user's bashrc\nexport EDITOR=vi\n")
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    key = ssh / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH KEY-----\n")
    key.chmod(0o600)
    yield home


@pytest.fixture
def outside_server(user_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OutsideServer]:
    """A server on a Unix socket in the user's runtime folder (where dbus, systemd and
    rootless docker listen), recording every connection it gets."""
    runtime = user_home / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    server = OutsideServer(runtime / "agent.sock")
    yield server
    server.close()


class OutsideServer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections = 0
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self.connections += 1
                conn.close()

    def close(self) -> None:
        self.listener.close()


@needs_bwrap
def test_a_hostile_task_fails_at_everything_and_the_honest_ones_land(
    repo: Path, user_home: Path, tmux_socket: str, outside_server: OutsideServer
) -> None:
    """Each harmful act of the hostile task is refused (the checkout stays hidden inside a
    `sandbox_write` folder around it); the ref it wrote in its private copy is not
    applied and fails it, named in the report; the honest tasks' work lands on main;
    every file and ref of the user is as it was."""
    (repo / "notes.txt").write_text("the user's uncommitted notes\n")
    git(repo, "branch", "feature")
    git(repo, "tag", "v1")
    worktrees = repo.parent / f"{repo.name}.worktrees"
    common = repo / ".git"
    # helper has no dependant: its worktree stays its own (honest's goes on to hostile)
    other = worktrees / "box-1" / "helper"
    hostile_script = HOSTILE.format(
        main=repo, other=other, common=common, socket=tmux_socket, server=outside_server.path
    )
    write_plan(
        repo,
        f"""\
name: box
agent: shell
sandbox: worktree
sandbox_write: ["{repo.parent}/"]   # around the checkout: it stays hidden all the same
max_concurrency: 2
tasks:
  - id: honest
    prompt: |
{_indent(HONEST.format(python=sys.executable), 6)}
  - id: helper
    prompt: |
      echo "helper work" > helper.txt
  - id: hostile
    depends_on: [honest]
    prompt: |
{_indent(hostile_script, 6)}
""",
    )
    git(repo, "add", "limitless.yaml")
    git(repo, "commit", "-qm", "plan")
    files_before = _hash_tree(repo)
    refs_before = _user_refs(repo)
    home_before = _hash_tree(user_home, skip=(".cache",))
    hosts_before = Path("/etc/hosts").read_bytes()
    main_before = refs_before["refs/heads/main"]

    validate = cli(repo, "validate")
    assert validate.returncode == 0 and "warning" not in validate.stderr, validate.stderr
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 1, finished.stdout + finished.stderr

    run_id = latest_run(repo).id
    rows = tasks_of(repo, run_id)
    assert rows["honest"].status is TaskStatus.DONE, rows["honest"].reason
    assert rows["helper"].status is TaskStatus.DONE, rows["helper"].reason
    hostile = rows["hostile"]
    assert hostile.status is TaskStatus.FAILED
    assert hostile.reason.startswith(
        "sandbox: the agent changed refs it may not change: "
        "refs/heads/limitless/box-1/honest (set to "
    ), hostile.reason
    with open_store(repo) as store:
        hostile_log = store.log_path(run_id, "hostile").read_text()
        honest_log = store.log_path(run_id, "honest").read_text()
        signals = [e for e in store.events(run_id) if e.kind == "task_signal"]
    for attempt in ATTEMPTS:
        assert f"blocked: {attempt}\n" in hostile_log, attempt
    assert "BREACH" not in hostile_log
    assert "hostile finished" in hostile_log
    assert "sandbox: worktree (bubblewrap)" in honest_log

    # The report names the task and the ref.
    report = cli(repo, "report", run_id)
    assert "hostile" in report.stdout and "refs/heads/limitless/box-1/honest" in report.stdout

    # The honest work landed; the hostile's did not.
    assert git(repo, "show", "main:src/honest.txt") == "honest work"
    assert git(repo, "show", "main:src/left.txt") == "left for the autocommit"
    assert git(repo, "show", "main:helper.txt") == "helper work"
    assert "mine.txt" not in git(repo, "ls-tree", "-r", "--name-only", "main")
    # The honest task's progress, cost and signal went through as unsandboxed.
    assert rows["honest"].cost_usd == pytest.approx(0.25)
    assert any(e.task_id == "honest" and e.data.get("signal") == "waiting" for e in signals)

    # Every file and ref of the user is as it was; main only moved forward by the merge.
    files_after = _hash_tree(repo)
    landed = {"src/honest.txt", "src/left.txt", "helper.txt"}
    assert {k: v for k, v in files_after.items() if k not in landed} == files_before
    assert (repo / "notes.txt").read_text() == "the user's uncommitted notes\n"
    refs_after = _user_refs(repo)
    assert {**refs_after, "refs/heads/main": main_before} == refs_before
    changed = git(repo, "diff", "--name-only", main_before, "main").splitlines()
    assert set(changed) == landed
    assert git(repo, "merge-base", "--is-ancestor", main_before, "main") == ""
    assert git(repo, "rev-parse", "limitless/box-1/honest") == rows["honest"].head_sha
    home_after = _hash_tree(user_home, skip=(".cache",))
    limitless_state = ".local/state/limitless/"  # the supervisor's port leases, outside
    assert {k: v for k, v in home_after.items() if not k.startswith(limitless_state)} == (
        home_before
    )
    assert Path("/etc/hosts").read_bytes() == hosts_before
    assert outside_server.connections == 0
    assert (repo.parent / "written-beside.txt").read_text() == "allowed\n"
    assert not (other / "pwned.txt").exists()
    assert git(other, "status", "--porcelain") == ""
    git(repo, "fsck", "--no-dangling", "--strict")
    # The hostile's own commit was copied out to its own branch (nothing of it is lost).
    hostile_log_subjects = git(repo, "log", "--format=%s", "limitless/box-1/hostile")
    assert "hostile: its own work" in hostile_log_subjects
    assert not (common / "limitless" / "sandbox" / run_id).exists()


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else "" for line in text.splitlines())


# ----------------------------------------------------------------------- refguard alone


@needs_bwrap
def test_an_agent_commit_is_copied_out_and_a_sibling_ref_is_named(
    repo: Path, tmp_path: Path
) -> None:
    """Inside bwrap with only the git mounts: a commit (packed by the agent) moves the
    private branch and publish() moves the real one (objects hashed again); a ref written
    beside it is listed by changes() and never reaches the repository."""
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "limitless/r-1/t", str(worktree))
    git(repo, "branch", "limitless/r-1/other")
    common = repo / ".git"
    guard = Guard.prepare(worktree, common, "limitless/r-1/t", common / "limitless", "r-1", "t")
    script = (
        "echo hi > hi.txt && git add hi.txt && git commit -qm hi && git repack -q -d && "
        "git update-ref refs/heads/limitless/r-1/other HEAD && "
        "(git update-ref refs/heads/main HEAD 2>/dev/null && echo MOVED-MAIN || true)"
    )
    done = _in_git_sandbox(guard, common, worktree, script)
    assert done.returncode == 0, done.stderr
    assert "MOVED-MAIN" not in done.stdout
    assert list((guard.objects / "pack").glob("*.pack"))
    before = git(repo, "rev-parse", "limitless/r-1/t")
    guard.publish()
    assert guard.errors == []
    after = git(repo, "rev-parse", "limitless/r-1/t")
    assert after != before and git(repo, "show", f"{after}:hi.txt") == "hi"
    assert [c.describe() for c in guard.changes()] == [
        f"refs/heads/limitless/r-1/other (set to {after[:10]}; not applied)"
    ]
    assert git(repo, "rev-parse", "limitless/r-1/other") == before
    assert git(repo, "rev-parse", "main") == before
    assert guard.close() and not guard.private.exists()
    git(repo, "fsck", "--no-dangling", "--strict")


@needs_bwrap
def test_a_commit_made_while_its_objects_are_copied_out_waits_for_the_next_copy(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent commits between the copy's listing of its objects and the branch move:
    the branch moves no further than the copied objects reach (once a race under load
    failed the task with "nonexistent object"); the next copy takes the commit."""
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "limitless/r-1/t", str(worktree))
    common = repo / ".git"
    guard = Guard.prepare(worktree, common, "limitless/r-1/t", common / "limitless", "r-1", "t")
    before = git(repo, "rev-parse", "limitless/r-1/t")
    send_objects = guard._send_objects

    def send_then_commit() -> None:
        send_objects()
        script = "echo late > late.txt && git add late.txt && git commit -qm late"
        done = _in_git_sandbox(guard, common, worktree, script)
        assert done.returncode == 0, done.stderr

    monkeypatch.setattr(guard, "_send_objects", send_then_commit)
    guard.publish()
    monkeypatch.undo()
    assert guard.errors == []
    assert git(repo, "rev-parse", "limitless/r-1/t") == before
    guard.publish()
    assert guard.errors == []
    assert git(repo, "show", "limitless/r-1/t:late.txt") == "late"
    assert guard.close()
    git(repo, "fsck", "--no-dangling", "--strict")


def _in_git_sandbox(
    guard: Guard, common: Path, worktree: Path, script: str
) -> subprocess.CompletedProcess[str]:
    """`script` in bwrap with the common folder read-only and the guard's git mounts."""
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    args += ["--ro-bind", str(common), str(common), "--bind", str(worktree), str(worktree)]
    for mount in guard.mounts():
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), str(mount.dest)]
    args += [*sandbox.ISOLATION, "--chdir", str(worktree), "--", "sh", "-c", script]
    return subprocess.run(args, capture_output=True, text=True, check=False)


@needs_bwrap
def test_the_commits_of_an_attempt_killed_before_its_copy_are_kept(
    repo: Path, tmp_path: Path
) -> None:
    """A wrapper killed before it copied the agent's commit out: the next attempt's
    guard copies the objects in and keeps the commit under refs/limitless/…/sandbox-*."""
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "limitless/r-1/t", str(worktree))
    common = repo / ".git"
    args = (worktree, common, "limitless/r-1/t", common / "limitless", "r-1", "t")
    first = Guard.prepare(*args)
    done = _in_git_sandbox(
        first,
        common,
        worktree,
        "echo a > a.txt && git add a.txt && git commit -qm 'work of the killed attempt'",
    )
    assert done.returncode == 0, done.stderr
    Guard.prepare(*args)  # no publish() in between: as if the wrapper had died
    kept = git(repo, "for-each-ref", "--format=%(refname)", "refs/limitless/r-1/t/")
    assert kept.startswith("refs/limitless/r-1/t/sandbox-"), kept
    assert git(repo, "log", "-1", "--format=%s", kept) == "work of the killed attempt"
    git(repo, "fsck", "--no-dangling", "--strict")


# ----------------------------------------------------------------------- Claude Code inside


@pytest.fixture
def claude_env(
    claude_agent: AgentSetup, monkeypatch: pytest.MonkeyPatch, tmux_socket: str
) -> AgentSetup:
    claude_agent.export(monkeypatch)
    return claude_agent


@needs_bwrap
def test_claude_code_works_inside_the_sandbox(
    claude_env: AgentSetup, model_server: ModelServer, repo: Path, user_home: Path
) -> None:
    """The real `claude` profile in `sandbox: worktree`: it writes, runs git, commits, its
    cost and session are recorded, its work lands; its own state (~/.claude) was writable;
    the ssh key it was told to read stayed hidden."""
    script = Script(
        "boxed",
        [
            write("src/app.py", "def greet():\n    return 'hi'\n"),
            run("cat ~/.ssh/id_ed25519; echo status=$?"),
            run("git add -A && git commit -q -m 'app: greet' && echo committed"),
            say("Wrote and committed src/app.py."),
        ],
    )
    model_server.add(script)
    write_plan(
        repo,
        f"""\
name: boxed
sandbox: worktree
agents:
  claude: {{env: {{IS_SANDBOX: "1"}}}}
tasks:
  - id: app
    approve: all
    prompt: "Create src/app.py with greet(). {script.marker}"
""",
    )
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:src/app.py") == "def greet():\n    return 'hi'"
    assert "app: greet" in git(repo, "log", "--format=%s", "main").splitlines()
    run_row = latest_run(repo)
    row = tasks_of(repo, run_row.id)["app"]
    assert row.status is TaskStatus.DONE and row.session_id and (row.cost_usd or 0) > 0
    with open_store(repo) as store:
        log = store.log_path(run_row.id, "app").read_text()
    assert "sandbox: worktree (bubblewrap)" in log
    assert "✎ Write src/app.py" in log
    results = [r for req in model_server.main_requests("boxed") for r in req.tool_results]
    key_result = next(r for r in results if "status=" in r)
    assert "secret" not in key_result and "No such file" in key_result, key_result
    assert any(r.strip().endswith("committed") for r in results), results
    transcripts = list((user_home / ".claude" / "projects").glob("*/*.jsonl"))
    assert transcripts, "Claude Code could not write its session under ~/.claude"
    assert json.loads(transcripts[0].read_text().splitlines()[0])


@needs_bwrap
def test_worktrees_inside_the_checkout_are_confined_too(repo: Path, tmux_socket: str) -> None:
    """`worktree_root` inside the main checkout: each task still sees only its own
    worktree, none of the checkout around it, and both land."""
    script = """\
set +e
ls {main}/README.md >/dev/null 2>&1 && echo "BREACH: the main checkout is visible"
seen=$(ls {root}/wt-1)
[ "$seen" = "{me}" ] || echo "BREACH: other worktrees are visible: $seen"
echo "{me}" > {me}.txt
"""
    write_plan(
        repo,
        f"""\
name: wt
agent: shell
sandbox: worktree
worktree_root: .worktrees
max_concurrency: 2
tasks:
  - id: one
    prompt: |
{_indent(script.format(main=repo, root=repo / ".worktrees", me="one"), 6)}
  - id: two
    prompt: |
{_indent(script.format(main=repo, root=repo / ".worktrees", me="two"), 6)}
""",
    )
    (repo / ".git" / "info" / "exclude").write_text(".worktrees/\nlimitless.yaml\n")
    finished = cli(repo, "run", "--headless", timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert git(repo, "show", "main:one.txt") == "one"
    assert git(repo, "show", "main:two.txt") == "two"
    with open_store(repo) as store:
        logs = [store.log_path("wt-1", task).read_text() for task in ("one", "two")]
    assert all("BREACH" not in log for log in logs), logs


@needs_bwrap
def test_sandbox_network_false_cuts_the_network(repo: Path, tmux_socket: str) -> None:
    """A task with `sandbox_network: false` cannot reach a server on loopback; its sibling
    with the default network can."""
    listener = socket.socket(socket.AF_INET)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    probe = (
        f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)' "
        "&& echo reached > out.txt || echo unreachable > out.txt"
    )
    write_plan(
        repo,
        f"""\
name: net
agent: shell
sandbox: worktree
tasks:
  - id: online
    prompt: {json.dumps(probe)}
  - id: offline
    sandbox_network: false
    prompt: {json.dumps(probe)}
""",
    )
    try:
        finished = cli(repo, "run", "--headless", "--no-merge", timeout=RUN_TIMEOUT)
    finally:
        listener.close()
    assert finished.returncode == 0, finished.stdout + finished.stderr
    rows = tasks_of(repo, latest_run(repo).id)
    assert git(repo, "show", f"{rows['online'].head_sha}:out.txt") == "reached"
    assert git(repo, "show", f"{rows['offline'].head_sha}:out.txt") == "unreachable"
