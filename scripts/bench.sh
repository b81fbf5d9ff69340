#!/usr/bin/env bash
# The benchmark in one command (issue 3): builds the binaries (`dist` profile), installs the pinned
# peers into bench/ (npm: supergateway, mcp-proxy; PyPI: mcp-proxy in bench/.venv), then runs
# `cargo bench --bench mcp`, which prints the markdown table and writes results/bench/latest.md.
#
# Quick run: BENCH_SECS=1 BENCH_REPS=1 BENCH_SYSTEMS=relay,floors bash scripts/bench.sh
# Env (see benches/mcp/config.rs): BENCH_SECS, BENCH_WARMUP_MS, BENCH_REPS, BENCH_SYSTEMS,
# BENCH_WORKLOADS, BENCH_IDLE_SESSIONS, BENCH_SHARED_SESSIONS, BENCH_PROTOCOL, BENCH_RELAY,
# BENCH_FIXTURE.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

echo "bench: load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
cargo build --profile dist --bins

systems="${BENCH_SYSTEMS:-all}"
needs() { [ "$systems" = all ] || [[ ",$systems," == *",$1,"* ]] || [[ ",$systems," == *",peers,"* ]]; }

if needs supergateway || needs mcp-proxy-node; then
    if ! command -v npm >/dev/null; then
        echo "bench: npm not found: the npm peers will be reported as failed" >&2
    elif ! (cd bench && npm ls --depth=0 supergateway mcp-proxy >/dev/null 2>&1); then
        (cd bench && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi
if needs mcp-proxy-py; then
    if [ ! -x bench/.venv/bin/mcp-proxy ]; then
        python3 -m venv bench/.venv
        bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
    fi
fi

exec cargo bench --bench mcp
