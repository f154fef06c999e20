"""Retention under a wrong wall clock, through Archive and Index with real files and a real
SQLite file. The clock is injected: footage is stamped as a skewed clock would stamp it,
and `now` is what that clock says at each retention pass."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub.archive import Archive, RetentionPolicy
from hub.clock import Reading
from hub.store import Index
from hub.vault import sealed_size

DAY = 86400.0
REAL = 1_800_000_000.0  # 2027-01-15: the true time when the tests begin
SEGMENT = 60.0  # seconds of footage per segment here
MONTH = RetentionPolicy(max_age_days=30, max_footage_bytes=0, min_free_bytes=0)


class SkewedClock:
    """A wall clock that can be set wrong, beside an elapsed-time clock that cannot."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.elapsed = 1000.0

    def __call__(self) -> Reading:
        return Reading(self.wall, self.elapsed)

    def run(self, seconds: float) -> None:
        self.wall += seconds
        self.elapsed += seconds


def hub_archive(
    tmp_path: Path, index: Index, owner: X25519PrivateKey, clock: SkewedClock, **policy: int
) -> Archive:
    """A hub (re)started: a fresh Archive, which has seen nothing of the clock yet."""
    limits = {"max_age_days": 30, "max_footage_bytes": 0, "min_free_bytes": 0} | policy
    return Archive(tmp_path, index, owner.public_key(), RetentionPolicy(**limits), clock=clock)


def record_for(archive: Archive, clock: SkewedClock, minutes: int) -> list[str]:
    """Record continuously for `minutes`, stamped by `clock`; one retention pass a minute."""
    ids = []
    for _ in range(minutes):
        start = clock.wall
        out = archive.open_segment("porch", start)
        out.write(random.Random(len(ids)).randbytes(2000))
        clock.run(SEGMENT)
        out.finish(start + SEGMENT, frames=600)
        ids.append(out.row.id)
        report = archive.enforce_retention(clock.wall)
        assert report.segments == 0, report.lines()
    return ids


def passes(archive: Archive, clock: SkewedClock, count: int, every: float = 60.0) -> int:
    """Retention passes as the housekeeping thread runs them; footage files deleted."""
    deleted = 0
    for _ in range(count):
        clock.run(every)
        deleted += archive.enforce_retention(clock.wall).segments
    return deleted


def alive(index: Index, ids: list[str]) -> list[str]:
    return [i for i in ids if index.get_segment(i) is not None]


def test_a_clock_40_days_slow_then_corrected_deletes_nothing(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    clock = SkewedClock(REAL - 40 * DAY)  # a Pi booted without NTP
    archive = hub_archive(tmp_path, index, owner, clock)
    ids = record_for(archive, clock, 20)
    clock.wall += 40 * DAY  # NTP steps the clock
    assert passes(archive, clock, 5) == 0
    ids += record_for(archive, clock, 5)
    assert passes(archive, clock, 5) == 0
    assert alive(index, ids) == ids
    # And the age limit still holds, by the corrected clock: a month on, all of it goes.
    clock.run(30 * DAY)
    assert passes(archive, clock, 1) == 0  # still within a month of the last segment
    clock.run(2 * DAY)
    archive.policy = RetentionPolicy(30, 0, 0, keep_newest_seconds=0)
    assert passes(archive, clock, 1) == len(ids)


def test_a_clock_jumping_31_days_ahead_deletes_nothing(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    clock = SkewedClock(REAL)
    archive = hub_archive(tmp_path, index, owner, clock)
    ids = record_for(archive, clock, 10)
    clock.wall += 31 * DAY  # a bad NTP source
    assert passes(archive, clock, 3) == 0
    ids += record_for(archive, clock, 5)
    clock.wall -= 31 * DAY  # and back
    ids += record_for(archive, clock, 5)
    assert passes(archive, clock, 3) == 0
    assert alive(index, ids) == ids


def test_a_restart_with_the_clock_behind_the_footage_pauses_age_deletes_and_says_so_once(
    tmp_path: Path, index: Index, owner: X25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SkewedClock(REAL - 3600)
    before = record_for(hub_archive(tmp_path, index, owner, clock), clock, 10)
    clock = SkewedClock(REAL - 1800 - 40 * DAY)  # reboot without NTP, unseen by the hub
    archive = hub_archive(tmp_path, index, owner, clock, max_age_days=2, keep_newest_seconds=0)
    with caplog.at_level(logging.WARNING, logger="hub.archive"):
        assert passes(archive, clock, 4) == 0
    paused = [r.getMessage() for r in caplog.records if "behind the newest" in r.getMessage()]
    assert len(paused) == 1, [r.getMessage() for r in caplog.records]
    assert "40.0 days behind the newest footage" in paused[0]
    slow = record_for(archive, clock, 10)
    # Restarted again after NTP fixed the clock, again unseen. The slow stamps say
    # 40 days, but the footage was recorded after footage an hour old: it is not older.
    clock = SkewedClock(REAL)
    archive = hub_archive(tmp_path, index, owner, clock, max_age_days=2, keep_newest_seconds=0)
    assert passes(archive, clock, 3) == 0
    assert alive(index, before + slow) == before + slow
    clock.run(2 * DAY)  # and the age limit still holds
    assert passes(archive, clock, 1) == len(before + slow)


def test_budget_and_free_space_deletes_go_in_recording_order_whatever_the_stamps(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    clock = SkewedClock(REAL)
    archive = hub_archive(tmp_path, index, owner, clock)
    first = record_for(archive, clock, 3)
    clock.wall -= 40 * DAY  # stamps now sort before the first three
    second = record_for(archive, clock, 3)
    budget = 4 * sealed_size(2000)
    archive.policy = RetentionPolicy(30, budget, 0)
    report = archive.enforce_retention(clock.wall)
    assert (report.segments, report.by_budget, report.by_age) == (2, 2, 0)
    assert alive(index, first + second) == first[2:] + second


def test_the_newest_footage_never_goes_for_its_age(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    clock = SkewedClock(REAL)
    ids = record_for(hub_archive(tmp_path, index, owner, clock), clock, 40)
    # Restarted with a clock 31 days fast, unseen: by its stamps, everything is old.
    clock = SkewedClock(REAL + 31 * DAY)
    archive = hub_archive(tmp_path, index, owner, clock, keep_newest_seconds=1800)
    report = archive.enforce_retention(clock.wall)
    assert report.by_age == 10
    assert alive(index, ids) == ids[10:]  # the newest 30 minutes of footage


def test_existing_steps_are_remembered_across_a_restart(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    clock = SkewedClock(REAL - 40 * DAY)
    archive = hub_archive(tmp_path, index, owner, clock)
    ids = record_for(archive, clock, 5)
    clock.wall += 40 * DAY
    passes(archive, clock, 1)
    restarted = hub_archive(tmp_path, index, owner, SkewedClock(clock.wall + 60))
    assert passes(restarted, SkewedClock(clock.wall + 60), 3) == 0
    assert alive(index, ids) == ids
