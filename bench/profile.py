"""Where a read's time goes: one metric read under cProfile, grouped by stage.

    python -m bench.profile [--events N] [--users N] [--metric NAME] [--gzip]

Renders a body with the simulator, serves it from the loopback server and reads it once with
the service's reader in one process, under `cProfile`. Stages are the
cumulative times of the functions that do them: the network (`iter_content`, with gzip
inflation), splitting lines, `decode_lines`, the column work after it (validation, window
filter), hashing, and the aggregators' own work. The profiler's overhead inflates every stage a
little; the shares are what matter.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.modes import metric
from bench.serve import FileServer

# stage -> (file suffix, function name) whose cumulative time it is
STAGES: dict[str, list[tuple[str, str]]] = {
    "network (iter_content)": [("requests/models.py", "generate")],
    "split lines": [("collector/export/lines.py", "feed")],
    "decode_lines": [("~", "<method 'decode_lines' of 'msgspec.json.Decoder' objects>")],
    "hashing": [
        ("collector/metrics/hashing.py", "user_hashes"),
        ("collector/metrics/hashing.py", "key_hashes"),
    ],
}
COLUMNS = ("collector/export/decode.py", "_columns")
# The sink's `add`: DistinctUsers or EventCounts.
SINKS = [("collector/metrics/aggregators.py", "add")]


def cumulative(stats: pstats.Stats, where: str, name: str) -> float:
    total = 0.0
    for (filename, _, func), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        if func == name and filename.replace("\\", "/").endswith(where):
            total += ct
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--metric", default="distinct_users", choices=["distinct_users", "events", "active_users"]
    )
    parser.add_argument("--gzip", action="store_true", help="read the body gzip-encoded")
    args = parser.parse_args(argv)

    from bench.__main__ import render_bodies

    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        plain, gz, _ = render_bodies(args.events, args.users, day, tmp, args.gzip)
        with FileServer(plain, gz) as server:
            metric(server.url, day, args.metric, args.gzip)  # warm: imports, page cache
            profiler = cProfile.Profile()
            profiler.enable()
            metric(server.url, day, args.metric, args.gzip)
            profiler.disable()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    stats = pstats.Stats(profiler)
    total = cumulative(stats, "collector/export/attempt.py", "_stream")
    times = {stage: sum(cumulative(stats, w, n) for w, n in refs) for stage, refs in STAGES.items()}
    aggregators = next(t for t in (cumulative(stats, *sink) for sink in SINKS) if t)
    times["columns (validate, filter)"] = cumulative(stats, *COLUMNS)
    # Hashes are made on an aggregator's first use of a batch, so inside `add`.
    times["aggregators (sets, grouping)"] = max(0.0, aggregators - times["hashing"])
    times["other (loop, reports, freeing)"] = max(0.0, total - sum(times.values()))
    print(f"{args.metric}{' (gzip)' if args.gzip else ''}: {total:.2f} s under cProfile\n")
    print("| stage | seconds | share |\n|---|---:|---:|")
    for stage, seconds in times.items():
        print(f"| {stage} | {seconds:.2f} | {seconds / total:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
