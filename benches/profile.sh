#!/usr/bin/env bash
# Where the relay's time goes: runs the harness on one relay mode and one workload while
# `perf record` samples the relay process (software clock: this VM has no hardware counters),
# then prints the top symbols and a split into HTTP / relay core / child pipe / runtime / kernel.
#
#   bash benches/profile.sh [relay-json|relay-sse] [workload letter, default b]
# Needs `perf` (Debian: apt-get install -y linux-perf) and a built bench (scripts/bench.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
system="${1:-relay-json}"
workload="${2:-b}"
out="$root/target/bench-profile"
mkdir -p "$out"

BENCH_SYSTEMS="$system" BENCH_WORKLOADS="$workload" BENCH_REPS=1 BENCH_SECS="${BENCH_SECS:-8}" \
    cargo bench --bench mcp >"$out/bench.log" 2>&1 &
bench=$!
relay=""
for _ in $(seq 1 200); do
    relay="$(pgrep -f -n "$root/target/dist/mcp-relay serve" || true)"
    [ -n "$relay" ] && break
    sleep 0.05
done
[ -n "$relay" ] || { echo "profile: relay did not start" >&2; wait "$bench"; exit 1; }
sleep 1.5 # skip startup and warm-up
perf record -F 1999 -e cpu-clock -p "$relay" -o "$out/perf.data" -- sleep 4 2>"$out/perf-record.log"
wait "$bench"

perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | sed -E 's/[ -]+$//' >"$out/symbols.txt" || true
echo "Top symbols (self share of the relay's CPU samples):"
head -25 "$out/symbols.txt"
echo
echo "Split by category:"
awk '
{
    pct = $1; sub(/%/, "", pct); line = $0
    if (line ~ /\[kernel|\[k\]/) {
        if (line ~ /pipe|anon_pipe/) cat = "child pipe (kernel)"
        else if (line ~ /tcp|inet|sock|ip_|__dev|loopback|net_|skb/) cat = "TCP loopback (kernel)"
        else if (line ~ /epoll|futex|schedule|switch|wake|ep_|spin_unlock_irq|irqentry_exit/) cat = "scheduling, wake-ups, epoll, futex (kernel)"
        else cat = "other kernel (syscall entry, memory)"
    } else if (line ~ /hyper::|axum::|http::|httparse|tower|h1::/) cat = "HTTP (hyper/axum)"
    else if (line ~ /upstream::stdio|upstream::lines|tokio::process|tokio::io::/) cat = "child pipe (relay side)"
    else if (line ~ /mcp_relay::|serde_json|memchr|jsonrpc/) cat = "relay core (parse, route, streams)"
    else if (line ~ /tokio::|mio::|parking_lot|std::sync/) cat = "tokio runtime"
    else if (line ~ /malloc|free|memcpy|memmove|libc/) cat = "allocator, memcpy (libc)"
    else cat = "other"
    sum[cat] += pct
}
END { for (c in sum) printf "%6.1f%%  %s\n", sum[c], c }' "$out/symbols.txt" | sort -rn
