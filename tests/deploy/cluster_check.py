#!/usr/bin/env python3
"""Checks a fleet of three relays behind nginx with a shared Redis (run by tests/deploy/cluster.sh;
standard library only).

usage: cluster_check.py SETUP_JSON

SETUP_JSON (written by cluster.sh) names the relays (node, port, admin port, argv, log), the
two nginx ports (`rr`: deploy/nginx/fleet.conf with every location on the round-robin
upstream; `map`: the file as shipped, owner prefix -> owner's upstream), HAProxy's port
(deploy/haproxy/mcp-relay.cfg; null when not installed), Redis's pid, the
config files of the two phases, the API key every request carries (principal `alice`:
only a principal has a concurrency cap) and a file to record the relays' pids in (cluster.sh kills
what is left of them on exit).

The relays are started, stopped, restarted and killed here, each by its pid: phase 1 (no
limits) checks routing, the map variant, a rolling restart with the drain and a replica killed
with -9 (and the HAProxy stick table when it is there); phase 2 (per-principal rate 10/s burst 10, concurrency cap 4, shared in Redis) checks
that both hold across the fleet and that calls keep flowing once Redis is killed.

Prints "ok - ..." / "not ok - ..." / "# ..." lines and exits 1 if a check failed. Every wait is
bounded; the whole run takes about a minute.
"""

import concurrent.futures as cf
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

SETUP = json.load(open(sys.argv[1]))
NODES = SETUP["nodes"]  # name -> {port, admin, argv, log}
RR, MAP = SETUP["nginx_rr"], SETUP["nginx_map"]
PROTOCOL = "2025-11-25"
FAILURES = []
PROCS = {}


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def note(text):
    print("# " + text, flush=True)


# --- HTTP ------------------------------------------------------------------------------------
class Reply:
    def __init__(self, status, headers, message, elapsed):
        self.status, self.headers, self.message, self.elapsed = status, headers, message, elapsed

    def result(self):
        return (self.message or {}).get("result")

    def code(self):
        """The JSON-RPC error code; for no answer at all, why (the exception)."""
        if self.status == 0:
            return (self.message or {}).get("transport_error")
        return ((self.message or {}).get("error") or {}).get("code")


def rpc(port, body, session=None, timeout=15.0):
    """POSTs one JSON-RPC message; the final message (JSON or the SSE event with its id)."""
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream",
         "x-api-key": SETUP["api_key"]}
    if session:
        h["mcp-session-id"] = session
        h["mcp-protocol-version"] = PROTOCOL
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/mcp", body=json.dumps(body), headers=h)
        r = c.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        final = None
        if hdrs.get("content-type", "").startswith("text/event-stream"):
            data = []
            for raw in r:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    text = "\n".join(data)
                    data = []
                    if not text:  # the 2025-11-25 priming event carries an id and no data
                        continue
                    ev = json.loads(text)
                    if ev.get("id") == body.get("id"):
                        final = ev
                        break
        else:
            raw = r.read()
            final = json.loads(raw) if raw.strip() else None
        return Reply(r.status, hdrs, final, time.monotonic() - t0)
    except (OSError, ValueError) as e:
        return Reply(0, {}, {"transport_error": str(e)}, time.monotonic() - t0)
    finally:
        c.close()


def get(port, path, timeout=5.0):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    except OSError:
        return 0, ""


class Session:
    def __init__(self, sid, created_via):
        self.id = sid
        self.node = sid.split(".", 1)[0] if sid and "." in sid else None
        self.created_via = created_via
        self.seq = 10

    def call(self, port, tool="echo", args=None, timeout=15.0):
        self.seq += 1
        args = args if args is not None else {"text": f"{self.id[-6:]}-{self.seq}"}
        body = {"jsonrpc": "2.0", "id": self.seq, "method": "tools/call", "params": {"name": tool, "arguments": args}}
        return rpc(port, body, self.id, timeout)


