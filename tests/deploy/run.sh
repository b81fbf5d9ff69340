#!/usr/bin/env bash
# The `deploy` step of scripts/test-all.sh: tests/deploy/static.sh, then tests/deploy/nginx.sh.
# Every check prints "ok - ..." / "not ok - ..." / "skip - ..."; exit 0 only if both passed.
set -uo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$DIR/static.sh" || exit $?
bash "$DIR/nginx.sh"
