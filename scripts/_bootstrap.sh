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

# ---------------------------------------------------------------------------
# Real agent programs for the tests (the dev bootstrap only): pinned, installed
# into <repo>/.agents, never into .venv. tests/realagents/programs.py finds them
# there. Any failure (no node, no registry) prints one line and carries on: the
# tests that need a missing program skip and say why. LIMITLESS_NO_AGENTS=1
# skips the whole step; LIMITLESS_AGENTS_DIR=DIR installs (and finds) them in DIR
# instead, e.g. one copy shared by several checkouts. A stamp file names the pinned versions, so a second run
# costs nothing.
AGENTS_NPM_CORE="@anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0"
AGENTS_NPM_EXTRA="opencode-ai@1.18.33 @google/gemini-cli@0.61.0"
AGENTS_AIDER="aider-chat==0.86.2"
agents_dir="${LIMITLESS_AGENTS_DIR:-$repo_root/.agents}"

install_agents() {
    [ -n "${LIMITLESS_NO_AGENTS:-}" ] && return 0
    mkdir -p "$agents_dir" 2>/dev/null || return 0
    install_agents_npm
    install_agents_aider
    return 0
}

# A failed install is not tried again for an hour (a machine without the
# registries would wait for their timeouts on every test run): delete the
# .limitless-failed file to try at once.
recently_failed() {
    local failed="$1"
    [ -f "$failed" ] && [ -n "$(find "$failed" -mmin -60 2>/dev/null)" ]
}

install_agents_npm() {
    local prefix="$agents_dir/npm" stamp failed want
    stamp="$prefix/.limitless-install"
    failed="$prefix/.limitless-failed"
    want="$AGENTS_NPM_CORE $AGENTS_NPM_EXTRA"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
        echo "limitless: node/npm not found: claude, codex, opencode and gemini not installed (their tests skip)" >&2
        return 0
    fi
    mkdir -p "$prefix" 2>/dev/null || return 0
    if recently_failed "$failed"; then
        echo "limitless: agent programs not installed: npm failed within the hour (see $prefix/.npm-install.log; delete $failed to retry now)" >&2
        return 0
    fi
    echo "limitless: installing agent programs into $prefix ($want)" >&2
    # shellcheck disable=SC2086
    if agents_npm_install "$prefix" $want; then
        echo "$want" >"$stamp"
        rm -f "$failed"
    elif ! grep -qE 'ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|ECONNRESET|ENETUNREACH' "$prefix/.npm-install.log" &&
        agents_npm_install "$prefix" $AGENTS_NPM_CORE; then
        # The core pair is what most tests need; opencode and gemini are checks.
        echo "limitless: opencode/gemini not installed (npm failed, see $prefix/.npm-install.log); claude and codex are" >&2
        date >"$failed"
    else
        echo "limitless: npm could not install the agent programs (registry unreachable? see $prefix/.npm-install.log): their tests skip" >&2
        date >"$failed"
    fi
    return 0
}

agents_npm_install() {
    local prefix="$1"
    shift
    timeout 600 npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 \
        --fetch-timeout=30000 "$@" >"$prefix/.npm-install.log" 2>&1 &&
        "$prefix/node_modules/.bin/claude" --version >/dev/null 2>&1
}

install_agents_aider() {
    local venv_dir="$agents_dir/aider-venv" stamp failed python candidate
    stamp="$venv_dir/.limitless-install"
    failed="$venv_dir/.limitless-failed"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$AGENTS_AIDER" ]; then
        return 0
    fi
    if recently_failed "$failed"; then
        echo "limitless: aider not installed: pip failed within the hour (see $venv_dir/.pip-install.log; delete $failed to retry now)" >&2
        return 0
    fi
    python=""
    # aider 0.86 supports Python 3.10 to 3.12.
    for candidate in python3.11 python3.12 python3.10 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info < (3, 13) else 1)' 2>/dev/null; then
            python="$(command -v "$candidate")"
            break
        fi
    done
    if [ -z "$python" ]; then
        echo "limitless: no Python 3.10-3.12 for aider: aider not installed (its tests skip)" >&2
        return 0
    fi
    echo "limitless: installing $AGENTS_AIDER into $venv_dir" >&2
    if [ ! -x "$venv_dir/bin/python" ]; then
        "$python" -m venv "$venv_dir" >/dev/null 2>&1 || {
            echo "limitless: could not make $venv_dir: aider not installed (its tests skip)" >&2
            return 0
        }
    fi
    if timeout 900 "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        --retries 1 --timeout 30 "$AGENTS_AIDER" >"$venv_dir/.pip-install.log" 2>&1 &&
        "$venv_dir/bin/aider" --version >/dev/null 2>&1; then
        echo "$AGENTS_AIDER" >"$stamp"
        rm -f "$failed"
    else
        echo "limitless: pip could not install $AGENTS_AIDER (registry unreachable? see $venv_dir/.pip-install.log): its tests skip" >&2
        date >"$failed"
    fi
    return 0
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

# A Debian package a group of tests needs (the dev bootstrap only): apt-get when we
# are root and apt is there; otherwise one line, and those tests skip and say why.
# Costs nothing when the program is there; a failed install is not tried again for
# an hour (delete the .<package>-failed file to retry).
#   apt_install PACKAGE PROGRAM_CHECK WHAT [APT_ARGS...]
apt_install() {
    local package=$1 check=$2 what=$3
    shift 3
    local failed="$agents_dir/.$package-failed" logfile="$agents_dir/.$package-install.log"
    eval "$check" && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "limitless: $package is not installed (needs root and apt-get to install it here): $what skip; install the $package package" >&2
        return 0
    fi
    mkdir -p "$agents_dir" 2>/dev/null || return 0
    if recently_failed "$failed"; then
        echo "limitless: $package not installed: apt-get failed within the hour (see $logfile; delete $failed to retry now)" >&2
        return 0
    fi
    echo "limitless: installing $package (apt-get) for $what" >&2
    if { timeout 300 apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq "$@" "$package"; } >"$logfile" 2>&1 &&
        eval "$check"; then
        rm -f "$failed"
    else
        echo "limitless: apt-get could not install $package (see $logfile): $what skip" >&2
        date >"$failed"
    fi
    return 0
}

# bubblewrap, for `sandbox: worktree` and its tests.
install_bubblewrap() {
    apt_install bubblewrap "command -v bwrap >/dev/null 2>&1" "the sandbox tests"
}

# The hosts tests (tests/sshhosts/) start a real sshd on loopback ports: Debian's openssh-server.
install_openssh_server() {
    apt_install openssh-server "[ -x /usr/sbin/sshd ]" "the hosts tests" --no-install-recommends
}
