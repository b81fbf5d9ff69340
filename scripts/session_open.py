#!/usr/bin/env python3
"""How long a client waits for its session to open (`initialize` sent → answer read), with and
without `--spare-children`, for any stdio server: the relay is started on a free loopback port
around the command, each session is opened, answered and ended (`DELETE`) in turn, with a pause
between sessions long enough for the next spare to start.

    python3 scripts/session_open.py RELAY [--sessions N] [--pause S] -- COMMAND [ARGS...]

Prints one line per configuration: the median and the slowest of N opens, in milliseconds.
"""
import argparse
import json
import socket
import statistics
import subprocess
import time
import urllib.request

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "session-open", "version": "1"},
    },
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method, body=None, headers=None, timeout=60):
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    h.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.headers, r.read()


def wait_for(pred, what, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"session_open: timed out waiting for {what}")


def measure(relay, command, spares, sessions, pause):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [relay, "serve", "--listen", f"127.0.0.1:{port}", "--response-mode", "json"]
    if spares:
        args += ["--spare-children", str(spares)]
    proc = subprocess.Popen(args + ["--"] + command, stderr=subprocess.DEVNULL)
    try:
        health = lambda: json.loads(request(f"{base}/health", "GET")[1])
        wait_for(lambda: health()["status"] == "ok", "the relay")
        times = []
        for _ in range(sessions):
            if spares:
                wait_for(lambda: health()["spare_children"] >= spares, "the spares")
            time.sleep(pause)
            t0 = time.monotonic()
            headers, body = request(f"{base}/mcp", "POST", INIT)
            times.append((time.monotonic() - t0) * 1000)
            assert json.loads(body)["result"]["serverInfo"], body
            request(f"{base}/mcp", "DELETE", headers={"mcp-session-id": headers["mcp-session-id"]})
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("relay")
    p.add_argument("--sessions", type=int, default=7)
    p.add_argument("--pause", type=float, default=1.0)
    p.add_argument("command", nargs="+")
    a = p.parse_args()
    for spares in (0, 1):
        t = measure(a.relay, a.command, spares, a.sessions, a.pause)
        label = f"--spare-children {spares}"
        print(f"{label}: session open median {statistics.median(t):.1f} ms, slowest {max(t):.1f} ms "
              f"({len(t)} sessions)")


if __name__ == "__main__":
    main()
