"""Stream timestamps made usable: continuous for muxing, and mapped to wall-clock time.

Pure logic, no I/O: the sources feed it numbers and ask for numbers back.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

T = TypeVar("T")

#: H.264 and HEVC hold at most 16 pictures for reordering.
MAX_REORDER = 16


class PacketTimestamps:
    """Repairs packet timestamps so a muxer can stream-copy them.

    A muxer needs pts and dts on every packet, dts strictly increasing and never after
    pts. Real streams break that: AVI carries no pts, an RTSP stream's first packets
    arrive before the parser knows their dts, and a looping file or a camera that resets
    its clock jumps back, after which FFmpeg gives up guessing an RTSP stream's dts and
    hands out dts = pts, which goes backwards at every B-frame. So pts alone is trusted:
    dts is derived from it, as the display time of the picture `reorder` places earlier
    in display order (the pts not yet used as a dts, smallest first), which keeps dts
    rising and at or before pts for a stream that reorders at most `reorder` pictures.
    A stream found to reorder deeper costs one picture its place, and the depth grows.
    Packets without pts (AVI) keep their dts, and their pts is that dts (see
    DisplayOrder). A backward jump of `jump` seconds or more (at least a few frames) is
    treated as a restart: the timeline continues one frame after the latest picture.
    So is a jump forward that outruns the packets' arrival times (given for live
    streams) by more than `jump` seconds: the camera's clock stepped (an NTP correction,
    an RTCP resync), no time went by, and keeping the jump would freeze the recorded
    picture for its length. A gap that took as long to arrive is kept.
    """

    def __init__(
        self, time_base: Fraction, *, frame_ticks: int, reorder: int = 0, jump: float = 1.0
    ) -> None:
        self._step = max(1, frame_ticks)  # learnt from the stream as it goes
        self._reorder = max(0, reorder)
        self._jump = max(1, round(jump / time_base), (self._reorder + 2) * self._step)
        self._time_base = time_base
        self._jump_seconds = float(self._jump * time_base)
        self._arrived: float | None = None  # when the latest packet came (live streams)
        self._offset = 0
        self._pending: list[int] = []  # pts not yet used as a dts (a heap)
        self._last_dts: int | None = None
        self._top: int | None = None  # the latest display time so far
        self._primed = False  # a dts has come out of `_pending`
        self._slot: int | None = None  # the last of them, or the last dts given

    def fix(
        self, pts: int | None, dts: int | None, *, arrived: float | None = None
    ) -> tuple[int, int] | None:
        """Return repaired (pts, dts), or None when there is nothing to go on yet.
        `arrived`: when the packet came (time.monotonic()), for a live stream."""
        if pts is not None:
            time = self._continue(pts + self._offset, arrived)
            dts = self._decode_time(time)
        elif dts is not None:  # decode times only (AVI): the pts is learnt later, if at all
            time = dts = self._continue(dts + self._offset, arrived)
            self._learn_step(dts)
        elif self._top is not None:  # nothing given: one frame after the latest picture
            time = self._top + self._step
            dts = self._decode_time(time)
        else:
            return None
        self._top = time if self._top is None else max(self._top, time)
        if self._last_dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1
        self._last_dts = dts
        return max(time, dts), dts

    def _continue(self, time: int, arrived: float | None) -> int:
        """`time` on the continuous timeline: a jump back, or a step forward, is a
        restart, moved to one frame past the top."""
        top, since = self._top, self._arrived
        self._arrived = arrived
        stepped = (
            top is not None
            and arrived is not None
            and since is not None
            and float((time - top) * self._time_base) - (arrived - since) > self._jump_seconds
        )
        if top is not None and (time <= top - self._jump or stepped):
            shift = top + self._step - time
            self._offset += shift
            time += shift
        return time

    def _learn_step(self, slot: int) -> None:
        """Successive display slots (decode times as given) are one frame apart, gaps aside."""
        if self._slot is not None and 0 < slot - self._slot < self._jump:
            self._step = slot - self._slot
        self._slot = slot

    def _decode_time(self, pts: int) -> int:
        """The decode time of a picture shown at `pts`, from the display times seen so far."""
        last = self._last_dts
        if last is not None and pts <= last:
            if pts < last:  # shown before a picture already given its decode time
                self._reorder = min(self._reorder + 1, MAX_REORDER)
            return last + 1  # (a repeated time is just a broken stream)
        pending = self._pending
        heapq.heappush(pending, pts)
        if len(pending) > self._reorder:
            self._primed = True
            dts = heapq.heappop(pending)
            self._learn_step(dts)
            return dts
        if last is None or not self._primed:
            # The first pictures: their decode times lie before the first display time.
            first = pending[0] - (self._reorder + 1 - len(pending)) * self._step
            return first if last is None else max(first, last + 1)
        return last + 1  # the depth just grew: this picture waits, giving up no order


@dataclass(slots=True)
class _Held(Generic[T]):
    dts: int
    item: T
    pts: int | None = None


class DisplayOrder(Generic[T]):
    """Gives the packets of a stream stored without pts (AVI) their display times.

    With B-frames a picture is shown later than it is decoded, so pts = dts (all an AVI
    gives) puts pictures in the wrong order once muxed to MP4. The decoder knows the
    order: pictures come out in display order, each carrying its own packet's pts (fed
    in as a tag: the packet's dts) and, as its dts, the time of its display slot (the
    dts of a packet one reorder depth later, as FFmpeg's best-effort timestamp has it).
    The last picture, flushed out at the end, has no later packet: its slot is one
    frame after the one before. Packets leave in decode order once their picture has
    come out; one whose picture never does (damaged, dropped) keeps pts = dts when
    `limit` packets wait behind it.
    """

    def __init__(self, limit: int = 32) -> None:
        self._limit = max(1, limit)
        self._waiting: deque[_Held[T]] = deque()
        self._by_dts: dict[int, _Held[T]] = {}
        self._last_slot: int | None = None
        self._step = 1  # ticks between display slots, learnt as they come

    def hold(self, dts: int, item: T) -> None:
        """A packet about to be decoded; `dts` must be unique (PacketTimestamps makes it so)."""
        held = _Held(dts, item)
        self._waiting.append(held)
        self._by_dts[dts] = held

    def shown(self, tag: int | None, slot: int | None) -> None:
        """A picture came out of the decoder with pts `tag` and dts `slot`."""
        last = self._last_slot
        if last is not None:
            if slot is None or slot <= last:
                slot = last + self._step
            else:
                self._step = slot - last
        self._last_slot = slot
        held = self._by_dts.pop(tag, None) if tag is not None else None
        if held is not None:
            held.pts = held.dts if slot is None else max(slot, held.dts)

    def ready(self) -> Iterator[tuple[T, int]]:
        """(packet, pts) of the packets that may leave now, in decode order."""
        waiting = self._waiting
        while waiting and (waiting[0].pts is not None or len(waiting) > self._limit):
            yield self._pop()

    def drain(self) -> Iterator[tuple[T, int]]:
        """Every packet still held: the stream ended, the decoder has given all it will."""
        while self._waiting:
            yield self._pop()

    def _pop(self) -> tuple[T, int]:
        held = self._waiting.popleft()
        self._by_dts.pop(held.dts, None)
        return held.item, held.dts if held.pts is None else held.pts


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


class SharedTimeline:
    """Puts a camera's sound on its video's wall-clock timeline.

    The demuxer gives both streams' timestamps on one clock (a file's own, or the one
    RTSP synchronises through RTCP), and the video's WallClock maps video times to Unix
    time. Each video packet tells where its stream seconds land; a sound at stream
    second s lands the same distance from it. Until a video packet has been seen there
    is nothing to go on, and sound is not timed (its packets are dropped).

    That one clock can step, and not in both streams at once: RTSP maps each stream to
    it by that stream's own RTCP reports, seconds apart, so a camera that steps its
    clock (or restarts its timestamps) moves the video's times one moment and the
    sound's later, or by a different amount. A sound that would land more than
    `max_apart` seconds from the latest picture keeps its own spacing instead (the
    distance its stream seconds moved since the sound before it), and where that too
    lands that far away it is put at the latest picture's time: sound is never placed
    seconds away from the picture it came with. Only live streams (`max_apart` set) are
    held to it: a file's sound may come in chunks a second or more from its pictures.
    """

    def __init__(self, max_apart: float | None) -> None:
        self._max_apart = max_apart
        self._offset: float | None = None  # wall - stream seconds, from the latest video
        self._video_wall = 0.0  # wall-clock time of the latest video packet
        self._sound_offset: float | None = None  # the offset the latest sound was placed by

    def video(self, stream_seconds: float, wall: float) -> None:
        self._offset = wall - stream_seconds
        self._video_wall = wall

    def at(self, stream_seconds: float) -> float | None:
        if self._offset is None:
            return None
        for offset in (self._offset, self._sound_offset):
            if offset is not None and self._near_video(stream_seconds + offset):
                break
        else:  # neither clock places it near the picture: start again beside it
            offset = self._video_wall - stream_seconds
        self._sound_offset = offset
        return stream_seconds + offset

    def _near_video(self, wall: float) -> bool:
        return self._max_apart is None or abs(wall - self._video_wall) <= self._max_apart

    def reset(self) -> None:
        """The stream started over (a looping file): wait for video again."""
        self._offset = self._sound_offset = None
