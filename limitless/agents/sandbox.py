"""`sandbox: worktree`: a task's setup commands and agent run under bubblewrap.

Inside, the agent sees the machine read-only, minus what is hidden (empty,
read-only folders or `/dev/null` in place of): the user's secrets (`SECRETS`),
the repository's main checkout and every other worktree (and the plan's whole
worktree root), and the plan's `sandbox_hide`. It writes its own worktree, a
private `/tmp`, the git data a commit on its own branch needs (see
`refguard`), the run's database (`limitless signal` and agent hooks write it),
and the `sandbox_write` paths (each agent program's own state, named by its
adapter's `state_paths`). It has the network unless `sandbox_network: false`.
It cannot get out: no capabilities, its own user, pid, ipc and uts
namespaces, `--die-with-parent`, and no tmux socket (the tmux server would run
any command it is asked to, outside).

The bubblewrap command line is built in `bwrap_argv` from values only, so it is
read (and tested) without running anything; `Session` is one attempt's sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from limitless.errors import GitError, LimitlessError
from limitless.git.runner import CommitRejected

if TYPE_CHECKING:  # refguard (and git's module) only when a task is sandboxed: plan.py imports this
    from limitless.git.refguard import Guard, Mount, RefChange
    from limitless.plan.model import Plan, SandboxMode, Task
    from limitless.store import Run, Store, TaskRow


BWRAP = "bwrap"
# Always hidden: keys, tokens and credentials of the usual tools.
SECRETS = (
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    "~/.config/gcloud",
    "~/.netrc",
    "~/.git-credentials",
    "~/.config/gh",
    "~/.docker",
    "~/.kube",
    "~/.pypirc",
)
# No capabilities (root keeps them by default, and with them could unmount what hides),
# every namespace but the network's unshared, gone when the wrapper goes.
ISOLATION = ("--unshare-all", "--die-with-parent", "--cap-drop", "ALL")
PROBE_TIMEOUT_S = 10.0
PUBLISH_EVERY_S = 1.0
COMMIT_TIMEOUT_S = 300.0
DB_FILES = ("state.db", "state.db-wal", "state.db-shm")
# A server on a Unix socket runs what it is asked outside the sandbox (docker, systemd,
# dbus, tmux, an ssh agent): every socket file found under these is hidden.
SOCKET_ROOTS = ("/run", "/var/run")
SOCKET_SCAN_DEPTH = 6
SOCKET_SCAN_LIMIT = 5000  # entries looked at, so a huge /run cannot slow every start


class SandboxError(LimitlessError):
    """The sandbox of a task could not be made."""


@dataclass(frozen=True)
class Policy:
    """What a task's sandbox hides, lets it write and whether it has the network."""

    mode: SandboxMode = "none"
    hide: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    network: bool = True

    @property
    def confined(self) -> bool:
        return self.mode == "worktree"


def policy(plan: Plan, task: Task) -> Policy:
    """The task's sandbox: its own keys, else the plan's; its program's state is writable."""
    from limitless.programs import adapter

    program = adapter(plan.profile(task).adapter)
    state = program.state_paths if program is not None else ()
    network = task.sandbox_network if task.sandbox_network is not None else plan.sandbox_network
    return Policy(
        mode=task.sandbox or plan.sandbox,
        hide=tuple(dict.fromkeys(plan.sandbox_hide + task.sandbox_hide)),
        write=tuple(dict.fromkeys(state + plan.sandbox_write + task.sandbox_write)),
        network=network,
    )


def expand(path: str, home: Path) -> Path:
    """`~/x` under `home`; the trailing `/` of a folder is dropped."""
    if path == "~" or path.startswith("~/"):
        path = str(home) + path[1:]
    return Path(os.path.normpath(path))


# ----------------------------------------------------------------- can it run here


