"""Commits limitless makes follow the repository's hooks and signing: real runs of `shell` tasks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from limitless.git import worktrees as wt
from limitless.git.repo import find_repo, state_dir
from limitless.git.runner import CommitRejected
from limitless.states import MergeStatus, TaskStatus
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, open_store, tasks_of, write_plan

HOOK = """\
#!/bin/sh
if git diff --cached | grep -q FORBIDDEN; then
    echo "policy: the word FORBIDDEN may not be committed" >&2
    exit 1
fi
"""

MERGE_HOOK = """\
#!/bin/sh
if git diff --cached --name-only HEAD | grep -qx blocked.txt; then
    echo "policy: merges may not bring blocked.txt" >&2
    exit 1
fi
"""

POLICY = """\
name: policy
agent: shell
max_concurrency: 2
{extra}
tasks:
  - id: good
    prompt: |
      echo fine > good.txt
  - id: bad
    prompt: |
      echo "a FORBIDDEN word" > bad.txt
"""


def install_hook(repo: Path, name: str, text: str, folder: str = "policy-hooks") -> Path:
    """A hook in a folder named by `core.hooksPath` (committed, as repositories share them)."""
    hooks = repo / folder
    hooks.mkdir(exist_ok=True)
    hook = hooks / name
    hook.write_text(text)
    hook.chmod(0o755)
    git(repo, "config", "core.hooksPath", folder)
    return hook


def committed_hooks(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "policy hooks")


def limitless_commits(repo: Path, base: str, tip: str = "main") -> list[str]:
    return git(repo, "rev-list", f"{base}..{tip}").splitlines()


# ----------------------------------------------------------------------------- hooks


def test_a_rejected_leftovers_commit_fails_the_task_and_is_not_merged(
    tmux_socket: str, repo: Path
) -> None:
    """A pre-commit hook (core.hooksPath) refusing the leftovers: the task fails with its words."""
    install_hook(repo, "pre-commit", HOOK)
    committed_hooks(repo)
    base = git(repo, "rev-parse", "main")
    write_plan(repo, POLICY.format(extra=""))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["good"].status is TaskStatus.DONE
    assert rows["bad"].status is TaskStatus.FAILED
    assert "the repository's pre-commit hook rejected" in rows["bad"].reason
    assert "policy: the word FORBIDDEN may not be committed" in rows["bad"].reason
    assert rows["bad"].merge_status is not MergeStatus.MERGED
    assert (repo / "good.txt").read_text() == "fine\n"
    assert not (repo / "bad.txt").exists()
    assert "FORBIDDEN" not in git(repo, "log", "-p", f"{base}..main")
    # the refused work is still there, staged, in the task's worktree: nothing is lost
    staged = git(Path(rows["bad"].worktree), "diff", "--cached", "--name-only")
    assert staged == "bad.txt"


def test_commit_hooks_skip_merges_what_the_hook_would_refuse(tmux_socket: str, repo: Path) -> None:
    """`commit_hooks: skip` leaves the repository's hooks out of limitless's commits."""
    install_hook(repo, "pre-commit", HOOK)
    committed_hooks(repo)
    write_plan(repo, POLICY.format(extra="commit_hooks: skip"))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "bad.txt").read_text() == "a FORBIDDEN word\n"
    assert (repo / "good.txt").read_text() == "fine\n"


def test_a_merge_commit_rejected_by_a_hook_stops_the_merge_at_that_task(
    tmux_socket: str, repo: Path
) -> None:
    """A pre-merge-commit hook refusing a task's merge: the phase stops there, nothing lands."""
    install_hook(repo, "pre-merge-commit", MERGE_HOOK)
    committed_hooks(repo)
    base = git(repo, "rev-parse", "main")
    plan = """\
name: mergehook
agent: shell
max_concurrency: 1
tasks:
  - id: first
    prompt: |
      echo one > one.txt && git add one.txt && git commit -qm "first: one"
  - id: blocked
    after: [first]
    prompt: |
      echo no > blocked.txt && git add blocked.txt && git commit -qm "blocked: add"
"""
    write_plan(repo, plan)
    result = cli(repo, "run", "--headless")
    assert result.returncode == 1, result.stdout + result.stderr
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["first"].merge_status is MergeStatus.MERGED
    assert rows["blocked"].merge_status is MergeStatus.UNMERGED
    assert "merges may not bring blocked.txt" in rows["blocked"].merge_reason
    merge_dir = repo.parent / f"{repo.name}.worktrees" / run.id / "_merge"
    expected = (
        "merge stopped at task blocked: the repository's pre-merge-commit hook rejected its "
        f"merge into limitless/{run.id}/merged:\npolicy: merges may not bring blocked.txt\n"
        f"Nothing was landed; the merge worktree {merge_dir} is back where it was"
    )
    assert expected in result.stdout
    assert git(repo, "rev-parse", "main") == base
    assert not (repo / "one.txt").exists()
    assert git(repo, "rev-parse", f"limitless/{run.id}/blocked")  # the branch is kept
    assert not (merge_dir / "blocked.txt").exists()
    with open_store(repo) as store:
        kinds = [(e.kind, e.data.get("hook")) for e in store.events(run.id)]
    assert ("commit_rejected", "pre-merge-commit") in kinds


