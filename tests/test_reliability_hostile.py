"""Hostile input: prompts and fields are data, paths stay inside the repository, SQL is bound.

Real runs on a private tmux socket with real git; every "pwned" file a shell or
tmux would create if it executed something from the input must stay absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from limitless.errors import PlanError, UsageError
from limitless.git import worktrees
from limitless.plan import loader as plan_mod
from limitless.states import ControlAction, RunStatus, TaskStatus
from limitless.store import Event, Run, Store, TaskRow
from limitless.tmux.layouts import Layout, load_layout
from limitless.tmux.session import TmuxSession
from tests.conftest import git
from tests.engine_helpers import cli, latest_run, tasks_of, write_plan

PWNED = ("pwned1", "pwned2", "pwned3", "pwned4", "pwned5", "pwned6")
METACHARACTERS = (
    "Fix it $(touch pwned1) `touch pwned2` ; touch pwned3 && echo 'single' \"double\" \\\n"
    "| touch pwned4 > /dev/null & #{pane_id} #{E:pane_title} #(touch pwned5) ##(touch pwned6)\n"
    "${HOME} $HOME %s %n {prompt} {task} {{prompt}} \t tab * ? [a-z] ~ ! <<EOF\n"
)
BINARY = "".join(chr(code) for code in range(1, 256)) + "\x1b]2;title\x07\x1b[2J\x1b[31mred\r\n"
LONG = ("a long line of prompt text with $(touch pwned1) in it\n" * 1700)[:90_000]
HUGE = "x" * 100 + "\n" + ("y" * 99 + "\n") * 4000  # 400 kB: more than one argv element may hold

RECORDER = (
    "import json, os, pathlib, sys\n"
    "args = sys.argv[1:]\n"
    "file_text = pathlib.Path(args[1]).read_bytes().decode('utf-8')\n"
    "got = {'argv': args, 'file': file_text, 'env': os.environ.get('HOSTILE')}\n"
    "pathlib.Path('got.json').write_text(json.dumps(got))\n"
)


def no_pwned_files(*folders: Path) -> list[str]:
    return [str(folder / name) for folder in folders for name in PWNED if (folder / name).exists()]


def hostile_plan() -> dict[str, object]:
    return {
        "name": "hostile",
        "max_concurrency": 4,
        "merge": {"land": "manual"},
        "agents": {
            "recorder": {"command": ["python3", "-c", RECORDER, "{prompt}", "{prompt_file}"]},
            "file-only": {
                "command": ["python3", "-c", RECORDER, "(see file)", "{prompt_file}", "{model}"]
            },
        },
        "tasks": [
            {"id": "meta", "agent": "recorder", "prompt": METACHARACTERS},
            {"id": "binary", "agent": "recorder", "prompt": BINARY},
            {"id": "long", "agent": "recorder", "prompt": LONG},
            {
                "id": "huge",
                "agent": "file-only",
                "prompt": HUGE,
                "model": METACHARACTERS.splitlines()[0],
                "env": {"HOSTILE": METACHARACTERS},
            },
            {"id": "toolong", "agent": "recorder", "prompt": HUGE},
        ],
    }


@pytest.mark.usefixtures("tmux_socket")
def test_hostile_prompts_and_fields_arrive_verbatim_and_execute_nothing(repo: Path) -> None:
    """Metacharacters, tmux formats, control bytes, 90 kB and 400 kB prompts: byte for byte.

    A 400 kB prompt given as one argv element cannot start (Linux caps one argument
    at 128 KiB): that task fails with a reason saying so and how to fix it.
    """
    write_plan(repo, yaml.safe_dump(hostile_plan(), allow_unicode=True))
    result = cli(repo, "run", "--headless", "--no-merge", timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not done: toolong" in result.stdout
    run = latest_run(repo)
    rows = tasks_of(repo, run.id)
    assert rows["toolong"].status is TaskStatus.FAILED
    assert "is too long for {prompt}: use {prompt_file}" in rows["toolong"].reason
    expected = {"meta": METACHARACTERS, "binary": BINARY, "long": LONG}
    for task_id, prompt in expected.items():
        got = json.loads(git(Path(rows[task_id].worktree), "show", "HEAD:got.json"))
        assert got["argv"][0] == prompt, task_id
        assert got["file"] == prompt, task_id
    huge = json.loads(git(Path(rows["huge"].worktree), "show", "HEAD:got.json"))
    assert huge["file"] == HUGE
    assert huge["argv"][2] == METACHARACTERS.splitlines()[0]  # {model}
    assert huge["env"] == METACHARACTERS
    folders = [repo, repo.parent, *(Path(row.worktree) for row in rows.values())]
    assert no_pwned_files(*folders) == []


TITLE = "#(touch pwned5) #{pane_id} ##{session_name} #[fg=red] \x1b]2;x\x07 end"


def test_pane_titles_show_hostile_text_without_expanding_it(
    tmux_socket: str, tmp_path: Path
) -> None:
    """A title holding tmux formats and #(cmd) is shown as text; the command never runs."""
    layout: Layout = load_layout("default")
    session, panes = TmuxSession.create(
        tmux_socket,
        "titles-1",
        layout=layout,
        slots=1,
        cwd=tmp_path,
        control_argv=["sleep", "600"],
        dashboard_argv=None,
        idle_argv=["sleep", "600"],
        env={},
        wake_channel="limitless-titles-1",
    )
    slot = panes.slots[0]
    session.set_title(slot, TITLE)
    border = subprocess.run(
        ["tmux", "-L", tmux_socket, "display-message", "-p", "-t", slot, "#{T:pane-border-format}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "#(touch pwned5) #{pane_id} ##{session_name} #[fg=red]" in border
    assert "%" not in border.replace("#{pane_id}", "")  # no pane id was substituted
    assert no_pwned_files(tmp_path, Path.cwd()) == []


# ---------------------------------------------------------------- paths


def outside_file(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("secret\n")
    return secret


def test_a_prompt_file_symlinked_outside_the_repository_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    """prompt_file pointing (through a symlink) outside the plan's folder: located error."""
    secret = outside_file(tmp_path)
    (repo / "prompts").mkdir()
    (repo / "prompts" / "api.md").symlink_to(secret)
    (repo / "sneaky").symlink_to(secret.parent, target_is_directory=True)
    for raw in ("prompts/api.md", "sneaky/secret.txt", "../outside/secret.txt", str(secret)):
        text = f"name: x\ntasks:\n  - id: a\n    prompt_file: {raw}\n"
        write_plan(repo, text)
        with pytest.raises(PlanError) as caught:
            plan_mod.load(repo / "limitless.yaml")
        problem = caught.value.problems[0]
        assert (problem.line, problem.column) == (4, 18), raw
        assert "is outside the plan's folder; keep prompt files inside it" in problem.message


class GlobCase(NamedTuple):
    test_id: str
    kind: str
    pattern: str


GLOBS = [
    GlobCase("copy-parent", "copy", "../outside/*"),
    GlobCase("copy-absolute", "copy", "/etc/hostname"),
    GlobCase("copy-symlinked-file", "copy", "leak.txt"),
    GlobCase("copy-through-symlinked-dir", "copy", "linked/*"),
    GlobCase("copy-dir-holding-a-symlink", "copy", "config"),
    GlobCase("copy-recursive-glob", "copy", "**/*.txt"),
    GlobCase("link-symlinked-file", "link", "leak.txt"),
    GlobCase("link-parent", "link", "../outside"),
]


@pytest.mark.parametrize("case", GLOBS, ids=[case.test_id for case in GLOBS])
def test_copy_and_link_globs_cannot_reach_outside_the_repository(
    repo: Path, tmp_path: Path, case: GlobCase
) -> None:
    """A copy/link glob that reaches outside (symlinks included) is refused before any work."""
    secret = outside_file(tmp_path)
    (repo / "leak.txt").symlink_to(secret)
    (repo / "linked").symlink_to(secret.parent, target_is_directory=True)
    (repo / "config").mkdir()
    (repo / "config" / "inner.txt").symlink_to(secret)
    root = tmp_path / "wt"
    before = git(repo, "branch", "--list")
    with pytest.raises(UsageError) as caught:
        worktrees.prepare_worktree(
            repo,
            path=root / "r-1" / "a",
            branch="limitless/r-1/a",
            base_sha=git(repo, "rev-parse", "HEAD"),
            copy=[case.pattern] if case.kind == "copy" else [],
            link=[case.pattern] if case.kind == "link" else [],
            lock_dir=tmp_path / "locks",
        )
    assert f"{case.kind} glob {case.pattern!r}" in str(caught.value)
    assert "inside the repository" in str(caught.value) or "outside the repository" in str(
        caught.value
    )
    assert git(repo, "branch", "--list") == before
    assert not root.exists()
    assert secret.read_text() == "secret\n"


def test_copy_never_writes_through_a_symlink_in_the_new_worktree(
    repo: Path, tmp_path: Path
) -> None:
    """Base holds a symlink to an outside file where the checkout has a file: kept, not written."""
    victim = tmp_path / "victim.txt"
    (repo / "conf").mkdir()
    (repo / "conf" / "settings").symlink_to(victim)
    git(repo, "add", "conf")
    git(repo, "commit", "-qm", "symlinked settings")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", "--cached", "conf/settings")
    (repo / "conf" / "settings").unlink()
    (repo / "conf" / "settings").write_text("local settings\n")
    prepared = worktrees.prepare_worktree(
        repo,
        path=tmp_path / "wt" / "r-1" / "a",
        branch="limitless/r-1/a",
        base_sha=base,
        copy=["conf"],
        lock_dir=tmp_path / "locks",
    )
    assert (prepared.path / "conf" / "settings").is_symlink()
    assert not victim.exists()


# ---------------------------------------------------------------- store

HOSTILE_TEXTS = [
    "'; DROP TABLE tasks; --",
    'x" OR "1"="1',
    "Robert'); DELETE FROM runs WHERE ('1'='1",
    "%s %d ? :name $1 {0} {task}",
    "line one\nline two\r\n\ttab \x1b[31m red",
    "ünïcödé ✓ 🚀 \u202e reversed",
    "x" * 100_000,
]


def test_hostile_text_goes_through_the_store_and_comes_back_intact(tmp_path: Path) -> None:
    """Ids, reasons, events and requests full of SQL and quoting survive a round trip."""
    with Store.open(tmp_path / "state") as store:
        run_id = store.next_run_id("x")
        store.create_run(
            Run(
                id=run_id,
                plan_name="x",
                plan_path=HOSTILE_TEXTS[0],
                plan_json="{}",
                repo_root=str(tmp_path),
                base=HOSTILE_TEXTS[1],
                base_sha="0" * 40,
                worktree_root=str(tmp_path / "wt"),
                status=RunStatus.RUNNING,
                created_at=1.0,
            )
        )
        ids = [f"t{i}" for i in range(len(HOSTILE_TEXTS))] + HOSTILE_TEXTS[:4]
        store.add_tasks(
            run_id,
            [
                TaskRow(
                    run_id=run_id,
                    id=task_id,
                    position=position,
                    agent="shell",
                    branch=f"limitless/{run_id}/{position}",
                    worktree=str(tmp_path / str(position)),
                    status=TaskStatus.PENDING,
                )
                for position, task_id in enumerate(ids)
            ],
        )
        for index, text in enumerate(HOSTILE_TEXTS):
            store.update_task(run_id, f"t{index}", reason=text)
            assert (
                store.transition(
                    run_id, HOSTILE_TEXTS[index % 4], (TaskStatus.PENDING,), TaskStatus.READY
                )
                or index >= 4
            )
            store.add_event(run_id, text[:200], f"t{index}", said=text)
            store.request(run_id, ControlAction.KILL, HOSTILE_TEXTS[index % 4], source=text[:100])
        rows = {row.id: row for row in store.get_tasks(run_id)}
        run = store.get_run(run_id)
        events: list[Event] = store.events(run_id)
        requests = store.pending_requests(run_id)
    assert set(rows) == set(ids)
    for index, text in enumerate(HOSTILE_TEXTS):
        assert rows[f"t{index}"].reason == text
    for text in HOSTILE_TEXTS[:4]:
        assert rows[text].status is TaskStatus.READY
    assert (run.plan_path, run.base) == (HOSTILE_TEXTS[0], HOSTILE_TEXTS[1])
    said = [event.data.get("said") for event in events if "said" in event.data]
    assert said == HOSTILE_TEXTS
    assert [request.task_id for request in requests] == [
        HOSTILE_TEXTS[i % 4] for i in range(len(HOSTILE_TEXTS))
    ]
    assert os.path.exists(tmp_path / "state" / "state.db")
