#!/usr/bin/env bash
# The `deploy` step of scripts/test-all.sh: tests/deploy/static.sh, then tests/deploy/nginx.sh
# and tests/deploy/cluster.sh (a fleet of three relays behind nginx with Redis).
# Every check prints "ok - ..." / "not ok - ..." / "skip - ..."; exit 0 only if all passed.
set -uo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$DIR/static.sh" || exit $?
rc=0
bash "$DIR/nginx.sh" || rc=$?
bash "$DIR/cluster.sh" || rc=$?
exit "$rc"
