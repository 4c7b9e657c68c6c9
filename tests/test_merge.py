"""Tests of the merge phase, landing and conflict prediction, on real git repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limitless.errors import GitError, UsageError
from limitless.git import status
from limitless.merge import landing, predict
from limitless.merge import phase as merge
from limitless.plan.model import MergePolicy, Plan, Task
from limitless.programs.profiles import BUILTIN_PROFILES, AgentProfile
from limitless.states import MergeStatus, TaskStatus
from limitless.store import Run, Store, TaskRow
from limitless.views.status import base_moved
from tests.conftest import git
from tests.engine_helpers import wait_for

RUN = "t-1"
MERGED = f"limitless/{RUN}/merged"

# --- building repositories and runs by hand ------------------------------------


def _run_git(repo: Path, *args: str, stdin: str | None = None, index: Path | None = None) -> str:
    env = dict(os.environ)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    result = subprocess.run(
        ["git", *args], cwd=repo, input=stdin, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        msg = f"git {' '.join(args)} failed: {result.stderr.strip()}"
        raise AssertionError(msg)
    return result.stdout.strip()


def make_commit(repo: Path, parent: str, files: Mapping[str, str | None], message: str) -> str:
    """A commit on top of `parent` that writes (or, for None, deletes) `files`."""
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        _run_git(repo, "read-tree", parent, index=index)
        for path, text in files.items():
            if text is None:
                _run_git(repo, "update-index", "--force-remove", path, index=index)
                continue
            blob = _run_git(repo, "hash-object", "-w", "--stdin", stdin=text)
            _run_git(
                repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", index=index
            )
        tree = _run_git(repo, "write-tree", index=index)
    return _run_git(repo, "commit-tree", tree, "-p", parent, "-m", message)


def merge_commit(repo: Path, first: str, second: str, message: str) -> str:
    """A merge commit of two commits that merge cleanly (as a dependency merge is)."""
    tree = _run_git(repo, "merge-tree", "--write-tree", first, second).splitlines()[0]
    return _run_git(repo, "commit-tree", tree, "-p", first, "-p", second, "-m", message)


@dataclass(frozen=True)
class Spec:
    """One task of a hand-made run: what its commit writes, and how it ended."""

    id: str
    files: Mapping[str, str | None] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    status: TaskStatus = TaskStatus.DONE
    ended_at: float | None = None
    epic: str | None = None
    prompt: str = ""


@dataclass
class Env:
    """A hand-made run: repository, store and the tips its task branches got."""

    repo: Path
    store: Store
    base_sha: str
    worktree_root: Path
    tips: dict[str, str]

    def branch(self, key: str) -> str:
        return f"limitless/{RUN}/{key}"

    def sha(self, ref: str) -> str:
        return git(self.repo, "rev-parse", ref)

    @property
    def merge_worktree(self) -> Path:
        return self.worktree_root / RUN / "_merge"

    def row(self, task_id: str) -> TaskRow:
        return self.store.get_task(RUN, task_id)

    def event_kinds(self) -> list[str]:
        return [event.kind for event in self.store.events(RUN)]

    def phase(self, **kwargs: object) -> merge.MergeOutcome:
        lines: list[str] = []
        return merge.run_merge_phase(self.store, RUN, out=lines.append, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def build(tmp_path: Path, repo: Path) -> Iterator[Callable[..., Env]]:
    """Factory: a run over `repo` whose task branches are made with git plumbing."""
    stores: list[Store] = []

    def factory(
        specs: Sequence[Spec],
        policy: MergePolicy | None = None,
        agents: Mapping[str, AgentProfile] | None = None,
        target: Path | None = None,
    ) -> Env:
        root = target or repo
        base_sha = git(root, "rev-parse", "main")
        tips: dict[str, str] = {}
        rows: list[TaskRow] = []
        for position, spec in enumerate(specs):
            key = spec.epic or spec.id
            start = tips.get(key, base_sha)
            if key not in tips:
                for dep in spec.depends_on:
                    dep_spec = next(s for s in specs if s.id == dep)
                    dep_tip = tips[dep_spec.epic or dep_spec.id]
                    start = merge_commit(root, start, dep_tip, f"merge {dep}")
            head = make_commit(root, start, spec.files, f"{spec.id}: work") if spec.files else start
            tips[key] = head
            git(root, "update-ref", f"refs/heads/limitless/{RUN}/{key}", head)
            rows.append(
                TaskRow(
                    run_id=RUN,
                    id=spec.id,
                    position=position,
                    agent="shell",
                    branch=f"limitless/{RUN}/{key}",
                    worktree=str(tmp_path / "wt" / RUN / key),
                    status=spec.status,
                    ended_at=float(position) if spec.ended_at is None else spec.ended_at,
                    start_sha=start,
                    head_sha=head,
                )
            )
        plan = Plan(
            name="t",
            source=None,
            base="main",
            merge=policy or MergePolicy(),
            agents={**BUILTIN_PROFILES, **(agents or {})},
            tasks=tuple(
                Task(
                    id=spec.id,
                    prompt=spec.prompt or f"Do {spec.id}",
                    agent="shell",
                    depends_on=spec.depends_on,
                    epic=spec.epic,
                )
                for spec in specs
            ),
        )
        store = Store.open(tmp_path / f"state-{len(stores)}")
        stores.append(store)
        store.create_run(
            Run(
                id=RUN,
                plan_name="t",
                plan_path=None,
                plan_json=plan.to_json(),
                repo_root=str(root),
                base="main",
                base_sha=base_sha,
                worktree_root=str(tmp_path / "wt"),
                merge_strategy=plan.merge.strategy,
                created_at=time.time(),
            )
        )
        store.add_tasks(RUN, rows)
        return Env(root, store, base_sha, tmp_path / "wt", tips)

    yield factory
    for store in stores:
        store.close()


def subjects(repo: Path, ref: str, *extra: str) -> list[str]:
    out = git(repo, "log", "--format=%s", *extra, ref)
    return out.splitlines()


def tree_files(repo: Path, ref: str) -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()
    return {name: git(repo, "show", f"{ref}:{name}") for name in names}


def conflicting_pair() -> list[Spec]:
    """a and b rewrite the same line of README.md; c adds a file of its own."""
    return [
        Spec("a", {"README.md": "from a\n"}),
        Spec("b", {"README.md": "from b\n"}),
        Spec("c", {"c.txt": "c\n"}),
    ]


# --- strategies ----------------------------------------------------------------


class StrategyCase(NamedTuple):
    test_id: str
    strategy: str
    first_parent_subjects: list[str]
    merges: int


STRATEGY_CASES = [
    StrategyCase(
        "merge",
        "merge",
        [
            f"limitless: merge c ({RUN})",
            f"limitless: merge a ({RUN})",
            f"limitless: merge b ({RUN})",
            "initial commit",
        ],
        4,  # three merge commits, and the dependency merge on c's branch
    ),
    StrategyCase("squash", "squash", ["c: Do c", "a: Do a", "b: Do b", "initial commit"], 0),
    StrategyCase("rebase", "rebase", ["c: work", "a: work", "b: work", "initial commit"], 0),
]


@pytest.mark.parametrize("case", STRATEGY_CASES, ids=[c.test_id for c in STRATEGY_CASES])
def test_strategy_gives_expected_history_and_tree(
    build: Callable[..., Env], case: StrategyCase
) -> None:
    """Each strategy lands every task in dependency-then-completion order with its history."""
    env = build(
        [
            Spec("a", {"a.txt": "a\n"}, ended_at=2.0),
            Spec("b", {"b.txt": "b\n"}, ended_at=1.0),
            Spec("c", {"c.txt": "c\n", "a.txt": "a, then c\n"}, depends_on=("a",), ended_at=0.5),
        ],
        MergePolicy(strategy=case.strategy),  # type: ignore[arg-type]
    )
    before = {key: env.sha(env.branch(key)) for key in "abc"}
    outcome = env.phase()
    assert outcome.ok, outcome.message
    assert outcome.merged == ["b", "a", "c"]
    assert outcome.landed
    assert env.sha("main") == env.sha(MERGED) == outcome.merged_sha
    assert subjects(env.repo, "main", "--first-parent") == case.first_parent_subjects
    assert len(git(env.repo, "rev-list", "--merges", "main").split()) == case.merges
    assert tree_files(env.repo, "main") == {
        "README.md": "# test repo",
        "a.txt": "a, then c",
        "b.txt": "b",
        "c.txt": "c",
    }
    assert {key: env.sha(env.branch(key)) for key in "abc"} == before
    assert (env.repo / "c.txt").read_text() == "c\n"  # the user's checkout was fast-forwarded
    assert [env.row(t).merge_order for t in "bac"] == [1, 2, 3]
    assert all(env.row(t).merge_status is MergeStatus.MERGED for t in "abc")
    kinds = env.event_kinds()
    assert kinds[0] == "merge_started"
    assert kinds.count("task_merged") == 3
    assert kinds[-2:] == ["landed", "merge_done"]


def test_rebase_keeps_task_branch_and_replays_each_commit(
    build: Callable[..., Env], repo: Path
) -> None:
    """Rebase replays every non-merge commit of a branch and never moves the branch."""
    env = build(
        [Spec("a", {"x.txt": "x\n"}), Spec("b", {"y.txt": "y\n"})], MergePolicy(strategy="rebase")
    )
    second = make_commit(repo, env.tips["b"], {"z.txt": "z\n"}, "b: more")
    git(repo, "update-ref", f"refs/heads/{env.branch('b')}", second)
    outcome = env.phase()
    assert outcome.ok, outcome.message
    assert subjects(repo, "main") == ["b: more", "b: work", "a: work", "initial commit"]
    assert env.sha(env.branch("b")) == second
    assert git(repo, "rev-list", "--merges", "main") == ""


def test_merging_again_merges_nothing_twice(build: Callable[..., Env]) -> None:
    """A second merge phase finds every task already merged and adds no commit."""
    env = build(
        [Spec("a", {"a.txt": "a\n"}), Spec("b", {"b.txt": "b\n"})], MergePolicy(strategy="squash")
    )
    first = env.phase()
    tip = env.sha("main")
    second = env.phase()
    assert first.merged == ["a", "b"]
    assert second.merged == []
    assert second.already_merged == ["a", "b"]
    assert second.ok and second.landed
    assert env.sha("main") == tip


# --- dependencies, epics, not-done tasks -------------------------------------------


def test_no_task_done_means_no_merge_worktree_setup_or_gate(
    build: Callable[..., Env], tmp_path: Path
) -> None:
    """With nothing done there is nothing to merge: no merge worktree, no gate run,
    base untouched, each task skipped with why."""
    gate_ran = tmp_path / "gate-ran"
    env = build(
        [
            Spec("a", {"a.txt": "a\n"}, status=TaskStatus.FAILED),
            Spec("b", {"b.txt": "b\n"}, status=TaskStatus.KILLED),
        ],
        MergePolicy(gate=f"touch {gate_ran}"),
    )
    outcome = env.phase()
    assert outcome.message == "nothing to merge: no task is done; main left as it was"
    assert outcome.skipped == ["a", "b"] and outcome.merged == []
    assert env.row("b").merge_reason == "task killed, not done"
    assert not env.merge_worktree.exists() and not gate_ran.exists()
    assert env.sha("main") == env.base_sha


def test_tasks_not_done_and_their_dependants_are_skipped(build: Callable[..., Env]) -> None:
    """A failed task is not merged, and neither is a task that depends on it."""
    env = build(
        [
            Spec("a", {"a.txt": "a\n"}, status=TaskStatus.FAILED),
            Spec("b", {"b.txt": "b\n"}, depends_on=("a",), status=TaskStatus.BLOCKED),
            Spec("c", {"c.txt": "c\n"}),
        ]
    )
    outcome = env.phase()
    assert outcome.merged == ["c"]
    assert outcome.skipped == ["a", "b"]
    assert env.row("a").merge_reason == "task failed, not done"
    assert env.row("b").merge_reason == "task blocked, not done"
    assert outcome.ok and outcome.landed
    assert "a.txt" not in tree_files(env.repo, "main")


def test_epic_members_merge_from_their_own_commits(build: Callable[..., Env]) -> None:
    """Epic members are merged one by one; a failed member's partial work stays out."""
    env = build(
        [
            Spec("m1", {"one.txt": "1\n"}, epic="e"),
            Spec("m2", {"two.txt": "2\n"}, epic="e", depends_on=("m1",)),
            Spec(
                "m3", {"three.txt": "3\n"}, epic="e", depends_on=("m2",), status=TaskStatus.FAILED
            ),
        ]
    )
    outcome = env.phase()
    assert outcome.merged == ["m1", "m2"]
    assert outcome.skipped == ["m3"]
    files = tree_files(env.repo, "main")
    assert "two.txt" in files
    assert "three.txt" not in files
    assert subjects(env.repo, "main", "--first-parent")[:2] == [
        f"limitless: merge m2 ({RUN})",
        f"limitless: merge m1 ({RUN})",
    ]


