"""Repositories shaped like real ones: submodules, Git LFS, odd checkouts, sparse worktrees.

Each test builds its repository, runs a plan of `shell` tasks through
`limitless run --headless`, and checks what a user would look at: the files on
the base branch, the exit code and messages, and that the user's own checkout
(files, index, HEAD, uncommitted changes, refs) is byte-for-byte as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from limitless.git import sparse
from limitless.states import TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan

pytestmark = pytest.mark.usefixtures("tmux_socket")


# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Checkout:
    """Everything of a user's checkout that limitless must leave alone."""

    files: dict[str, tuple[int, bytes]]
    status: str
    head: str
    index: str
    refs: str


def snapshot(checkout: Path, *, ignore_refs: tuple[str, ...] = ()) -> Checkout:
    """Files (mode and bytes, symlink targets), status, HEAD, index and refs of `checkout`.

    Refs limitless owns (`refs/heads/limitless/`, `refs/limitless/`) and `ignore_refs`
    (a base branch that may move forward) are left out.
    """
    files: dict[str, tuple[int, bytes]] = {}
    for folder, dirs, names in os.walk(checkout):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            path = Path(folder) / name
            if name == ".git":
                continue
            rel = str(path.relative_to(checkout))
            info = path.lstat()
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            files[rel] = (stat.S_IMODE(info.st_mode) | stat.S_IFMT(info.st_mode), data)
    plain = ["git", "--no-optional-locks"]
    status = subprocess.run(
        [*plain, "status", "--porcelain", "--branch"], cwd=checkout, capture_output=True, text=True
    ).stdout
    head = subprocess.run(
        [*plain, "symbolic-ref", "-q", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout + git(checkout, "rev-parse", "HEAD")
    index = git(checkout, "--no-optional-locks", "ls-files", "--stage", "--debug")
    refs = "\n".join(
        line
        for line in git(checkout, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
        if not line.startswith(("refs/heads/limitless/", "refs/limitless/"))
        and not any(line.startswith(f"refs/heads/{r} ") for r in ignore_refs)
    )
    return Checkout(files, status, head, index, refs)


def on_branch(repo: Path, ref: str, path: str) -> str:
    return git(repo, "show", f"{ref}:{path}")


def tree_of(repo: Path, ref: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob text) of every entry at `ref`."""
    found: dict[str, tuple[str, str]] = {}
    out = git(repo, "ls-tree", "-r", "-z", ref)
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, kind, sha = meta.split()
        text = git(repo, "cat-file", "-p", sha) if kind == "blob" else sha
        found[path] = (mode, text)
    return found


def merge_message(repo: Path) -> str:
    """What the newest run's last merge phase said."""
    run = latest_run(repo)
    with open_store(repo) as store:
        done = [event for event in store.events(run.id) if event.kind == "merge_done"]
    return str(done[-1].data["message"])


def run_ok(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli(cwd, "run", "--headless", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


# ----------------------------------------------------------------------------- submodules


def make_nested_submodules(root: Path) -> tuple[Path, Path]:
    """app -> lib -> deep, initialised recursively in app; returns (app, folder of upstreams)."""
    upstream = root / "upstream"
    upstream.mkdir()
    allow = ("-c", "protocol.file.allow=always")
    deep = upstream / "deep"
    git(upstream, "init", "-q", "-b", "main", "deep")
    (deep / "d.txt").write_text("deep\n")
    git(deep, "add", "-A")
    git(deep, "commit", "-q", "-m", "deep")
    lib = upstream / "lib"
    git(upstream, "init", "-q", "-b", "main", "lib")
    (lib / "l.txt").write_text("lib\n")
    git(lib, *allow, "submodule", "add", "-q", str(deep), "deep")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    app = root / "app"
    git(root, "init", "-q", "-b", "main", "app")
    (app / "a.txt").write_text("app\n")
    git(app, *allow, "submodule", "add", "-q", str(lib), "lib")
    git(app, *allow, "submodule", "update", "--init", "--recursive", "-q")
    git(app, "add", "-A")
    git(app, "commit", "-q", "-m", "app with lib")
    return app, upstream


SUBMODULES = """\
name: subs
agent: shell
max_concurrency: 2
merge:
  gate: test -f lib/deep/d.txt && test -f lib/l.txt
tasks:
  - id: reader
    prompt: |
      cat lib/l.txt lib/deep/d.txt > seen.txt
      git add seen.txt && git commit -qm "reader: what the submodules hold"
  - id: bump
    prompt: |
      cd lib && echo "lib v2" >> l.txt && git commit -qam "lib: v2" && cd ..
      git add lib && git commit -qm "bump lib to v2"
"""


def test_nested_submodules_are_checked_out_offline_and_a_pointer_change_merges(
    tmp_path: Path,
) -> None:
    """Task and merge worktrees hold lib and lib/deep without their URLs; a pointer change lands."""
    app, upstream = make_nested_submodules(tmp_path)
    # the submodules' URLs lead nowhere now: anything fetched must come from app's .git/modules
    upstream.rename(tmp_path / "gone")
    write_plan(app, SUBMODULES)
    git(app, "add", "limitless.yaml")
    git(app, "commit", "-q", "-m", "plan")
    run_ok(app)
    run = latest_run(app)
    rows = tasks_of(app, run.id)
    assert on_branch(app, "main", "seen.txt") == "lib\ndeep"
    assert f"Submodule pointers moved (lib): `git submodule update` in {app}" in (
        merge_message(app)
    )
    bumped = git(app, "rev-parse", "main:lib")
    assert bumped == git(Path(rows["bump"].worktree) / "lib", "rev-parse", "HEAD")
    # the agent's submodule commit is kept in the user's module repository, so a plain
    # `git submodule update` of the user's checkout finds it without the network
    module = app / ".git" / "modules" / "lib"
    assert git(module, "cat-file", "-t", bumped) == "commit"
    assert git(module, "rev-parse", f"refs/limitless/submodule-commits/{bumped}") == bumped
    git(app, "submodule", "update", "--recursive", "-q")
    assert (app / "lib" / "l.txt").read_text() == "lib\nlib v2\n"
    assert (app / "lib" / "deep" / "d.txt").read_text() == "deep\n"
    merge_dir = app.parent / "app.worktrees" / run.id / "_merge"
    assert (merge_dir / "lib" / "deep" / "d.txt").read_text() == "deep\n"
    assert git(merge_dir, "status", "--porcelain") == ""
    # the user's configuration is as it was: no URL rewritten, nothing initialised twice
    assert git(app, "config", "submodule.lib.url") == str(upstream / "lib")
    cleaned = cli(app, "cleanup", run.id)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not Path(rows["reader"].worktree).exists()


# ----------------------------------------------------------------------------- Git LFS


def lfs_repo(make_repo: object, home: Path) -> Path:
    if shutil.which("git-lfs") is None:
        pytest.skip("git-lfs is not installed (scripts/test.sh installs it where apt can)")
    repo = make_repo(files={"README.md": "# lfs\n"})  # type: ignore[operator]
    git(repo, "lfs", "install", "--local")
    git(repo, "lfs", "track", "*.bin")
    (repo / "data.bin").write_bytes(bytes(range(256)) * 8)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "lfs data")
    return repo


def test_lfs_files_are_real_in_worktrees_without_a_download(
    make_repo: object, isolated_env: Path
) -> None:
    """A task reads the real LFS file (no remote exists to download from) and adds another."""
    repo = lfs_repo(make_repo, isolated_env)
    assert git(repo, "remote") == ""
    plan = """\
name: lfs
agent: shell
tasks:
  - id: copy
    prompt: |
      if grep -q git-lfs.github.com data.bin; then echo "pointer file"; exit 1; fi
      cp data.bin copy.bin && git add copy.bin && git commit -qm "copy: data"
"""
    write_plan(repo, plan)
    run_ok(repo)
    assert (repo / "copy.bin").read_bytes() == bytes(range(256)) * 8
    pointer = on_branch(repo, "main", "copy.bin")
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1")
    doctor = cli(repo, "doctor")
    assert "ok   git-lfs" in doctor.stdout


def test_validate_and_doctor_say_when_git_lfs_is_missing(make_repo: object, tmp_path: Path) -> None:
    """filter=lfs in .gitattributes and no git-lfs on PATH: validate/doctor/run exit 3 naming it."""
    repo = make_repo(  # type: ignore[operator]
        files={".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n", "a.txt": "a\n"}
    )
    write_plan(repo, "agent: shell\ntasks:\n  - {id: a, prompt: 'true'}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "tmux", "bash", "sh", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env_path = str(bin_dir)
    old = os.environ["PATH"]
    os.environ["PATH"] = env_path
    try:
        validate = cli(repo, "validate")
        doctor = cli(repo, "doctor")
        run = cli(repo, "run", "--headless")
    finally:
        os.environ["PATH"] = old
    fix = "install git-lfs (e.g. `apt-get install git-lfs`) and run `git lfs install`"
    assert validate.returncode == 3
    assert "uses Git LFS (filter=lfs in .gitattributes) but git-lfs is not installed" in (
        validate.stderr
    )
    assert fix in validate.stderr
    assert doctor.returncode == 3
    assert "FAIL git-lfs" in doctor.stdout
    assert run.returncode == 3
    assert fix in run.stderr
    assert git(repo, "for-each-ref", "refs/heads/limitless/") == ""


# ----------------------------------------------------------------------------- odd checkouts


TWO_TASKS = """\
name: odd
agent: shell
max_concurrency: 2
{extra}
tasks:
  - id: one
    prompt: |
      echo one > one.txt && git add one.txt && git commit -qm "one: add"
  - id: two
    prompt: |
      echo two > two.txt
"""


def test_base_checked_out_in_another_user_worktree_lands_there(make_repo: object) -> None:
    """Base `main` lives in the user's other worktree: it is fast-forwarded there; the
    checkout limitless was started in (on another branch, dirty) is untouched."""
    repo = make_repo()  # type: ignore[operator]
    git(repo, "checkout", "-q", "-b", "work")
    (repo / "README.md").write_text("my unsaved edit\n")
    (repo / "scratch.txt").write_text("untracked\n")
    other = repo.parent / "main-checkout"
    git(repo, "worktree", "add", "-q", str(other), "main")
    write_plan(repo, TWO_TASKS.format(extra="base: main"))
    before = snapshot(repo, ignore_refs=("main",))
    run_ok(repo)
    assert f"(git merge --ff-only in {other})" in merge_message(repo)
    assert (other / "one.txt").read_text() == "one\n"
    assert (other / "two.txt").read_text() == "two\n"
    assert git(other, "status", "--porcelain") == ""
    assert snapshot(repo, ignore_refs=("main",)) == before


def test_detached_head_lands_by_update_ref_and_leaves_the_checkout_alone(
    make_repo: object,
) -> None:
    """A detached user checkout with changes: base named in the plan moves by compare-and-swap."""
    repo = make_repo()  # type: ignore[operator]
    git(repo, "checkout", "-q", "--detach", "main")
    (repo / "README.md").write_text("edited on a detached HEAD\n")
    write_plan(repo, TWO_TASKS.format(extra=""))
    refused = cli(repo, "run", "--headless")
    assert refused.returncode == 2
    assert "HEAD is detached and the plan names no base branch" in refused.stderr
    assert "add `base: <branch>` to the plan or check out a branch" in refused.stderr
    assert git(repo, "for-each-ref", "refs/heads/limitless/") == ""
    write_plan(repo, TWO_TASKS.format(extra="base: main"))
    before = snapshot(repo, ignore_refs=("main",))
    run_ok(repo)
    assert "(update-ref)" in merge_message(repo)
    assert on_branch(repo, "main", "one.txt") == "one"
    assert on_branch(repo, "main", "two.txt") == "two"
    assert snapshot(repo, ignore_refs=("main",)) == before


def test_a_shallow_clone_runs_and_lands(make_repo: object, tmp_path: Path) -> None:
    """Tasks start at the shallow base's tip, so the merges need no missing history."""
    origin = make_repo("origin")  # type: ignore[operator]
    for n in range(3):
        (origin / f"h{n}.txt").write_text(f"{n}\n")
        git(origin, "add", "-A")
        git(origin, "commit", "-q", "-m", f"history {n}")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{origin}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    write_plan(clone, TWO_TASKS.format(extra=""))
    run_ok(clone)
    assert (clone / "one.txt").read_text() == "one\n"
    assert (clone / "two.txt").read_text() == "two\n"
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    assert "shallow clone" in cli(clone, "doctor").stdout


@pytest.mark.slow
def test_a_shallow_base_that_moved_out_of_reach_asks_for_unshallow(
    make_repo: object, tmp_path: Path
) -> None:
    """Base re-fetched shallow during the run: its new tip shares no history the clone has,
    so the merge phase stops with `git fetch --unshallow` as the fix; nothing lands."""
    origin = make_repo("origin")  # type: ignore[operator]
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{origin}", str(clone))
    git(clone, "branch", "dev", "main")
    write_plan(clone, TWO_TASKS.format(extra="base: dev"))
    result = cli(clone, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    for n in range(2):
        (origin / f"up{n}.txt").write_text(f"{n}\n")
        git(origin, "add", "-A")
        git(origin, "commit", "-q", "-m", f"upstream {n}")
    git(clone, "fetch", "-q", "--depth", "1", "origin", "+main:dev")
    tip = git(clone, "rev-parse", "dev")
    merged = cli(clone, "merge")
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "this repository is a shallow clone and lacks the history" in merged.stdout
    assert "`git fetch --unshallow`" in merged.stdout
    assert git(clone, "rev-parse", "dev") == tip


def test_user_worktrees_are_left_as_they_are(make_repo: object) -> None:
    """A repository with the user's own worktrees (one dirty, one locked): untouched by a run."""
    repo = make_repo()  # type: ignore[operator]
    mine = repo.parent / "mine"
    git(repo, "worktree", "add", "-q", "-b", "mine", str(mine), "main")
    (mine / "README.md").write_text("work in progress\n")
    locked = repo.parent / "locked"
    git(repo, "worktree", "add", "-q", "-b", "frozen", str(locked), "main")
    git(repo, "worktree", "lock", "--reason", "on a usb disk", str(locked))
    before = (snapshot(mine, ignore_refs=("main",)), snapshot(locked, ignore_refs=("main",)))
    listed = git(repo, "worktree", "list", "--porcelain").split("\n\n")[1:]
    write_plan(repo, TWO_TASKS.format(extra=""))
    run_ok(repo)
    assert (repo / "one.txt").read_text() == "one\n"
    after = (snapshot(mine, ignore_refs=("main",)), snapshot(locked, ignore_refs=("main",)))
    assert after == before
    records = git(repo, "worktree", "list", "--porcelain").split("\n\n")
    assert all(record in records for record in listed)  # still there, still locked


def test_a_plan_run_from_a_subdirectory(make_repo: object) -> None:
    """`limitless run plan.yaml` in a folder of the repository: prompt files beside the plan."""
    repo = make_repo(files={"pkg/code.py": "x = 1\n"})  # type: ignore[operator]
    sub = repo / "pkg"
    (sub / "prompts").mkdir()
    (sub / "prompts" / "two.md").write_text("echo two > pkg/two.txt\n")
    (sub / "plan.yaml").write_text(
        "name: sub\nagent: shell\ntasks:\n"
        "  - {id: one, prompt: 'echo one > pkg/one.txt'}\n"
        "  - {id: two, prompt_file: prompts/two.md}\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "plan in pkg")
    result = cli(sub, "run", "--headless", "plan.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (sub / "one.txt").read_text() == "one\n"
    assert (sub / "two.txt").read_text() == "two\n"
    assert (repo.parent / f"{repo.name}.worktrees").is_dir()  # beside the repository, not pkg


def test_gitattributes_line_endings_and_filters_are_applied(make_repo: object) -> None:
    """eol=crlf and a clean/smudge filter: blobs stay normalised, files in checkouts converted."""
    repo = make_repo(  # type: ignore[operator]
        files={
            ".gitattributes": "*.txt text eol=crlf\n*.rot filter=rot\n",
            "notes.txt": "first\n",
        }
    )
    git(repo, "config", "filter.rot.clean", "tr a-z n-za-m")
    git(repo, "config", "filter.rot.smudge", "tr a-z n-za-m")
    git(repo, "config", "filter.rot.required", "true")
    plan = """\
name: attrs
agent: shell
max_concurrency: 2
tasks:
  - id: crlf
    prompt: |
      grep -q $'first\\r' notes.txt || { echo "notes.txt has no CRLF in the worktree"; exit 1; }
      printf 'first\\r\\nsecond\\r\\n' > notes.txt
  - id: secret
    prompt: |
      echo hello > greeting.rot
"""
    write_plan(repo, plan)
    run_ok(repo)
    assert git(repo, "cat-file", "-p", "main:notes.txt") == "first\nsecond"
    assert git(repo, "cat-file", "-p", "main:greeting.rot") == "uryyb"
    assert (repo / "greeting.rot").read_text() == "hello\n"
    assert (repo / "notes.txt").read_bytes() == b"first\r\nsecond\r\n"
    assert git(repo, "status", "--porcelain") == "?? limitless.yaml"


ODD_NAMES = {
    "old name.txt": "moved\n",
    "-gone.txt": "bye\n",
    "--help": "not an option\n",
    "run.sh": "#!/bin/sh\necho run\n",
    "a.txt": "a\n",
    "b.txt": "b\n",
    "ünï cødé.txt": "unicode\n",
}


def test_odd_names_renames_deletes_modes_and_symlinks_merge_correctly(
    make_repo: object,
) -> None:
    """Spaces, unicode and leading dashes in names; a rename, a delete, +x and a symlink change."""
    repo = make_repo(files=ODD_NAMES)  # type: ignore[operator]
    os.symlink("a.txt", repo / "link")
    git(repo, "add", "link")
    git(repo, "commit", "-q", "-m", "a link")
    plan = """\
name: names
agent: shell
max_concurrency: 3
tasks:
  - id: move
    prompt: |
      mkdir -p "new dir" && git mv -- "old name.txt" "new dir/ñew nåme.txt"
      git rm -q -- -gone.txt && git commit -qm "move and delete"
  - id: modes
    prompt: |
      chmod +x run.sh && ln -sfn b.txt link
      echo "-rf" > ./-rf && echo more >> ./--help
  - id: unicode
    prompt: |
      echo "changed" > "ünï cødé.txt" && echo dash > ./-x.txt
"""
    write_plan(repo, plan)
    run_ok(repo)
    tree = tree_of(repo, "main")
    assert "old name.txt" not in tree and "-gone.txt" not in tree
    assert tree["new dir/ñew nåme.txt"] == ("100644", "moved")
    assert tree["run.sh"][0] == "100755"
    assert tree["link"] == ("120000", "b.txt")
    assert tree["-rf"] == ("100644", "-rf")
    assert tree["--help"] == ("100644", "not an option\nmore")
    assert tree["ünï cødé.txt"] == ("100644", "changed")
    assert tree["-x.txt"] == ("100644", "dash")
    assert os.readlink(repo / "link") == "b.txt"
    assert os.access(repo / "run.sh", os.X_OK)


# ----------------------------------------------------------------------------- big trees


class TestSparseCone:
    """Which folders a sparse task worktree gets."""

    def test_globs_are_cut_at_their_first_wildcard(self) -> None:
        """`apps/web/**` -> apps/web, `src/*.py` -> src; plain paths stay."""
        assert sparse.leading_folder("apps/web/**") == "apps/web"
        assert sparse.leading_folder("src/*.py") == "src"
        assert sparse.leading_folder("./docs/") == "docs"
        assert sparse.leading_folder("**/*.py") == ""

    def test_a_glob_reaching_everywhere_or_no_files_means_the_whole_tree(self) -> None:
        """No declared files, or a leading wildcard: a full checkout (None)."""
        assert sparse.cone([], ["shared"]) is None
        assert sparse.cone(["**/*.py"], []) is None
        assert sparse.cone(["apps/web/**", "apps/web/x.ts"], ["shared/"]) == ("apps/web", "shared")


def test_sparse_plan_key_refuses_paths_outside_the_repository(tmp_path: Path) -> None:
    """`sparse` entries are folders inside the repository: located errors otherwise."""
    from limitless.errors import PlanError
    from limitless.plan.loader import loads

    body = "tasks:\n  - {id: a, prompt: x, agent: shell}\n"
    assert loads(body, source="p.yaml", base_dir=tmp_path).sparse is None
    plan = loads("sparse: [shared]\n" + body, source="p.yaml", base_dir=tmp_path)
    assert plan.sparse == ("shared",)
    with pytest.raises(PlanError) as raised:
        loads("sparse: [ok, ../up]\n" + body, source="p.yaml", base_dir=tmp_path)
    assert str(raised.value) == (
        "p.yaml:1:14: sparse[1]: '../up' must be a folder inside the repository, "
        "relative to its top"
    )


def test_sparse_worktrees_hold_only_the_task_scope_and_merge_into_the_full_tree(
    make_repo: object,
) -> None:
    """A task with `files` checks out its folders, `sparse` ones and top-level files; the
    merge worktree is full; status shows each worktree's checkout time."""
    repo = make_repo(  # type: ignore[operator]
        files={
            "top.txt": "top\n",
            "apps/web/page.ts": "web\n",
            "apps/api/server.ts": "api\n",
            "shared/util.ts": "util\n",
        }
    )
    plan = """\
name: cone
agent: shell
max_concurrency: 2
sparse: [shared]
tasks:
  - id: web
    files: ["apps/web/**"]
    prompt: |
      test -f apps/web/page.ts && test -f shared/util.ts && test -f top.txt
      test ! -e apps/api/server.ts
      echo "web v2" > apps/web/page.ts
  - id: full
    prompt: |
      test -f apps/api/server.ts && echo "api v2" > apps/api/server.ts
"""
    write_plan(repo, plan)
    run_ok(repo)
    assert (repo / "apps" / "web" / "page.ts").read_text() == "web v2\n"
    assert (repo / "apps" / "api" / "server.ts").read_text() == "api v2\n"
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["web"].status is TaskStatus.DONE
    assert git(Path(rows["web"].worktree), "sparse-checkout", "list") == "apps/web\nshared"
    with open_store(repo) as store:
        timed = {
            e.task_id: e.data for e in store.events(run.id) if e.kind == "worktree_checked_out"
        }
    assert timed["web"]["sparse"] is True and timed["full"]["sparse"] is False
    status = cli(repo, "status", run.id, "--json")
    import json

    tasks = {t["id"]: t for t in json.loads(status.stdout)["tasks"]}
    assert isinstance(tasks["web"]["checkout_s"], float)
    assert "checkout" in cli(repo, "status", run.id).stdout
    report = cli(repo, "report", run.id, "--format", "md")
    assert "| worktree checkouts | 2, " in report.stdout
