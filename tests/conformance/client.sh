#!/usr/bin/env bash
# Run the official MCP conformance suite in CLIENT mode (pinned @modelcontextprotocol/conformance
# from tests/interop/package-lock.json) against the bridge, `mcp-relay connect`.
#
# The runner starts a mock MCP server (and, for auth/*, a mock authorization server) per scenario
# and runs  `mcp-relay-fixture conformance-client --relay mcp-relay <server-url>`; that driver
# spawns `mcp-relay connect <server-url> --oauth-headless --allow-private-discovery --oauth-dir
# <tmp>` and plays the stdio host (initialize, tools/list, the scenario's tools/call, answers to
# sampling/elicitation/roots requests). See src/bin/fixture/client.rs and NOTES.md.
#
# Usage: tests/conformance/client.sh [--suite core|auth|all|...] [--scenario NAME]
#                                    [--spec-version 2025-11-25] [-- extra CLI args]
#
#   --suite S          conformance client suite (default core). NB: the CLI's `core` suite
#                      includes every auth/* scenario of `auth`. `protocol` (ours, not the
#                      CLI's) = every scenario of `all` at the spec version except auth/*, run
#                      one by one, with a summary in the CLI's suite format.
#   --scenario NAME    run one scenario instead of a suite
#   --spec-version V   only scenarios applicable at V (default 2025-11-25; "any" = no filter)
#
# Environment: MCP_RELAY_BIN, MCP_RELAY_FIXTURE_BIN (default target/debug/...),
#              CONFORMANCE_TIMEOUT_MS (per-scenario timeout, default 30000),
#              CONFORMANCE_TOTAL_TIMEOUT (whole CLI run, seconds, default 600),
#              CONNECT_EXTRA_ARGS (more `connect` flags, space-separated, passed through the
#              driver's --relay-arg), CONFORMANCE_LABEL (suffix of the results directory).
# Baseline: tests/conformance/baseline-client.yml (`client:` list; stale entries fail the run).
# Results: results/conformance-client[-V][-LABEL]/<scenario>-<time>/{checks.json,stdout.txt,stderr.txt}
#          (stderr.txt holds the driver's trace of every line and the bridge's own log).
# Exit status: the conformance CLI's (non-zero on unexpected failures or stale baseline entries).
# The repository path must not contain spaces (the CLI splits --command on spaces).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib-node.sh
source "$ROOT/scripts/lib-node.sh"

SUITE=core
SCENARIO=""
SPEC_VERSION=2025-11-25
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) SUITE="$2"; shift 2 ;;
        --suite=*) SUITE="${1#*=}"; shift ;;
        --scenario) SCENARIO="$2"; shift 2 ;;
        --scenario=*) SCENARIO="${1#*=}"; shift ;;
        --spec-version) SPEC_VERSION="$2"; shift 2 ;;
        --spec-version=*) SPEC_VERSION="${1#*=}"; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "client.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

RELAY="${MCP_RELAY_BIN:-$ROOT/target/debug/mcp-relay}"
FIXTURE="${MCP_RELAY_FIXTURE_BIN:-$ROOT/target/debug/mcp-relay-fixture}"
BASELINE="$ROOT/tests/conformance/baseline-client.yml"
LABEL="client"
[ "$SPEC_VERSION" = 2025-11-25 ] || LABEL="$LABEL-$SPEC_VERSION"
LABEL="$LABEL${CONFORMANCE_LABEL:+-$CONFORMANCE_LABEL}"
OUT="$ROOT/results/conformance-$LABEL"
CLI="$ROOT/tests/interop/node_modules/@modelcontextprotocol/conformance/dist/index.js"

say() { printf 'conformance-client: %s\n' "$*" >&2; }

for bin in "$RELAY" "$FIXTURE"; do
    [ -x "$bin" ] || { say "missing $bin (run cargo build first)"; exit 1; }
done
case "$ROOT$RELAY$FIXTURE" in
    *" "*) say "paths with spaces are not supported (the CLI splits --command on spaces)"; exit 1 ;;
esac
[ -f "$BASELINE" ] || { say "missing baseline $BASELINE"; exit 1; }
if [ ! -f "$CLI" ] || ! find_node22 >/dev/null; then
    "$ROOT/scripts/setup-node-tools.sh" >/dev/null