def open_session(port):
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": "cluster-check", "version": "1"}}}
    r = rpc(port, init)
    sid = r.headers.get("mcp-session-id")
    if r.status != 200 or not sid:
        return None, r
    n = rpc(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    if n.status not in (200, 202):
        return None, n
    return Session(sid, port), r


def echo_ok(s, r):
    res = r.result() or {}
    text = ((res.get("content") or [{}])[0]).get("text")
    return r.status == 200 and text == f"{s.id[-6:]}-{s.seq}"


def limited(r, code):
    """A refusal with `code`: 429 before the call reaches the session, or the JSON-RPC error."""
    return r.status in (200, 429) and r.code() == code


# --- metrics -----------------------------------------------------------------------------------
def metric(name, labels=None):
    """Sum of a metric over the running relays' /metrics (None when no relay exports it)."""
    total, seen = 0.0, False
    pat = re.compile(r"^" + re.escape(name) + r"(\{[^}]*\})?\s+([0-9.eE+-]+)$")
    for n, cfg in NODES.items():
        if n not in PROCS or PROCS[n].poll() is not None:
            continue
        _, text = get(cfg["admin"], "/metrics")
        for line in text.splitlines():
            m = pat.match(line)
            if m and (labels is None or all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items())):
                total += float(m.group(2))
                seen = True
    return total if seen else None


def node_metric(node, name):
    _, text = get(NODES[node]["admin"], "/metrics")
    m = re.search(r"^" + re.escape(name) + r"(\{[^}]*\})?\s+([0-9.eE+-]+)$", text, re.M)
    return float(m.group(2)) if m else None


# --- processes -----------------------------------------------------------------------------------
def record_pids():
    with open(SETUP["pid_file"], "w") as f:
        f.write("\n".join(str(p.pid) for p in PROCS.values() if p.poll() is None) + "\n")


def start(node, config):
    cfg = NODES[node]
    argv = [a.replace("@CONFIG@", config) for a in cfg["argv"]]
    log = open(cfg["log"], "a")
    log.write(f"\n--- start {time.strftime('%H:%M:%S')} ({config})\n")
    log.flush()
    PROCS[node] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    record_pids()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if PROCS[node].poll() is not None:
            return False
        if get(cfg["admin"], "/health", timeout=1)[0] == 200 and get(cfg["port"], "/", timeout=1)[0] != 0:
            return True
        time.sleep(0.05)
    return False


def stop(node, quick=True):
    """SIGTERM; with quick, a second SIGTERM right after (skips the drain window)."""
    p = PROCS.get(node)
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    if quick:
        time.sleep(0.2)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=25)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)


def stop_all():
    for n in list(PROCS):
        stop(n)
    record_pids()


def start_all(config):
    ok = True
    for n in NODES:
        ok = start(n, config) and ok
    return ok


# --- phase 1: routing, the map, a rolling restart, a replica killed ----------------------------------
def routing(sessions):
    before = metric("mcp_relay_forwarded_total")
    with cf.ThreadPoolExecutor(8) as ex:
        opened = list(ex.map(lambda _: open_session(RR), range(64)))
    for s, _ in opened:
        if s:
            sessions.append(s)
    check(len(sessions) == 64, f"64 sessions initialized through nginx round-robin ({len(sessions)})")
    by_node = {n: sum(1 for s in sessions if s.node == n) for n in NODES}
    check(all(by_node.values()), f"sessions are owned by every replica ({by_node})")

    def work(s):
        out = []
        for _ in range(3):
            r = s.call(RR)
            out.append((echo_ok(s, r), r.headers.get("mcp-relay-node"), s.node))
        r = rpc(RR, {"jsonrpc": "2.0", "id": 99, "method": "tools/list"}, s.id)
        out.append((r.status == 200 and "tools" in (r.result() or {}), r.headers.get("mcp-relay-node"), s.node))
        return out

    with cf.ThreadPoolExecutor(8) as ex:
        results = [x for xs in ex.map(work, sessions) for x in xs]
    answered = sum(1 for ok, _, _ in results if ok)
    check(answered == len(results) == 256, f"every call of the 64 sessions answered through round-robin ({answered}/{len(results)})")
    tagged = [(ran, owner) for _, ran, owner in results if ran is not None]
    check(len(tagged) == len(results) and all(ran == owner for ran, owner in tagged),
          f"every call ran on its session's owner (mcp-relay-node; {len(tagged)} answers carry it, "
          f"{sum(1 for ran, owner in tagged if ran != owner)} elsewhere)")
    after = metric("mcp_relay_forwarded_total")
    requests = 64 * 5  # notifications/initialized + 3 calls + tools/list
    if after is None:
        check(False, "the relays export mcp_relay_forwarded_total")
    else:
        fwd = after - (before or 0)
        note(f"forwarded {fwd:.0f} of {requests} session requests ({fwd / requests:.0%}; about 2/3 expected behind round-robin)")
        check(0.4 * requests <= fwd <= 0.9 * requests, f"about 2/3 of session requests forwarded ({fwd:.0f}/{requests})")


