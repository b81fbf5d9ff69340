#!/usr/bin/env bash
# Run the official MCP conformance suite (server mode, pinned @modelcontextprotocol/conformance
# from tests/interop/package-lock.json) against
#
#   mcp-relay serve --listen 127.0.0.1:0 --sse-close-after 1s -- mcp-relay-fixture conformance --era dual
#
# (`--era ERA` with CONFORMANCE_FIXTURE_ERA=ERA: `legacy` is a 2025-11-25-only server that serves
# the 2026-07-28 names with server->client requests, `modern` a 2026-07-28-only one),
# or, with CONFORMANCE_SERVERS=1, against the per-server path /servers/conf/mcp of a relay with
# two named servers (`[servers.conf]`: that same fixture command; `[servers.echo]`: the fixture
# in echo mode), started as `mcp-relay serve --listen 127.0.0.1:0 --sse-close-after 1s --config
# FILE`. The baselines are the same: a per-server path must answer as a single-server relay.
#
# Usage: tests/conformance/run.sh [--spec-version 2025-11-25] [--scenario NAME] [-- extra CLI args]
#
#   --spec-version V   spec version to test (default 2025-11-25). The baseline is
#                      tests/conformance/baseline.yml for 2025-11-25 and
#                      tests/conformance/baseline-V.yml for any other version.
#   --scenario NAME    run one scenario instead of --suite all
#
# Environment: MCP_RELAY_BIN, MCP_RELAY_FIXTURE_BIN (default target/debug/...),
#              CONFORMANCE_TIMEOUT_MS (per-scenario timeout, default 30000),
#              CONFORMANCE_TOTAL_TIMEOUT (whole CLI run, seconds, default 600),
#              SSE_CLOSE_AFTER (default 1s),
#              RELAY_EXTRA_ARGS (more `serve` flags, space-separated, e.g. "--session-mode shared"),
#              CONFORMANCE_FIXTURE_ERA (`dual` by default, `legacy` or `modern`: the fixture's
#              --era; when not dual it joins the results label, e.g. conformance-2026-07-28-legacy
#              or, with CONFORMANCE_LABEL=shared, conformance-2026-07-28-legacy-shared),
#              CONFORMANCE_LABEL (suffix of the results directory, e.g. "shared"; "servers" by
#              default with CONFORMANCE_SERVERS=1),
#              CONFORMANCE_SERVERS=1 (the multi-server relay above; its config is written to
#              results/conformance-V-LABEL.relay.toml).
# Needs: cargo build done; scripts/setup-node-tools.sh (it is run here if node_modules is missing).
# Results: results/conformance-LABEL/ (checks.json per scenario), relay log
# results/conformance-LABEL.relay.log; LABEL is V[-ERA][-CONFORMANCE_LABEL].
# Exit status: the conformance CLI's (non-zero on unexpected failures or stale baseline entries).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib-node.sh
source "$ROOT/scripts/lib-node.sh"

SPEC_VERSION=2025-11-25
SCENARIO=""
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --spec-version) SPEC_VERSION="$2"; shift 2 ;;
        --spec-version=*) SPEC_VERSION="${1#*=}"; shift ;;
        --scenario) SCENARIO="$2"; shift 2 ;;
        --scenario=*) SCENARIO="${1#*=}"; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

RELAY="${MCP_RELAY_BIN:-$ROOT/target/debug/mcp-relay}"
FIXTURE="${MCP_RELAY_FIXTURE_BIN:-$ROOT/target/debug/mcp-relay-fixture}"
SSE_CLOSE_AFTER="${SSE_CLOSE_AFTER:-1s}"
if [ "$SPEC_VERSION" = 2025-11-25 ]; then
    BASELINE="$ROOT/tests/conformance/baseline.yml"
else
    BASELINE="$ROOT/tests/conformance/baseline-$SPEC_VERSION.yml"
fi
ERA="${CONFORMANCE_FIXTURE_ERA:-dual}"
case "$ERA" in
    dual) ERA_TAG="" ;;
    legacy|modern) ERA_TAG="-$ERA" ;;
    *) echo "run.sh: CONFORMANCE_FIXTURE_ERA must be dual, legacy or modern (got $ERA)" >&2; exit 2 ;;
esac
SERVERS="${CONFORMANCE_SERVERS:-}"
[ "$SERVERS" != 0 ] || SERVERS=""
if [ -n "$SERVERS" ]; then
    LABEL="$SPEC_VERSION$ERA_TAG-${CONFORMANCE_LABEL:-servers}"
else
    LABEL="$SPEC_VERSION$ERA_TAG${CONFORMANCE_LABEL:+-$CONFORMANCE_LABEL}"
fi
OUT="$ROOT/results/conformance-$LABEL"
RELAY_LOG="$ROOT/results/conformance-$LABEL.relay.log"
RELAY_CONFIG="$ROOT/results/conformance-$LABEL.relay.toml"
CLI="$ROOT/tests/interop/node_modules/@modelcontextprotocol/conformance/dist/index.js"

say() { printf 'conformance: %s\n' "$*" >&2; }

for bin in "$RELAY" "$FIXTURE"; do
    [ -x "$bin" ] || { say "missing $bin (run cargo build first)"; exit 1; }
done
[ -f "$BASELINE" ] || { say "missing baseline $BASELINE"; exit 1; }
if [ ! -f "$CLI" ] || ! find_node22 >/dev/null; then
    "$ROOT/scripts/setup-node-tools.sh" >/dev/null
