"""Run the simulator in the foreground, or measure how fast it renders bodies.

python -m collector.simulator --port 8080 --seed 7 --events-per-minute 200
python -m collector.simulator --bench 1440 --events-per-minute 1000
"""

from __future__ import annotations

import argparse
import base64
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from collector.simulator.body import BodyPlan, iter_body
from collector.simulator.config import SimConfig
from collector.simulator.events import EventSource
from collector.simulator.faults import KINDS
from collector.simulator.server import Simulator
from collector.simulator.wire import gzip_blocks


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    config = SimConfig(
        seed=args.seed,
        events_per_minute=args.events_per_minute,
        users=args.users,
        project_timezone=args.timezone,
        username=args.username,
        secret=args.secret,
        project_id=args.project_id,
        api_secret=args.api_secret,
        malformed_per_query=args.malformed,
        duplicate_rate=args.duplicate_rate,
        honour_where=not args.ignore_where,
        honour_event_filter=not args.ignore_event_filter,
    )
    if args.bench:
        _bench(config, args.bench, args.gzip)
        return
    sim = Simulator(config, host=args.host, port=args.port).start()
    _describe(sim)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


EPILOG = f"""\
control endpoints (same server):
  POST   /_sim/faults  {{"faults": [{{"kind": "reset", "after_bytes": 20000}},
                                  {{"kind": "status", "status": 429, "retry_after": 1}}]}}
  DELETE /_sim/faults  clear the fault queue
  GET    /_sim/truth?from=<ISO|epoch>&to=<ISO|epoch>[&event=NAME ...]
  GET    /_sim/stats
fault kinds: {", ".join(sorted(KINDS))}
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, and the epilog kept as written."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m collector.simulator",
        description="Mixpanel Raw Event Export simulator: deterministic events, scriptable faults.",
        formatter_class=_Formatter,
        epilog=EPILOG,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=8080, help="port to bind (0: any free port)")
    p.add_argument("--seed", type=int, default=1, help="every event is a function of the seed")
    p.add_argument("--events-per-minute", type=float, default=40, help="mean events per minute")
    p.add_argument("--users", type=int, default=500, help="size of the distinct_id pool")
    p.add_argument("--timezone", default="UTC", help="project timezone (IANA name)")
    p.add_argument("--username", default="sim-user", help="service account username")
    p.add_argument("--secret", default="sim-secret", help="service account secret")
    p.add_argument("--project-id", default="1", help="project_id the queries must carry")
    p.add_argument("--api-secret", default=None, help="also accept this legacy API secret")
    p.add_argument("--malformed", type=int, default=2, help="bad lines per response body")
    p.add_argument("--duplicate-rate", type=float, default=0.02, help="share of lines sent twice")
    p.add_argument("--ignore-where", action="store_true", help="send whole days despite `where`")
    p.add_argument("--ignore-event-filter", action="store_true", help="ignore the `event` param")
    p.add_argument(
        "--bench",
        type=int,
        metavar="MINUTES",
        default=0,
        help="no server: render MINUTES of body in this thread and report lines/s",
    )
    p.add_argument("--gzip", action="store_true", help="with --bench: also gzip the body")
    return p


def _describe(sim: Simulator) -> None:
    cfg = sim.config
    yesterday = (sim.today() - timedelta(days=1)).isoformat()
    token = base64.b64encode(f"{cfg.username}:{cfg.secret}".encode()).decode()
    print(f"Mixpanel export simulator listening on {sim.base_url}", flush=True)
    print(f"  export URL : {sim.url}")
    print(f"  auth       : Basic {cfg.username}:{cfg.secret} (Authorization: Basic {token})")
    print(f"  project_id : {cfg.project_id}")
    if cfg.api_secret:
        print(f"  legacy auth: Basic {cfg.api_secret}: (empty password, no project_id)")
    print(f"  timezone   : {cfg.project_timezone}   seed: {cfg.seed}")
    print(
        f"  try        : curl -u {cfg.username}:{cfg.secret} "
        f"'{sim.url}?project_id={cfg.project_id}&from_date={yesterday}&to_date={yesterday}'"
    )
    print(
        f"  control    : GET {sim.base_url}/_sim/stats, GET /_sim/truth, POST/DELETE /_sim/faults"
    )
    print("Ctrl-C to stop.", flush=True)


def _bench(config: SimConfig, minutes: int, gzip: bool) -> None:
    source = EventSource(config)
    start = int(datetime(2025, 11, 1, tzinfo=UTC).timestamp())
    plan = BodyPlan(start, start + minutes * 60, None, None)
    lines = raw = 0

    def counted() -> Iterator[bytes]:
        nonlocal lines, raw
        for block in iter_body(source, plan):
            lines += block.count(b"\n")
            raw += len(block)
            yield block

    began = time.perf_counter()
    sent = sum(len(block) for block in (gzip_blocks(counted()) if gzip else counted()))
    seconds = time.perf_counter() - began
    print(
        f"{lines} lines, {raw / 1e6:.1f} MB ({sent / 1e6:.1f} MB sent{', gzip' if gzip else ''})"
        f" in {seconds:.2f} s: {lines / seconds:,.0f} lines/s, {raw / 1e6 / seconds:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