def test_busy_run_is_refused(build: Callable[..., Env]) -> None:
    """The merge phase refuses to start while a task is still running."""
    env = build([Spec("a", {"a.txt": "a\n"}, status=TaskStatus.RUNNING)])
    with pytest.raises(UsageError, match=r"unfinished tasks \(a\)"):
        env.phase()


def test_second_merge_phase_at_once_is_refused(build: Callable[..., Env]) -> None:
    """While one merge phase of a run holds its lock, another is refused and changes nothing."""
    env = build([Spec("a", {"a.txt": "a\n"})])
    lock = env.store.run_dir(RUN) / "merge.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            "python3",
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        status_before = env.store.get_run(RUN).status
        with pytest.raises(UsageError, match=f"a merge phase of run {RUN} is already under way"):
            env.phase()
        assert env.store.get_run(RUN).status == status_before
        assert env.row("a").merge_status is MergeStatus.UNMERGED
    finally:
        holder.communicate("", timeout=30)
    outcome = env.phase()
    assert outcome.ok and outcome.merged == ["a"], outcome.message


# --- conflicts -----------------------------------------------------------------


def test_conflict_under_stop_keeps_everything(build: Callable[..., Env], repo: Path) -> None:
    """A conflict under `stop` leaves base, the checkout and every branch as they were."""
    env = build(conflicting_pair())
    branches = {key: env.sha(env.branch(key)) for key in "abc"}
    outcome = env.phase()
    assert not outcome.ok
    assert not outcome.landed
    assert outcome.merged == ["a"]
    assert outcome.conflicts == ["b"]
    assert env.sha("main") == env.base_sha
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "README.md").read_text() == "# test repo\n"
    assert {key: env.sha(env.branch(key)) for key in "abc"} == branches
    row = env.row("b")
    assert row.merge_status is MergeStatus.CONFLICT
    assert row.conflict_files == ["README.md"]
    assert env.row("c").merge_status is MergeStatus.UNMERGED
    assert env.row("c").merge_reason == "merge stopped at b"
    assert status.operation_in_progress(env.merge_worktree) is None
    assert git(env.merge_worktree, "status", "--porcelain") == ""
    assert (
        f"To continue: cd {env.merge_worktree} && git merge {env.branch('b')}, fix the "
        f"conflicts, git add them and git commit; then run `limitless merge {RUN}`."
    ) in outcome.message
    assert "merge_conflict" in env.event_kinds()


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
def test_manual_resolution_then_merge_again(build: Callable[..., Env], strategy: str) -> None:
    """After resolving the conflict by hand, merging again finishes and merges nothing twice."""
    env = build(conflicting_pair(), MergePolicy(strategy=strategy))  # type: ignore[arg-type]
    first = env.phase()
    assert first.conflicts == ["b"]
    wt = env.merge_worktree
    result = subprocess.run(
        ["git", "merge", env.branch("b")], cwd=wt, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    (wt / "README.md").write_text("from a and b\n")
    git(wt, "add", "README.md")
    git(wt, "commit", "-q", "--no-edit")
    second = env.phase()
    assert second.ok, second.message
    assert second.merged == ["c"]
    assert second.already_merged == ["a", "b"]
    assert second.landed
    assert tree_files(env.repo, "main")["README.md"] == "from a and b"
    log = subjects(env.repo, "main")
    if strategy == "merge":
        assert log.count(f"limitless: merge a ({RUN})") == 1
    assert env.row("b").merge_status is MergeStatus.MERGED


def test_conflict_under_skip_goes_on(build: Callable[..., Env]) -> None:
    """Under `skip` the conflicting task and its dependants are left out; the rest lands."""
    specs = [*conflicting_pair(), Spec("d", {"d.txt": "d\n"}, depends_on=("b",))]
    env = build(specs, MergePolicy(on_conflict="skip"))
    outcome = env.phase()
    assert outcome.merged == ["a", "c"]
    assert outcome.conflicts == ["b"]
    assert outcome.skipped == ["d"]
    assert env.row("d").merge_reason == "dependency b not merged (conflict)"
    assert outcome.landed
    assert not outcome.ok
    assert set(tree_files(env.repo, "main")) == {"README.md", "c.txt"}


# --- the gate ------------------------------------------------------------------


def test_failing_gate_undoes_only_its_merge(build: Callable[..., Env]) -> None:
    """A failing gate resets to the previous result, keeps its log, and the phase goes on."""
    gate = 'test ! -e bad.txt || { echo "bad.txt is here"; exit 3; }'
    env = build(
        [Spec("a", {"a.txt": "a\n"}), Spec("b", {"bad.txt": "no\n"}), Spec("c", {"c.txt": "c\n"})],
        MergePolicy(gate=gate),
    )
    outcome = env.phase()
    assert outcome.merged == ["a", "c"]
    assert outcome.gate_failed == ["b"]
    assert not outcome.ok
    assert set(tree_files(env.repo, "main")) == {"README.md", "a.txt", "c.txt"}
    row = env.row("b")
    assert row.merge_status is MergeStatus.GATE_FAILED
    assert row.merge_reason.endswith("bad.txt is here")
    log_file = env.store.run_dir(RUN) / "gate" / "b.log"
    assert "bad.txt is here" in log_file.read_text()
    assert "gate_failed" in env.event_kinds()


# --- the resolver agent --------------------------------------------------------


def slot_runner(calls: list[tuple[list[str], Path, str]]) -> merge.RunInSlot:
    """A stand-in for a tmux slot: runs the argv in the foreground (no tmux needed here)."""

    def run(argv: list[str], cwd: Path, title: str) -> int:
        calls.append((argv, cwd, title))
        return subprocess.run(argv, cwd=cwd, check=False).returncode

    return run


class ResolverCase(NamedTuple):
    test_id: str
    strategy: str
    script: str
    accepted: bool
    reason: str


RESOLVE = 'printf "from a and b\\n" > README.md\n'
RESOLVER_CASES = [
    ResolverCase(
        "merge-commits-itself",
        "merge",
        RESOLVE + "git add README.md\ngit commit -q --no-edit\n",
        True,
        "",
    ),
    ResolverCase("merge-left-uncommitted", "merge", RESOLVE, True, ""),
    ResolverCase("squash-left-staged", "squash", RESOLVE + "git add README.md\n", True, ""),
    ResolverCase(
        "rebase-continued-by-limitless", "rebase", RESOLVE + "git add README.md\n", True, ""
    ),
    ResolverCase(
        "markers-left", "merge", "true\n", False, "the resolver left conflict markers in README.md"
    ),
    ResolverCase(
        "resolver-fails", "merge", RESOLVE + "exit 4\n", False, "the resolver exited with 4"
    ),
    ResolverCase(
        "resolver-aborts",
        "merge",
        "git merge --abort\n",
        False,
        "the result does not build on the merged branch",
    ),
]


@pytest.mark.parametrize("case", RESOLVER_CASES, ids=[c.test_id for c in RESOLVER_CASES])
def test_resolver_agent(build: Callable[..., Env], tmp_path: Path, case: ResolverCase) -> None:
    """A resolver's result is accepted only when it is clean and committed; else the phase stops."""
    script = tmp_path / "resolve.sh"
    script.write_text("set -e\n" + case.script)
    profile = AgentProfile(name="fixer", command=("bash", str(script), "{prompt_file}"))
    env = build(
        conflicting_pair(),
        MergePolicy(strategy=case.strategy, on_conflict="agent", resolver="fixer", gate="true"),  # type: ignore[arg-type]
        agents={"fixer": profile},
    )
    calls: list[tuple[list[str], Path, str]] = []
    outcome = env.phase(run_in_slot=slot_runner(calls))
    assert len(calls) == 1
    argv, cwd, title = calls[0]
    assert cwd == env.merge_worktree
    assert title == "resolve b"
    prompt = Path(argv[2]).read_text()
    assert "- README.md" in prompt
    assert "Do b" in prompt and "Do a" in prompt
    if case.accepted:
        assert outcome.ok, outcome.message
        assert outcome.merged == ["a", "b", "c"]
        assert tree_files(env.repo, "main")["README.md"] == "from a and b"
        assert env.row("b").merge_reason == "conflict in README.md resolved by fixer"
    else:
        assert not outcome.ok
        assert outcome.conflicts == ["b"]
        assert env.sha("main") == env.base_sha
        assert case.reason in env.row("b").merge_reason
        assert f"git merge {env.branch('b')}" in outcome.message
        assert status.operation_in_progress(env.merge_worktree) is None
        assert git(env.merge_worktree, "status", "--porcelain", "-uno") == ""
        assert env.sha(MERGED) == env.sha(f"{MERGED}")  # branch still there
        assert git(env.merge_worktree, "symbolic-ref", "HEAD") == f"refs/heads/{MERGED}"


def test_a_resolver_past_its_time_limit_is_stopped_and_the_merge_stops(
    build: Callable[..., Env], tmp_path: Path
) -> None:
    """`merge.resolver_timeout`: a resolver that never ends is stopped (here in the
    terminal of `limitless merge`, the run's session being gone) and the phase stops
    at that task, saying why."""
    started = tmp_path / "started"
    script = tmp_path / "resolve.sh"
    script.write_text(f"touch {started}\nexec sleep 600\n")
    profile = AgentProfile(name="fixer", command=("bash", str(script)))
    env = build(
        conflicting_pair(),
        MergePolicy(on_conflict="agent", resolver="fixer", resolver_timeout_s=1.0),
        agents={"fixer": profile},
    )
    outcome = env.phase(foreground=True)
    assert started.exists()
    assert not outcome.ok
    assert outcome.conflicts == ["b"]
    reason = env.row("b").merge_reason
    assert "the resolver was stopped after 1s (merge.resolver_timeout)" in reason
    assert env.sha("main") == env.base_sha


def test_resolver_without_a_slot_stops(build: Callable[..., Env]) -> None:
    """With no slot to run a resolver in, `agent` stops like `stop` and says why."""
    env = build(conflicting_pair(), MergePolicy(on_conflict="agent"))
    outcome = env.phase()
    assert not outcome.ok
    assert outcome.conflicts == ["b"]
    assert "no slot to run a resolver in" in env.row("b").merge_reason
    assert f"the tmux session of run {RUN} is gone" in outcome.message


def test_resolver_in_the_foreground_without_a_session(
    build: Callable[..., Env], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`limitless merge` in a terminal runs the resolver there when the run's session is gone."""
    script = tmp_path / "resolve.sh"
    script.write_text(
        'set -e\ntest "$LIMITLESS_MERGE_WORKTREE" = "$PWD"\n'
        'printf "from a and b" > README.md\ngit add README.md\ngit commit -q --no-edit\n'
    )
    profile = AgentProfile(name="fixer", command=("bash", str(script), "{prompt_file}"))
    env = build(
        conflicting_pair(),
        MergePolicy(on_conflict="agent", resolver="fixer"),
        agents={"fixer": profile},
    )
    outcome = env.phase(foreground=True)
    assert outcome.ok and outcome.landed, outcome.message
    assert tree_files(env.repo, "main")["README.md"] == "from a and b"
    assert env.row("b").merge_reason == "conflict in README.md resolved by fixer"
    assert "--- resolve b: bash in" in capfd.readouterr().out


def test_resolved_merge_failing_the_gate_is_refused(
    build: Callable[..., Env], tmp_path: Path
) -> None:
    """A resolution that fails the gate is undone and the phase stops."""
    script = tmp_path / "resolve.sh"
    script.write_text(RESOLVE)
    profile = AgentProfile(name="fixer", command=("bash", str(script)))
    env = build(
        conflicting_pair(),
        MergePolicy(on_conflict="agent", resolver="fixer", gate="! grep -q 'a and b' README.md"),
        agents={"fixer": profile},
    )
    outcome = env.phase(run_in_slot=slot_runner([]))
    assert outcome.conflicts == ["b"]
    assert "failed the gate" in env.row("b").merge_reason
    assert tree_files(env.repo, MERGED)["README.md"] == "from a"


# --- landing -------------------------------------------------------------------


def test_dirty_checkout_is_never_touched(build: Callable[..., Env], repo: Path) -> None:
    """With uncommitted changes where base is checked out, the result stays on the merged branch."""
    env = build([Spec("a", {"a.txt": "a\n"})])
    (repo / "README.md").write_text("my own work\n")
    outcome = env.phase()
    assert not outcome.landed
    assert not outcome.ok
    assert env.sha("main") == env.base_sha
    assert (repo / "README.md").read_text() == "my own work\n"
    assert not (repo / "a.txt").exists()
    assert tree_files(repo, MERGED)["a.txt"] == "a"
    assert "it was not touched" in outcome.message
    assert f"`git merge --ff-only {MERGED}` in {repo} once it is clean" in outcome.message
    assert env.store.get_run(RUN).landed is False


def test_untracked_file_does_not_block_landing(build: Callable[..., Env], repo: Path) -> None:
    """An untracked file that nothing collides with does not make the checkout dirty."""
    env = build([Spec("a", {"a.txt": "a\n"})])
    (repo / "notes.txt").write_text("mine\n")
    outcome = env.phase()
    assert outcome.landed, outcome.message
    assert (repo / "notes.txt").read_text() == "mine\n"


def test_colliding_untracked_file_is_refused_by_git(build: Callable[..., Env], repo: Path) -> None:
    """An untracked file in the way makes git refuse the fast-forward; nothing changes."""
    env = build([Spec("a", {"a.txt": "a\n"})])
    (repo / "a.txt").write_text("mine\n")
    outcome = env.phase()
    assert not outcome.landed
    assert env.sha("main") == env.base_sha
    assert (repo / "a.txt").read_text() == "mine\n"
    assert "git refused to move main" in outcome.message


def test_base_checked_out_nowhere_lands_by_compare_and_swap(
    build: Callable[..., Env], repo: Path
) -> None:
    """When no checkout has base, it moves by update-ref and the user's checkout stays put."""
    env = build([Spec("a", {"a.txt": "a\n"})])
    git(repo, "checkout", "-q", "-b", "elsewhere")
    outcome = env.phase()
    assert outcome.landed, outcome.message
    assert env.sha("main") == env.sha(MERGED)
    assert git(repo, "branch", "--show-current") == "elsewhere"
    assert not (repo / "a.txt").exists()
    landed = [e for e in env.store.events(RUN) if e.kind == "landed"]
    assert landed[0].data["how"] == "update-ref"


def test_landings_on_one_repository_take_turns(repo: Path, tmp_path: Path) -> None:
    """A landing waits while another holds the repository's landing lock, then sees base moved.

    Another run's `git merge --ff-only` in the same checkout holds index.lock
    while it works; landing beside it was refused as a dirty checkout.
    """
    base = git(repo, "rev-parse", "main")
    first = make_commit(repo, base, {"first.txt": "1\n"}, "first")
    second = make_commit(repo, base, {"second.txt": "2\n"}, "second")
    lock_dir = tmp_path / "locks"
    results: list[landing.Landing] = []
    with landing.landing_lock(lock_dir):
        (repo / ".git" / "index.lock").write_text("")  # the other landing, half done
        waiting = threading.Thread(
            target=lambda: results.append(landing.land(repo, "main", second, lock_dir=lock_dir))
        )
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive(), f"landed beside another landing: {results}"
        (repo / ".git" / "index.lock").unlink()
        git(repo, "merge", "-q", "--ff-only", first)
    waiting.join(timeout=30)
    assert [r.kind for r in results] == [landing.LandingKind.MOVED]
    assert git(repo, "rev-parse", "main") == first


def test_manual_landing_leaves_base(build: Callable[..., Env], repo: Path) -> None:
    """With `land: manual` the result stays on the merged branch; the message says how to land."""
    env = build([Spec("a", {"a.txt": "a\n"})], MergePolicy(land="manual"))
    outcome = env.phase()
    assert outcome.ok
    assert not outcome.landed
    assert env.sha("main") == env.base_sha
    assert f"Land it with `git merge --ff-only {MERGED}` in {repo}." in outcome.message
    assert env.store.get_run(RUN).merged_sha == env.sha(MERGED)


def test_base_moved_mid_run_is_merged_on_the_new_tip(
    build: Callable[..., Env], repo: Path, tmp_path: Path
) -> None:
    """If base moved during the run, the merge starts on its new tip: one gate run a task."""
    gate_log = tmp_path / "gates"
    env = build(
        [Spec("a", {"a.txt": "a\n"}), Spec("b", {"b.txt": "b\n"})],
        MergePolicy(gate=f'echo "$LIMITLESS_TASK" >> {gate_log}'),
    )
    (repo / "late.txt").write_text("late\n")
    git(repo, "add", "late.txt")
    git(repo, "commit", "-q", "-m", "late work on main")
    moved = env.sha("main")
    assert base_moved(env.store.get_run(RUN)) == moved
    outcome = env.phase()
    assert outcome.ok and outcome.landed, outcome.message
    assert outcome.merged == ["a", "b"]
    assert gate_log.read_text().split() == ["a", "b"]
    assert git(repo, "merge-base", "--is-ancestor", moved, "main") == ""
    assert set(tree_files(repo, "main")) == {"README.md", "late.txt", "a.txt", "b.txt"}
    assert env.store.get_run(RUN).base_sha == moved
    assert "merge_redone" in env.event_kinds()
    assert base_moved(env.store.get_run(RUN)) is None


def test_base_moved_during_the_merge_phase_is_redone(
    build: Callable[..., Env], repo: Path, tmp_path: Path
) -> None:
    """Base moving while the merges run is found at landing: the merge is redone on the new
    tip, the first result kept under a ref, and base only moves forward."""
    flag = tmp_path / "moved"
    gate = (
        f"if [ ! -e {flag} ]; then touch {flag}; cd {repo} && echo late > late.txt && "
        'git add late.txt && git commit -qm "late work on main"; fi'
    )
    env = build([Spec("a", {"a.txt": "a\n"}), Spec("b", {"b.txt": "b\n"})], MergePolicy(gate=gate))
    outcome = env.phase()
    assert outcome.ok and outcome.landed, outcome.message
    moved = env.store.get_run(RUN).base_sha
    assert moved != env.base_sha
    assert git(repo, "log", "-1", "--format=%s", moved) == "late work on main"
    assert git(repo, "merge-base", "--is-ancestor", moved, "main") == ""
    assert set(tree_files(repo, "main")) == {"README.md", "late.txt", "a.txt", "b.txt"}
    kept = env.sha(f"refs/limitless/{RUN}/merged/redo-1")
    assert git(repo, "merge-base", "--is-ancestor", env.base_sha, kept) == ""
    assert f"limitless: merge b ({RUN})" in subjects(repo, kept)
    first_parents = subjects(repo, "main", "--first-parent")
    assert first_parents.count(f"limitless: merge a ({RUN})") == 1


def test_base_moved_into_a_conflict_stops_without_landing(
    build: Callable[..., Env], repo: Path
) -> None:
    """A base that moved in a conflicting way is not landed on; it is never moved backwards."""
    env = build([Spec("a", {"README.md": "from a\n"})])
    (repo / "README.md").write_text("from main\n")
    git(repo, "commit", "-q", "-am", "main edits the readme")
    moved = env.sha("main")
    outcome = env.phase()
    assert outcome.conflicts == ["a"]
    assert not outcome.landed
    assert env.sha("main") == moved


# --- crash recovery --------------------------------------------------------------


def test_interrupted_merge_is_undone_and_redone(build: Callable[..., Env]) -> None:
    """A merge a crash left half done (row `merging`, merge in progress) is redone cleanly."""
    env = build(
        [Spec("a", {"a.txt": "a\n"}), Spec("b", {"b.txt": "b\n"})], MergePolicy(land="manual")
    )
    env.phase()
    wt = env.merge_worktree
    git(wt, "reset", "-q", "--hard", env.base_sha)
    git(wt, "merge", "-q", "--no-ff", "--no-commit", env.branch("a"))
    env.store.update_task(
        RUN, "a", merge_status=MergeStatus.MERGING, merge_reason=f"merging onto {env.base_sha}"
    )
    env.store.update_task(RUN, "b", merge_status=MergeStatus.UNMERGED, merge_order=None)
    outcome = env.phase()
    assert outcome.ok, outcome.message
    assert outcome.merged == ["a", "b"]
    assert subjects(env.repo, MERGED, "--first-parent")[:2] == [
        f"limitless: merge b ({RUN})",
        f"limitless: merge a ({RUN})",
    ]


class _Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, no handler catches it."""


@pytest.mark.parametrize("moved_first", [False, True], ids=["before-reset", "after-reset"])
def test_crash_while_redoing_on_a_moved_base_loses_and_duplicates_nothing(
    build: Callable[..., Env], repo: Path, monkeypatch: pytest.MonkeyPatch, moved_first: bool
) -> None:
    """Killed between recording the new base and moving the merged branch: the next call lands
    every task exactly once on the new tip."""
    env = build([Spec("a", {"a.txt": "a\n"}), Spec("b", {"b.txt": "b\n"})])
    (repo / "late.txt").write_text("late\n")
    git(repo, "add", "late.txt")
    git(repo, "commit", "-q", "-m", "late work on main")
    moved = env.sha("main")
    real_undo = merge.undo

    def dying_undo(worktree: Path, branch: str, sha: str) -> None:
        if sha == moved and moved_first:
            real_undo(worktree, branch, sha)
        if sha == moved:
            raise _Killed
        real_undo(worktree, branch, sha)

    monkeypatch.setattr(merge, "undo", dying_undo)
    with pytest.raises(_Killed):
        env.phase()
    assert env.sha("main") == moved
    monkeypatch.setattr(merge, "undo", real_undo)
    outcome = env.phase()
    assert outcome.ok and outcome.landed, outcome.message
    assert git(repo, "merge-base", "--is-ancestor", moved, "main") == ""
    assert set(tree_files(repo, "main")) == {"README.md", "late.txt", "a.txt", "b.txt"}
    first_parents = subjects(repo, "main", "--first-parent")
    assert first_parents.count(f"limitless: merge a ({RUN})") == 1
    assert first_parents.count(f"limitless: merge b ({RUN})") == 1
    assert {env.row(t).merge_status for t in "ab"} == {MergeStatus.MERGED}


def test_merge_dropped_from_the_merged_branch_by_hand_is_merged_again(
    build: Callable[..., Env],
) -> None:
    """A task recorded as merged whose merge someone reset away is merged again, not lost."""
    env = build(
        [Spec("a", {"a.txt": "a\n"}), Spec("b", {"b.txt": "b\n"})], MergePolicy(land="manual")
    )
    assert env.phase().merged == ["a", "b"]
    git(env.merge_worktree, "reset", "-q", "--hard", "HEAD~1")  # drops b's merge
    outcome = env.phase()
    assert outcome.ok, outcome.message
    assert outcome.already_merged == ["a"]
    assert outcome.merged == ["b"]
    assert set(tree_files(env.repo, MERGED)) == {"README.md", "a.txt", "b.txt"}


def test_merge_worktree_with_changes_is_refused(build: Callable[..., Env]) -> None:
    """Changes someone left in the merge worktree are not thrown away: the phase refuses."""
    env = build([Spec("a", {"a.txt": "a\n"})], MergePolicy(land="manual"))
    env.phase()
    (env.merge_worktree / "a.txt").write_text("edited\n")
    outcome = env.phase()
    assert not outcome.ok
    assert "has uncommitted changes (a.txt)" in outcome.message
    assert (env.merge_worktree / "a.txt").read_text() == "edited\n"


# --- conflict prediction -------------------------------------------------------


def test_merge_tree_conflicts_names_files_and_refuses_unknown_refs(
    build: Callable[..., Env], repo: Path
) -> None:
    """merge-tree names the conflicted files; clean is empty; an unknown ref is an error."""
    env = build([*conflicting_pair()])
    assert predict.merge_tree_conflicts(repo, env.branch("a"), env.branch("b")) == ("README.md",)
    assert predict.merge_tree_conflicts(repo, env.branch("a"), env.branch("c")) == ()
    with pytest.raises(GitError, match="merge-tree"):
        predict.merge_tree_conflicts(repo, env.branch("a"), "no-such-branch")


def test_predict_conflicts_between_branches_and_base(build: Callable[..., Env], repo: Path) -> None:
    """Pairs touching the same lines are predicted, disjoint ones not, unknown refs ignored."""
    env = build([*conflicting_pair(), Spec("d", {"c.txt": "d's c\n"}), Spec("e")])
    branches = {key: env.branch(key) for key in "abcde"} | {"x": "refs/heads/nope"}
    found = predict.predict_conflicts(repo, "main", branches)
    assert found == [
        predict.PredictedConflict("a", "b", ("README.md",)),
        predict.PredictedConflict("c", "d", ("c.txt",)),
    ]
    (repo / "README.md").write_text("from main\n")
    git(repo, "commit", "-q", "-am", "main moves")
    found = predict.predict_conflicts(repo, "main", branches)
    assert predict.PredictedConflict("a", "", ("README.md",)) in found
    assert predict.PredictedConflict("b", "", ("README.md",)) in found
    assert not any(p.other == "" and p.task_id in "cd" for p in found)


def test_update_predictions_stores_them(build: Callable[..., Env], repo: Path) -> None:
    """Predictions are stored for the run and rewritten only when they change."""
    env = build(conflicting_pair(), MergePolicy())
    assert predict.update_predictions(env.store, RUN) == 1
    stored = env.store.predictions(RUN)
    assert [(p.task_id, p.other, p.files) for p in stored] == [("a", "b", ("README.md",))]
    assert predict.update_predictions(env.store, RUN) == 1
    assert env.store.predictions(RUN)[0].updated_at == stored[0].updated_at
    fixed = make_commit(repo, env.tips["b"], {"README.md": "from a\n"}, "b agrees")
    git(repo, "update-ref", f"refs/heads/{env.branch('b')}", fixed)
    assert predict.update_predictions(env.store, RUN) == 0
    assert env.store.predictions(RUN) == []


# --- the property: nothing lost, base only forward ------------------------------

FILES = ["f0.txt", "f1.txt", "dir/f2.txt", "dir/f3.txt"]

task_edits = st.dictionaries(
    st.sampled_from(FILES),
    st.sampled_from(["one\n", "two\n", "three\n", None]),
    min_size=1,
    max_size=3,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=st.lists(task_edits, min_size=1, max_size=4),
    deps=st.lists(st.booleans(), min_size=4, max_size=4),
    strategy=st.sampled_from(["merge", "squash", "rebase"]),
    on_conflict=st.sampled_from(["stop", "skip"]),
    dirty=st.booleans(),
)
def test_no_commit_lost_and_base_only_forward(
    make_repo: Callable[..., Path],
    tmp_path: Path,
    edits: list[dict[str, str | None]],
    deps: list[bool],
    strategy: str,
    on_conflict: str,
    dirty: bool,
) -> None:
    """After any merge phase every task commit is reachable from a ref and base moved forward."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        root = Path(scratch)
        repo = root / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for name in FILES:
            (repo / name).parent.mkdir(exist_ok=True)
            (repo / name).write_text("zero\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial commit")
        specs = [
            Spec(f"t{i}", files, depends_on=(f"t{i - 1}",) if i and deps[i] else ())
            for i, files in enumerate(edits)
        ]
        base_before = git(repo, "rev-parse", "main")
        tips: dict[str, str] = {}
        rows: list[TaskRow] = []
        for position, spec in enumerate(specs):
            start = base_before
            for dep in spec.depends_on:
                result = subprocess.run(
                    ["git", "merge-tree", "--write-tree", start, tips[dep]],
                    cwd=repo,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode == 0:
                    start = merge_commit(repo, start, tips[dep], f"merge {dep}")
            head = make_commit(repo, start, spec.files, f"{spec.id}: work")
            tips[spec.id] = head
            git(repo, "update-ref", f"refs/heads/limitless/{RUN}/{spec.id}", head)
            rows.append(
                TaskRow(
                    RUN,
                    spec.id,
                    position,
                    "shell",
                    f"limitless/{RUN}/{spec.id}",
                    str(root / "wt" / spec.id),
                    status=TaskStatus.DONE,
                    ended_at=float(position),
                    start_sha=start,
                    head_sha=head,
                )
            )
        if dirty:
            (repo / "f0.txt").write_text("uncommitted\n")
        plan = Plan(
            name="t",
            source=None,
            base="main",
            merge=MergePolicy(strategy=strategy, on_conflict=on_conflict),  # type: ignore[arg-type]
            tasks=tuple(Task(s.id, f"Do {s.id}", "shell", depends_on=s.depends_on) for s in specs),
        )
        with Store.open(root / "state") as store:
            store.create_run(
                Run(
                    RUN,
                    "t",
                    None,
                    plan.to_json(),
                    str(repo),
                    "main",
                    base_before,
                    str(root / "wt"),
                    merge_strategy=strategy,
                    created_at=time.time(),
                )
            )
            store.add_tasks(RUN, rows)
            merge.run_merge_phase(store, RUN, out=lambda _line: None)
        reachable = set(git(repo, "rev-list", "--all").split())
        for head in tips.values():
            task_commits = git(repo, "rev-list", head).split()
            assert set(task_commits) <= reachable
        for task_id, head in tips.items():
            assert git(repo, "rev-parse", f"limitless/{RUN}/{task_id}") == head
        base_after = git(repo, "rev-parse", "main")
        assert (
            subprocess.run(
                ["git", "merge-base", "--is-ancestor", base_before, base_after],
                cwd=repo,
                check=False,
            ).returncode
            == 0
        )
        if dirty:
            assert base_after == base_before
            assert (repo / "f0.txt").read_text() == "uncommitted\n"
        shutil.rmtree(root / "wt", ignore_errors=True)


# --- resolvers in slot panes -------------------------------------------------------


def test_slot_wrapper_records_the_exit_code(tmp_path: Path) -> None:
    """The in-pane wrapper runs the argv as is and writes its exit code (127 when missing)."""
    from limitless.merge import resolver as merge_slot

    exit_file = tmp_path / "r.exit"
    assert merge_slot.main([str(exit_file), "--", "bash", "-c", "exit 3", "x; rm -rf /"]) == 3
    assert exit_file.read_text() == "3\n"
    assert merge_slot.main([str(exit_file), "--", str(tmp_path / "no-such-agent")]) == 127
    assert exit_file.read_text() == "127\n"


def test_resolver_runs_in_a_slot_pane_of_the_runs_session(
    build: Callable[..., Env], tmp_path: Path, tmux_socket: str
) -> None:
    """With the run's session alive, a resolver runs in its slot pane and its exit code returns;
    with no session there is no slot."""
    from limitless.merge import resolver as merge_slot
    from limitless.tmux.session import session_name

    env = build([Spec("a", {"a.txt": "a\n"})])
    run = env.store.get_run(RUN)
    assert merge_slot.slot_runner(env.store, run) is None  # no slot panes recorded
    env.store.update_run(RUN, tmux_socket=tmux_socket, slot_panes="%0")
    assert merge_slot.slot_runner(env.store, env.store.get_run(RUN)) is None  # no session
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", session_name(RUN), "sleep 600"],
        check=True,
    )
    pane = subprocess.run(
        ["tmux", "-L", tmux_socket, "list-panes", "-t", session_name(RUN), "-F", "#{pane_id}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        ["tmux", "-L", tmux_socket, "set-option", "-t", session_name(RUN), "remain-on-exit", "on"],
        check=True,
    )
    env.store.update_run(RUN, slot_panes=pane)
    runner = merge_slot.slot_runner(env.store, env.store.get_run(RUN), env={"WHO": "fixer"})
    assert runner is not None
    work = tmp_path / "work"
    work.mkdir()
    script = 'echo "$WHO in $PWD $LIMITLESS_RUN" > seen.txt; exit 5'
    assert runner(["bash", "-c", script], work, "resolve a") == 5
    assert (work / "seen.txt").read_text() == f"fixer in {work} {RUN}\n"
    assert runner(["bash", "-c", "exit 0"], work, "resolve a") == 0  # the pane is reused
    limited = merge_slot.slot_runner(env.store, env.store.get_run(RUN), timeout_s=1.0)
    assert limited is not None
    marker = work / "sleeping"
    assert limited(["bash", "-c", f"touch {marker}; exec sleep 600"], work, "resolve a") == 124
    assert marker.exists()

    def stopped_shown() -> bool:
        text = subprocess.run(
            ["tmux", "-L", tmux_socket, "capture-pane", "-p", "-t", pane],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return "the resolver was stopped at its time limit" in text

    wait_for(stopped_shown, 10, "the stopped slot's message")


def _processes_naming(text: str) -> list[int]:
    """Live processes whose command line holds `text` (this test's own worktree path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_a_real_claude_resolver_past_its_time_limit_in_the_foreground_is_ended(
    build: Callable[..., Env],
    claude_agent: object,
    model_server: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`limitless merge` in a terminal: a Claude Code resolver blocked in a model call at
    `resolver_timeout` is stopped, and Claude Code itself with it (not only the wrapper
    that renders its events)."""
    from tests.realagents.homes import AgentSetup
    from tests.realagents.modelserver import ModelServer
    from tests.realagents.script import Script, read

    assert isinstance(claude_agent, AgentSetup) and isinstance(model_server, ModelServer)
    claude_agent.export(monkeypatch)
    model_server.add(
        Script("resolver", [read("README.md", gate=threading.Event())], match="Resolve the git")
    )
    env = build(
        conflicting_pair(),
        MergePolicy(on_conflict="agent", resolver="claude", resolver_timeout_s=4.0),
    )
    outcome = env.phase(foreground=True)
    assert model_server.held(), "the resolver never reached the model"
    assert not outcome.ok and outcome.conflicts == ["b"]
    assert "the resolver was stopped after 4s" in env.row("b").merge_reason
    wait_for(lambda: not _processes_naming(str(env.merge_worktree)), timeout=10, what="claude ends")
