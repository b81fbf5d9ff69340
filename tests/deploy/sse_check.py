#!/usr/bin/env python3
"""Checks mcp-relay behind nginx (run by tests/deploy/nginx.sh; standard library only).

usage: sse_check.py PORT CONTROL_PORT CA_FILE HOST READ_TIMEOUT_S

PORT is nginx with the generated deploy/nginx/mcp-relay.conf (TLS, server_name HOST);
CONTROL_PORT is the same proxy with buffering forced on (proxy_ignore_headers
X-Accel-Buffering), which must be caught by the arrival-time measurement, so the check is known
to be able to fail. READ_TIMEOUT_S is nginx's proxy_read_timeout in the generated config.

Prints one line per check ("ok - ..." / "not ok - ...") and exits 1 if any failed.
"""

import http.client
import json
import socket
import ssl
import sys
import time

PORT, CONTROL_PORT, CA_FILE, HOST, READ_TIMEOUT = (
    int(sys.argv[1]),
    int(sys.argv[2]),
    sys.argv[3],
    sys.argv[4],
    float(sys.argv[5]),
)
PROTOCOL = "2025-11-25"
FAILURES = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


class Conn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port, with SNI, certificate name and Host all HOST."""

    def __init__(self, port, timeout=30):
        ctx = ssl.create_default_context(cafile=CA_FILE)
        super().__init__(HOST, port, context=ctx, timeout=timeout)
        self._real_port = port

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self._real_port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=HOST)


def headers(session=None, accept="application/json, text/event-stream"):
    h = {"content-type": "application/json", "accept": accept}
    if session:
        h["mcp-session-id"] = session
        h["mcp-protocol-version"] = PROTOCOL
    return h


def sse_events(resp, deadline=30.0):
    """Yields (arrival seconds, event dict or None for a comment) as lines arrive."""
    start = time.monotonic()
    data = []
    while time.monotonic() - start < deadline:
        line = resp.readline()
        if not line:
            return
        now = time.monotonic()
        line = line.decode().rstrip("\r\n")
        if line.startswith(":"):
            yield now, None
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            text = "\n".join(data)
            data = []
            if text:  # the 2025-11-25 priming event carries an id and no data
                yield now, json.loads(text)


def post(port, body, session=None):
    c = Conn(port)
    c.request("POST", "/mcp", body=json.dumps(body), headers=headers(session))
    return c, c.getresponse()


def rpc(port, body, session=None):
    """POST one request; returns (response, final JSON-RPC message)."""
    c, resp = post(port, body, session)
    ctype = resp.getheader("content-type", "")
    if ctype.startswith("text/event-stream"):
        final = None
        for _, ev in sse_events(resp):
            if ev is not None and ev.get("id") == body.get("id"):
                final = ev
                break
    else:
        raw = resp.read()
        final = json.loads(raw) if raw else None
    c.close()
    return resp, final


def open_session(port):
    resp, init = rpc(
        port,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "deploy-test", "version": "1"},
            },
        },
    )
    session = resp.getheader("mcp-session-id")
    c, r = post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    r.read()
    c.close()
    return resp, init, session


def progress_arrivals(port, session, steps=5, interval_ms=600):
    """Calls the fixture's `progress` tool; returns arrival times (s) of its events."""
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "progress",
            "arguments": {"steps": steps, "interval_ms": interval_ms},
            "_meta": {"progressToken": "p1"},
        },
    }
    t0 = time.monotonic()
    c, resp = post(port, body, session)
    times, final = [], None
    for at, ev in sse_events(resp):
        if ev is None:
            continue
        if ev.get("method") == "notifications/progress":
            times.append(at - t0)
        elif ev.get("id") == 7:
            final = ev
            times.append(at - t0)
            break
    c.close()
    return times, final