def haproxy_variant():
    port = SETUP.get("haproxy")
    if not port:
        print("skip - HAProxy stick table variant (haproxy is not installed)", flush=True)
        return
    before = metric("mcp_relay_forwarded_total") or 0
    with cf.ThreadPoolExecutor(6) as ex:
        opened = [s for s, _ in ex.map(lambda _: open_session(port), range(12)) if s]

    def work(s):
        return [echo_ok(s, s.call(port)) for _ in range(3)]

    with cf.ThreadPoolExecutor(6) as ex:
        oks = [x for xs in ex.map(work, opened) for x in xs]
    by_node = sorted({s.node for s in opened})
    check(len(opened) == 12 and all(oks) and len(oks) == 36 and len(by_node) == 3,
          f"HAProxy (deploy/haproxy/mcp-relay.cfg): 12 sessions over {by_node}, every call answered ({sum(oks)}/36)")
    after = metric("mcp_relay_forwarded_total")
    check(after is not None and after - before == 0,
          f"HAProxy: the stick table learned every owner from the response, 0 forwards "
          f"({'not exported' if after is None else round(after - before)})")


def map_variant():
    before = metric("mcp_relay_forwarded_total") or 0
    with cf.ThreadPoolExecutor(6) as ex:
        opened = [s for s, _ in ex.map(lambda _: open_session(MAP), range(24)) if s]

    def work(s):
        return [echo_ok(s, s.call(MAP)) for _ in range(3)]

    with cf.ThreadPoolExecutor(6) as ex:
        oks = [x for xs in ex.map(work, opened) for x in xs]
    check(len(opened) == 24 and all(oks) and len(oks) == 72,
          f"nginx map variant (deploy/nginx/fleet.conf as shipped): 24 sessions, every call answered ({sum(oks)}/72)")
    after = metric("mcp_relay_forwarded_total")
    check(after is not None and after - before == 0,
          f"nginx map variant: 0 forwards ({'not exported' if after is None else round(after - before)})")
    return opened


class Prober(threading.Thread):
    """Calls every session of `pool()` in turn through round-robin until stopped; counts
    failures (any answer but the echo)."""

    def __init__(self, pool):
        super().__init__(daemon=True)
        self.pool, self.calls, self.errors, self.halt = pool, 0, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            for s in self.pool():
                if self.halt.is_set():
                    break
                r = s.call(RR)
                self.calls += 1
                if not echo_ok(s, r):
                    self.errors.append((s.node, r.status, r.code()))
            time.sleep(0.02)


