"""Whether the wall clock can be trusted to age footage. Pure logic, no I/O.

A Raspberry Pi has no real-time clock: it often boots days behind until NTP steps the
clock, and a bad NTP source can push it ahead. Footage is stamped with the wall clock,
so ageing it by that clock alone would delete fresh footage after any jump. Three
guards, each cheap:

1. Jumps are seen, not guessed: each reading pairs the wall clock with a clock that
   only moves forward (CLOCK_BOOTTIME). When the wall clock moves more than
   JUMP_LIMIT beyond the elapsed time, the jump is remembered as a step: footage with
   a sequence number up to the step's was stamped by the clock before it, and is aged
   as if stamped `shift` seconds later.
2. Along the sequence, time never goes back: a row is never older than one recorded
   before it (a high-water mark), so footage stamped by a slow clock after a restart
   the hub did not see waits behind the footage recorded before it.
3. While `now` is behind the newest footage (the clock moved back), nothing is old.

And whatever the clock says, the newest `keep_newest` seconds of footage (by sequence)
are never old.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

JUMP_LIMIT = 600.0  # seconds the wall clock may move beyond the elapsed time unnoticed
BEHIND_LIMIT = 600.0  # seconds `now` may trail the newest footage's stamp
SPAN_CAP = 120.0  # a segment counts at most this long towards the newest footage kept


@dataclass(frozen=True, slots=True)
class Reading:
    wall: float  # time.time()
    elapsed: float  # a clock that only moves forward, suspend included


def system_reading() -> Reading:
    return Reading(time.time(), time.clock_gettime(time.CLOCK_BOOTTIME))


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The wall clock moved `shift` seconds beyond the elapsed time (+ forward) after the
    footage numbered up to `seq` was stamped."""

    seq: int
    shift: float


def jump(last: Reading | None, now: Reading) -> float:
    """Seconds the wall clock moved beyond the elapsed time since `last`; 0 within the
    limit (NTP's slewing and a few seconds' step are not jumps)."""
    if last is None:
        return 0.0
    moved = (now.wall - last.wall) - (now.elapsed - last.elapsed)
    return moved if abs(moved) > JUMP_LIMIT else 0.0


def behind(now: float, newest: float | None) -> float:
    """Seconds `now` trails the newest footage's (corrected) stamp; 0 within the limit."""
    if newest is None or newest - now <= BEHIND_LIMIT:
        return 0.0
    return newest - now


def shift_for(seq: int, steps: Sequence[ClockStep]) -> float:
    """The correction for footage numbered `seq`: every step seen after it was stamped."""
    return sum(step.shift for step in steps if step.seq >= seq)


def newest_kept(spans: Iterable[tuple[int, float]], keep_seconds: float) -> int | None:
    """The lowest sequence number among the newest `keep_seconds` of footage.

    `spans` are (seq, seconds) of segments, newest first; each counts at most
    SPAN_CAP, so a segment stretched by a clock jump cannot stand for the rest.
    None when nothing is to be kept.
    """
    if keep_seconds <= 0:
        return None
    total = 0.0
    lowest = None
    for seq, seconds in spans:
        lowest = seq
        total += min(max(seconds, 0.0), SPAN_CAP)
        if total >= keep_seconds:
            break
    return lowest


class AgeWalk:
    """Decides, row by row in sequence order, which footage is past the age limit."""

    def __init__(self, cutoff: float, steps: Sequence[ClockStep], keep_from: int | None) -> None:
        self.cutoff = cutoff
        self._steps = sorted(steps, key=lambda step: step.seq)
        self._keep_from = keep_from
        self._high = float("-inf")

    def old(self, seq: int, stamp: float) -> bool:
        """Call in ascending `seq` order; once a row is not old, no later one is."""
        if self._keep_from is not None and seq >= self._keep_from:
            return False
        self._high = max(self._high, stamp + shift_for(seq, self._steps))
        return self._high < self.cutoff

    @property
    def event_cutoff(self) -> float:
        """Events carry no sequence number: age them by the largest forward correction
        any footage still needs, so none goes early."""
        suffix = 0.0
        largest = 0.0
        for step in reversed(self._steps):
            suffix += step.shift
            largest = max(largest, suffix)
        return self.cutoff - largest


def describe(seconds: float) -> str:
    """A clock difference for the log: '40.0 days', '3.2 hours', '12 minutes'."""
    size = abs(seconds)
    if size >= 86400:
        return f"{size / 86400:.1f} days"
    if size >= 3600:
        return f"{size / 3600:.1f} hours"
    return f"{size / 60:.0f} minutes"