fi
NODE22="$(find_node22)" || { say "no Node >= 22 runtime (run scripts/setup-node-tools.sh)"; exit 1; }

mkdir -p "$ROOT/results"
rm -rf "$OUT"

RELAY_PID=""
cleanup() {
    local rc=$?
    if [ -n "$RELAY_PID" ] && kill -0 "$RELAY_PID" 2>/dev/null; then
        # The relay runs in its own process group (setsid): TERM the group, then KILL it.
        kill -TERM -- "-$RELAY_PID" 2>/dev/null || kill -TERM "$RELAY_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$RELAY_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$RELAY_PID" 2>/dev/null || true
        wait "$RELAY_PID" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A TOML basic string (the paths are ours: no quote, backslash or control character in them).
toml_str() { printf '"%s"' "$1"; }

# shellcheck disable=SC2206 # word splitting of the extra flags is intended
RELAY_ARGS=(serve --listen 127.0.0.1:0 --sse-close-after "$SSE_CLOSE_AFTER" ${RELAY_EXTRA_ARGS:-})
if [ -n "$SERVERS" ]; then
    # The server under test, then a second one of another kind, so the relay is multi-server.
    {
        printf '[servers.conf]\ncommand = [%s, "conformance", "--era", "%s"]\n\n' "$(toml_str "$FIXTURE")" "$ERA"
        printf '[servers.echo]\ncommand = [%s, "echo"]\n' "$(toml_str "$FIXTURE")"
    } >"$RELAY_CONFIG"
    RELAY_ARGS+=(--config "$RELAY_CONFIG")
    SERVED_PATH=/servers/conf/mcp
else
    RELAY_ARGS+=(-- "$FIXTURE" conformance --era "$ERA")
    SERVED_PATH=""
fi
say "starting: $RELAY ${RELAY_ARGS[*]}"
[ -z "$SERVERS" ] || say "config ${RELAY_CONFIG#"$ROOT"/}: $(tr '\n' ' ' <"$RELAY_CONFIG")"
printf '$ %s %s\n' "$RELAY" "${RELAY_ARGS[*]}" >"$RELAY_LOG"
NO_COLOR=1 setsid "$RELAY" "${RELAY_ARGS[@]}" </dev/null >>"$RELAY_LOG" 2>&1 &
RELAY_PID=$!

URL=""
for _ in $(seq 1 200); do
    # strip ANSI colour codes, find the `listening ... url=http://HOST:PORT/mcp` line
    URL="$(sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' "$RELAY_LOG" \
        | grep -i 'listening' | grep -o 'url="\?http://[^[:space:]",]*' | head -n1 \
        | sed -e 's/^url="\?//')" || true
    [ -n "$URL" ] && break
    if ! kill -0 "$RELAY_PID" 2>/dev/null; then
        say "the relay exited before listening; its log:"
        cat "$RELAY_LOG" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$URL" ]; then
    say "the relay did not log 'listening ... url=http://...' within 20 s; its log:"
    cat "$RELAY_LOG" >&2
    exit 1
fi
# The multi-server relay logs its main path (the aggregate): test the per-server path instead.
if [ -n "$SERVED_PATH" ]; then
    URL="$(printf '%s' "$URL" | sed -E "s#^(http://[^/]+)/.*#\1$SERVED_PATH#")"
fi
# Use the host name localhost: dns-rebinding-protection only tests localhost-style URLs.
URL="$(printf '%s' "$URL" | sed -E 's#^http://(127\.0\.0\.1|\[::1\])(:[0-9]+)#http://localhost\2#')"
say "relay (pid $RELAY_PID) at $URL; log: ${RELAY_LOG#"$ROOT"/}"

ARGS=(server --url "$URL" --spec-version "$SPEC_VERSION" -o "$OUT" --expected-failures "$BASELINE"
      --timeout "${CONFORMANCE_TIMEOUT_MS:-30000}")
if [ -n "$SCENARIO" ]; then
    ARGS+=(--scenario "$SCENARIO")
else
    ARGS+=(--suite all)
fi
ARGS+=("${EXTRA[@]}")
say "running: $("$NODE22" --version) conformance@$("$NODE22" -p "require('$ROOT/tests/interop/node_modules/@modelcontextprotocol/conformance/package.json').version") ${ARGS[*]}"

set +e
# Bound the whole run (33 scenarios take ~6 s; each has its own 30 s limit).
timeout -k 10 "${CONFORMANCE_TOTAL_TIMEOUT:-600}" "$NODE22" "$CLI" "${ARGS[@]}"
rc=$?
set -e
[ "$rc" -ne 124 ] || say "the conformance CLI did not finish within ${CONFORMANCE_TOTAL_TIMEOUT:-600} s"

if ! kill -0 "$RELAY_PID" 2>/dev/null; then
    say "the relay died during the run; last lines of its log:"
    tail -n 40 "$RELAY_LOG" >&2
    [ "$rc" -ne 0 ] || rc=1
fi
if [ "$rc" -ne 0 ]; then
    say "FAILED (exit $rc). Per-scenario checks: ${OUT#"$ROOT"/}/*/checks.json; relay log: ${RELAY_LOG#"$ROOT"/}"
else
    say "OK: no unexpected failures for spec $SPEC_VERSION"
fi
exit "$rc"
