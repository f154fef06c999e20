"""The per-camera disk writer: order, the byte bound, draining at close."""

from __future__ import annotations

import logging
import sqlite3
import threading

import pytest

from hub.logs import limit_repeats
from hub.writer import DiskWriter


def test_work_runs_in_order_on_its_own_thread_and_close_drains_it() -> None:
    writer = DiskWriter("porch")
    done: list[tuple[int, str]] = []
    gate = threading.Event()
    writer.start()
    writer.put(gate.wait)  # a slow fsync: everything after it waits, in order
    for n in range(50):
        writer.put(lambda n=n: done.append((n, threading.current_thread().name)), size=10)
    assert done == [] and writer.pending_bytes == 500
    gate.set()
    writer.close()
    assert [n for n, _ in done] == list(range(50))
    assert {name for _, name in done} == {"write-porch"}
    assert writer.pending_bytes == 0
    assert not writer.put(lambda: None)  # closed: nothing more is taken


def test_packets_past_the_bound_are_refused_but_events_are_not() -> None:
    writer = DiskWriter("porch", max_bytes=100)
    gate = threading.Event()
    ran: list[str] = []
    writer.start()
    writer.put(gate.wait)
    assert writer.put(lambda: ran.append("a"), size=60)
    assert not writer.put(lambda: ran.append("b"), size=60)  # would pass 100 bytes
    assert writer.put(lambda: ran.append("event"))  # size 0: always taken
    assert writer.put(lambda: ran.append("c"), size=40)
    gate.set()
    writer.close()
    assert ran == ["a", "event", "c"]


def test_a_failing_piece_of_work_does_not_stop_the_rest() -> None:
    writer = DiskWriter("porch")
    ran: list[int] = []
    writer.start()

    def fail() -> None:
        raise OSError(28, "No space left on device")

    writer.put(fail, size=5)
    writer.put(lambda: ran.append(1), size=5)
    writer.close()
    assert ran == [1] and writer.pending_bytes == 0


def test_a_failure_that_repeats_is_logged_once_a_minute_not_per_piece(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A damaged index fails every event write of every camera: a traceback per piece
    of work would fill the disk the footage lives on."""
    limit_repeats()
    writer = DiskWriter("porch")
    writer.start()
    tries: list[int] = []

    def fail() -> None:
        tries.append(1)
        raise sqlite3.DatabaseError("database disk image is malformed")

    with caplog.at_level(logging.ERROR, logger="hub.writer"):
        for _ in range(200):
            writer.put(fail)
        writer.close()
    assert len(tries) == 200
    # At most one: the filter is per process, and an earlier test may have used up
    # this minute's line already.
    failures = [r for r in caplog.records if r.name == "hub.writer"]
    assert len(failures) <= 1, len(failures)
