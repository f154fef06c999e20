"""Stream timestamps made usable: continuous for muxing, and mapped to wall-clock time.

Pure logic, no I/O: the sources feed it numbers and ask for numbers back.
"""

from __future__ import annotations

from fractions import Fraction


class PacketTimestamps:
    """Repairs packet timestamps so a muxer can stream-copy them.

    A muxer needs pts and dts on every packet and dts strictly increasing. Real streams
    break that: AVI carries no pts, an RTSP stream's first packets arrive before the
    parser knows their dts, and a looping file or a camera that resets its clock jumps
    back. A backward jump of `jump` seconds or more is treated as a restart and the
    timeline continues one frame after where it was.
    """

    def __init__(self, time_base: Fraction, *, frame_ticks: int, jump: float = 1.0) -> None:
        self._step = max(1, frame_ticks)  # learnt from the stream as it goes
        self._jump = max(1, round(jump / time_base))
        self._offset = 0
        self._last_dts: int | None = None

    def fix(self, pts: int | None, dts: int | None) -> tuple[int, int] | None:
        """Return repaired (pts, dts), or None when there is nothing to go on yet."""
        if pts is None:
            pts = dts
        if dts is None:
            dts = pts
        if pts is None or dts is None:
            if self._last_dts is None:
                return None
            dts = pts = self._last_dts + self._step
        else:
            pts += self._offset
            dts += self._offset
        if self._last_dts is not None:
            delta = dts - self._last_dts
            if delta <= -self._jump:
                shift = self._step - delta
                self._offset += shift
                pts += shift
                dts += shift
            elif delta <= 0:
                dts = self._last_dts + 1
                pts = max(pts, dts)
            elif delta < self._jump:
                self._step = delta
        self._last_dts = dts
        return pts, dts


class BestEffort:
    """Picks a decoded frame's timestamp the way FFmpeg's best_effort_timestamp does.

    Trust pts unless it has gone backwards more often than dts (AVI files decoded with
    B-frames carry pts in decode order, so their pts are worthless and dts is right).
    """

    def __init__(self) -> None:
        self._faulty_pts = 0
        self._faulty_dts = 0
        self._last_pts: int | None = None
        self._last_dts: int | None = None

    def __call__(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            if self._last_dts is not None and dts <= self._last_dts:
                self._faulty_dts += 1
            self._last_dts = dts
        if pts is not None:
            if self._last_pts is not None and pts <= self._last_pts:
                self._faulty_pts += 1
            self._last_pts = pts
        if pts is not None and (dts is None or self._faulty_pts <= self._faulty_dts):
            return pts
        return dts


class WallClock:
    """Maps stream timestamps to Unix time, anchored at the moment the stream was opened.

    From the anchor on, time follows the stream's own clock, so frames keep their true
    spacing even when the network delivers them in bursts. For live streams
    (`max_drift` set) a camera clock that wanders more than `max_drift` seconds from
    ours (clock drift over days, a camera that resets its timestamps) is re-anchored.
    """

    def __init__(self, time_base: Fraction, anchor: float, *, max_drift: float | None) -> None:
        self._time_base = time_base
        self._anchor = anchor
        self._max_drift = max_drift
        self._ts0: int | None = None

    def elapsed(self, ts: int) -> float:
        """Stream seconds since the first timestamp this clock saw."""
        if self._ts0 is None:
            self._ts0 = ts
        return float((ts - self._ts0) * self._time_base)

    def at(self, ts: int, now: float) -> float:
        t = self._anchor + self.elapsed(ts)
        if self._max_drift is not None and abs(t - now) > self._max_drift:
            self._anchor += now - t
            t = now
        return t


class Monotonic:
    """Keeps successive times from going backwards; fills in times a stream did not give."""

    def __init__(self, start: float, interval: float) -> None:
        self._last: float | None = None
        self._start = start
        self._interval = interval

    def next(self, t: float | None) -> float:
        if t is None:
            t = self._start if self._last is None else self._last + self._interval
        if self._last is not None and t < self._last:
            t = self._last
        self._last = t
        return t
