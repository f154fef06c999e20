"""Whether a motion event alerts the owner: no storms, no alerts when unwanted. Pure logic.

An event start is alerted unless, in this order: the owner snoozed every alert, the
camera's alerts are off, the event's local time is in quiet hours, or this camera
alerted less than the cooldown ago (one alert per burst: a person pacing the porch
starts several events, the owner hears of the first). Only alerts that go out start a
cooldown, so a camera is told at most once per cooldown and never silenced for good.

Quiet hours are wall-clock ranges in the configured time zone, read at each event's
own instant: "22:30-06:30" means the same local times in winter and summer, and a range
inside the hour a spring-forward skips simply holds no instant that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum

from hub.config import AlertSettings, QuietRange


class Verdict(StrEnum):
    SEND = "send"
    SNOOZED = "snoozed"
    CAMERA_OFF = "camera off"
    QUIET_HOURS = "quiet hours"
    COOLDOWN = "cooldown"


@dataclass(frozen=True, slots=True)
class Choices:
    """What the owner set on the page (kept in the index): read at each decision."""

    muted: frozenset[str] = frozenset()  # cameras whose alerts are off
    snoozed_until: float | None = None  # Unix time; no alert at all before it


def in_quiet_hours(when: float, ranges: tuple[QuietRange, ...], zone: tzinfo) -> bool:
    """Whether the local wall-clock time of the instant `when` falls in any range
    (start included, end excluded; a range whose end is before its start wraps midnight)."""
    if not ranges:
        return False
    local = datetime.fromtimestamp(when, zone)
    minute = local.hour * 60 + local.minute
    for start, end in ranges:
        if start < end:
            if start <= minute < end:
                return True
        elif minute >= start or minute < end:
            return True
    return False


class AlertPolicy:
    """Decides per event start; remembers when each camera last alerted."""

    def __init__(self, settings: AlertSettings, zone: tzinfo) -> None:
        self._cooldown = settings.cooldown_seconds
        self._quiet = settings.quiet_hours
        self._zone = zone
        self._last: dict[str, float] = {}  # camera id -> time of its last alert

    def decide(self, camera_id: str, when: float, choices: Choices, now: float) -> Verdict:
        """`when`: the event's start (for quiet hours); `now`: the clock (for snooze and
        cooldown, which are about the owner's time, not the camera's stamps)."""
        if choices.snoozed_until is not None and now < choices.snoozed_until:
            return Verdict.SNOOZED
        if camera_id in choices.muted:
            return Verdict.CAMERA_OFF
        if in_quiet_hours(when, self._quiet, self._zone):
            return Verdict.QUIET_HOURS
        last = self._last.get(camera_id)
        # A clock stepped back makes `now` earlier than `last`: that is no cooldown.
        if last is not None and 0 <= now - last < self._cooldown:
            return Verdict.COOLDOWN
        self._last[camera_id] = now
        return Verdict.SEND

    def decide_hub(self, choices: Choices, now: float) -> Verdict:
        """For a notice about the hub itself (the off-site copy): the snooze and quiet
        hours hold it back (it is not urgent at 3 a.m.); no camera switch or cooldown
        applies, its own rule (hub/alerts/offsite_notice.py) keeps it from repeating."""
        if choices.snoozed_until is not None and now < choices.snoozed_until:
            return Verdict.SNOOZED
        if in_quiet_hours(now, self._quiet, self._zone):
            return Verdict.QUIET_HOURS
        return Verdict.SEND