# (c) end to end through nginx: initialize, list, call, delete, 404 afterwards, 413.
resp, init, sid = open_session(PORT)
check(resp.status == 200 and bool(sid), f"initialize through nginx: {resp.status}, session id passed back")
check(
    init is not None and init.get("result", {}).get("protocolVersion") == PROTOCOL,
    "initialize result arrives through nginx",
)
_, listed = rpc(PORT, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
names = [t["name"] for t in (listed or {}).get("result", {}).get("tools", [])]
check("progress" in names and "echo" in names, f"tools/list through nginx ({len(names)} tools)")
_, echoed = rpc(
    PORT,
    {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "via nginx"}}},
    sid,
)
check("via nginx" in json.dumps(echoed or {}), "tools/call echo through nginx")

big = Conn(PORT)
big.request("POST", "/mcp", body=b"x" * (4 * 1024 * 1024 + 1), headers=headers(sid))
r = big.getresponse()
raw = r.read()
check(
    r.status == 413 and b"<html" not in raw.lower() and b"-31009" in raw
    and r.getheader("content-type", "").startswith("application/json"),
    f"a body over --max-body gets a JSON-RPC 413 (-31009), not an HTML page or a 502: {r.status}",
)
big.close()
edge = Conn(PORT)
edge.request("POST", "/mcp", body=b" " * (4 * 1024 * 1024), headers=headers(sid))
r = edge.getresponse()
raw = r.read()
check(r.status == 400 and b"-32700" in raw,
      f"a body of exactly --max-body passes nginx and reaches the relay (400 parse error): {r.status}")
edge.close()

# (a) progress events arrive one by one, not at the end.
times, final = progress_arrivals(PORT, sid)
check(final is not None and "done" in json.dumps(final), "progress tool call completes through nginx")
spread = times[-1] - times[0] if len(times) >= 2 else 0.0
print(f"# arrival times (s): {[round(t, 2) for t in times]}", flush=True)
check(
    len(times) == 6 and times[0] < 1.0 and spread >= 2.0,
    f"SSE events arrive one by one (first after {times[0] if times else -1:.2f}s, spread {spread:.2f}s over 5x0.6s)",
)
gaps = [b - a for a, b in zip(times, times[1:])]
check(all(g >= 0.3 for g in gaps[:4]), f"each progress event arrives on its own ({[round(g, 2) for g in gaps]})")

# The control proxy buffers: the same measurement must see everything arrive at once.
_, _, csid = open_session(CONTROL_PORT)
ctimes, _ = progress_arrivals(CONTROL_PORT, csid)
cspread = ctimes[-1] - ctimes[0] if len(ctimes) >= 2 else 0.0
print(f"# control (buffered) arrival times (s): {[round(t, 2) for t in ctimes]}", flush=True)
check(
    len(ctimes) == 6 and cspread < 0.5 and ctimes[0] >= 2.0,
    f"control: a buffering proxy is detected (spread {cspread:.2f}s)",
)

# (b) an idle GET stream outlives proxy_read_timeout thanks to keep-alive comments.
hold = READ_TIMEOUT + 4.0
c = Conn(PORT, timeout=hold + 10)
c.request("GET", "/mcp", headers=headers(sid, accept="text/event-stream"))
g = c.getresponse()
check(
    g.status == 200 and g.getheader("content-type", "").startswith("text/event-stream"),
    f"GET stream opens through nginx: {g.status}",
)
t0 = time.monotonic()
comments, closed = 0, True
for at, ev in sse_events(g, deadline=hold):
    if ev is None:
        comments += 1
    if at - t0 >= hold:
        closed = False
        break
else:
    closed = time.monotonic() - t0 < hold
elapsed = time.monotonic() - t0
c.close()
check(
    not closed and elapsed >= hold and comments >= int(READ_TIMEOUT),
    f"idle GET stream open after {elapsed:.1f}s > proxy_read_timeout {READ_TIMEOUT:.0f}s ({comments} keep-alive comments)",
)

# Session end passes through: DELETE, then the id is unknown (404).
d = Conn(PORT)
d.request("DELETE", "/mcp", headers=headers(sid))
dr = d.getresponse()
dr.read()
d.close()
check(dr.status == 200, f"DELETE through nginx: {dr.status}")
after, _ = rpc(PORT, {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, sid)
check(after.status == 404, f"the ended session gets 404 through nginx: {after.status}")

print(f"# {len(FAILURES)} failed", flush=True)
sys.exit(1 if FAILURES else 0)
