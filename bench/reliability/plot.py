"""The reliability figures as one picture (docs/reliability.png), drawn with matplotlib.

Four panels, each with the limit it is judged against: how long load clients waited against
the deadline, the largest worker's memory over the load run, when each in-flight request
answered after SIGTERM against Cloud Run's 10 s, and how the answers of chaos and load split
between complete, partial and refused.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt

from tests.reliability.chaos import ChaosFigures
from tests.reliability.load import LoadFigures
from tests.reliability.shutdown import ShutdownFigures

CLOUD_RUN_GRACE = 10.0  # seconds from SIGTERM to SIGKILL
DRAIN = 2.0  # seconds every read in flight gets after SIGTERM
CLIENT_MARGIN = 1.5  # what a client may wait past the deadline through gunicorn
KINDS = ("complete", "partial")  # then every refusal, by status and code


def plot(
    path: Path,
    chaos: ChaosFigures | None,
    load: LoadFigures | None,
    shutdowns: list[ShutdownFigures],
) -> Path:
    """Write the picture of whatever parts ran; returns `path`."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    _latency(axes[0][0], load)
    _memory(axes[0][1], load)
    _shutdown(axes[1][0], shutdowns)
    _answers(axes[1][1], chaos, load)
    fig.suptitle("rt-mp-collector reliability (python -m bench.reliability)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _latency(ax: plt.Axes, load: LoadFigures | None) -> None:
    ax.set_title("Load: how long each client waited")
    if not load or not load.latencies:
        ax.text(0.5, 0.5, "no load run", ha="center", transform=ax.transAxes)
        return
    ax.hist(load.latencies, bins=40, color="#4477aa")
    deadline = load.deadline
    ax.axvline(deadline, color="#cc6677", linestyle="--", label=f"deadline {deadline:g} s")
    ax.axvline(
        load.deadline + CLIENT_MARGIN,
        color="#882255",
        label=f"bound {load.deadline + CLIENT_MARGIN:g} s",
    )
    ax.set_xlabel("seconds")
    ax.set_ylabel("requests")
    ax.legend()


def _memory(ax: plt.Axes, load: LoadFigures | None) -> None:
    ax.set_title("Load: largest gunicorn worker's memory")
    if not load or not load.rss_series:
        ax.text(0.5, 0.5, "no load run", ha="center", transform=ax.transAxes)
        return
    seconds, mib = zip(*load.rss_series, strict=True)
    ax.plot(seconds, mib, color="#117733")
    ax.set_ylim(0, max(mib) * 1.3)
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("RSS, MiB")


def _shutdown(ax: plt.Axes, runs: list[ShutdownFigures]) -> None:
    ax.set_title("SIGTERM with slow reads in flight: when each answered")
    if not runs:
        ax.text(0.5, 0.5, "no shutdown run", ha="center", transform=ax.transAxes)
        return
    for i, run in enumerate(runs, 1):
        ax.scatter([t for _, _, t in run.answers], [i] * len(run.answers), color="#4477aa")
        ax.scatter([run.exit_seconds], [i], marker="x", color="#222222")
    ax.axvline(DRAIN, color="#999933", linestyle="--", label=f"drain {DRAIN:g} s")
    ax.axvline(CLOUD_RUN_GRACE, color="#cc6677", label="Cloud Run kills (10 s)")
    ax.set_xlim(0, CLOUD_RUN_GRACE + 1)
    ax.set_yticks(range(1, len(runs) + 1))
    ax.set_xlabel("seconds after SIGTERM (dots: answers, x: process exit)")
    ax.set_ylabel("run")
    ax.legend(loc="upper right")


def _answers(ax: plt.Axes, chaos: ChaosFigures | None, load: LoadFigures | None) -> None:
    ax.set_title("Answers (0 contract violations is the pass mark)")
    parts = [(f"chaos ({len(c.violations)} violations)", c.answers) for c in [chaos] if c]
    parts += [(f"load ({len(x.violations)} violations)", x.answers) for x in [load] if x]
    if not parts:
        ax.text(0.5, 0.5, "no chaos or load run", ha="center", transform=ax.transAxes)
        return
    kinds = [*KINDS, *sorted({k for _, c in parts for k in c} - set(KINDS))]
    left = [0.0] * len(parts)
    for kind in kinds:
        shares = [_share(counts, kind) for _, counts in parts]
        ax.barh([name for name, _ in parts], shares, left=left, label=kind)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of answers")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize="small")


def _share(counts: Counter[str], kind: str) -> float:
    total = sum(counts.values())
    return 100.0 * counts.get(kind, 0) / total if total else 0.0
