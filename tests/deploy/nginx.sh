#!/usr/bin/env bash
# deploy/nginx/mcp-relay.conf in front of a real relay (tests/deploy/sse_check.py does the HTTP).
#
#   1. needs nginx (Debian's nginx-light, which .ci/run installs in CI); without it the run is
#      one "skip - ..." line outside CI and one "not ok - ..." line in CI (CI=true)
#   2. builds a test config from deploy/nginx/mcp-relay.conf: listen on a free loopback port,
#      certificate from `mcp-relay cert generate`, upstream = the relay's port,
#      proxy_read_timeout 5s; plus a control copy that buffers (proxy_ignore_headers
#      X-Accel-Buffering + proxy_buffering on) so the measurement is shown to catch buffering
#   3. `nginx -t`, then nginx in the foreground in front of
#      `mcp-relay serve --sse-keep-alive 1s -- target/debug/mcp-relay-fixture`
#   4. checks: (a) progress events of one tools/call arrive one by one, (b) an idle GET stream
#      outlives proxy_read_timeout thanks to keep-alive comments, (c) initialize / tools/list /
#      tools/call / 413 / DELETE / 404 end to end through nginx
#
# Output ends with "deploy-nginx: N passed, N failed". Exit 0 only if every check passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=tests/deploy/lib.sh
. "$ROOT/tests/deploy/lib.sh"
HOST=mcp.example.com
READ_TIMEOUT=5

# nginx comes from Debian (nginx-light); this script installs nothing (.ci/run does in CI).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "${CI:-}" = true ]; then
        echo "not ok - nginx in front of the relay (nginx is not installed; .ci/run installs nginx-light)"
        echo "deploy-nginx: 0 passed, 1 failed"
        exit 1
    fi
    echo "skip - nginx in front of the relay (nginx is not installed: apt-get install nginx-light)"
    echo "deploy-nginx: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
"$NGINX" -v

RELAY="$ROOT/target/debug/mcp-relay"
FIXTURE="$ROOT/target/debug/mcp-relay-fixture"
if [ ! -x "$RELAY" ] || [ ! -x "$FIXTURE" ]; then
    cargo build --bins
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcp-relay-nginx.XXXXXX")"
RELAY_PID=""
NGINX_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
    if [ -n "$RELAY_PID" ]; then kill "$RELAY_PID" 2>/dev/null || true; wait "$RELAY_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

RELAY_PORT="$(free_port)"
PORT="$(free_port)"
CONTROL_PORT="$(free_port)"
while [ "$CONTROL_PORT" = "$PORT" ] || [ "$PORT" = "$RELAY_PORT" ] || [ "$CONTROL_PORT" = "$RELAY_PORT" ]; do
    PORT="$(free_port)"; CONTROL_PORT="$(free_port)"
done

"$RELAY" cert generate --out-dir "$WORK/tls" --san "$HOST" --san 127.0.0.1 >/dev/null 2>&1

# --- the test config, derived from the shipped one ------------------------------------------------
# Only the HTTPS server block (everything before the plain-HTTP redirect), with its address, port,
# certificate and upstream replaced. Every substitution is checked, so an edit of the shipped file
# that breaks the derivation fails here instead of testing something else.
SRC="$ROOT/deploy/nginx/mcp-relay.conf"
awk '/^# Plain HTTP/ { exit } { print }' "$SRC" |
    sed -e "s|^\( *\)listen 443 ssl;|\1listen 127.0.0.1:$PORT ssl;|" \
        -e '/listen \[::\]:443/d' \
        -e "s|ssl_certificate  *[^;]*;|ssl_certificate $WORK/tls/cert.pem;|" \
        -e "s|ssl_certificate_key  *[^;]*;|ssl_certificate_key $WORK/tls/key.pem;|" \
        -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$RELAY_PORT;|" \
        -e "s|proxy_read_timeout  *[0-9]*s;|proxy_read_timeout ${READ_TIMEOUT}s;|" \
        >"$WORK/mcp-relay.conf"
for want in "listen 127.0.0.1:$PORT ssl;" "ssl_certificate $WORK/tls/cert.pem;" \
    "ssl_certificate_key $WORK/tls/key.pem;" "server 127.0.0.1:$RELAY_PORT;" \
    "proxy_read_timeout ${READ_TIMEOUT}s;" "proxy_buffering off;" "proxy_http_version 1.1;" \
    "X-Forwarded-For" "server_name $HOST;"; do
    if ! grep -qF -- "$want" "$WORK/mcp-relay.conf"; then
        echo "deploy-nginx: the derived config lacks '$want' (did deploy/nginx/mcp-relay.conf change?)" >&2
        exit 1
    fi
done
if grep -qE '443|/etc/ssl|:8080;|proxy_read_timeout 3600s' "$WORK/mcp-relay.conf"; then
    echo "deploy-nginx: the derived config still has a production value:" >&2
    grep -nE '443|/etc/ssl|:8080;|proxy_read_timeout 3600s' "$WORK/mcp-relay.conf" >&2
    exit 1
fi
# The control: the same server, buffering forced on (what a careless proxy does).
sed -e "s|listen 127.0.0.1:$PORT ssl;|listen 127.0.0.1:$CONTROL_PORT ssl;|" \
    -e 's|proxy_buffering off;|proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;|' \
    -e '/^map /,/^}/d' -e '/^upstream /,/^}/d' \
    "$WORK/mcp-relay.conf" >"$WORK/control.conf"

nginx_conf "$WORK" "$WORK/error.log info" "$WORK/mcp-relay.conf" "$WORK/control.conf"

echo "# nginx -t"
"$NGINX" -t -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf"

# --- relay and nginx ------------------------------------------------------------------------------
"$RELAY" serve --listen "127.0.0.1:$RELAY_PORT" --allowed-host "$HOST" --sse-keep-alive 1s \
    -- "$FIXTURE" >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
"$NGINX" -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!

wait_port "$RELAY_PORT" || { echo "deploy-nginx: relay did not start" >&2; cat "$WORK/relay.log" >&2; exit 1; }
wait_port "$PORT" || { echo "deploy-nginx: nginx did not start" >&2; cat "$WORK/error.log" >&2; exit 1; }
wait_port "$CONTROL_PORT" || { echo "deploy-nginx: nginx (control) did not start" >&2; exit 1; }

rc=0
python3 "$ROOT/tests/deploy/sse_check.py" "$PORT" "$CONTROL_PORT" "$WORK/tls/cert.pem" "$HOST" "$READ_TIMEOUT" \
    | tee "$WORK/check.out" || rc=$?
passed=$(grep -c '^ok - ' "$WORK/check.out" || true)
failed=$(grep -c '^not ok - ' "$WORK/check.out" || true)
if [ "$rc" -ne 0 ]; then
    [ "$failed" -gt 0 ] || failed=1
    echo "--- relay log (tail)"; tail -n 30 "$WORK/relay.log"
    echo "--- nginx error log (tail)"; tail -n 30 "$WORK/error.log"
fi
echo "deploy-nginx: $passed passed, $failed failed"
exit "$rc"
