# Sourced by limitless.sh and test.sh: make .venv next to the repository and
# install limitless into it (again when pyproject.toml is newer than the install).
# Usage: bootstrap ""     (runtime only)   |   bootstrap "dev"   (with the dev extra)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"

find_python() {
    local candidate
    for candidate in "${LIMITLESS_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "limitless: Python 3.11 or newer is needed; install it or set LIMITLESS_PYTHON" >&2
    return 3
}

bootstrap() {
    local extras="$1" stamp spec python
    stamp="$venv/.limitless-install"
    if [ ! -x "$venv/bin/python" ]; then
        python="$(find_python)" || exit 3
        echo "limitless: creating $venv" >&2
        "$python" -m venv "$venv"
    fi
    # A stamp names the extras installed; dev includes the runtime set.
    if [ -f "$stamp" ] && [ ! "$repo_root/pyproject.toml" -nt "$stamp" ]; then
        if [ -z "$extras" ] || grep -qx "$extras" "$stamp"; then
            compile_package
            return 0
        fi
    fi
    spec="$repo_root"
    [ -n "$extras" ] && spec="$repo_root[$extras]"
    echo "limitless: installing into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2 || {
        echo "limitless: installing into $venv failed (see pip's words above)" >&2
        exit 3
    }
    echo "${extras}" >"$stamp"
    compile_package
}

# The editable install leaves byte-code to Python, which writes none where
# PYTHONDONTWRITEBYTECODE is set: then every supervisor, wrapper and dashboard
# start compiles the package again. Up-to-date files are skipped.
compile_package() {
    "$venv/bin/python" -m compileall -q "$repo_root/limitless" >/dev/null 2>&1 || true
}

# The tests build repositories that use Git LFS. Install git-lfs where apt can
# (root, apt-get present); otherwise say why and go on: those tests skip.
# Quick when git-lfs is there already.
ensure_git_lfs() {
    command -v git-lfs >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "limitless: git-lfs is missing and apt-get is not available: the LFS tests skip" >&2
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "limitless: git-lfs is missing and this is not root: the LFS tests skip" \
            "(install it with: sudo apt-get install git-lfs)" >&2
        return 0
    fi
    echo "limitless: installing git-lfs (apt-get)" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-lfs; } \
        >/dev/null 2>&1; then
        echo "limitless: apt-get could not install git-lfs: the LFS tests skip" >&2
    fi
    return 0
}
