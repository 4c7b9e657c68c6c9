"""Results passed on: `{deps_summary}` reaches the dependant's prompt file."""

from __future__ import annotations

from pathlib import Path

import pytest

from limitless.agents.depsummary import output_tail, render_prompt
from limitless.agents.wrapper import prompt_path
from tests.engine_helpers import cli, latest_run, open_store, write_plan

PLAN = """\
name: pass
agent: shell
max_concurrency: 2
tasks:
  - id: api
    prompt: |
      echo "def route(): pass" > api.py
      git add api.py && git commit -qm "api: add the orders route"
      echo "API READY on /orders"
  - id: web
    depends_on: [api]
    prompt: |
      cat > /dev/null <<'SUMMARY'
      {deps_summary}
      SUMMARY
      test -f api.py
"""


@pytest.mark.usefixtures("tmux_socket")
def test_deps_summary_reaches_the_dependants_prompt_file(repo: Path) -> None:
    """The dependant's prompt file holds the dependency's commits, diffstat and output tail."""
    write_plan(repo, PLAN)
    result = cli(repo, "run", "--headless", "--no-merge")
    assert result.returncode == 0, result.stdout + result.stderr
    run = latest_run(repo)
    with open_store(repo) as store:
        web_prompt = prompt_path(store, run.id, "web").read_text()
        api_prompt = prompt_path(store, run.id, "api").read_text()
    assert "{deps_summary}" not in web_prompt
    assert "## api (done)" in web_prompt
    assert "- api: add the orders route" in web_prompt
    assert "api.py | 1 +" in web_prompt
    assert "1 file changed, 1 insertion(+)" in web_prompt
    assert "API READY on /orders" in web_prompt
    assert len(web_prompt.splitlines()) < 60 + 6
    assert api_prompt.startswith('echo "def route(): pass" > api.py')  # no placeholder: verbatim


def test_output_tail_is_bounded_and_plain(tmp_path: Path) -> None:
    """Only the last lines of a log are kept, without terminal escapes."""
    log = tmp_path / "t.log"
    log.write_bytes(b"".join(b"\x1b[32mline %d\x1b[0m\r\n" % i for i in range(500)))
    assert output_tail(log, 3) == ["line 497", "line 498", "line 499"]
    assert output_tail(tmp_path / "missing.log", 3) == []


def test_render_prompt_does_not_reread_inserted_text() -> None:
    """A summary that itself contains the placeholder is inserted as it is."""
    assert render_prompt("a {deps_summary} b", "{deps_summary} $(x)") == "a {deps_summary} $(x) b"
