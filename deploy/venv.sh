#!/usr/bin/env bash
# Creates or updates the Python venv at <repo>/.venv from deploy/requirements.txt.
#
#   bash deploy/venv.sh          # make sure .venv is ready
#   source deploy/venv.sh        # the same, then VENV is set and .venv/bin leads PATH
#
# pip runs only when the requirements file changed since the last successful install
# (its sha256 is kept in .venv/.requirements.sha256). Delete .venv to start over.
set -euo pipefail

_venv_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$_venv_repo/.venv"
_venv_req="$_venv_repo/deploy/requirements.txt"
_venv_stamp="$VENV/.requirements.sha256"

mkdir -p "$VENV"
# Two scripts starting at once (run.sh and test.sh) must not both run pip.
exec {_venv_lock}<"$VENV"   # lock the directory itself: venv --clear empties it
if command -v flock >/dev/null 2>&1; then
    flock "$_venv_lock"
fi

# A venv whose interpreter no longer runs (python moved or upgraded) is rebuilt.
if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    echo "venv.sh: creating $VENV" >&2
    python3 -m venv --clear "$VENV"
    rm -f "$_venv_stamp"
fi

_venv_want="$(sha256sum "$_venv_req" | cut -d' ' -f1)"
if [[ "$(cat "$_venv_stamp" 2>/dev/null || true)" != "$_venv_want" ]]; then
    echo "venv.sh: installing deploy/requirements.txt into .venv" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$_venv_req"
    printf '%s\n' "$_venv_want" >"$_venv_stamp"
fi

exec {_venv_lock}<&-
unset _venv_repo _venv_req _venv_stamp _venv_want _venv_lock
export VENV
export PATH="$VENV/bin:$PATH"
