#!/usr/bin/env bash
# A fleet of three relays behind nginx with a shared Redis, all on loopback
# (tests/deploy/cluster_check.py does the HTTP and drives the relays; docs/fleet.md).
#
#   1. needs nginx (Debian's nginx-light) and redis-server (Debian's redis-server), which
#      .ci/run installs in CI; without them the run is one "skip - ..." line outside CI and one
#      "not ok - ..." line in CI (CI=true)
#   2. free loopback ports for three relays (and their admin listeners), Redis and two nginx
#      servers; redis-server --save '' --appendonly no on one of them, started here
#   3. nginx with two servers derived from deploy/nginx/fleet.conf: `map` (the file as shipped:
#      each request to its session's owner) and `rr` (every location on the round-robin
#      upstream, so that the relays forward); `nginx -t` first. HAProxy with
#      deploy/haproxy/mcp-relay.cfg too when it is installed (.ci/run installs it)
#   4. cluster_check.py starts the relays (`mcp-relay serve --node rN --peer r0=... --peer r1=...
#      --peer r2=... --drain-window 3s --config ... -- mcp-relay-fixture`) and checks: 64
#      sessions through round-robin, every call answered on its owner, forwards counted; the
#      map variant and the HAProxy stick table with no forward; a rolling restart with the drain (no session of the
#      replicas that stay lost); one replica killed -9 (its sessions 404 within 2 s, the others
#      unaffected, new sessions work); then with per_principal 10/s and a concurrency cap of 4
#      in Redis: both hold across the fleet, and calls keep flowing once Redis is killed
#
# Every process is started here or by the checker and stopped by its pid; every wait is
# bounded (the checker runs under `timeout`). Output ends with "cluster: N passed, N failed".
# Exit 0 only if every check passed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source=tests/deploy/lib.sh
. "$ROOT/tests/deploy/lib.sh"
DRAIN_WINDOW=3

missing() { # missing WHAT: one skip line outside CI, one failure in CI
    if [ "${CI:-}" = true ]; then
        echo "not ok - a fleet of relays behind nginx with Redis ($1 is not installed; .ci/run installs it)"
        echo "cluster: 0 passed, 1 failed"
        exit 1
    fi
    echo "skip - a fleet of relays behind nginx with Redis ($1 is not installed: apt-get install $1)"
    echo "cluster: 0 passed, 0 failed, 1 skipped"
    exit 0
}
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || missing nginx-light
REDIS="$(command -v redis-server || echo /usr/bin/redis-server)"
[ -x "$REDIS" ] || missing redis-server

RELAY="$ROOT/target/debug/mcp-relay"
FIXTURE="$ROOT/target/debug/mcp-relay-fixture"
if [ ! -x "$RELAY" ] || [ ! -x "$FIXTURE" ]; then
    cargo build --bins || exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcp-relay-cluster.XXXXXX")"
