#!/usr/bin/env python3
"""Instructions the relay executes per call, counted by valgrind's callgrind.

Unlike latency, throughput or CPU time, the count does not depend on what else the machine is
doing, so one run tells whether a change made the request path cheaper (docs/BENCHMARKS.md,
Run M). It counts the relay's own user-space work only: the kernel (TCP, pipes, wake-ups)
and the child are not in it.

    python3 benches/instructions.py RELAY FIXTURE [json|sse] [shared|session] [N] [-- relay flags]

The relay runs under callgrind on a free loopback port around FIXTURE (echo mode); one
session does `initialize`, then 300 `tools/call` echo calls to warm up; the counters are
zeroed, N calls (default 1,000) are made one after the other over one keep-alive connection,
every answer checked, the counters dumped. Prints the instructions per call. Needs valgrind
(Debian: apt-get install -y valgrind).
"""
import glob
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    if len(argv) < 2:
        sys.exit(__doc__)
    relay, fixture = argv[0], argv[1]
    mode = argv[2] if len(argv) > 2 else "json"
    sessions = argv[3] if len(argv) > 3 else "shared"
    n = int(argv[4]) if len(argv) > 4 else 1000
    port = free_port()
    out_dir = tempfile.mkdtemp(prefix="mcp-relay-callgrind-")
    out = os.path.join(out_dir, "callgrind.out")
    args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
            relay, "serve", "--listen", f"127.0.0.1:{port}", "--response-mode", mode]
    if sessions == "shared":
        args += ["--session-mode", "shared", "--children", "1"]
    args += extra + ["--", fixture]
    log = open(os.path.join(out_dir, "relay.log"), "w")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        head = {"content-type": "application/json",
                "accept": "application/json, text/event-stream"}

        def post(body, sid=None):
            h = dict(head)
            if sid:
                h["mcp-session-id"] = sid
            c.request("POST", "/mcp", json.dumps(body), h)
            r = c.getresponse()
            return r, r.read()

        r, _ = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "instructions", "version": "1"}}})
        sid = r.getheader("mcp-session-id")
        post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)

        def calls(k, base):
            for i in range(base, base + k):
                _, d = post({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                             "params": {"name": "echo", "arguments": {"text": f"t{i}"}}}, sid)
                if f"t{i}".encode() not in d:
                    sys.exit(f"wrong answer to call {i}: {d!r}")

        calls(300, 1)
        subprocess.run(["callgrind_control", "-z", str(p.pid)], stdout=subprocess.DEVNULL)
        calls(n, 10_000)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], stdout=subprocess.DEVNULL)
        time.sleep(1)
    finally:
        p.terminate()
        p.wait(timeout=60)
    dumps = sorted(glob.glob(f"{out}.{p.pid}.*"), key=os.path.getmtime)
    total = next(int(line.split()[1]) for line in open(dumps[0])
                 if line.startswith(("summary:", "totals:")))
    print(f"{os.path.basename(relay)} {mode} {sessions}: {total / n:,.0f} instructions/call"
          f" ({dumps[0]})")


if __name__ == "__main__":
    main()
