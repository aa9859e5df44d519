#!/usr/bin/env bash
# THE test command: starts moto (the Cognito emulator) on a free loopback port, then runs
# `cargo test --locked` with extra arguments passed through, e.g.
#
#   deploy/test.sh                      # everything: all targets, schemathesis, browser, cfn-lint
#   deploy/test.sh login -- --nocapture # a filter and test-binary flags, all targets
#   deploy/test.sh --test gate          # one suite only
#   deploy/test.sh --lib                # the unit tests only
#
# `--all-targets` is added unless an argument before `--` selects targets itself (`--test`,
# `--tests`, `--lib`, `--bin`, `--bins`, `--bench`, `--benches`, `--example`, `--examples`,
# `--doc`, `--all-targets`); cargo would otherwise run every target whatever was selected.
# Debian's redis-server, openssl, chromium and chromium-driver are installed when missing
# (deploy/system-packages.sh); tests/fleet.rs starts its own redis-servers on free loopback ports,
# tests/federated.rs its own OpenID providers (tests/oidc/, npm ci from the lockfile).
# The tests get MOTO_URL=http://127.0.0.1:PORT, dummy AWS credentials, AWS_REGION=us-east-1
# and .venv/bin first on PATH. When cargo test passes and no targets were selected,
# tests/contract/schemathesis.sh fuzzes the auth API against its OpenAPI document,
# tests/browser/run.sh runs the browser-session scenarios in headless Chromium (two sidecars
# sharing a Redis of its own, this moto), and cfn-lint checks deploy/cloudformation.yaml (errors
# and warnings both fail; it uses the specs it ships and fetches nothing); with a target
# selection these three steps are skipped.
# Exits with the first failing step's status (cargo, schemathesis, browser, cfn-lint); moto is
# stopped on the way out.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash "$REPO/deploy/venv.sh"
bash "$REPO/deploy/system-packages.sh"
# The OpenID provider's npm packages (tests/federated.rs starts providers through start.sh,
# which installs them when missing; once here, before tests run in parallel).
(cd "$REPO/tests/oidc" && [[ -f node_modules/.npm-ci.stamp && ! package-lock.json -nt node_modules/.npm-ci.stamp ]] ||
    { npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.npm-ci.stamp; })

work="$(mktemp -d "${TMPDIR:-/tmp}/cognito-sidecar-test.XXXXXX")"
moto_pid=""
status=1
moto_log_on_failure=1
# shellcheck disable=SC2329 # run by the EXIT trap
cleanup() {
    local i
    trap - EXIT INT TERM
    if [[ -n "$moto_pid" ]] && kill -TERM "$moto_pid" 2>/dev/null; then
        for ((i = 0; i < 50; i++)); do
            kill -0 "$moto_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$moto_pid" 2>/dev/null || true
    fi
    if ((status != 0 && moto_log_on_failure)) && [[ -s "$work/moto.log" ]]; then
        echo "---- last lines of the moto log ----" >&2
        tail -n 30 "$work/moto.log" >&2 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit' INT
trap 'status=143; exit' TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
# moto.sh writes the pid file before it waits; read it even if moto.sh fails.
moto_ok=1
bash "$REPO/deploy/local/moto.sh" "$port" "$work/moto.pid" "$work/moto.log" || moto_ok=0
moto_pid="$(cat "$work/moto.pid" 2>/dev/null || true)"
((moto_ok)) || exit

export MOTO_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=us-east-1

export PATH="$REPO/.venv/bin:$PATH"

# Did the caller choose targets? Only arguments before `--` are cargo's.
selected=0
for arg in "$@"; do
    case "$arg" in
    --) break ;;
    --test | --test=* | --tests | --lib | --bin | --bin=* | --bins | --bench | --bench=* | \
        --benches | --example | --example=* | --examples | --doc | --all-targets)
        selected=1
        ;;
    esac
done
targets=()
((selected)) || targets=(--all-targets)

status=0
cargo test --locked "${targets[@]}" "$@" || status=$?
((status == 0)) || exit
if ((selected)); then
    echo "targets selected: schemathesis, the browser tests and cfn-lint skipped (run deploy/test.sh alone for them)"
    exit
fi

# The published contract: schemathesis against the debug binary, backed by moto.
contract_status=0
bash "$REPO/tests/contract/schemathesis.sh" || contract_status=$?
if ((contract_status != 0)); then
    echo "schemathesis contract run: FAILED (exit $contract_status)" >&2
    status=$contract_status
    exit
fi

# Browser sessions in a real browser: Debian's chromium through chromedriver, the debug binary.
browser_status=0
bash "$REPO/tests/browser/run.sh" || browser_status=$?
if ((browser_status == 0)); then
    echo "browser tests (tests/browser/run.sh): OK"
else
    echo "browser tests (tests/browser/run.sh): FAILED (exit $browser_status)" >&2
    status=$browser_status
    exit
fi

moto_log_on_failure=0 # moto has nothing to do with the template
cfn_status=0
.venv/bin/cfn-lint deploy/cloudformation.yaml || cfn_status=$?
if ((cfn_status == 0)); then
    echo "cfn-lint deploy/cloudformation.yaml: OK (no errors, no warnings)"
else
    echo "cfn-lint deploy/cloudformation.yaml: FAILED (exit $cfn_status; 2 = errors, 4 = warnings)" >&2
    status=$cfn_status
fi
exit "$status"