REDIS_PID=""
NGINX_PID=""
HAPROXY_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    # Relays the checker left running (it stops them itself; this is for an interrupted run).
    if [ -s "$WORK/relays.pids" ]; then
        while read -r p; do
            [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
        done <"$WORK/relays.pids"
    fi
    for p in "$HAPROXY_PID" "$NGINX_PID" "$REDIS_PID"; do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Ten distinct free ports, held open together while they are chosen.
read -r P0 P1 P2 A0 A1 A2 PR PN PM PH < <(python3 - <<'PY'
import socket
socks = []
for _ in range(10):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)

# --- Redis --------------------------------------------------------------------------------------
"$REDIS" --port "$PR" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --logfile "$WORK/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!

# --- nginx: deploy/nginx/fleet.conf, plain HTTP on loopback, upstreams = the relays ----------------
SRC="$ROOT/deploy/nginx/fleet.conf"
sed -e "s|10\.0\.0\.10:8080|127.0.0.1:$P0|g" -e "s|10\.0\.0\.11:8080|127.0.0.1:$P1|g" \
    -e "s|10\.0\.0\.12:8080|127.0.0.1:$P2|g" -e '/^ *#/d' \
    -e "s|^\( *\)listen 443 ssl;|\1listen 127.0.0.1:$PM;|" -e '/listen \[::\]:443/d' -e '/^ *ssl_/d' \
    "$SRC" >"$WORK/map.conf"
# shellcheck disable=SC2016  # nginx variables, literally
# The round-robin server: the same server block on its own port, every location on relay_all.
awk '/^server \{/ { on = 1 } on { print } on && /^\}/ { on = 0 }' "$WORK/map.conf" |
    sed -e "s|listen 127.0.0.1:$PM;|listen 127.0.0.1:$PN;|" \
        -e 's|proxy_pass http://\$mcp_relay_pool;|proxy_pass http://relay_all;|' >"$WORK/rr.conf"
# shellcheck disable=SC2016  # nginx variables, literally
for want in "server 127.0.0.1:$P0 max_fails=1 fail_timeout=2s;" \
    "server 127.0.0.1:$P2 backup;" "listen 127.0.0.1:$PM;" 'proxy_pass http://$mcp_relay_pool;' \
    '"~^r1\." relay_r1;' "proxy_buffering off;"; do
    if ! grep -qF -- "$want" "$WORK/map.conf"; then
        echo "cluster: the derived config lacks '$want' (did deploy/nginx/fleet.conf change?)" >&2
        exit 1
    fi
done
if grep -qE '10\.0\.0\.|:443|ssl' "$WORK/map.conf" || ! grep -qF "listen 127.0.0.1:$PN;" "$WORK/rr.conf" ||
    grep -qF 'mcp_relay_pool;' "$WORK/rr.conf"; then
    echo "cluster: the derived nginx configs still have a production value or lack the round-robin server" >&2
    exit 1
fi
nginx_conf "$WORK" "$WORK/nginx-error.log warn" "$WORK/map.conf" "$WORK/rr.conf"
if ! "$NGINX" -t -q -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" 2>"$WORK/nginx-t.log"; then
    echo "not ok - nginx -t of the configs derived from deploy/nginx/fleet.conf"
    cat "$WORK/nginx-t.log"
    echo "cluster: 0 passed, 1 failed"
    exit 1
fi
echo "ok - nginx -t of the configs derived from deploy/nginx/fleet.conf (map and round-robin)"
"$NGINX" -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!

# --- HAProxy: deploy/haproxy/mcp-relay.cfg, plain HTTP on loopback, servers = the relays -------------
# Health checks every 250 ms instead of HAProxy's 2 s: the relays start after HAProxy.
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
if [ -x "$HAPROXY" ]; then
    sed -e "s|bind :443 ssl crt [^ ]* alpn http/1.1|bind 127.0.0.1:$PH|" \
        -e "s|10\.0\.0\.10:8080|127.0.0.1:$P0|" -e "s|10\.0\.0\.11:8080|127.0.0.1:$P1|" \
        -e "s|10\.0\.0\.12:8080|127.0.0.1:$P2|" -e 's| check$| check inter 250ms rise 1|' \
        "$ROOT/deploy/haproxy/mcp-relay.cfg" >"$WORK/haproxy.cfg"
    if ! grep -qF "bind 127.0.0.1:$PH" "$WORK/haproxy.cfg" || grep -qE '10\.0\.0\.|ssl crt' "$WORK/haproxy.cfg"; then
        echo "cluster: the derived HAProxy config lacks a substitution (did deploy/haproxy/mcp-relay.cfg change?)" >&2
        exit 1
    fi
    "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
else
    PH=0
fi

wait_port "$PR" || { echo "cluster: redis-server did not start" >&2; cat "$WORK/redis.log" >&2; exit 1; }
if ! wait_port "$PM" || ! wait_port "$PN"; then
    echo "cluster: nginx did not start" >&2; cat "$WORK/nginx-error.log" >&2; exit 1
fi
if [ "$PH" != 0 ] && ! wait_port "$PH"; then
    echo "cluster: haproxy did not start" >&2; cat "$WORK/haproxy.log" >&2; exit 1
fi

# --- the relays' configuration (the checker starts them) --------------------------------------------
"$RELAY" token secret >"$WORK/cluster-key"
# One principal, alice, with an API key (an anonymous caller has no concurrency cap).
"$RELAY" token key --id alice --principal alice >"$WORK/key.out"
API_KEY="$(head -n 1 "$WORK/key.out")"
{ sed -n '/^\[\[auth.api_keys\]\]/,$p' "$WORK/key.out"; echo; } >"$WORK/routing.toml"
cat >>"$WORK/routing.toml" <<TOML
[cluster.store]
url = "redis://127.0.0.1:$PR/0"
key_secret = "file:$WORK/cluster-key"
expected_nodes = 3
lease = "3s"
TOML
cat "$WORK/routing.toml" - >"$WORK/limits.toml" <<'TOML'

[limits]
per_principal = "10/s"
per_principal_burst = 10
max_concurrent_per_principal = 4
TOML
API_KEY="$API_KEY" python3 - "$WORK" "$RELAY" "$FIXTURE" "$DRAIN_WINDOW" "$REDIS_PID" "$PN" "$PM" "$PH" \
    "$P0" "$P1" "$P2" "$A0" "$A1" "$A2" >"$WORK/setup.json" <<'PY'
import json, os, sys
work, relay, fixture, window, redis_pid, rr, mp, hp = sys.argv[1:9]
ports, admins = sys.argv[9:12], sys.argv[12:15]
peers = [a for i, p in enumerate(ports) for a in ("--peer", f"r{i}=http://127.0.0.1:{p}")]
nodes = {}
for i, (p, a) in enumerate(zip(ports, admins)):
    nodes[f"r{i}"] = {
        "port": int(p), "admin": int(a), "log": f"{work}/r{i}.log",
        "argv": [relay, "serve", "--listen", f"127.0.0.1:{p}", "--admin-listen", f"127.0.0.1:{a}",
                 "--node", f"r{i}", *peers, "--drain-window", f"{window}s", "--config", "@CONFIG@",
                 "--", fixture],
    }
print(json.dumps({"nodes": nodes, "nginx_rr": int(rr), "nginx_map": int(mp), "haproxy": int(hp) or None,
                  "redis_pid": int(redis_pid), "api_key": os.environ["API_KEY"],
                  "drain_window": float(window), "config_routing": f"{work}/routing.toml",
                  "config_limits": f"{work}/limits.toml", "pid_file": f"{work}/relays.pids"}))
PY

rc=0
timeout 240 python3 "$ROOT/tests/deploy/cluster_check.py" "$WORK/setup.json" | tee "$WORK/check.out" || rc=$?
passed=$(( $(grep -c '^ok - ' "$WORK/check.out" || true) + 1 ))
failed=$(grep -c '^not ok - ' "$WORK/check.out" || true)
skipped=$(grep -c '^skip - ' "$WORK/check.out" || true)
if ! grep -q '^\[\[auth.api_keys\]\]' "$WORK/routing.toml" || [ "${#API_KEY}" -lt 32 ]; then
    echo "not ok - the API key from \`mcp-relay token key\` reached the configuration"; failed=$((failed + 1)); rc=1
fi
if [ "$rc" -ne 0 ]; then
    [ "$failed" -gt 0 ] || { failed=1; echo "not ok - cluster_check.py ended early (exit $rc)"; }
    for n in r0 r1 r2; do
        echo "--- relay $n log (tail, without the children's lines)"
        grep -v -e child_stderr -e "child exited" "$WORK/$n.log" 2>/dev/null | tail -n 12
    done
    echo "--- nginx error log (tail)"; tail -n 10 "$WORK/nginx-error.log"
fi
echo "cluster: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
