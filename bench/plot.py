"""The benchmark's figures as one picture (docs/benchmarks.png), drawn with matplotlib.

Left: events per second of each mode, against the old reader and the decode limit. Right, when
`--network` was given: `/events` seconds plain and gzip against the link speed, where the lines
cross is where gzip stops paying.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt


def plot(path: Path, results: list[dict], network: list[tuple[float, float, float]]) -> Path:
    """Write the PNG; `network` holds (MB/s, plain seconds, gzip seconds) rows."""
    panels = 2 if network else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    speed = axes[0][0]
    labels = [r["label"] for r in results]
    rates = [r["events"] / r["seconds"] / 1000 for r in results]
    colours = [
        "#999999" if r["mode"] in {"baseline", "raw", "decode"} else "#1f77b4" for r in results
    ]
    speed.barh(labels, rates, color=colours)
    speed.invert_yaxis()
    speed.set_xlabel("thousand events per second (one process)")
    speed.set_title("Reading 1 day: this reader (blue) and the references (grey)")
    for y, rate in enumerate(rates):
        speed.text(rate, y, f" {rate:,.0f}k", va="center", fontsize=8)
    if network:
        link = axes[0][1]
        mbs = [row[0] for row in network]
        link.plot(mbs, [row[1] for row in network], "o-", label="plain")
        link.plot(mbs, [row[2] for row in network], "s-", label="gzip")
        link.set_xscale("log")
        link.set_xticks(mbs, [f"{m:g}" for m in mbs])
        link.minorticks_off()
        link.set_xlabel("link speed, MB/s")
        link.set_ylabel("seconds for /events")
        link.set_title("gzip wins on any link slower than where the lines cross")
        link.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
