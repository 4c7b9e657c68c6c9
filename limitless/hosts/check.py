"""`hosts check`: can each host take tasks, and is the same limitless installed there?

One probe per host, in one remote command: git, tmux and Python versions, free disk
under `root`, the install stamp, and which `env_pass` names the host's sshd accepts
(dummy values are sent, never the real ones). Then, when the stamp differs, the
install: this machine's `limitless` package goes over the master connection as a tar
stream into `<root>/install.new/src`, a venv is made beside it (`python3 -m venv
--without-pip --system-site-packages`, a `.pth` naming `src`), and the folder replaces
`<root>/install` — the host needs no package index. Its dependencies must import there
(system packages, or a wheelhouse: see docs/HOSTS.md); the probe says which do not.

`check_hosts` returns one `HostCheck` per (host, item); the CLI prints them and exits 3
when any failed (`failed(checks)`), naming the host and the fix.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import limitless
from limitless.errors import EnvironmentProblem
from limitless.hosts.model import Host
from limitless.hosts.ssh import connect, run
from limitless.hosts.sync import remote_root

MIN_GIT = (2, 38)
MIN_TMUX = (3, 2)
MIN_PYTHON = (3, 11)
MIN_FREE_MB = 1024
DEPENDENCIES = ("libtmux", "yaml", "git", "psutil", "textual", "rich")
EXIT_CODE = 3

_PROBE = r"""
root=$1; shift
mkdir -p "$root" || exit 10
echo "git=$(git --version 2>/dev/null | head -n1)"
echo "tmux=$(tmux -V 2>/dev/null | head -n1)"
echo "python=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"
echo "disk_kb=$(df -Pk "$root" | awk 'NR==2 {print $4}')"
echo "stamp=$(cat "$root/install/STAMP" 2>/dev/null)"
for name in "$@"; do if printenv "$name" >/dev/null; then echo "env=$name"; fi; done
exit 0
"""

_INSTALL = r"""
set -e
root=$1; stamp=$2
rm -rf "$root/install.new"
mkdir -p "$root/install.new/src"
tar -x -C "$root/install.new/src"
python3 -m venv --without-pip --system-site-packages "$root/install.new/venv"
py="$root/install.new/venv/bin/python"
site=$("$py" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo "$root/install/src" > "$site/limitless-src.pth"
printf %s "$stamp" > "$root/install.new/STAMP"
rm -rf "$root/install.old"
if [ -d "$root/install" ]; then mv "$root/install" "$root/install.old"; fi
mv "$root/install.new" "$root/install"
rm -rf "$root/install.old"
"""

_IMPORTS = (
    "import importlib.util, sys; "
    "print(' '.join(n for n in sys.argv[1:] if importlib.util.find_spec(n) is None))"
)


@dataclass(frozen=True)
class HostCheck:
    """One finding about one host: `fix` says what to do when `ok` is False."""

    host: str
    item: str
    ok: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.host}: {self.item}: {self.detail}"
        return text if self.ok else f"{text} — {self.fix}"


def failed(checks: Sequence[HostCheck]) -> bool:
    """Whether `hosts check` (and `run` before it starts) must stop with exit 3."""
    return any(not check.ok for check in checks)


def version_of(banner: str) -> tuple[int, int] | None:
    match = re.search(r"(\d+)\.(\d+)", banner)
    return (int(match.group(1)), int(match.group(2))) if match else None


def package_tar() -> tuple[bytes, str]:
    """This machine's limitless package as a tar stream, and its stamp (version + content hash)."""
    package = Path(limitless.__file__).parent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(package.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
                continue
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(package.parent)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as stream:
                archive.addfile(info, stream)
    data = buffer.getvalue()
    return data, f"{limitless.__version__} {hashlib.sha256(data).hexdigest()[:16]}"


def check_hosts(hosts: Sequence[Host], state_dir: Path, *, install: bool = True) -> list[HostCheck]:
    """Every finding for every remote host (local is `doctor`'s job), installing where stale."""
    checks: list[HostCheck] = []
    for host in hosts:
        if not host.is_local:
            checks += check_host(host, state_dir, install=install)
    return checks


def check_host(host: Host, state_dir: Path, *, install: bool = True) -> list[HostCheck]:
    name = host.name
    try:
        connect(host, state_dir)
        root = remote_root(host, state_dir)
    except EnvironmentProblem as exc:
        fix = f"check that `ssh {host.ssh}` logs in without a prompt (key, port, host key)"
        return [HostCheck(name, "reachable", False, str(exc), fix)]
    checks = [HostCheck(name, "reachable", True, f"{host.ssh}, root {root}")]
    dummies = {variable: "limitless-check" for variable in host.env_pass}
    probe = run(host, state_dir, ["sh", "-c", _PROBE, "sh", root, *host.env_pass], env=dummies)
    if probe.code != 0:
        fix = f"make {root} writable for the ssh user, or set another root"
        return [*checks, HostCheck(name, "root", False, probe.stderr.strip(), fix)]
    facts: dict[str, str] = {}
    accepted: set[str] = set()
    for line in probe.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "env":
            accepted.add(value)
        else:
            facts[key] = value
    checks.append(_tool(name, "git", facts.get("git", ""), MIN_GIT, "install git 2.38 or newer"))
    checks.append(_tool(name, "tmux", facts.get("tmux", ""), MIN_TMUX, "install tmux 3.2 or newer"))
    checks.append(
        _tool(
            name,
            "python",
            facts.get("python", ""),
            MIN_PYTHON,
            "install Python 3.11 or newer as python3",
        )
    )
    checks.append(_disk(name, root, facts.get("disk_kb", "")))
    missing = [variable for variable in host.env_pass if variable not in accepted]
    if missing:
        fix = f"add `AcceptEnv {' '.join(missing)}` to the host's sshd_config and reload sshd"
        checks.append(HostCheck(name, "env_pass", False, f"sshd drops {', '.join(missing)}", fix))
    elif host.env_pass:
        checks.append(HostCheck(name, "env_pass", True, ", ".join(host.env_pass)))
    python_ok = all(c.ok for c in checks if c.item == "python")
    if install and python_ok:
        checks += _install(host, state_dir, root, facts.get("stamp", ""))
    return checks


def _tool(host: str, item: str, banner: str, minimum: tuple[int, int], fix: str) -> HostCheck:
    wanted = ".".join(map(str, minimum))
    if not banner:
        return HostCheck(host, item, False, "not found on PATH", fix)
    version = version_of(banner)
    if version is None:
        return HostCheck(host, item, False, f"could not read the version from {banner!r}", fix)
    if version < minimum:
        return HostCheck(host, item, False, f"{banner} is too old (needs >= {wanted})", fix)
    return HostCheck(host, item, True, banner)


def _disk(host: str, root: str, free_kb: str) -> HostCheck:
    if not free_kb.isdigit():
        return HostCheck(
            host, "disk", False, f"could not read free space under {root}", "check df there"
        )
    free_mb = int(free_kb) // 1024
    if free_mb < MIN_FREE_MB:
        fix = f"free space under {root} or choose another root"
        return HostCheck(host, "disk", False, f"{free_mb} MB free under {root}", fix)
    return HostCheck(host, "disk", True, f"{free_mb} MB free under {root}")


def _install(host: Host, state_dir: Path, root: str, stamp_there: str) -> list[HostCheck]:
    data, stamp = package_tar()
    if stamp_there != stamp:
        done = run(
            host, state_dir, ["sh", "-c", _INSTALL, "sh", root, stamp], input=data, timeout=300
        )
        if done.code != 0:
            fix = "python3 -m venv must work there (Debian: apt install python3-venv)"
            return [HostCheck(host.name, "install", False, done.stderr.strip()[-400:], fix)]
    verb = "updated to" if stamp_there != stamp else "up to date:"
    checks = [HostCheck(host.name, "install", True, f"limitless {verb} {stamp} at {root}/install")]
    python = posixpath.join(root, "install", "venv", "bin", "python")
    probe = run(host, state_dir, [python, "-c", _IMPORTS, "limitless", *DEPENDENCIES])
    missing = probe.stdout.split()
    if probe.code != 0 or missing:
        detail = f"cannot import {', '.join(missing) or probe.stderr.strip()}"
        fix = "install those Python packages for the host's python3 (or ship a wheelhouse)"
        return [*checks, HostCheck(host.name, "dependencies", False, detail, fix)]
    return [*checks, HostCheck(host.name, "dependencies", True, ", ".join(DEPENDENCIES))]
