#!/usr/bin/env python3
"""Static checks of deploy/ (run by tests/deploy/static.sh; PyYAML if present, else a fallback).

usage: static_check.py ROOT OUTDIR

Prints "ok - ..." / "not ok - ..." lines. Writes OUTDIR/k8s-args.json and OUTDIR/compose-args.json
(the relay's arguments from the StatefulSet and the compose service, plus the probe URLs) so
static.sh can start the relay with them.
"""

import json
import os
import re
import sys
import tomllib

import fleet_static  # the fleet's manifests and load balancer examples (beside this file)

ROOT, OUT = sys.argv[1], sys.argv[2]
FAILURES = []

try:
    import yaml  # PyYAML
except ImportError:  # pragma: no cover - fresh machines have it through pip; see static.sh
    yaml = None


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


# --- Dockerfile ------------------------------------------------------------------------------------
def dockerfile_instructions(text):
    """(INSTRUCTION, args) with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


df = dockerfile_instructions(read("deploy/Dockerfile"))
args = {}
for ins, rest in df:
    if ins == "ARG" and "=" in rest:
        k, v = rest.split("=", 1)
        args[k] = v
stages = []  # [image, name, [instructions]]
for ins, rest in df:
    if ins == "FROM":
        parts = rest.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
        name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
        stages.append([image, name, []])
    elif stages:
        stages[-1][2].append((ins, rest))
names = {s[1]: s for s in stages if s[1]}


def base_of(stage):
    """The external image a stage finally builds on."""
    while stage[0] in names:
        stage = names[stage[0]]
    return stage[0]


check(len(stages) >= 2, f"Dockerfile is multi-stage ({len(stages)} stages)")
build = [s for s in stages if s[0].startswith("rust:")]
check(bool(build), "Dockerfile builds with the official rust image")
check(
    any("cargo build --profile dist" in r for s in build for i, r in s[2] if i == "RUN"),
    "Dockerfile runs cargo build --profile dist in the rust stage",
)
runtime = names.get("runtime")
check(runtime is not None, "Dockerfile has a `runtime` stage")
if runtime:
    check(
        runtime[0].startswith("gcr.io/distroless/static") or runtime[0] == "scratch",
        f"runtime stage is distroless/static or scratch ({runtime[0]})",
    )
for stage in (s for s in stages if s[1] in ("runtime", "demo") or s is stages[-1]):
    # USER of this stage or of the stage it is built FROM
    chain, s = [], stage
    while True:
        chain.append(s)
        if s[0] in names:
            s = names[s[0]]
        else:
            break
    users = [r for st in reversed(chain) for i, r in st[2] if i == "USER"]
    user = users[-1] if users else None
    non_root = user is not None and user.split(":")[0] not in ("root", "0")
    check(non_root, f"stage {stage[1]} runs as a non-root USER ({user})")
    hcs = [r for st in chain for i, r in st[2] if i == "HEALTHCHECK"]
    check(bool(hcs) and "CMD" in hcs[-1] and "NONE" not in hcs[-1].split()[:1],
          f"stage {stage[1]} has a HEALTHCHECK CMD")
    check(base_of(stage).startswith("gcr.io/distroless/static"), f"stage {stage[1]} is distroless/static-based")
last = stages[-1]
copies = [r for i, r in runtime[2] if i == "COPY"] if runtime else []
check(any("/usr/local/bin/mcp-relay" in c and "--from=build" in c for c in copies),
      "runtime stage copies the built mcp-relay binary")
ep = [r for i, r in runtime[2] if i == "ENTRYPOINT"] if runtime else []
check(bool(ep) and json.loads(ep[-1]) == ["/usr/local/bin/mcp-relay"], "ENTRYPOINT is the relay (exec form)")
check("healthcheck" not in read("deploy/Dockerfile").lower() or "/ready" in read("deploy/Dockerfile"),
      "HEALTHCHECK probes /ready")
ignore = read("deploy/Dockerfile.dockerignore").split()
check("*" in ignore and "!src/" in ignore and "!target/" not in ignore,
      "deploy/Dockerfile.dockerignore keeps target/ out of the build context")


# --- YAML loading ---------------------------------------------------------------------------------
def load_all(rel):
    text = read(rel)
    if yaml is not None:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    return None


if yaml is None:
    check(False, "PyYAML is available (static.sh installs it with pip)")
    sys.exit(1)

# --- docker-compose -------------------------------------------------------------------------------
compose = load_all("deploy/docker-compose.yml")
check(len(compose) == 1 and isinstance(compose[0], dict), "docker-compose.yml parses as one YAML document")
compose = compose[0]
relay = compose.get("services", {}).get("relay", {})
check(relay.get("build", {}).get("dockerfile") == "deploy/Dockerfile", "compose builds deploy/Dockerfile")
cmd = [str(c) for c in relay.get("command", [])]
flags = dict(c[2:].split("=", 1) for c in cmd if c.startswith("--") and "=" in c)
mounts = []
for v in relay.get("volumes", []):
    src, dst = v.split(":")[:2]
    mounts.append((src, dst))
secrets = {s: compose.get("secrets", {}).get(s, {}).get("file") for s in relay.get("secrets", [])}


def host_path(container_path):
    """The compose-relative host path of a file the container sees, or None."""
    for src, dst in mounts:
        if container_path.startswith(dst.rstrip("/") + "/"):
            return os.path.join(src, container_path[len(dst.rstrip("/")) + 1:])
        if container_path == dst:
            return src
    m = re.match(r"^/run/secrets/([^/]+)$", container_path)
    if m and m.group(1) in secrets:
        return secrets[m.group(1)]
    return None


check("tls-cert" in flags and "tls-key" in flags, "compose relay serves TLS (--tls-cert/--tls-key)")
for f in ("tls-cert", "tls-key", "config"):
    check(host_path(flags.get(f, "")) is not None, f"compose --{f} {flags.get(f)} comes from a mount")
jwt = flags.get("jwt-secret", "")
check(jwt.startswith("file:") and host_path(jwt[5:]) is not None, f"compose --jwt-secret {jwt} is a mounted secret")
check(relay.get("read_only") is True and "ALL" in relay.get("cap_drop", []), "compose: read-only rootfs, no capabilities")
check("--" in cmd and len(cmd) > cmd.index("--") + 1, "compose wraps an example server after --")
env = relay.get("environment", {})
probe_url = env.get("MCP_RELAY_PROBE_URL", "")
check(probe_url.startswith("https://127.0.0.1:") and "127.0.0.1" in [c.split("=", 1)[1] for c in cmd if c.startswith("--allowed-host=")],
      "compose: the HEALTHCHECK URL is https on loopback and 127.0.0.1 is an allowed host")
check("mcp-relay-probe-key" in secrets, "compose: the probe key is a secret (/run/secrets/mcp-relay-probe-key)")
with open(os.path.join(OUT, "compose-args.json"), "w") as f:
    json.dump({"command": cmd, "host_paths": {f: host_path(flags[f]) for f in ("tls-cert", "tls-key", "config")},
               "jwt_secret": host_path(jwt[5:]) if jwt.startswith("file:") else None,
               "probe_url": probe_url}, f)

# --- Kubernetes -----------------------------------------------------------------------------------
docs = []
k8s_dir = os.path.join(ROOT, "deploy/k8s")
for name in sorted(os.listdir(k8s_dir)):
    if name.endswith(".yaml") and name != "kustomization.yaml":
        try:
            got = load_all(f"deploy/k8s/{name}")
            check(all(isinstance(d, dict) and "kind" in d and "apiVersion" in d for d in got),
                  f"k8s/{name} parses ({', '.join(d['kind'] for d in got)})")
            docs += got
        except yaml.YAMLError as e:
            check(False, f"k8s/{name} parses: {e}")
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
kust = (load_all("deploy/k8s/kustomization.yaml") or [{}])[0]
listed = kust.get("resources", [])
check(sorted(listed) == sorted(n for n in os.listdir(k8s_dir) if n.endswith(".yaml") and n != "kustomization.yaml"),
      f"kustomization lists every manifest ({', '.join(listed)})")
# Issue 14, bug 3: `kubectl apply -k` must neither deploy a secret value nor replace a Secret
# the operator created first.
check("Secret" not in by_kind, "k8s: no Secret manifest (the operator creates mcp-relay-secrets)")
check(not kust.get("secretGenerator") and not kust.get("generatorOptions"),
      "kustomization generates no Secret (it would ship or replace a value)")
check("Deployment" not in by_kind and "Ingress" not in by_kind,
      "k8s: a StatefulSet and the Gateway API, no Deployment or Ingress (ingress-nginx is retired)")
dep = (by_kind.get("StatefulSet") or [{}])[0]
spec = dep.get("spec", {})
check(spec.get("replicas") == 3, f"StatefulSet has replicas: 3 ({spec.get('replicas')})")
pod = spec.get("template", {}).get("spec", {})
c = (pod.get("containers") or [{}])[0]
live, ready = c.get("livenessProbe", {}), c.get("readinessProbe", {})
kargs = [str(a) for a in c.get("args", [])]
kflags = [a for a in kargs if a.startswith("--")]
admin = next((a.split("=", 1)[1] for a in kflags if a.startswith("--admin-listen=")), "")
check(admin.startswith("127.0.0.1:"), f"StatefulSet serves the probes on a loopback --admin-listen ({admin})")


def probe_url(p):
    cmd = p.get("exec", {}).get("command", [])
    return cmd[-1] if cmd and cmd[0].endswith("busybox") and "wget" in cmd else ""


check(probe_url(live) == f"http://{admin}/health", f"livenessProbe GETs /health on the admin listener ({probe_url(live)})")
check(probe_url(ready) == f"http://{admin}/ready", f"readinessProbe GETs /ready on the admin listener ({probe_url(ready)})")
check(not any("httpHeaders" in p.get("httpGet", {}) for p in (live, ready)),
      "probes carry no credential (nothing for whoever reads the StatefulSet)")
sc = c.get("securityContext", {})
check(pod.get("securityContext", {}).get("runAsNonRoot") is True and sc.get("allowPrivilegeEscalation") is False
      and sc.get("readOnlyRootFilesystem") is True, "pod runs non-root, read-only, no privilege escalation")
check(any(a.startswith("--config=") for a in kflags), "StatefulSet passes --config")
services = {s.get("metadata", {}).get("name"): s.get("spec", {}) for s in by_kind.get("Service", [])}
svc = services.get("mcp-relay", {})
labels = spec.get("template", {}).get("metadata", {}).get("labels", {})


def selects(s):
    return bool(s.get("selector")) and all(labels.get(k) == v for k, v in s.get("selector", {}).items())


check(selects(svc), "the client Service mcp-relay selects the StatefulSet's pods")
check(svc.get("sessionAffinity") == "ClientIP", "client Service has session affinity (ClientIP, saves a hop)")
peers = services.get(spec.get("serviceName"), {})
check(spec.get("serviceName") == "mcp-relay-peers" and peers.get("clusterIP") == "None" and selects(peers),
      f"StatefulSet's serviceName {spec.get('serviceName')} is a headless Service over its pods")
check(peers.get("publishNotReadyAddresses") is True,
      "the peers' Service publishes not-ready pods (a draining pod stays reachable for forwards)")
port = next((p.get("containerPort") for p in c.get("ports", []) if p.get("name") == "http"), None)
check(any(p.get("port") == port for p in peers.get("ports", [])), f"the peers' Service serves the pods' port {port}")
nginx_conf = read("deploy/nginx/mcp-relay.conf")
check(all(f"location = {p}" in nginx_conf or f"location {p}" in nginx_conf for p in ("/mcp", "/sse", "/message", "/ws")),
      "nginx conf routes /mcp, /sse, /message and /ws too")
cm = next((d for d in by_kind.get("ConfigMap", []) if "relay.toml" in d.get("data", {})), None)
check(cm is not None, "a ConfigMap holds relay.toml")
cfg_path = next((a.split("=", 1)[1] for a in kflags if a.startswith("--config=")), "")
mounts_k = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod.get("volumes", [])}
cm_mount = next((mounts_k[n] for n, v in vols.items() if v.get("configMap", {}).get("name") == (cm or {}).get("metadata", {}).get("name")), None)
check(cm_mount is not None and cfg_path == f"{cm_mount}/relay.toml", f"--config {cfg_path} is the mounted ConfigMap")
toml = tomllib.loads(cm["data"]["relay.toml"]) if cm else {}
fleet_static.check_k8s(check, by_kind, spec, c, toml)
secret_vol = next(((n, v["secret"]) for n, v in vols.items() if "secret" in v), (None, {}))
sec_mount = mounts_k.get(secret_vol[0])
check(secret_vol[1].get("secretName") == "mcp-relay-secrets" and not secret_vol[1].get("optional"),
      "the Secret volume is mcp-relay-secrets and required (pods wait until it exists)")
refs = [j.get("secret", "") for j in toml.get("auth", {}).get("jwt", [])]
check(bool(refs) and all(r.startswith(("env:", "file:")) for r in refs), "JWT secrets in relay.toml are env:/file: references")
keys = sorted({r[5:].rsplit("/", 1)[1] for r in refs if r.startswith("file:")})
check(all(r[5:].startswith(f"{sec_mount}/") for r in refs if r.startswith("file:")),
      "each file: reference is under the mounted Secret")
howto = read("docs/deployment.md") + read("deploy/k8s/kustomization.yaml")
check(all(f'--from-literal={k}="$(mcp-relay token secret)"' in howto for k in keys),
      f"the docs create every referenced Secret key ({', '.join(keys)}) from `mcp-relay token secret`")
roles_file = toml.get("roles", {}).get("file")
check(roles_file is None or roles_file in cm["data"], "the roles file is in the ConfigMap too")
with open(os.path.join(OUT, "k8s-args.json"), "w") as f:
    json.dump({"args": kargs, "config": cm["data"] if cm else {}, "admin": admin,
               "env": {e["name"]: "mcp-relay-0" for e in c.get("env", [])
                       if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"},
               "config_mount": cm_mount, "secret_mount": sec_mount, "secret_keys": keys}, f)

fleet_static.check_balancers(check, read, yaml)

# --- no usable secret in deploy/ (issue 14, bug 3) -----------------------------------------------
# A value someone could deploy as is and the relay would accept: a Secret with data, a
# placeholder word, an API key, a long random-looking token, a literal in a secret field.
PLACEHOLDER = re.compile(r"replace[-_ ]?me|change[-_]?me|placeholder|your[-_]secret", re.I)
TOKEN = re.compile(r"(?<![\w/.:-])(mcpr_[A-Za-z0-9_-]{4,}|[A-Za-z0-9_+/-]{32,}={0,2})(?![\w/.-])")
bad = []
for dirpath, _, files in os.walk(os.path.join(ROOT, "deploy")):
    for name in files:
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, ROOT)
        if rel.startswith("deploy/compose/") and name != "init.sh":
            continue  # written by init.sh, ignored by git
        with open(path, encoding="utf-8") as fh:
            for no, line in enumerate(fh, 1):
                if line.lstrip().startswith("#") and "$(" in line:
                    continue  # a command in a comment: `--from-literal=k="$(mcp-relay token secret)"`
                if PLACEHOLDER.search(line) and not line.lstrip().startswith("#"):
                    bad.append(f"{rel}:{no}: placeholder")
                for m in TOKEN.finditer(line):
                    word = m.group(1)
                    if word.startswith("mcpr_") or (re.search(r"\d", word) and re.search(r"[A-Za-z]", word)):
                        bad.append(f"{rel}:{no}: token-like value {word[:6]}…")
                lit = re.search(r"""(?:secret|sha256|password|token)\s*[=:]\s*["']([^"']+)["']""", line, re.I)
                if lit and not lit.group(1).startswith(("env:", "file:")):
                    bad.append(f"{rel}:{no}: literal in a secret field")
check(not bad, "no deploy file holds a value usable as a secret" + (": " + "; ".join(bad) if bad else ""))

print(f"# {len(FAILURES)} failed", flush=True)
sys.exit(1 if FAILURES else 0)
