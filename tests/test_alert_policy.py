"""The no-storm policy: cooldown, quiet hours across time zones and DST, snooze, muting."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.alerts.policy import AlertPolicy, Choices, Verdict, in_quiet_hours
from hub.alerts.service import local_zone
from hub.config import AlertSettings

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = ((22 * 60 + 30, 6 * 60 + 30),)  # 22:30-06:30


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def policy(cooldown: float = 60.0, quiet: tuple[tuple[int, int], ...] = ()) -> AlertPolicy:
    return AlertPolicy(AlertSettings(cooldown_seconds=cooldown, quiet_hours=quiet), BERLIN)


def test_one_alert_per_burst_then_again_after_the_cooldown() -> None:
    p, free = policy(cooldown=60), Choices()
    t = utc(2026, 1, 15, 12, 0)
    verdicts = [p.decide("porch", t + s, free, now=t + s) for s in (0, 10, 30, 59.9, 60, 61)]
    assert verdicts == [Verdict.SEND] + [Verdict.COOLDOWN] * 3 + [Verdict.SEND, Verdict.COOLDOWN]
    # Each camera has its own cooldown.
    assert p.decide("garage", t + 10, free, now=t + 10) is Verdict.SEND


def test_suppressed_events_do_not_extend_the_cooldown() -> None:
    """A camera busy every 30 s still alerts once a cooldown, never silenced for good."""
    p, free = policy(cooldown=60), Choices()
    t = utc(2026, 1, 15, 12, 0)
    sent = [s for s in range(0, 600, 30) if p.decide("porch", t + s, free, t + s) is Verdict.SEND]
    assert sent == list(range(0, 600, 60))


def test_a_clock_stepped_back_is_no_cooldown() -> None:
    p, free = policy(cooldown=60), Choices()
    t = utc(2026, 1, 15, 12, 0)
    assert p.decide("porch", t, free, now=t) is Verdict.SEND
    assert p.decide("porch", t - 3600, free, now=t - 3600) is Verdict.SEND


def test_zero_cooldown_alerts_every_event() -> None:
    p, free = policy(cooldown=0), Choices()
    t = utc(2026, 1, 15, 12, 0)
    assert [p.decide("porch", t, free, now=t) for _ in range(3)] == [Verdict.SEND] * 3


def test_snooze_then_mute_then_quiet_hours_in_that_order() -> None:
    p = policy(quiet=NIGHT)
    night = utc(2026, 1, 15, 23, 0)  # 00:00 in Berlin (UTC+1 in winter)
    day = utc(2026, 1, 15, 11, 0)
    snoozed = Choices(muted=frozenset({"porch"}), snoozed_until=day + 3600)
    assert p.decide("porch", night, snoozed, now=day) is Verdict.SNOOZED
    muted = Choices(muted=frozenset({"porch"}), snoozed_until=day)  # the snooze has ended
    assert p.decide("porch", night, muted, now=day) is Verdict.CAMERA_OFF
    assert p.decide("porch", night, Choices(), now=day) is Verdict.QUIET_HOURS
    assert p.decide("porch", day, Choices(), now=day) is Verdict.SEND
    assert p.decide("garage", day, muted, now=day) is Verdict.SEND  # only porch is off


def test_alerts_held_back_start_no_cooldown() -> None:
    """An event in quiet hours (or snoozed) is not an alert: the next one may be."""
    p = policy(cooldown=60, quiet=NIGHT)
    t = utc(2026, 1, 15, 5, 29)  # 06:29 in Berlin: quiet
    assert p.decide("porch", t, Choices(), now=t) is Verdict.QUIET_HOURS
    assert p.decide("porch", t + 60, Choices(), now=t + 30) is Verdict.SEND  # 06:30


def test_quiet_hours_follow_local_time_across_dst() -> None:
    """06:00 Berlin is 05:00 UTC in winter and 04:00 UTC in summer: both quiet."""
    assert in_quiet_hours(utc(2026, 1, 15, 5, 0), NIGHT, BERLIN)  # 06:00 CET
    assert in_quiet_hours(utc(2026, 7, 15, 4, 0), NIGHT, BERLIN)  # 06:00 CEST
    assert not in_quiet_hours(utc(2026, 7, 15, 5, 0), NIGHT, BERLIN)  # 07:00 CEST
    assert not in_quiet_hours(utc(2026, 1, 15, 5, 30), NIGHT, BERLIN)  # 06:30 CET: end excluded
    assert in_quiet_hours(utc(2026, 1, 15, 21, 30), NIGHT, BERLIN)  # 22:30 CET: start included
    assert not in_quiet_hours(utc(2026, 1, 15, 21, 29), NIGHT, BERLIN)
    # The same instant is not quiet where it is already morning.
    assert not in_quiet_hours(utc(2026, 1, 15, 5, 0), NIGHT, ZoneInfo("Asia/Tokyo"))


def test_quiet_hours_on_the_days_the_clocks_change() -> None:
    """Berlin springs from 02:00 to 03:00 on 29 March 2026 and falls back from 03:00 to
    02:00 on 25 October 2026."""
    skipped = ((2 * 60 + 15, 2 * 60 + 45),)  # 02:15-02:45 does not exist that spring day
    spring = utc(2026, 3, 29, 0, 0)  # 01:00 CET
    minutes = [spring + 60 * m for m in range(120)]  # 01:00 CET .. 03:59 CEST
    assert not any(in_quiet_hours(t, skipped, BERLIN) for t in minutes)
    # In autumn 02:15-02:45 happens twice (CEST, then CET): both are quiet.
    autumn_cest = utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    autumn_cet = utc(2026, 10, 25, 1, 30)  # 02:30 CET
    assert in_quiet_hours(autumn_cest, skipped, BERLIN)
    assert in_quiet_hours(autumn_cet, skipped, BERLIN)
    assert not in_quiet_hours(utc(2026, 10, 25, 1, 0), skipped, BERLIN)  # 02:00 CET


def test_several_ranges_and_none() -> None:
    ranges = ((9 * 60, 12 * 60), (13 * 60, 17 * 60))  # 09-12 and 13-17 in Berlin
    assert in_quiet_hours(utc(2026, 1, 15, 10, 0), ranges, BERLIN)  # 11:00
    assert not in_quiet_hours(utc(2026, 1, 15, 11, 30), ranges, BERLIN)  # 12:30
    assert in_quiet_hours(utc(2026, 1, 15, 13, 0), ranges, BERLIN)  # 14:00
    assert not in_quiet_hours(utc(2026, 1, 15, 13, 0), (), BERLIN)


def test_the_system_zone_keeps_its_dst_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """time_zone = "" is the system's zone with its rules, not the offset of the day the
    hub started: a hub started in winter keeps quiet hours right in summer."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        zone = local_zone("")
        winter, summer = utc(2026, 1, 15, 12, 0), utc(2026, 7, 15, 12, 0)
        for instant in (winter, summer):
            offset = datetime.fromtimestamp(instant, zone).utcoffset()
            assert offset is not None
            assert offset.total_seconds() == time.localtime(instant).tm_gmtoff
        assert (
            datetime.fromtimestamp(winter, zone).utcoffset()
            != datetime.fromtimestamp(summer, zone).utcoffset()
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
