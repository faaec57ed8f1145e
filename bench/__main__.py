"""Reading speed and memory: the predecessor's reader, this project's reader, and the limits.

    python -m bench [--events N] [--users N] [--names N] [--gzip] [--modes M,...]
                    [--network MB/s,...] [--plot docs/benchmarks.png]

Renders one day of N simulated events (~0.7 KB each) once with the embedded simulator, serves
those bytes from a loopback server, and reads them in separate processes (so each peak RSS is
its own): the old reader (iter_lines + json.loads + a set of ids), this project's reader for each
metric and for the five rules of a `/check` at once, the raw transfer with no parsing, and this
project's decoder over the bytes in memory. Ratios are within one run, so they hold on a noisy
machine. With --network, `/events` is also read plain and gzip from a server paced at each
speed, to show where gzip starts to win. With --plot, the figures are also drawn as one PNG
(matplotlib, from requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.serve import FileServer
from collector.simulator import SimConfig, Simulator

MODES = ["baseline", "raw", "decode", "distinct_users", "events", "active_users", "check"]


def render_body(events: int, users: int, day: str, path: Path, names: int = 0) -> int:
    per_minute = max(1, math.ceil(events / 1440))
    config = SimConfig(
        seed=1,
        events_per_minute=per_minute,
        users=users,
        username="bench",
        secret="bench-secret",
        project_id="1",
        malformed_per_query=0,
        extra_names=names,
    )
    with Simulator(config) as sim, path.open("wb") as out:
        params = {"from_date": day, "to_date": day, "project_id": "1"}
        headers = {"Accept-Encoding": "identity"}
        with requests.get(
            sim.url,
            params=params,
            auth=("bench", "bench-secret"),
            headers=headers,
            stream=True,
            timeout=600,
        ) as r:
            r.raise_for_status()
            for chunk in r.iter_content(1024 * 1024):
                out.write(chunk)
    with path.open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def render_bodies(
    events: int, users: int, day: str, tmp: Path, with_gzip: bool, names: int = 0
) -> tuple[Path, Path | None, int]:
    """The body file, its gzip copy if asked (level 6, as servers commonly send), its lines."""
    plain = tmp / "body.jsonl"
    lines = render_body(events, users, day, plain, names)
    gz = None
    if with_gzip:
        gz = tmp / "body.jsonl.gz"
        with plain.open("rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return plain, gz, lines


def run_mode(mode: str, url: str, body: Path, day: str, use_gzip: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.modes", mode, url, str(body), day, "1" if use_gzip else "0"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events (default 1M)")
    parser.add_argument("--users", type=int, default=100_000, help="distinct users (100k)")
    parser.add_argument(
        "--names",
        type=int,
        default=0,
        metavar="N",
        help="N more distinct event names, drawn uniformly (cardinality; default 0: five names)",
    )
    parser.add_argument("--gzip", action="store_true", help="also read gzip bodies")
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="also draw the figures into this PNG file"
    )
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="runs of each mode, the fastest kept: timings on a shared machine are noisy (3)",
    )
    parser.add_argument(
        "--network",
        default="",
        metavar="MB/s,...",
        help="also time /events plain and gzip at these paced link speeds (needs --gzip)",
    )
    args = parser.parse_args(argv)
    try:
        speeds = [float(v) for v in args.network.split(",") if v.strip()]
    except ValueError:
        parser.error("--network takes link speeds in MB/s, comma-separated: --network 50,100")
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    if args.names < 0:
        parser.error("--names must be 0 or more")
    repeat = args.repeat
    if speeds and not args.gzip:
        parser.error("--network compares plain and gzip bodies: add --gzip")
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(
            f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}"
        )

    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        plain, gz, lines = render_bodies(args.events, args.users, day, tmp, args.gzip, args.names)
        size = plain.stat().st_size
        print(
            f"body: {lines:,} lines, {size / 1e6:,.0f} MB ({size / max(lines, 1):.0f} B/line)"
            + (f", gzip {gz.stat().st_size / 1e6:,.0f} MB" if gz else "")
        )
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {platform.system()}; "
            f"fastest of {repeat} runs per mode"
        )
        results = []
        with FileServer(plain, gz) as server:
            modes = args.modes.split(",")
            runs = [(m, False) for m in modes]
            if gz:
                runs += [(m, True) for m in modes if m in {"distinct_users", "events", "check"}]
            for mode, use_gzip in runs:
                tries = [run_mode(mode, server.url, plain, day, use_gzip) for _ in range(repeat)]
                res = min(tries, key=lambda r: r["seconds"])
                res["label"] = mode + (" (gzip)" if use_gzip else "")
                results.append(res)
                print(f"  measured {res['label']}", file=sys.stderr)
        print_table(results, size)
        disagree = disagreements(results)
        for line in disagree:
            print(f"DISAGREE: {line}", file=sys.stderr)
        network = []
        if speeds and gz:
            network = print_network(speeds, plain, gz, day, size, gz.stat().st_size)
        if args.plot:
            from bench.plot import plot

            print(f"plot: {plot(args.plot, results, network)}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if disagree else 0


def disagreements(results: list[dict]) -> list[str]:
    """Every mode read the same body: events read and distinct users must agree across them."""
    problems = []
    events = {r["label"]: r["events"] for r in results}
    if len(set(events.values())) > 1:
        problems.append(f"events read differ between modes: {events}")
    users = {
        r["label"]: r["value"]
        for r in results
        if r["mode"] in {"baseline", "distinct_users", "active_users", "check"}
    }
    if len(set(users.values())) > 1:
        problems.append(f"distinct users differ between modes: {users}")
    return problems


def print_table(results: list[dict], size: int) -> None:
    rate = {r["label"]: r["events"] / r["seconds"] for r in results}
    base = rate.get("baseline")
    limit = rate.get("decode")
    print(
        "\n| mode | events | seconds | events/s | MB/s | x baseline | of decode limit "
        "| peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for r in results:
        ev_s = rate[r["label"]]
        mb_s = size / 1e6 / r["seconds"]
        x_base = f"{ev_s / base:.1f}x" if base else "-"
        of_limit = f"{ev_s / limit:.0%}" if limit else "-"
        print(
            f"| {r['label']} | {r['events']:,} | {r['seconds']:.2f} | {ev_s:,.0f} | "
            f"{mb_s:,.0f} | {x_base} | {of_limit} | {r['peak_rss_mib']:.0f} |"
        )


def print_network(
    speeds: list[float], plain: Path, gz: Path, day: str, size: int, gz_size: int
) -> list[tuple[float, float, float]]:
    print(
        "\n| link MB/s | body MB plain / gzip | plain s | gzip s | gzip wins by |"
        "\n|---:|---:|---:|---:|---:|"
    )
    rows = []
    for speed in speeds:
        with FileServer(plain, gz, rate=speed * 1e6) as server:
            took = {}
            for use_gzip in (False, True):
                took[use_gzip] = run_mode("events", server.url, plain, day, use_gzip)["seconds"]
                print(f"  measured events at {speed:g} MB/s, gzip={use_gzip}", file=sys.stderr)
        print(
            f"| {speed:g} | {size / 1e6:,.0f} / {gz_size / 1e6:,.0f} | {took[False]:.2f} | "
            f"{took[True]:.2f} | {took[False] / took[True]:.2f}x |"
        )
        rows.append((speed, took[False], took[True]))
    return rows


if __name__ == "__main__":
    sys.exit(main())