def userns_hint(proc_sys: Path = Path("/proc/sys")) -> str:
    """What keeps unprivileged user namespaces off on this kernel, and the fix, or ""."""
    checks = (
        ("kernel/unprivileged_userns_clone", "0", "sysctl -w kernel.unprivileged_userns_clone=1"),
        ("user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"),
        (
            "kernel/apparmor_restrict_unprivileged_userns",
            "1",
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give bwrap an "
            "AppArmor profile that allows userns",
        ),
    )
    for name, off, fix in checks:
        with contextlib.suppress(OSError):
            if (proc_sys / name).read_text().strip() == off:
                return f"user namespaces are off ({name.replace('/', '.')} = {off}): {fix}"
    return ""


def unavailable(path: str | None = None) -> str | None:
    """Why `sandbox: worktree` cannot run here (bwrap missing, or refused to make a
    sandbox), or None. Tries the real thing: one `bwrap ... true`, a few milliseconds."""
    found = shutil.which(BWRAP, path=path)
    if found is None:
        return (
            "bubblewrap (bwrap) is not installed, and `sandbox: worktree` needs it; install it "
            "(Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) or use "
            "`sandbox: none`"
        )
    argv = [found, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *ISOLATION]
    try:
        result = subprocess.run(
            [*argv, "--share-net", "--", "true"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({found}) could not be started: {exc}"
    if result.returncode == 0:
        return None
    words = (result.stderr or result.stdout).strip() or f"exit {result.returncode}"
    hint = userns_hint()
    return f"bubblewrap ({found}) cannot make a sandbox here: {words}" + (
        f"; {hint}" if hint else ""
    )


def bwrap_version(path: str | None = None) -> str | None:
    """`bubblewrap 0.8.0`, or None when bwrap is missing."""
    found = shutil.which(BWRAP, path=path)
    if found is None:
        return None
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or None
    return None


def plan_problem(plan: Plan) -> str | None:
    """Why the plan's sandboxed tasks cannot run here, naming them; None when none is
    sandboxed or bubblewrap works."""
    confined = [task.id for task in plan.tasks if (task.sandbox or plan.sandbox) == "worktree"]
    if not confined:
        return None
    reason = unavailable()
    if reason is None:
        return None
    more = f" and {len(confined) - 3} more" if len(confined) > 3 else ""
    shown = ", ".join(confined[:3]) + more
    return f"{reason} (tasks with `sandbox: worktree`: {shown})"


# ----------------------------------------------------------------- the command line


@dataclass(frozen=True)
class Layout:
    """The places one task's sandbox is made of (all absolute)."""

    worktree: Path
    common_dir: Path
    state_dir: Path
    home: Path
    checkouts: tuple[Path, ...]
    """The main checkout, the other worktrees and the plan's worktree root: hidden."""
    git: tuple[Mount, ...]
    """The task's git data (refguard): its own git folder, private objects and refs."""
    keep: tuple[Path, ...] = ()
    """Programs the task runs (PATH folders, Python, limitless): shown read-only when they
    would be hidden by the private /tmp or a hidden checkout."""
    sockets: tuple[Path, ...] = ()
    """Unix sockets of servers outside (`unix_sockets`): /dev/null in their place."""


def unix_sockets(roots: Iterable[Path], depth: int = SOCKET_SCAN_DEPTH) -> list[Path]:
    """The Unix socket files under `roots` (links not followed, `depth` levels down)."""
    found: list[Path] = []
    seen = 0
    pending = [(Path(root), 0) for root in dict.fromkeys(_real(Path(r)) for r in roots)]
    while pending and seen < SOCKET_SCAN_LIMIT:
        folder, level = pending.pop()
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                seen += 1
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                if stat.S_ISSOCK(mode):
                    found.append(Path(entry.path))
                elif stat.S_ISDIR(mode) and level < depth:
                    pending.append((Path(entry.path), level + 1))
    return sorted(set(found))


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _under(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """`paths` without those inside another one, shortest first."""
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: (len(p.parts), str(p))):
        if not _under(path, kept):
            kept.append(path)
    return kept


def _hide(path: Path, args: list[str], hidden_dirs: list[Path]) -> None:
    """An empty read-only folder over a folder, /dev/null over a file."""
    if path.is_dir():
        args += ["--tmpfs", str(path)]
        hidden_dirs.append(path)
    elif path.exists():
        args += ["--ro-bind", "/dev/null", str(path)]


def bwrap_argv(layout: Layout, rules: Policy, argv: Sequence[str]) -> list[str]:
    """The whole command line that runs `argv` in the sandbox.

    Mounts are made in order and a later one wins: show read-only what the private
    /tmp would hide (a HOME or tools there), mount the `sandbox_write` places, hide the
    checkouts, show back read-only the common git folder and tools kept inside a
    checkout, make the task's own places writable, hide secrets and sockets last (even
    inside a writable place), then make the hiding folders read-only.
    """
    tmp = Path("/tmp")
    args = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    hidden_dirs: list[Path] = []
    checkouts = _outermost(_real(path) for path in layout.checkouts if path.exists())
    wanted = [_real(layout.home)] if layout.home.is_dir() else []
    wanted += [_real(path) for path in layout.keep if path.exists()]
    in_tmp = [path for path in wanted if _under(path, [tmp]) and not _under(path, checkouts)]
    for path in _outermost(in_tmp):
        args += ["--ro-bind", str(path), str(path)]
    writable = [_real(expand(raw, layout.home)) for raw in rules.write]
    writable = [path for path in writable if path.exists()]
    # A writable place around a checkout (`~`, a parent folder) must not show it again:
    # it is mounted before the checkouts are hidden; one inside a checkout, after.
    # The same for one inside the git folder (the run's own folders in .git/limitless),
    # which is mounted read-only below.
    common = _real(layout.common_dir)
    inside = [path for path in writable if any(c in path.parents for c in (*checkouts, common))]
    for path in writable:
        if path not in inside:
            args += ["--bind", str(path), str(path)]
    for checkout in checkouts:
        _hide(checkout, args, hidden_dirs)
    # strictly inside: a PATH entry naming a checkout itself must not show it all again
    in_checkouts = [path for path in wanted if any(c in path.parents for c in checkouts)]
    for path in _outermost([*in_checkouts, common]):
        args += ["--ro-bind", str(path), str(path)]
    worktree = _real(layout.worktree)
    args += ["--bind", str(worktree), str(worktree)]
    args += ["--ro-bind", str(worktree / ".git"), str(worktree / ".git")]
    for mount in layout.git:
        if mount.source.exists():
            flag = "--bind" if mount.writable else "--ro-bind"
            args += [flag, str(mount.source), str(mount.dest)]
    state_dir = _real(layout.state_dir)
    for name in DB_FILES:
        if (state_dir / name).exists():
            args += ["--bind", str(state_dir / name), str(state_dir / name)]
    for path in inside:
        args += ["--bind", str(path), str(path)]
    for raw in (*SECRETS, *rules.hide):
        path = expand(raw, layout.home)
        if path.exists():
            _hide(_real(path), args, hidden_dirs)
    for socket in layout.sockets:
        # one in the private /tmp, a hidden checkout or secret is out of sight already
        out_of_sight = _under(socket, [tmp, *hidden_dirs]) and not _under(socket, in_tmp)
        if not out_of_sight:
            args += ["--ro-bind", "/dev/null", str(socket)]
    for folder in hidden_dirs:
        args += ["--remount-ro", str(folder)]
    args += [*ISOLATION, "--chdir", str(worktree)]
    if rules.network:
        args.append("--share-net")
    return [*args, "--", *argv]


def _outside_sockets() -> list[Path]:
    """The sockets to hide: under /run, the user's runtime folder, tmux's socket folder
    (the run's own server among them) and the ssh agent's."""
    roots = [Path(root) for root in SOCKET_ROOTS]
    # tmux.socket_path's folder, without importing tmux.py (and libtmux: ~90 ms a start)
    roots.append(Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}")
    for name in ("XDG_RUNTIME_DIR", "SSH_AUTH_SOCK"):
        value = os.environ.get(name, "")
        if value.startswith("/"):
            roots.append(Path(value) if name == "XDG_RUNTIME_DIR" else Path(value).parent)
    return unix_sockets(roots)


def keep_paths(env: Mapping[str, str], argv: Sequence[str]) -> tuple[Path, ...]:
    """What the task's programs need: the PATH folders, the program's own folder, the
    Python that runs limitless (`limitless signal` from agent hooks) and the package."""
    paths = [Path(part) for part in env.get("PATH", "").split(os.pathsep) if part.startswith("/")]
    if argv:
        found = shutil.which(argv[0], path=env.get("PATH"))
        if found:
            paths += [Path(found).parent, _real(Path(found)).parent]
    paths += [Path(sys.prefix), Path(__file__).resolve().parent.parent]  # the package
    return tuple(dict.fromkeys(paths))


# ----------------------------------------------------------------- one attempt


@dataclass(frozen=True)
class Finish:
    """How a sandboxed attempt ended for git: the refs it may not move, and what went wrong
    copying its work out."""

    refused: tuple[RefChange, ...]
    errors: tuple[str, ...]

    def reason(self) -> str:
        """The failure this adds to the task's reason ("" when there is none)."""
        parts = []
        if self.refused:
            named = ", ".join(change.describe() for change in self.refused)
            parts.append(f"sandbox: the agent changed refs it may not change: {named}")
        parts += [f"sandbox: {error}" for error in self.errors]
        return "; ".join(parts)


class Session:
    """The sandbox of one attempt: wraps command lines, copies commits out, checks refs."""

    def __init__(self, layout: Layout, rules: Policy, guard: Guard) -> None:
        self.layout = layout
        self.rules = rules
        self.guard = guard
        self.last_publish = 0.0
        self.repaired: list[RefChange] = []

    @classmethod
    def open(cls, store: Store, run: Run, plan: Plan, task: Task, row: TaskRow) -> Session | None:
        """The task's sandbox, or None when it runs unconfined; SandboxError when bwrap
        cannot run or the worktree cannot be confined."""
        rules = policy(plan, task)
        if not rules.confined:
            return None
        # the task's own run folders: the program's state folder (opencode's database)
        # and the hook relay's log, which interactive agents' hooks append to
        run_dir = store.run_dir(run.id)
        for folder in (run_dir / "agents" / task.id, run_dir / "hooks"):
            with contextlib.suppress(OSError):
                folder.mkdir(parents=True, exist_ok=True)
        own = (f"{run_dir / 'agents' / task.id}/", f"{run_dir / 'hooks'}/")
        rules = Policy(rules.mode, rules.hide, (*rules.write, *own), rules.network)
        if shutil.which(BWRAP) is None:  # `run` tried bwrap before it started (plan_problem)
            raise SandboxError(unavailable() or "bubblewrap (bwrap) is not on PATH")
        from limitless.git import refguard
        from limitless.git.repo import default_worktree_root

        worktree = Path(row.worktree)
        common = store.state_dir.parent
        try:
            guard = refguard.Guard.prepare(
                worktree, common, row.branch, store.state_dir, run.id, task.worktree_key
            )
            found = refguard.checkouts(common)
        except (GitError, OSError) as exc:
            raise SandboxError(f"cannot prepare the sandbox: {exc}") from exc
        mine = _real(worktree)
        others = [path for path in found if _real(path) != mine]
        main = found[0] if found else common.parent
        others.append(plan.worktree_root or default_worktree_root(main))
        for raw in rules.write:  # a folder the program keeps its state in may not exist yet
            if raw.endswith("/"):
                with contextlib.suppress(OSError):
                    expand(raw, Path.home()).mkdir(parents=True, exist_ok=True)
        layout = Layout(
            worktree=worktree,
            common_dir=common,
            state_dir=store.state_dir,
            home=Path.home(),
            checkouts=tuple(others),
            git=tuple(guard.mounts()),
            sockets=tuple(_outside_sockets()),
        )
        return cls(layout, rules, guard)

    def wrap(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """`argv` as a command line that runs it in the sandbox."""
        layout = Layout(**{**vars(self.layout), "keep": keep_paths(env, argv)})
        return bwrap_argv(layout, self.rules, argv)

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The variables inside: temporary files in the private /tmp; the sandbox named."""
        return {**env, "TMPDIR": "/tmp", "LIMITLESS_SANDBOX": self.rules.mode}

    def tick(self) -> None:
        """Called often while a program runs: copies its commits out about once a second,
        so the dashboard, `status` and conflict predictions see them as they come."""
        now = time.monotonic()
        if now - self.last_publish >= PUBLISH_EVERY_S:
            self.last_publish = now
            self.guard.publish()

    def commit_all(
        self, message: str, env: Mapping[str, str], *, hooks: bool, signing: bool
    ) -> str | None:
        """Commit what the agent left, inside the sandbox: the repository's commit hooks
        may be files the agent wrote, so they run confined too."""
        self.guard.publish()  # HEAD outside is the agent's last commit: dirty means left over
        if not self.guard.dirty():
            return None
        inner = self.environment(env)
        argv = [
            sys.executable,
            "-m",
            "limitless.agents.sandbox",
            "commit",
            "--hooks" if hooks else "--no-hooks",
            "--sign" if signing else "--no-sign",
            str(self.layout.worktree),
        ]
        try:
            result = subprocess.run(
                self.wrap([*argv, message], inner),
                env=inner,
                capture_output=True,
                text=True,
                timeout=COMMIT_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"the commit in the sandbox did not run: {exc}") from exc
        try:
            answer = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            words = (result.stderr or result.stdout).strip()[-500:]
            raise GitError(f"the commit in the sandbox failed: {words}") from None
        rejected = answer.get("rejected")
        if isinstance(rejected, dict):
            raise CommitRejected(
                str(rejected.get("hook")),
                str(rejected.get("output") or ""),
                self.layout.worktree,
                "the commit of the work left uncommitted",
            )
        if answer.get("error"):
            raise GitError(str(answer["error"]))
        sha = answer.get("sha")
        return str(sha) if sha else None

    def repair(self) -> None:
        """Put HEAD and the task's branch back if the agent moved or deleted them (before
        the autocommit, so leftovers land on the branch)."""
        try:
            self.repaired = self.guard.repair()
        except OSError as exc:
            self.guard.errors.append(f"cannot repair the worktree's git data: {exc}")

    def finish(self) -> Finish:
        """The last copy out, then the check: refs the agent may not move."""
        self.guard.publish()
        refused = [*self.guard.changes(), *self.repaired]
        errors = list(self.guard.errors)
        if not self.guard.close():
            errors.append(
                f"the agent's objects and refs are kept in {self.guard.private} (they could "
                "not all be copied into the repository)"
            )
        return Finish(tuple(refused), tuple(errors))

    def abandon(self) -> None:
        """The attempt ended before `finish` (an error in the wrapper): copy out what can
        be, keep the private folders if anything could not be."""
        with contextlib.suppress(Exception):
            self.guard.publish()
        self.guard.close()


def _commit_main(args: Sequence[str]) -> int:
    """`python -m limitless.agents.sandbox commit --[no-]hooks --[no-]sign WORKTREE MESSAGE`, run
    inside the sandbox: `worktrees.commit_all`, answered as one JSON line."""
    from limitless.git import worktrees

    flags = {"--hooks": True, "--no-hooks": False, "--sign": True, "--no-sign": False}
    if len(args) != 5 or args[0] != "commit" or args[1] not in flags or args[2] not in flags:
        usage = "commit --[no-]hooks --[no-]sign WORKTREE MESSAGE"
        print(json.dumps({"error": f"usage: {usage} (got {list(args)!r})"}))
        return 2
    try:
        sha = worktrees.commit_all(
            Path(args[3]), args[4], hooks=flags[args[1]], signing=flags[args[2]]
        )
    except CommitRejected as exc:
        print(json.dumps({"rejected": {"hook": exc.hook, "output": exc.output}}))
        return 1
    except LimitlessError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps({"sha": sha}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_commit_main(sys.argv[1:]))
