#!/usr/bin/env bash
# Bootstrap .venv with the dev extra and the real agent programs (.agents/), then lint, type-check and run the whole suite.
# Extra arguments go to pytest (e.g. ./scripts/test.sh -k plan -x).
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_bootstrap.sh"
bootstrap "dev"
install_agents
ensure_git_lfs
install_bubblewrap
install_openssh_server
cd "$repo_root"
echo "== ruff check" && "$venv/bin/ruff" check limitless tests scripts
echo "== ruff format --check" && "$venv/bin/ruff" format --check limitless tests scripts
echo "== mypy limitless" && "$venv/bin/mypy" limitless
echo "== pytest" && exec "$venv/bin/python" -m pytest "$@"
