"""Decode blocks of lines in forked helper processes while this one reads the network.

Half of a read's time is `decode_lines` and the column work after it (docs/benchmarks.md), all
under the GIL, so a thread cannot help; another process can. Helpers are forked for one attempt
and decode blocks the reader copies into shared memory; they send back only what aggregators
need: names, times, 64-bit hashes and which rows carry an `$insert_id`. A helper is a fork of
this process, so its `hash()` is this process's and its hashes mix with ours.

A block goes to a helper only when one has a free slot; otherwise the reader decodes it itself,
which balances the work without tuning. Nothing is lost if a helper fails: the blocks it had not
answered are still in their slots, and the reader decodes them itself and carries on without it.

The child never returns into the parent's code: it closes every descriptor but its own pipe
(other requests' sockets must close when their owner closes them), serves, and `os._exit`s.
It exits when the pipe closes, so a killed worker leaves no helper behind.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from collector.export.batch import Batch
from collector.export.decode import EventFilter, LineStats

log = logging.getLogger("collector.export")

SLOTS = 4  # blocks in flight per helper: 4 MiB of shared memory each
SLOT_BYTES = 1024 * 1024  # a block is whole lines of one chunk: at most CHUNK_BYTES
# A 1 MiB block takes a helper a few milliseconds: one silent for a second is stuck, and the
# reader decodes the block itself rather than let the wait eat into the run's deadline.
ANSWER_SECONDS = 1.0
REAP_SECONDS = 0.25  # a told-to-stop helper exits at once; past this it is killed


@dataclass
class Decoded:
    batch: Batch
    stats: LineStats
    terminated: bool


class _Helper:
    def __init__(self, conn: Connection, pid: int, memory: mmap.mmap) -> None:
        self.conn = conn
        self.pid = pid
        self.memory = memory
        self.waiting: deque[tuple[int, int]] = deque()  # (slot, size) sent, not yet answered
        self.next_slot = 0
        self.alive = True

    @property
    def has_room(self) -> bool:
        return self.alive and len(self.waiting) < SLOTS


class DecodePool:
    """Helpers for one attempt: `submit` blocks of lines, take answers from `ready`, `close`."""

    def __init__(self, event_filter: EventFilter, processes: int) -> None:
        self.event_filter = event_filter
        self.helpers: list[_Helper] = []
        for _ in range(processes):
            helper = _fork(event_filter)
            if helper is None:
                break
            self.helpers.append(helper)

    def submit(self, block: memoryview) -> bool:
        """Hand a block to a helper with room; False if none has (decode it yourself)."""
        if len(block) > SLOT_BYTES:
            return False
        for helper in self.helpers:
            if helper.has_room:
                slot = helper.next_slot
                helper.next_slot = (slot + 1) % SLOTS
                size = len(block)
                helper.memory[slot * SLOT_BYTES : slot * SLOT_BYTES + size] = block
                helper.waiting.append((slot, size))
                try:
                    helper.conn.send((slot, size))
                except OSError as exc:
                    _give_up(helper, type(exc).__name__)  # `ready` decodes the block here
                return True
        return False

    def ready(self, wait: bool = False) -> Iterator[Decoded]:
        """Answers that have arrived (every outstanding one if `wait`), in each helper's order."""
        for helper in self.helpers:
            while helper.waiting:
                if helper.alive and not wait and not _poll(helper.conn, 0):
                    break
                yield self._answer(helper, wait)

    def _answer(self, helper: _Helper, wait: bool) -> Decoded:
        slot, size = helper.waiting[0]
        if helper.alive:
            try:
                if not wait or _poll(helper.conn, ANSWER_SECONDS):
                    answer = _unpack(helper.conn.recv())
                    helper.waiting.popleft()
                    return answer
                reason = f"no answer in {ANSWER_SECONDS:g} s"
            except (EOFError, OSError) as exc:
                reason = type(exc).__name__
            _give_up(helper, reason)
        helper.waiting.popleft()
        # The block is still in its slot: nothing the helper was given is lost.
        stats = LineStats()
        view = memoryview(helper.memory)[slot * SLOT_BYTES : slot * SLOT_BYTES + size]
        try:
            batch, terminated = self.event_filter.decode_block(bytes(view), stats)
        finally:
            view.release()
        return Decoded(batch, stats, terminated)

    def close(self) -> None:
        for helper in self.helpers:
            with contextlib.suppress(OSError):
                helper.conn.send(None)
            helper.conn.close()
        deadline = time.monotonic() + REAP_SECONDS
        for helper in self.helpers:
            _reap(helper.pid, deadline)
            helper.memory.close()
        self.helpers = []


def _give_up(helper: _Helper, reason: str) -> None:
    helper.alive = False
    log.warning(
        "decode helper stopped (%s): decoding its blocks in this process",
        reason,
        extra={"json_fields": {"helper_pid": helper.pid, "blocks": len(helper.waiting)}},
    )


def _poll(conn: Connection, timeout: float) -> bool:
    try:
        return conn.poll(timeout)
    except (EOFError, OSError):
        return True  # the recv that follows raises, and the helper is given up


def _reap(pid: int, deadline: float) -> None:
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return
        time.sleep(0.005)


def _fork(event_filter: EventFilter) -> _Helper | None:
    # Anonymous shared memory: no file in /dev/shm to leak if anything dies.
    memory = mmap.mmap(-1, SLOTS * SLOT_BYTES)
    ours, theirs = socket.socketpair()
    try:
        pid = os.fork()
    except OSError as exc:
        log.warning("could not start a decode helper (%s): decoding in this process", exc.strerror)
        ours.close()
        theirs.close()
        memory.close()
        return None
    if pid == 0:  # the child: never returns
        code = 1
        try:
            ours.close()
            _child(Connection(theirs.detach()), memory, event_filter)
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    return _Helper(Connection(ours.detach()), pid, memory)


def _child(conn: Connection, memory: mmap.mmap, event_filter: EventFilter) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when helpers stop
    keep = conn.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, _max_fd())
    while (message := conn.recv()) is not None:
        slot, size = message
        stats = LineStats()
        view = memoryview(memory)[slot * SLOT_BYTES : slot * SLOT_BYTES + size]
        batch, terminated = event_filter.decode_block(view, stats)
        view.release()
        conn.send(_pack(batch, stats, terminated))


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536


def _pack(batch: Batch, stats: LineStats, terminated: bool) -> tuple:
    table = list(dict.fromkeys(batch.names))
    index = {name: i for i, name in enumerate(table)}
    codes = np.fromiter(map(index.__getitem__, batch.names), np.int32, len(batch))
    return (
        table,
        codes.tobytes(),
        batch.times.tobytes(),
        batch.user_hashes().tobytes(),
        batch.key_hashes().tobytes(),
        batch.keyed().tobytes(),
        (stats.lines, stats.bad_lines, stats.skipped, stats.samples),
        terminated,
    )


def _unpack(message: tuple) -> Decoded:
    table, codes, times, users, keys, keyed, counts, terminated = message
    names = list(map(table.__getitem__, np.frombuffer(codes, np.int32).tolist()))
    batch = Batch.hashed(
        names,
        np.frombuffer(times, np.float64),
        np.frombuffer(users, np.int64),
        np.frombuffer(keys, np.int64),
        np.frombuffer(keyed, bool),
    )
    lines, bad_lines, skipped, samples = counts
    return Decoded(batch, LineStats(lines, bad_lines, skipped, samples), terminated)