fi
NODE22="$(find_node22)" || { say "no Node >= 22 runtime (run scripts/setup-node-tools.sh)"; exit 1; }

mkdir -p "$ROOT/results"
rm -rf "$OUT"

COMMAND="$FIXTURE conformance-client --relay $RELAY"
# shellcheck disable=SC2206 # word splitting of the extra flags is intended
for a in ${CONNECT_EXTRA_ARGS:-}; do COMMAND="$COMMAND --relay-arg $a"; done

ARGS=(client --command "$COMMAND" -o "$OUT" --expected-failures "$BASELINE"
      --timeout "${CONFORMANCE_TIMEOUT_MS:-30000}")
[ "$SPEC_VERSION" = any ] || ARGS+=(--spec-version "$SPEC_VERSION")
if [ -n "$SCENARIO" ]; then
    ARGS+=(--scenario "$SCENARIO")
elif [ "$SUITE" != protocol ]; then
    ARGS+=(--suite "$SUITE")
fi
PER_SCENARIO=""
if [ -z "$SCENARIO" ] && [ "$SUITE" = protocol ]; then
    PER_SCENARIO=1 # the extra CLI args go after each --scenario NAME below
else
    ARGS+=("${EXTRA[@]}")
fi
say "running: $("$NODE22" --version) conformance@$("$NODE22" -p "require('$ROOT/tests/interop/node_modules/@modelcontextprotocol/conformance/package.json').version") ${ARGS[*]}"

set +e
if [ -n "$PER_SCENARIO" ]; then
    # Scenarios of `all` at this spec version (list prints "  - NAME [versions]"), minus auth/*.
    LIST=(list --client)
    [ "$SPEC_VERSION" = any ] || LIST+=(--spec-version "$SPEC_VERSION")
    mapfile -t NAMES < <("$NODE22" "$CLI" "${LIST[@]}" | sed -n 's/^  - \([^ ]*\).*/\1/p' | grep -v '^auth/')
    rc=0
    for name in "${NAMES[@]}"; do
        timeout -k 10 "${CONFORMANCE_TOTAL_TIMEOUT:-600}" "$NODE22" "$CLI" "${ARGS[@]}" --scenario "$name" "${EXTRA[@]}"
        r=$?
        [ "$r" -eq 0 ] || rc=$r
    done
    # The CLI prints no suite summary for single scenarios: print one in its format
    # ("✓ name: N passed, N failed"), from each scenario's checks.json.
    # shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
    "$NODE22" -e '
        const fs = require("fs"), path = require("path");
        const [out, ...names] = process.argv.slice(1);
        console.log("\n=== SUITE SUMMARY (protocol) ===");
        for (const n of names) {
            const dir = path.dirname(path.join(out, n));
            const base = path.basename(n);
            const runs = fs.existsSync(dir) ? fs.readdirSync(dir).filter(d => d.startsWith(base + "-")).sort() : [];
            let checks = [];
            try { checks = JSON.parse(fs.readFileSync(path.join(dir, runs[runs.length - 1], "checks.json"), "utf8")); } catch {}
            const p = checks.filter(c => c.status === "SUCCESS").length;
            const f = checks.filter(c => c.status === "FAILURE").length;
            const w = checks.filter(c => c.status === "WARNING").length;
            console.log(`${f === 0 && w === 0 && p > 0 ? "✓" : "✗"} ${n}: ${p} passed, ${f} failed`);
        }' "$OUT" "${NAMES[@]}"
else
    timeout -k 10 "${CONFORMANCE_TOTAL_TIMEOUT:-600}" "$NODE22" "$CLI" "${ARGS[@]}"
    rc=$?
fi
set -e
[ "$rc" -ne 124 ] || say "the conformance CLI did not finish within ${CONFORMANCE_TOTAL_TIMEOUT:-600} s"

if [ "$rc" -ne 0 ]; then
    say "FAILED (exit $rc). Per-scenario checks and traces: ${OUT#"$ROOT"/}/*/{checks.json,stderr.txt}"
else
    say "OK: no unexpected failures (${SCENARIO:-suite $SUITE}, spec $SPEC_VERSION)"
fi
exit "$rc"