def test_a_dependency_merge_rejected_by_a_hook_names_the_hook(repo: Path) -> None:
    """Preparing a dependant's worktree: the refused dependency merge raises CommitRejected."""
    install_hook(repo, "pre-merge-commit", MERGE_HOOK)
    committed_hooks(repo)
    base = git(repo, "rev-parse", "main")
    git(repo, "branch", "dep", "main")
    side = repo.parent / "side"
    git(repo, "worktree", "add", "-q", str(side), "dep")
    (side / "blocked.txt").write_text("x\n")
    git(side, "add", "blocked.txt")
    git(side, "commit", "-q", "-m", "dep: blocked")
    lock = state_dir(find_repo(repo))
    with pytest.raises(CommitRejected) as raised:
        wt.prepare_worktree(
            repo,
            path=repo.parent / "wt" / "r1" / "t",
            branch="limitless/r1/t",
            base_sha=base,
            merge_branches=["dep"],
            lock_dir=lock,
        )
    assert raised.value.hook == "pre-merge-commit"
    assert raised.value.output == "policy: merges may not bring blocked.txt"
    made = repo.parent / "wt" / "r1" / "t"
    assert git(made, "status", "--porcelain") == ""  # the merge was aborted
    skipped = wt.prepare_worktree(
        repo,
        path=repo.parent / "wt" / "r1" / "u",
        branch="limitless/r1/u",
        base_sha=base,
        merge_branches=["dep"],
        lock_dir=lock,
        hooks=False,
    )
    assert skipped.merged == ("dep",)


# ----------------------------------------------------------------------------- signing


def ssh_signing(repo: Path, home: Path, *, passphrase: str = "") -> Path:
    """Sign every commit of `repo` with a new ed25519 key; verification trusts it."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    key = home / "signing-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "limitless", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    public = key.with_suffix(".pub").read_text().split()
    allowed = home / "allowed_signers"
    allowed.write_text(f'test@limitless.invalid namespaces="git" {public[0]} {public[1]}\n')
    for name, value in (
        ("gpg.format", "ssh"),
        ("user.signingkey", str(key)),
        ("commit.gpgsign", "true"),
        ("gpg.ssh.allowedSignersFile", str(allowed)),
    ):
        git(repo, "config", name, value)
    return key


SIGNED = """\
name: signed
agent: shell
max_concurrency: 2
merge: {{strategy: {strategy}}}
tasks:
  - id: lib
    prompt: |
      echo "lib" > lib.txt
  - id: app
    depends_on: [lib, docs]   # one worktree is handed on to app, the other branch merged
    prompt: |
      echo "app uses $(cat lib.txt)" > app.txt && git add app.txt && git commit -qm "app: add"
  - id: docs
    prompt: |
      echo docs > docs.txt
