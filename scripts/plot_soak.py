#!/usr/bin/env python3
"""Draws the soak's memory over time (docs/soak.png) from the CSV the harness writes.

`BENCH_MODE=soak cargo bench --profile release --bench mcp` writes results/soak/soak.csv
(t_s, phase, relay_rss_kib, tree_rss_kib, processes, relay_fds, calls, errors); this script
plots the relay's own RSS and the tree's (relay + its one shared child) in MiB against
minutes, shades the phases (sessions opening, the warm-up: calls back to back, then the
first call period; the judged soak; closing) and draws the ±5 % band around the judged part's minimum.

Run it with the benchmark's virtual environment, where matplotlib is pinned
(bench/requirements.txt; scripts/bench.sh creates bench/.venv):

    bench/.venv/bin/python scripts/plot_soak.py [results/soak/soak.csv] [docs/soak.png]
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

PHASE_COLOURS = {
    "open": "#f2d7a6",
    "prefill": "#d9e7f5",
    "warm-up": "#e8e8e8",
    "close": "#f2d7a6",
}


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def spans(rows):
    """(phase, first t, last t) for each run of equal phases, in minutes."""
    out = []
    for r in rows:
        t = float(r["t_s"]) / 60
        if out and out[-1][0] == r["phase"]:
            out[-1][2] = t
        else:
            out.append([r["phase"], t, t])
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "results/soak/soak.csv"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/soak.png"
    rows = load(src)
    t = [float(r["t_s"]) / 60 for r in rows]
    own = [int(r["relay_rss_kib"]) / 1024 for r in rows]
    tree = [int(r["tree_rss_kib"]) / 1024 for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for phase, a, b in spans(rows):
        if phase in PHASE_COLOURS:
            ax.axvspan(a, b, color=PHASE_COLOURS[phase], alpha=0.6, lw=0)
    ax.plot(t, tree, label="relay + shared child (tree RSS)", color="#1f77b4")
    ax.plot(t, own, label="relay (own RSS)", color="#d62728")
    judged = [(x, y) for x, y, r in zip(t, own, rows) if r["phase"] == "soak"]
    if judged:
        low = min(y for _, y in judged)
        ax.fill_between(
            [judged[0][0], judged[-1][0]],
            low,
            low * 1.05,
            color="#d62728",
            alpha=0.12,
            label="relay: minimum after warm-up + 5 %",
        )
    calls = rows[-1]["calls"]
    errors = rows[-1]["errors"]
    ax.set_title(f"Soak: memory over time ({calls} verified calls, {errors} errors)")
    ax.set_xlabel("minutes since the relay started (shaded: warm-up, calls back to back then one period)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(dst)
    print(f"written to {dst}")


if __name__ == "__main__":
    main()
