"""Experiment: does decoding in a second process make the reader faster on this machine?

    python -m bench.parallel [--events N] [--users N]

The profile (docs/benchmarks.md) puts about half of a read in `decode_lines` and the column
work after it. This measures exact distinct users over the same loopback stream two ways, each in
a fresh process: one process doing everything, and the same process sending every other block
of lines to a forked helper that decodes it and sends back only the 64-bit user hashes (the
helper shares the parent's hash seed because it is forked). Both answers must agree.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import requests

from bench.modes import CHUNK, peak_rss_mib, window_of
from bench.serve import FileServer
from collector.export.decode import EventFilter, LineSplitter, LineStats
from collector.metrics.hashset import HashSet
from collector.window import ProjectTime, Window

SLOTS = 4
SLOT_BYTES = 2 * CHUNK  # a block is at most one chunk; a joined line goes through the pipe


def _helper(conn: Connection, day: str, shm_name: str) -> None:
    flt = EventFilter(Window(*window_of(day)), None, ProjectTime("UTC"))
    stats = LineStats()
    shm = shared_memory.SharedMemory(shm_name)
    try:
        while (msg := conn.recv()) is not None:
            if isinstance(msg, bytes):
                block: bytes | memoryview = msg
            else:
                slot, size = msg
                block = shm.buf[slot * SLOT_BYTES : slot * SLOT_BYTES + size]
            batch, _ = flt.decode_block(block, stats)
            del block
            conn.send_bytes(batch.user_hashes().tobytes())
    finally:
        shm.close()


def distinct_users(url: str, day: str, helpers: int) -> dict:
    flt = EventFilter(Window(*window_of(day)), None, ProjectTime("UTC"))
    stats, splitter, users = LineStats(), LineSplitter(), HashSet()
    conns: list[Connection] = []
    procs = []
    shms = []
    for _ in range(helpers):
        # Blocks go through shared memory: through a pipe, each 1 MiB block cost ~1.7 ms of
        # hand-shaking, as much as decoding it.
        shm = shared_memory.SharedMemory(create=True, size=SLOTS * SLOT_BYTES)
        mine, theirs = multiprocessing.get_context("fork").Pipe()
        proc = multiprocessing.get_context("fork").Process(
            target=_helper, args=(theirs, day, shm.name)
        )
        proc.start()
        conns.append(mine)
        procs.append(proc)
        shms.append(shm)
    in_flight = [0] * helpers
    sent = [0] * helpers
    turn = 0

    def collect(i: int, wait: bool) -> None:
        while in_flight[i] and (wait or conns[i].poll()):
            users.update(np.frombuffer(conns[i].recv_bytes(), dtype=np.int64))
            in_flight[i] -= 1

    t0 = time.perf_counter()
    nbytes = 0
    with requests.get(url, params={"from_date": day}, stream=True, timeout=60) as r:
        for chunk in r.iter_content(CHUNK):
            nbytes += len(chunk)
            # By chunk, not by block: a chunk gives a small joined line and one large view.
            turn = (turn + 1) % (helpers + 1)
            for block in splitter.feed(chunk):
                if turn < helpers:
                    # A slot is free again once its result is back: keep fewer in flight.
                    collect(turn, wait=in_flight[turn] >= SLOTS - 1)
                    if isinstance(block, memoryview):
                        slot = sent[turn] % SLOTS
                        shms[turn].buf[slot * SLOT_BYTES : slot * SLOT_BYTES + len(block)] = block
                        conns[turn].send((slot, len(block)))
                        sent[turn] += 1
                    else:
                        conns[turn].send(block)
                    in_flight[turn] += 1
                else:
                    batch, _ = flt.decode_block(block, stats)
                    users.update(batch.user_hashes())
    for i in range(helpers):
        collect(i, wait=True)
        conns[i].send(None)
        procs[i].join()
        shms[i].close()
        shms[i].unlink()
    return {
        "helpers": helpers,
        "seconds": time.perf_counter() - t0,
        "bytes": nbytes,
        "users": len(users),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parallel", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way (3)")
    parser.add_argument("--run", nargs=3, metavar=("URL", "DAY", "HELPERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        url, day, helpers = args.run
        print(json.dumps(distinct_users(url, day, int(helpers))))
        return 0

    from bench.__main__ import render_body

    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        body = tmp / "body.jsonl"
        lines = render_body(args.events, args.users, day, body)
        print(f"body: {lines:,} lines, {body.stat().st_size / 1e6:,.0f} MB")
        print("| helpers | seconds | events/s | users | peak RSS MiB (main) |")
        print("|---:|---:|---:|---:|---:|")
        with FileServer(body) as server:
            for _ in range(args.repeat):
                for helpers in (0, 1):
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "bench.parallel",
                            "--run",
                            server.url,
                            day,
                            str(helpers),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                    print(
                        f"| {helpers} | {res['seconds']:.2f} | {lines / res['seconds']:,.0f} | "
                        f"{res['users']:,} | {res['peak_rss_mib']:.0f} |"
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
