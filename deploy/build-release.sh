#!/usr/bin/env bash
# THE release build. deploy/Dockerfile, CI and the book (docs/src/deploy-ecs.md) all run this one command, so a green
# CI run proves the image's build step on a machine without a Docker engine.
#
#   deploy/build-release.sh              # cargo build --release --locked
#   bin="$(deploy/build-release.sh)"     # ... and use the binary
#
# cargo's output goes to stderr; stdout is only the absolute path of the built binary.
# Honours CARGO_TARGET_DIR (and any target dir set in cargo's configuration).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [[ $# -ne 0 ]]; then
    echo "usage: $0   (no arguments: the release build is always the same command)" >&2
    exit 2
fi

cargo build --release --locked >&2

target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="${target_dir:-$REPO/target}/release/cognito-sidecar"
if [[ ! -x "$bin" ]]; then
    echo "build-release.sh: built, but no executable at $bin" >&2
    exit 1
fi
printf '%s\n' "$bin"