def rolling_restart(sessions, config, window):
    alive = {s for s in sessions}
    for node in ["r2", "r1", "r0"]:
        mine = [s for s in alive if s.node == node]
        others = [s for s in alive if s.node != node]
        prober = Prober(lambda: others)
        prober.start()
        proc = PROCS[node]
        exit_at = []
        waiter = threading.Thread(target=lambda: (proc.wait(), exit_at.append(time.monotonic())), daemon=True)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        waiter.start()
        ready = 0
        while time.monotonic() - t0 < 1.0:
            ready = get(NODES[node]["admin"], "/ready", timeout=1)[0]
            if ready == 503:
                break
            time.sleep(0.05)
        check(ready == 503 and not exit_at,
              f"rolling restart {node}: /ready 503 within 1 s of SIGTERM, still running "
              f"({ready}, {time.monotonic() - t0:.2f} s, {'exited' if exit_at else 'running'})")
        # Its own sessions keep working through the window, through round-robin (peers forward).
        served = []
        while time.monotonic() - t0 < window - 1.0:
            for s in mine[:8]:
                served.append(echo_ok(s, s.call(RR)))
            time.sleep(0.2)
        check(served and all(served),
              f"rolling restart {node}: its sessions served during the drain window ({sum(served)}/{len(served)})")
        waiter.join(timeout=window + 20)
        exited = exit_at[0] - t0 if exit_at else None
        check(exited is not None and window - 0.5 <= exited <= window + 17,
              f"rolling restart {node}: exits at the end of the {window:.0f} s window "
              f"({'still running' if exited is None else f'{exited:.1f} s'})")
        if exited is None:
            stop(node)
        restarted = start(node, config)
        time.sleep(0.3)
        prober.halt.set()
        prober.join(timeout=20)
        check(restarted, f"rolling restart {node}: back up")
        check(prober.calls > 0 and not prober.errors,
              f"rolling restart {node}: the other replicas' sessions never noticed "
              f"({prober.calls} calls, {len(prober.errors)} failed: {prober.errors[:3]})")
        if mine:
            r = mine[0].call(RR)
            check(r.status == 404 and r.code() == -31003,
                  f"rolling restart {node}: a session of its previous process gets 404 -31003 ({r.status}, {r.code()})")
        alive -= set(mine)
        # Two new sessions on each replica, straight to it (nginx may still avoid the restarted
        # one for fail_timeout), so that every replica has sessions for the next step.
        ports = [cfg["port"] for cfg in NODES.values()] * 2
        with cf.ThreadPoolExecutor(6) as ex:
            alive |= {s for s, _ in ex.map(open_session, ports) if s}
    return list(alive)


def kill_one(sessions, victim="r1"):
    mine = [s for s in sessions if s.node == victim]
    others = [s for s in sessions if s.node != victim]
    PROCS[victim].kill()
    PROCS[victim].wait(timeout=5)
    killed_at = time.monotonic()
    record_pids()
    with cf.ThreadPoolExecutor(6) as ex:
        replies = list(ex.map(lambda s: s.call(RR, timeout=5), mine))
    worst = max((time.monotonic() - killed_at, *(r.elapsed for r in replies))) if replies else 0
    gone = [r for r in replies if r.status == 404 and r.code() == -31003]
    check(mine and len(gone) == len(mine) and worst < 2.0,
          f"kill -9 {victim}: its {len(mine)} sessions get 404 -31003 within 2 s ({len(gone)} did; "
          f"others: {sorted({(r.status, r.code()) for r in replies if r not in gone}, key=str)}; last after {worst:.2f} s)")
    with cf.ThreadPoolExecutor(6) as ex:
        oks = list(ex.map(lambda s: echo_ok(s, s.call(RR)), others))
    check(others and all(oks), f"kill -9 {victim}: the other replicas' sessions never notice ({sum(oks)}/{len(oks)})")
    with cf.ThreadPoolExecutor(6) as ex:
        fresh = [s for s, _ in ex.map(lambda _: open_session(RR), range(6)) if s]
    oks = [echo_ok(s, s.call(RR)) for s in fresh]
    check(len(fresh) == 6 and all(oks) and all(s.node != victim for s in fresh),
          f"kill -9 {victim}: new sessions work, on the live replicas ({[s.node for s in fresh]})")


# --- phase 2: shared limits --------------------------------------------------------------------------
def one_per_node():
    out = {}
    for n, cfg in NODES.items():
        s, r = open_session(cfg["port"])
        out[n] = s
    return out


