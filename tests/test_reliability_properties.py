"""Property tests: the plan loader only ever raises PlanError; names made from ids are safe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from limitless.errors import PlanError
from limitless.git import worktrees
from limitless.git.refs import branch_name
from limitless.plan.loader import load, loads
from limitless.plan.model import Plan

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

PLAN_KEYS = [
    "name", "base", "max_concurrency", "agent", "layout", "worktree_root", "setup", "copy",
    "link", "merge", "agents", "stages", "budget", "ports", "artifacts", "hooks", "tasks",
    "overlap", "autocommit",
]  # fmt: skip
TASK_KEYS = [
    "id", "prompt", "prompt_file", "depends_on", "after", "files", "priority", "retries",
    "timeout", "epic", "estimate", "env", "model", "exclusive", "ports", "agent",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["a", "b", "shell", "merge", "30m", "{prompt}", "../x", "/etc/passwd", ""]),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.text(max_size=10), st.sampled_from(TASK_KEYS)), children, max_size=5
        ),
    ),
    max_leaves=25,
)
tasks = st.lists(
    st.dictionaries(st.sampled_from(TASK_KEYS), structures, max_size=6),
    max_size=4,
)
plans = st.fixed_dictionaries(
    {"tasks": tasks}, optional={key: structures for key in PLAN_KEYS if key != "tasks"}
)


def load_or_plan_error(text: str, base_dir: Path) -> Plan | None:
    """The loader's result, None for a PlanError; any other exception fails the test."""
    try:
        return loads(text, source="p.yaml", base_dir=base_dir)
    except PlanError as exc:
        assert exc.problems, "a PlanError names at least one problem"
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1
        return None


@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text_gives_a_plan_or_a_plan_error(text: str, tmp_path: Path) -> None:
    """Any text at all: a Plan, or PlanError with located problems — nothing else."""
    load_or_plan_error(text, tmp_path)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_in_a_file_give_a_plan_or_a_plan_error(data: bytes, tmp_path: Path) -> None:
    """Any bytes on disk (bad UTF-8, NULs, BOMs): `load()` gives a Plan or a PlanError."""
    path = tmp_path / "bytes.yaml"
    path.write_bytes(data)
    try:
        load(path)
    except PlanError as exc:
        assert all(str(problem).startswith(f"{path}:") for problem in exc.problems)


yaml_chars = st.sampled_from(list("-:[]{},&*!|>'\"#%@`?\n\t  ab1.")) | st.characters()


@SETTINGS
@given(text=st.text(alphabet=yaml_chars, max_size=200))
def test_yaml_punctuation_soup_gives_a_plan_or_a_plan_error(text: str, tmp_path: Path) -> None:
    """Text dense in YAML syntax characters never escapes as a yaml or Python error."""
    load_or_plan_error(text, tmp_path)


@SETTINGS
@given(plan=plans, flow=st.booleans())
def test_arbitrary_plan_shaped_yaml_gives_a_plan_or_a_plan_error(
    plan: dict[str, object], flow: bool, tmp_path: Path
) -> None:
    """Plan-shaped structures with values of any type and shape: Plan or PlanError only."""
    text = yaml.safe_dump(plan, default_flow_style=flow, allow_unicode=True)
    result = load_or_plan_error(text, tmp_path)
    if result is not None:
        assert Plan.from_json(result.to_json()) == result


ID_ALPHABET = st.sampled_from([*"abcXYZ019._-/@{}~^:?*[\\ #$!", "..", ".lock", "\u00e9"])
candidate_ids = st.one_of(
    st.lists(ID_ALPHABET, min_size=1, max_size=70).map("".join),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True),
)


def check_ref_format(ref: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", ref], capture_output=True, check=False)
    return result.returncode == 0


@SETTINGS
@given(task_id=candidate_ids, name=candidate_ids)
def test_names_from_any_accepted_id_are_valid_refs_inside_the_worktree_root(
    task_id: str, name: str, tmp_path: Path
) -> None:
    """If the loader accepts a task id and plan name, branch and folder names are safe."""
    text = yaml.safe_dump({"name": name, "tasks": [{"id": task_id, "prompt": "hi"}]})
    plan = load_or_plan_error(text, tmp_path)
    event("accepted" if plan is not None else "refused")
    if plan is None:
        return
    run_id = f"{plan.name}-1"
    for key in (plan.tasks[0].id, plan.tasks[0].worktree_key):
        branch = branch_name(run_id, key)
        assert check_ref_format(f"refs/heads/{branch}"), branch
        root = tmp_path / "worktrees"
        path = worktrees.worktree_path(root, run_id, key)
        assert path.parent.parent == root
        assert path.name == key
        path.mkdir(parents=True)
        assert path.resolve().is_relative_to(root.resolve())
        path.rmdir()
