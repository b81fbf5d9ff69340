"""Static checks of the fleet material in deploy/ (docs/fleet.md), used by static_check.py.

check_k8s: the StatefulSet as a fleet ([cluster] from the pod name, peers through the headless
Service, a grace period that covers the drain), the Gateway API route, the NetworkPolicy and
the PodDisruptionBudget. check_balancers: the nginx, HAProxy and Envoy examples' structure
(tests/deploy/static.sh runs `nginx -t` and `haproxy -c` on them; tests/deploy/cluster.sh runs
the nginx one for real).
"""

import re


def seconds(text):
    """'120s' / '2m' / '1h' -> seconds (the forms the examples use)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text or "").strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def check_k8s(check, by_kind, spec, container, toml):
    pod = spec.get("template", {}).get("spec", {})
    cluster = toml.get("cluster", {})
    env = {e.get("name"): e for e in container.get("env", [])}
    node = str(cluster.get("node", ""))
    field = env.get(node[4:], {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") if node.startswith("env:") else None
    check(field == "metadata.name", f"[cluster] node is the pod name ({node} <- {field})")
    peer_url = str(cluster.get("peer_url", ""))
    check(peer_url.startswith("http://{node}." + str(spec.get("serviceName")) + ":"),
          f"[cluster] peer_url resolves through the headless Service ({peer_url})")
    check(not cluster.get("peers"), "[cluster] has no static peers in Kubernetes (the template names every pod)")
    drain = seconds(cluster.get("drain_window", "120s"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(drain is not None and grace >= drain + 40,
          f"terminationGracePeriodSeconds {grace} >= drain_window {drain} + 40 (shutdown grace and child stop)")
    hosts = [a.split("=", 1)[1] for a in container.get("args", []) if str(a).startswith("--allowed-host=")]
    check(not any(str(spec.get("serviceName")) in h for h in hosts),
          "no peer name among the allowed hosts (a forwarded request keeps the client's Host)")
    check(spec.get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
          and not spec.get("updateStrategy", {}).get("rollingUpdate", {}).get("maxUnavailable"),
          "StatefulSet rolls one pod at a time")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    check(len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1,
          "a PodDisruptionBudget lets one pod go at a time")

    gws = by_kind.get("Gateway", [])
    routes = by_kind.get("HTTPRoute", [])
    check(len(gws) == 1 and gws[0]["apiVersion"] == "gateway.networking.k8s.io/v1",
          "one Gateway (gateway.networking.k8s.io/v1)")
    gw = gws[0] if gws else {}
    listeners = gw.get("spec", {}).get("listeners", [])
    check(any(x.get("protocol") == "HTTPS" and x.get("tls", {}).get("certificateRefs") for x in listeners),
          "the Gateway terminates TLS with a certificate Secret it references (not shipped)")
    route = routes[0] if routes else {}
    rs = route.get("spec", {})
    check(any(p.get("name") == gw.get("metadata", {}).get("name") for p in rs.get("parentRefs", [])),
          "the HTTPRoute attaches to the Gateway")
    paths, backends, stream_timeout = set(), set(), True
    for rule in rs.get("rules", []):
        ps = {m.get("path", {}).get("value") for m in rule.get("matches", [])}
        paths |= ps
        backends |= {(b.get("name"), b.get("port")) for b in rule.get("backendRefs", [])}
        if ps & {"/mcp", "/sse"}:
            stream_timeout = stream_timeout and str(rule.get("timeouts", {}).get("request")) == "0s"
    want_paths = {"/mcp", "/ws", "/sse", "/message", "/.well-known/oauth-protected-resource"}
    check(want_paths <= paths, f"HTTPRoute routes every front ({sorted(want_paths - paths) or 'all'})")
    check(backends == {("mcp-relay", 80)}, f"HTTPRoute sends everything to the client Service ({sorted(backends)})")
    check(stream_timeout, "HTTPRoute sets no request timeout on the streaming paths (0s)")

    nps = by_kind.get("NetworkPolicy", [])
    np = nps[0]["spec"] if nps else {}
    froms = [f for rule in np.get("ingress", []) for f in rule.get("from", [])]
    ports = {p.get("port") for rule in np.get("ingress", []) for p in rule.get("ports", [])}
    check(np.get("podSelector", {}).get("matchLabels") == spec.get("selector", {}).get("matchLabels")
          and np.get("policyTypes") == ["Ingress"],
          "a NetworkPolicy guards the relay pods' ingress")
    check(any(f.get("podSelector", {}).get("matchLabels") == spec.get("selector", {}).get("matchLabels") for f in froms)
          and ports == {"http"},
          "the NetworkPolicy lets the relay pods reach each other's http port (forwarding), nothing else")


def check_balancers(check, read, yaml):
    fleet = read("deploy/nginx/fleet.conf")
    nodes = re.findall(r'"~\^(\w[\w-]*)\\\\?\.\"\s+(relay_\w+);', fleet)
    check(len(nodes) == 3 and all(pool == f"relay_{n}" for n, pool in nodes),
          f"nginx fleet.conf maps the session id's node prefix to its owner's upstream ({nodes})")
    check("$http_mcp_session_id$arg_sessionid" in fleet, "nginx fleet.conf reads Mcp-Session-Id and legacy ?sessionId=")
    for n, _ in nodes:
        block = re.search(r"upstream relay_" + n + r" \{(.*?)\}", fleet, re.S)
        body = block.group(1) if block else ""
        check(body.count(" backup;") == 2 and "max_fails=" in body,
              f"nginx upstream relay_{n}: the owner, then the two others as backups")
    check("proxy_buffering off;" in fleet and "proxy_read_timeout 3600s;" in fleet and "proxy_set_header Host" in fleet,
          "nginx fleet.conf keeps SSE streaming (buffering off, long read timeout) and the Host")

    hap = read("deploy/haproxy/mcp-relay.cfg")
    for d in ("stick store-response res.hdr(mcp-session-id)", "stick match req.hdr(mcp-session-id)",
              "option redispatch", "retry-on conn-failure", "timeout server 1h", "timeout tunnel 1h"):
        check(d in hap, f"haproxy cfg has `{d}`")

    env = yaml.safe_load(read("deploy/envoy/envoy.yaml"))
    hcm = env["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = [f["name"] for f in hcm.get("http_filters", [])]
    check(filters == ["envoy.filters.http.stateful_session", "envoy.filters.http.router"],
          f"envoy: the stateful session filter runs before the router ({filters})")
    ss = hcm["http_filters"][0]["typed_config"]
    state = ss.get("session_state", {})
    check(state.get("name") == "envoy.http.stateful_session.envelope"
          and state.get("typed_config", {}).get("header", {}).get("name") == "mcp-session-id",
          "envoy: envelope session state on the mcp-session-id header")
    check(ss.get("strict") is False, "envoy: not strict (a dead owner falls back to a replica, which answers 404)")
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    check(all(r["route"].get("timeout") == "0s" for r in routes if r["match"].get("path") in ("/mcp", "/sse")),
          "envoy: no route timeout on the streaming paths")