def shared_rate(sess):
    """per_principal 10/s burst 10 over the fleet: ~100 requests in ~1 s through round-robin."""
    time.sleep(1.3)  # a full bucket after the sessions' own requests
    order = [sess[n] for n in NODES] * 34
    start_at = time.monotonic() + 0.05
    replies = [None] * len(order)

    def fire(i):
        delay = start_at + i * 0.01 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        replies[i] = (time.monotonic(), order[i].call(RR))

    with cf.ThreadPoolExecutor(12) as ex:
        list(ex.map(fire, range(len(order))))
    span = max(t for t, _ in replies) - min(t for t, _ in replies)
    admitted = sum(1 for _, r in replies if r.status == 200 and r.result() is not None)
    refused = sum(1 for _, r in replies if limited(r, -31004))
    # On a loaded machine calls overlap more, and the fleet's concurrency cap (4) may refuse
    # a few of them: those are the other limit working, not a failure of this one.
    capped = sum(1 for _, r in replies if limited(r, -31005))
    other = len(replies) - admitted - refused - capped
    expected = 10 + 10 * span
    note(f"rate: {len(replies)} requests in {span:.2f} s: {admitted} admitted, {refused} refused (429 -31004), "
         f"{capped} over the concurrency cap (429 -31005), {other} other "
         f"{sorted({(r.status, r.code()) for _, r in replies if r.status != 200 and not limited(r, -31004) and not limited(r, -31005)}, key=str)}; "
         f"one bucket for the fleet admits about {expected:.1f}, one per replica about {3 * expected:.0f}")
    check(other == 0 and admitted <= expected + 2 and admitted + capped >= expected - 3,
          f"per-principal rate 10/s burst 10 holds across the fleet ({admitted} admitted, {capped} capped, {expected:.1f} expected)")


def shared_concurrency(sess):
    """max_concurrent_per_principal 4 over the fleet: 9 slow calls at once, 3 per replica."""
    time.sleep(1.3)
    calls = [sess[n] for n in NODES for _ in range(3)]
    barrier = threading.Barrier(len(calls))

    def fire(s):
        barrier.wait(timeout=10)
        return s.call(NODES[s.node]["port"], "slow", {"ms": 2500}, timeout=20)

    with cf.ThreadPoolExecutor(len(calls)) as ex:
        replies = list(ex.map(fire, calls))
    ran = sum(1 for r in replies if r.status == 200 and r.result() is not None)
    capped = sum(1 for r in replies if limited(r, -31005))
    check(ran == 4 and capped == 5,
          f"concurrency cap 4 holds across the fleet: 9 slow calls over 3 replicas, {ran} ran, {capped} got 429 -31005 "
          f"(others: {[(r.status, r.code()) for r in replies if not (r.status == 200 and r.result()) and not limited(r, -31005)]})")


def redis_killed(sess):
    os.kill(SETUP["redis_pid"], signal.SIGKILL)
    time.sleep(1.3)
    replies = []
    t0 = time.monotonic()
    for i in range(18):
        s = sess[list(NODES)[i % 3]]
        replies.append(s.call(RR, timeout=5))
        time.sleep(max(0.0, t0 + (i + 1) * 0.17 - time.monotonic()))
    ok = sum(1 for r in replies if r.status == 200 and r.result() is not None)
    slow = max(r.elapsed for r in replies)
    check(ok == len(replies) and slow < 1.0,
          f"Redis killed: calls keep flowing on the local fallback ({ok}/{len(replies)} answered, slowest {slow:.2f} s; "
          f"others: {[(r.status, r.code()) for r in replies if not (r.status == 200 and r.result())][:4]})")
    up = [node_metric(n, "mcp_relay_store_up") for n in NODES]
    check(all(u == 0 for u in up), f"Redis killed: mcp_relay_store_up is 0 on every replica ({up})")


def scenario(name, fn, *args):
    """Runs one scenario; an exception is its failure, not the end of the run."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check(False, f"{name}: stopped by {type(e).__name__}: {e}")
        return None


def main():
    window = SETUP["drain_window"]
    try:
        if not check(start_all(SETUP["config_routing"]), "three relays start as a fleet (r0, r1, r2)"):
            return
        sessions = []
        scenario("routing", routing, sessions)
        scenario("map variant", map_variant)
        scenario("HAProxy variant", haproxy_variant)
        sessions = scenario("rolling restart", rolling_restart, sessions, SETUP["config_routing"], window) or sessions
        scenario("kill -9", kill_one, sessions)
        stop_all()
        if not check(start_all(SETUP["config_limits"]), "the fleet restarts with shared limits"):
            return
        sess = one_per_node()
        if not check(all(sess.values()), "one session on each replica"):
            return
        scenario("shared rate", shared_rate, sess)
        scenario("shared concurrency", shared_concurrency, sess)
        scenario("Redis killed", redis_killed, sess)
    finally:
        stop_all()


main()
print(f"# {len(FAILURES)} failed", flush=True)
sys.exit(1 if FAILURES else 0)
