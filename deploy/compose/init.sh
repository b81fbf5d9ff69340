#!/usr/bin/env bash
# Creates what deploy/docker-compose.yml mounts, next to this script (never overwrites):
#   tls/cert.pem, tls/key.pem   self-signed development certificate (mcp-relay cert generate)
#   secrets/jwt-secret          HMAC secret for --jwt-secret (mcp-relay token secret)
#   secrets/probe-key           API key with no roles, sent by the image's HEALTHCHECK
#   relay.toml                  --config: the probe key's hash, roles, audit to stdout
# Production: use real certificate files and your own secrets; see docs/deployment.md.
#
# usage: init.sh [DIR]   (DIR defaults to this script's directory; MCP_RELAY=path of the binary)
set -euo pipefail
DIR="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
RELAY="${MCP_RELAY:-mcp-relay}"
# The image runs as uid/gid 65532 (distroless nonroot): the files must be readable by it.
UID_GID="${MCP_RELAY_UID_GID:-65532:65532}"
mkdir -p "$DIR/tls" "$DIR/secrets"

if [ ! -e "$DIR/tls/cert.pem" ]; then
    "$RELAY" cert generate --out-dir "$DIR/tls" --san localhost --san 127.0.0.1 --san mcp.example.com
fi
if [ ! -e "$DIR/secrets/jwt-secret" ]; then
    (umask 077 && "$RELAY" token secret >"$DIR/secrets/jwt-secret")
fi
if [ ! -e "$DIR/relay.toml" ] || [ ! -e "$DIR/secrets/probe-key" ]; then
    out="$("$RELAY" token key --id probe --principal probe)"
    (umask 077 && printf '%s\n' "$out" | head -n 1 | tr -d '\n' >"$DIR/secrets/probe-key")
    {
        echo '# mcp-relay --config for deploy/docker-compose.yml (written by compose/init.sh).'
        echo '# Add users with "mcp-relay token key --roles user" (append the printed block) or'
        echo '# mint JWTs with "mcp-relay token jwt --secret file:secrets/jwt-secret --audience'
        echo '# https://localhost:8443/mcp --user NAME --roles user".'
        echo
        echo '[roles]'
        echo 'file = "permissions.json"'
        echo
        echo '[audit]'
        echo 'file = "-"'
        echo
        echo '# The HEALTHCHECK key: no roles, so it can reach /ready and /health and nothing else.'
        printf '%s\n' "$out" | sed -n '/^\[\[auth.api_keys\]\]/,$p'
    } >"$DIR/relay.toml"
fi
if [ "$(id -u)" -eq 0 ]; then
    chown -R "$UID_GID" "$DIR/tls" "$DIR/secrets"
else
    echo "init.sh: not root; make $DIR/tls and $DIR/secrets readable by uid ${UID_GID%%:*} (sudo chown -R $UID_GID ...)" >&2
fi
echo "init.sh: ready in $DIR"
