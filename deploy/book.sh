#!/usr/bin/env bash
# Builds the documentation book (docs/, mdBook) into docs/book/ and fails on any warning.
# mdBook is pinned: installed with `cargo install --locked` into .tools/ (git-ignored) when it is
# missing there or at another version; nothing is installed system-wide.
#
#   deploy/book.sh            # install mdBook if needed, build the book; open docs/book/index.html
#
# Links and anchors between the pages are checked by tests/docs.rs (cargo test --test docs),
# which deploy/test.sh runs with the other suites; book.toml has create-missing = false, so a
# SUMMARY.md entry without its file fails this build.
set -euo pipefail

MDBOOK_VERSION="0.5.4"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

tools="$REPO/.tools"
mdbook="$tools/bin/mdbook"
if [[ ! -x "$mdbook" ]] || [[ "$("$mdbook" --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]]; then
    echo "installing mdbook $MDBOOK_VERSION into $tools" >&2
    # Its own throw-away target dir: the project's CARGO_TARGET_DIR is for the project.
    env -u CARGO_TARGET_DIR cargo install mdbook --locked --version "$MDBOOK_VERSION" \
        --no-default-features --features search --root "$tools" --force
fi
"$mdbook" --version

log="$(mktemp "${TMPDIR:-/tmp}/mdbook-build.XXXXXX")"
trap 'rm -f "$log"' EXIT
status=0
"$mdbook" build docs 2>&1 | tee "$log" || status=$?
if ((status != 0)); then
    echo "mdbook build docs: FAILED (exit $status)" >&2
    exit "$status"
fi
if grep -Eq '(WARN|ERROR)' "$log"; then
    echo "mdbook build docs: warnings (above) fail the build" >&2
    exit 1
fi
echo "mdbook build docs: OK (docs/book/index.html)"
