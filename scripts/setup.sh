#!/usr/bin/env bash
# Set up the project on a Debian/Ubuntu machine: a .venv with queuecast installed
# in editable mode, and with --test also the test dependencies and a redis-server.
#
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   runtime + test dependencies + redis-server (Debian package)
#
# Idempotent: a second run does nothing costly (pip is skipped while a stamp
# file for the current pyproject.toml is present in .venv).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_test=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "setup: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

PYTHON=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -E "$@"
    else
        die "need root or sudo to run: $*"
    fi
}

# Install Debian packages; refresh the package lists only when they are empty
# or when the first attempt fails.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
    if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
        say "apt-get update"
        as_root apt-get update -q >/dev/null
    fi
    if ! as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null; then
        say "install failed; apt-get update and retry"
        as_root apt-get update -q >/dev/null
        as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null
    fi
}

# (a) Debian packages the tests need: redis-server (the tests start their own
# servers; we never rely on a service the package may have started), Chromium
# for the page tests (driven by Playwright's Python package; no browser is
# downloaded), fonts with Vietnamese diacritics, and zbarimg to read printed QR codes.
if [ "$want_test" -eq 1 ]; then
    missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v zbarimg >/dev/null 2>&1 || missing+=(zbar-tools)
    [ -d /usr/share/fonts/truetype/noto ] || missing+=(fonts-noto-core)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]} (apt)"
        apt_install "${missing[@]}"
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH"
    [ -x /usr/bin/chromium ] || die "chromium still not at /usr/bin/chromium"
    say "redis-server $(redis-server --version | awk '{print $3}'), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
fi

# (b) the virtual environment.
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (need Python >= 3.11)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); need Python >= 3.11"

if [ -d .venv ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    say ".venv is broken or too old; recreating"
    rm -rf .venv
fi
if [ ! -d .venv ]; then
    say "creating .venv ($("$PYTHON" -V 2>&1))"
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        say "python venv module unusable; installing python3-venv (apt)"
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi

# (c) the project and its dependencies, skipped while the stamp is current.
hash=$(sha256sum pyproject.toml | cut -c1-16)
stamp=".venv/.stamp-$hash"
spec="."
if [ "$want_test" -eq 1 ]; then
    stamp="$stamp-test"
    spec=".[test]"
fi
# A --test install also covers a runtime-only request.
if [ -e "$stamp" ] || { [ "$want_test" -eq 0 ] && [ -e "$stamp-test" ]; }; then
    say "python packages up to date"
else
    say "pip install -e \"$spec\""
    .venv/bin/python -m pip install -q -e "$spec"
    rm -f .venv/.stamp-*
    touch "$stamp"
fi
# (d) the oldest uvicorn pyproject.toml allows, beside the newest, for tests/test_server.py to run a
# hub on it (the fast WebSocket path subclasses a private uvicorn class).
UVICORN_FLOOR=0.44.0
if [ "$want_test" -eq 1 ] && [ ! -e ".venv/uvicorn-floor/uvicorn-$UVICORN_FLOOR.dist-info" ]; then
    say "uvicorn $UVICORN_FLOOR into .venv/uvicorn-floor (the tested lower bound)"
    rm -rf .venv/uvicorn-floor
    .venv/bin/python -m pip install -q --no-deps --target .venv/uvicorn-floor "uvicorn==$UVICORN_FLOOR"
fi
say "ready (.venv/bin/python: $(.venv/bin/python -V 2>&1))"