"""


class SignCase(NamedTuple):
    test_id: str
    strategy: str


SIGN_CASES = [
    SignCase("merge", "merge"),
    pytest.param(SignCase("squash", "squash"), marks=pytest.mark.slow, id="squash"),
    pytest.param(SignCase("rebase", "rebase"), marks=pytest.mark.slow, id="rebase"),
]


@pytest.mark.parametrize(
    "case", SIGN_CASES, ids=lambda c: c.test_id if isinstance(c, SignCase) else None
)
def test_ssh_signing_signs_every_commit_limitless_makes(
    tmux_socket: str, repo: Path, isolated_env: Path, case: SignCase
) -> None:
    """Leftovers, a dependency merge and the merge phase's commits all pass `git verify-commit`."""
    ssh_signing(repo, isolated_env)
    base = git(repo, "rev-parse", "main")
    write_plan(repo, SIGNED.format(strategy=case.strategy))
    result = cli(repo, "run", "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    commits = limitless_commits(repo, base)
    subjects = git(repo, "log", "--format=%s", f"{base}..main").splitlines()
    if case.strategy == "merge":
        merges = {
            f"limitless: merge limitless/{run.id}/{dep} into limitless/{run.id}/app"
            for dep in ("lib", "docs")
        }
        assert merges & set(subjects), subjects
        assert f"limitless: merge app ({run.id})" in subjects
    assert any("work left uncommitted" in s for s in subjects) or case.strategy == "squash"
    assert len(commits) >= 3
    for sha in commits:
        check = subprocess.run(
            ["git", "verify-commit", sha], cwd=repo, capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, (
            f"{sha} {git(repo, 'log', '-1', '--format=%s', sha)}: {check.stderr}"
        )
        assert 'Good "git" signature' in check.stderr
    # the dependant's worktree merged its dependency with a signed merge commit too
    app_branch = f"limitless/{run.id}/app"
    for sha in limitless_commits(repo, base, app_branch):
        assert (
            subprocess.run(["git", "verify-commit", sha], cwd=repo, capture_output=True).returncode
            == 0
        )


class SignerCase(NamedTuple):
    test_id: str
    configure: str
    fix: str


SIGNER_CASES = [
    SignerCase("ssh-key-with-passphrase", "ssh", "load the key into ssh-agent (`ssh-add KEY`)"),
    SignerCase("gpg-without-a-key", "gpg", "cache the key's passphrase in gpg-agent first"),
]


@pytest.mark.parametrize("case", SIGNER_CASES, ids=[c.test_id for c in SIGNER_CASES])
def test_signing_without_a_usable_signer_is_refused_up_front(
    tmux_socket: str, repo: Path, isolated_env: Path, case: SignerCase
) -> None:
    """gpgsign on, no signer working without a terminal: run, validate, doctor refuse (exit 3)."""
    if case.configure == "ssh":
        ssh_signing(repo, isolated_env, passphrase="secret words")
    else:
        if shutil.which("gpg") is None:
            pytest.skip("gpg is not installed")
        git(repo, "config", "commit.gpgsign", "true")
        git(repo, "config", "user.signingkey", "NOSUCHKEY0000")
    write_plan(repo, SIGNED.format(strategy="merge"))
    before = git(repo, "for-each-ref")
    result = cli(repo, "run", "--headless", timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "commit.gpgSign is on" in result.stderr
    assert case.fix in result.stderr
    assert "`git config commit.gpgSign false`" in result.stderr
    assert git(repo, "for-each-ref") == before  # no branch
    assert not (repo.parent / f"{repo.name}.worktrees").exists()
    assert not (repo / ".git" / "limitless" / "state.db").exists()
    assert subprocess.run(["tmux", "-L", tmux_socket, "ls"], capture_output=True).returncode != 0

    validate = cli(repo, "validate")
    assert validate.returncode == 3
    assert case.fix in validate.stderr
    doctor = cli(repo, "doctor")
    assert doctor.returncode == 3
    assert "FAIL signing" in doctor.stdout


def test_doctor_and_validate_pass_a_working_ssh_signer(repo: Path, isolated_env: Path) -> None:
    """A key file without a passphrase signs unattended: doctor says so, validate passes."""
    ssh_signing(repo, isolated_env)
    write_plan(repo, SIGNED.format(strategy="merge"))
    doctor = cli(repo, "doctor")
    assert "ok   signing" in doctor.stdout, doctor.stdout
    assert "ssh signing works unattended" in doctor.stdout
    assert cli(repo, "validate").returncode == 0


# ----------------------------------------------------------------------------- the plan key


def test_commit_hooks_key_defaults_to_run_and_refuses_other_values(tmp_path: Path) -> None:
    """`commit_hooks: run | skip`; anything else is a located error naming both."""
    from limitless.errors import PlanError
    from limitless.plan.loader import loads

    body = "tasks:\n  - {id: a, prompt: x, agent: shell}\n"
    assert loads(body, source="p.yaml", base_dir=tmp_path).commit_hooks == "run"
    skip = loads("commit_hooks: skip\n" + body, source="p.yaml", base_dir=tmp_path)
    assert skip.commit_hooks == "skip"
    with pytest.raises(PlanError) as raised:
        loads("commit_hooks: never\n" + body, source="p.yaml", base_dir=tmp_path)
    assert str(raised.value) == (
        "p.yaml:1:15: commit_hooks: unknown value 'never' (accepted: run, skip)"
    )


def test_a_signer_that_stopped_working_refuses_the_merge_phase(
    tmux_socket: str, repo: Path, isolated_env: Path
) -> None:
    """`limitless merge` with a key that now needs a passphrase: nothing merged, the fix named."""
    key = ssh_signing(repo, isolated_env)
    base = git(repo, "rev-parse", "main")
    write_plan(repo, SIGNED.format(strategy="merge"))
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", "now secret", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    merged = cli(repo, "merge", timeout=60)
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "nothing merged: commit.gpgSign is on" in merged.stdout
    assert "load the key into ssh-agent" in merged.stdout
    assert git(repo, "rev-parse", "main") == base
