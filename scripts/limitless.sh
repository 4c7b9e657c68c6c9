#!/usr/bin/env bash
# Bootstrap .venv (if missing or stale) and run limitless with the given arguments.
set -euo pipefail
# shellcheck source=scripts/_bootstrap.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_bootstrap.sh"
bootstrap ""
exec "$venv/bin/limitless" "$@"
