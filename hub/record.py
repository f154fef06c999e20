"""Recording: turn a camera's encoded packets into fragmented-MP4 segments.

Packets are stream-copied (never re-encoded) by PyAV straight into an output that a
sink supplies; the sink seals bytes as they arrive, so no plaintext reaches the disk.
In motion mode the seconds before an event live only in a bounded in-memory ring.

Invariants:
1. A segment starts on a keyframe and is cut at the first keyframe after
   `segment_seconds`; it may end on any packet (window over, stream change, close).
2. Segments never overlap: a packet is written at most once.
3. A failing sink or muxer costs the current segment, never the camera loop. The sink
   is an I/O edge (files, SQLite, sealing), so whatever it raises is caught, counted,
   logged once per run of failures, and recording retries at the next keyframe.
4. Sound (packets marked `audio`) goes into the segment its time falls in. Video and
   sound are put back in time order first (`TimeOrder`: a packet waits for the other
   kind to pass its time, at most `_SOUND_WAIT` seconds), so a keyframe cut sends the
   sound before it to the segment before it. Sound later than that is dropped; video
   without sound is held back `_SOUND_WAIT` seconds, never stopped.
5. A segment has a sound track if sound flows at its keyframe (came within `_SOUND_WAIT`
   seconds before it, or follows it out of `TimeOrder`); else it is video only, and
   sound that starts later waits for the next segment. Its header is written once every
   track has a sample (`delay_moov`, which places a track that starts after the video
   at its own time, not at 0, but would write nothing while a track has no sample).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import io
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import av
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

from hub.media import AudioInfo, Packet, StreamInfo

log = logging.getLogger(__name__)

# Fragment at every keyframe, write no sample into the header: nothing ever seeks back.
# `delay_moov` writes the header with the first fragment, once each track's first
# sample is known: without it a track starting after the video (sound that comes late)
# was put at 0, and an H.264 stream with in-band SPS/PPS had no codec setup in it.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+delay_moov"
# ...and at least every second (µs) between keyframes: the muxer holds a fragment until it
# is cut, so with a 5 s GOP a crash lost the whole segment in flight.
_FRAGMENT = {"frag_duration": "1000000"}
# The muxer interleaves tracks by time, holding video until sound comes; a camera whose
# sound stopped would have its video held this long (µs), not FFmpeg's default 10 s.
_INTERLEAVE = {"max_interleave_delta": "500000"}
# Video and sound wait at most this long (seconds) for each other: transcoded G.711 comes
# out of the AAC encoder about 0.3 s after the video of the same moment.
_SOUND_WAIT = 1.0


class SegmentOutput(Protocol):
    """Where one segment's bytes go; sealed and indexed by the sink."""

    def write(self, data: bytes) -> int: ...

    def finish(self, end_time: float, frames: int) -> None:
        """Segment complete: seal, fsync, index."""

    def abort(self) -> None:
        """Something failed mid-segment: keep what is safely sealed or drop it."""


class SegmentSink(Protocol):
    def open_segment(self, camera_id: str, start_time: float) -> SegmentOutput: ...


class RecordMode(enum.StrEnum):
    MOTION = "motion"
    CONTINUOUS = "continuous"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """How one camera records. `post_roll` is applied by whoever calls `Recorder.want`."""

    mode: RecordMode = RecordMode.MOTION
    pre_roll: float = 5.0
    post_roll: float = 10.0
    segment_seconds: float = 4.0
    ring_max_bytes: int = 64 * 1024 * 1024  # pre-roll memory cap, whatever the bitrate

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", RecordMode(self.mode))  # ValueError names a bad one
        for name in ("pre_roll", "post_roll"):
            value = getattr(self, name)
            if not 0 <= value <= 3600:
                raise ValueError(f"{name}: must be 0..3600 seconds, got {value}")
        if not 0.5 <= self.segment_seconds <= 3600:
            raise ValueError(f"segment_seconds: must be 0.5..3600, got {self.segment_seconds}")
        if self.ring_max_bytes < 1024 * 1024:
            raise ValueError(f"ring_max_bytes: must be at least 1 MiB, got {self.ring_max_bytes}")


@dataclass(slots=True)
class RecorderStats:
    segments_written: int = 0
    packets_written: int = 0
    audio_packets_written: int = 0
    audio_packets_late: int = 0  # came after the cut of the segment their time falls in
    bytes_muxed: int = 0
    errors: int = 0


class PreRollRing:
    """The last `seconds` of packets, as whole GOPs, so an event can start before it was seen.

    Holds the packets from the newest keyframe at or before (newest time - seconds)
    onwards, and never more than `max_bytes` (oldest GOPs go first; a single GOP over
    the cap is dropped whole, since half a GOP cannot be decoded).
    """

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self._seconds = seconds
        self._max_bytes = max_bytes
        self._gops: deque[list[Packet]] = deque()
        self._sizes: deque[int] = deque()
        self.bytes = 0

    def push(self, packet: Packet) -> None:
        """Sound is kept beside the video, in the GOP it arrived in."""
        size = len(packet.data)
        gops = self._gops
        if packet.starts_gop:
            gops.append([packet])
            self._sizes.append(size)
        elif gops:
            gops[-1].append(packet)
            self._sizes[-1] += size
        else:
            return  # nothing before the stream's first keyframe can be decoded
        self.bytes += size
        horizon = packet.time - self._seconds
        while len(gops) > 1 and (gops[1][0].time <= horizon or self.bytes > self._max_bytes):
            gops.popleft()
            self.bytes -= self._sizes.popleft()
        if self.bytes > self._max_bytes:
            self.clear()

    def clear(self) -> None:
        self._gops.clear()
        self._sizes.clear()
        self.bytes = 0

    @property
    def seconds(self) -> float:
        """Time from the oldest kept keyframe to the newest packet."""
        if not self._gops:
            return 0.0
        return self._gops[-1][-1].time - self._gops[0][0].time

    def replay(self, start: float, after: float) -> list[Packet]:
        """Packets from the newest keyframe at or before `start` (else the oldest one),
        skipping GOPs whose keyframe is not later than `after` (already recorded)."""
        eligible = [gop for gop in self._gops if gop[0].time > after]
        first = 0
        for index, gop in enumerate(eligible):
            if gop[0].time > start:
                break
            first = index
        return [packet for gop in eligible[first:] for packet in gop]


class TimeOrder:
    """Merges a camera's video and sound packets, which arrive each in its own order, into
    one order by time.

    A packet leaves once a packet of the other kind at or past its time has come, or
    once it is `wait` seconds older than the newest packet (the other kind has stopped,
    or lags more than that). Pure logic; a stream without sound passes straight through.
    """

    def __init__(self, wait: float) -> None:
        self._wait = wait
        self._video: deque[Packet] = deque()
        self._sound: deque[Packet] = deque()
        self._newest = -math.inf

    def push(self, packet: Packet) -> list[Packet]:
        """The packets that may leave now, in time order (video first at a tie)."""
        (self._sound if packet.audio else self._video).append(packet)
        self._newest = max(self._newest, packet.time)
        return self._release(self._newest - self._wait)

    @property
    def sound_waiting(self) -> bool:
        """Sound came that has not left yet (it flows, and is later than what left)."""
        return bool(self._sound)

    def drain(self) -> list[Packet]:
        """Everything still waiting (the stream ended)."""
        return self._release(math.inf)

    def _release(self, stale: float) -> list[Packet]:
        video, sound, out = self._video, self._sound, []
        while video or sound:
            if video and sound:
                queue = sound if sound[0].time < video[0].time else video
            else:
                queue = video or sound
                if queue[0].time > stale:
                    break
            out.append(queue.popleft())
        return out


class _WriteOnly:
    """The muxer's view of a sink output: no seek/tell, so PyAV treats it as a stream."""

    __slots__ = ("_output", "_stats", "discard")

    def __init__(self, output: SegmentOutput, stats: RecorderStats) -> None:
        self._output = output
        self._stats = stats
        self.discard = False

    def write(self, data: bytes) -> int:
        if self.discard:  # the segment is being aborted; the trailer goes nowhere
            return len(data)
        written = self._output.write(data)
        if written != len(data):
            raise OSError(errno.EIO, f"segment output took {written} of {len(data)} bytes")
        self._stats.bytes_muxed += written
        return written


def _stream_template(info: StreamInfo) -> VideoStream:
    """A never-opened stream whose codec context carries the parameters for each segment.

    PyAV cannot hand extradata to a codec-less mux stream; a stream cloned from a
    template keeps a codec context that is never opened (so nothing is encoded) and
    whose parameters, extradata included, go to the muxer as they are.
    """
    if info.time_base <= 0 or info.width <= 0 or info.height <= 0:
        raise ValueError(
            f"cannot record a {info.width}x{info.height} stream with time base {info.time_base}"
        )
    scratch = av.open(io.BytesIO(), "w", format="mp4")
    try:
        template = scratch.add_stream(info.codec)
    except (ValueError, av.FFmpegError) as exc:
        raise ValueError(f"cannot record codec {info.codec!r} into MP4: {exc}") from exc
    if not isinstance(template, VideoStream):
        raise ValueError(f"cannot record codec {info.codec!r}: not a video codec")
    return template


def add_video_stream(
    container: OutputContainer, info: StreamInfo, template: VideoStream
) -> VideoStream:
    """The stream-copy video track of `info` in `container` (see `_stream_template`)."""
    stream = container.add_stream_from_template(template)
    stream.codec_context.width = info.width
    stream.codec_context.height = info.height
    if info.extradata:
        stream.codec_context.extradata = info.extradata
    stream.time_base = info.time_base
    return stream


def _audio_template(info: AudioInfo) -> AudioStream:
    """As `_stream_template`, for the sound (always AAC, see hub.capture.audio)."""
    scratch = av.open(io.BytesIO(), "w", format="mp4")
    template = scratch.add_stream(info.codec)
    if not isinstance(template, AudioStream):
        raise ValueError(f"cannot record codec {info.codec!r}: not an audio codec")
    return template


class SoundTrack:
    """A segment's sound: each packet placed by its wall-clock time on the video's timeline,
    back to back where they touch (never overlapping)."""

    def __init__(
        self, container: OutputContainer, info: AudioInfo, template: AudioStream, zero: float
    ) -> None:
        stream = container.add_stream_from_template(template)
        ctx = stream.codec_context
        ctx.sample_rate = info.sample_rate
        ctx.layout = info.layout
        ctx.extradata = info.extradata
        stream.time_base = info.time_base
        self._container = container
        self._stream = stream
        self._time_base = info.time_base
        self._rate = float(1 / info.time_base)
        self._zero = zero  # wall-clock time of the segment's tick 0
        self._next = 0  # where the next packet may start, in time_base ticks

    def write(self, packet: Packet) -> None:
        tick = max(round((packet.time - self._zero) * self._rate), self._next)
        out = av.Packet(packet.data)
        out.stream = self._stream
        out.time_base = self._time_base
        out.pts = out.dts = tick
        if packet.duration > 0:
            out.duration = packet.duration
        out.is_keyframe = True
        self._container.mux(out)
        self._next = tick + max(packet.duration, 1)


@dataclass(frozen=True, slots=True)
class Templates:
    """Never-opened streams that carry one stream's parameters into each of its segments."""

    video: VideoStream
    audio: AudioStream | None

    @classmethod
    def of(cls, info: StreamInfo) -> Templates:
        audio = _audio_template(info.audio) if info.audio is not None else None
        return cls(_stream_template(info), audio)


class _Segment:
    """One fMP4 segment being muxed: timestamps rebased so it starts at 0."""

    def __init__(
        self,
        output: SegmentOutput,
        info: StreamInfo,
        templates: Templates,
        first: Packet,
        stats: RecorderStats,
        *,
        sound: bool,
    ) -> None:
        self.output = output
        self._pipe = _WriteOnly(output, stats)
        self._stats = stats
        self._container = av.open(
            self._pipe,
            "w",
            format="mp4",
            options={"movflags": MOVFLAGS, **_FRAGMENT, **_INTERLEAVE},
        )
        self._stream = add_video_stream(self._container, info, templates.video)
        self._time_base = info.time_base
        self._tick_seconds = float(info.time_base)
        self._frame_ticks = round(1 / info.fps / self._tick_seconds) if info.fps else 0
        pts, dts = self._timestamps(first)
        self._offset = min(pts, dts)
        self._last_dts = -1
        self._first_pts = pts - self._offset
        self._shown_until = self._first_pts  # end of the latest picture, in footage ticks
        self.start_time = first.time
        self.frames = 0
        self._sound: SoundTrack | None = None
        if sound and info.audio is not None and templates.audio is not None:
            zero = first.time - self._first_pts * self._tick_seconds
            self._sound = SoundTrack(self._container, info.audio, templates.audio, zero)

    @property
    def end_time(self) -> float:
        """The start plus the footage's own length (first picture to the end of the last),
        as a player sees it: wall-clock arrival times stretch when a camera stalls."""
        return self.start_time + (self._shown_until - self._first_pts) * self._tick_seconds

    def _timestamps(self, packet: Packet) -> tuple[int, int]:
        """(pts, dts) in source units; AVI-style packets lack pts, some lack both."""
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else pts
        if pts is None or dts is None:
            pts = dts = round(packet.time / self._tick_seconds)
        return pts, dts

    def write(self, packet: Packet) -> None:
        if packet.audio:
            self._write_sound(packet)
            return
        pts, dts = self._timestamps(packet)
        dts = max(dts - self._offset, self._last_dts + 1)  # the muxer needs rising dts
        self._last_dts = dts
        out = av.Packet(packet.data)
        out.stream = self._stream
        out.time_base = self._time_base
        out.dts = dts
        shown = max(pts - self._offset, dts)
        out.pts = shown
        if packet.duration > 0:
            out.duration = packet.duration
        out.is_keyframe = packet.keyframe
        self._container.mux(out)
        self.frames += 1
        self._stats.packets_written += 1
        shown += packet.duration if packet.duration > 0 else self._frame_ticks
        self._shown_until = max(self._shown_until, shown)

    def _write_sound(self, packet: Packet) -> None:
        if self._sound is None:
            return  # the stream has no sound track (or the camera's sound is off)
        if packet.time < self.start_time:
            self._stats.audio_packets_late += 1  # its segment was cut already
            return
        self._sound.write(packet)
        self._stats.audio_packets_written += 1

    def finish(self, next_start: float | None = None) -> None:
        """Close the segment; `next_start` is when the segment that follows on begins
        (footage cannot overlap: a camera whose pictures come faster than their
        timestamps say would have this one's own length run past it)."""
        self._container.close()
        end = self.end_time if next_start is None else min(self.end_time, next_start)
        self.output.finish(max(end, self.start_time), self.frames)
        self._stats.segments_written += 1

    def abort(self) -> None:
        self._pipe.discard = True
        with contextlib.suppress(Exception):
            self._container.close()
        self.output.abort()


class Recorder:
    """Decides which packets of one camera are kept, and muxes them into segments.

    Methods may be called from different threads (capture, motion); each takes a lock.
    """

    def __init__(self, camera_id: str, settings: RecordSettings, sink: SegmentSink) -> None:
        self.camera_id = camera_id
        self.settings = settings
        self.stats = RecorderStats()
        self._sink = sink
        self._lock = threading.Lock()
        self._ring = PreRollRing(settings.pre_roll, settings.ring_max_bytes)
        self._info: StreamInfo | None = None
        self._templates: Templates | None = None
        self._segment: _Segment | None = None
        self._order = TimeOrder(_SOUND_WAIT)
        continuous = settings.mode is RecordMode.CONTINUOUS
        self._until = math.inf if continuous else -math.inf  # keep packets up to this time
        self._held: list[Packet] = []  # past the window, kept back in case it is extended
        self._held_bytes = 0
        self._fed_until = -math.inf  # time of the last packet a segment has taken
        self._sound_until = -math.inf  # time of the newest sound packet, in time order
        self._sound_follows = False  # sound comes in time order after what is taken now
        self._failing = False

    @property
    def recording(self) -> bool:
        """A segment is open."""
        return self._segment is not None

    @property
    def ring_bytes(self) -> int:
        return self._ring.bytes

    @property
    def ring_seconds(self) -> float:
        return self._ring.seconds

    def start_stream(self, info: StreamInfo | None) -> None:
        """A (re)connection: old packets belong to the old stream. None = idle."""
        templates = Templates.of(info) if info is not None else None
        with self._lock:
            self._drain()
            self._end_segment()
            self._ring.clear()
            self._fed_until = self._sound_until = -math.inf
            self._info = info
            self._templates = templates

    def push(self, packet: Packet) -> None:
        """The hot path: in motion mode, while nothing is wanted, only the ring grows."""
        if self.settings.mode is RecordMode.OFF:
            return
        with self._lock:
            if self._info is None:
                return
            if self._info.audio is None:
                self._take(packet)
                return
            self._take_ordered(self._order.push(packet))

    def want(self, start: float, end: float) -> None:
        """Footage in [start, end] (wall-clock seconds) must be kept."""
        if self.settings.mode is not RecordMode.MOTION:
            return
        with self._lock:
            self._until = max(self._until, end)
            if self._info is None:
                return
            if self._segment is not None:
                backlog = self._held
                self._held, self._held_bytes = [], 0
            else:
                backlog = self._ring.replay(start, after=self._fed_until)
            for packet in backlog:
                self._feed(packet)

    def close(self) -> None:
        """Clean shutdown: finish the open segment."""
        with self._lock:
            self._drain()
            self._end_segment()
            self._ring.clear()
            self._info = None

    def _drain(self) -> None:
        """The stream ended: what waits for time order goes where it would have gone."""
        self._take_ordered(self._order.drain())

    def _take_ordered(self, packets: list[Packet]) -> None:
        """Packets in time order; whether sound follows a keyframe among them is known."""
        self._sound_follows = self._order.sound_waiting or any(p.audio for p in packets)
        for packet in packets:
            self._take(packet)

    def _take(self, packet: Packet) -> None:
        """One packet in time order: into the pre-roll ring, and recorded if wanted."""
        if packet.audio:
            self._sound_until = packet.time
        if self.settings.mode is RecordMode.MOTION:
            self._ring.push(packet)
        self._feed(packet)

    def _feed(self, packet: Packet) -> None:
        if packet.audio:
            self._feed_sound(packet)
            return
        segment = self._segment
        if segment is not None:
            if not self._held and packet.time <= self._until:
                self._fed_until = packet.time
                elapsed = packet.time - segment.start_time  # < 0: the clock was set back
                if packet.starts_gop and not 0 <= elapsed < self.settings.segment_seconds:
                    self._end_segment(next_start=packet.time if elapsed >= 0 else None)
                    self._open(packet)
                else:
                    self._write(segment, packet)
                return
            # Past the window: hold back until a keyframe shows the GOP is over.
            if not packet.starts_gop and self._held_bytes < self.settings.ring_max_bytes:
                self._fed_until = packet.time
                self._held.append(packet)
                self._held_bytes += len(packet.data)
                return
            self._end_segment()
        if packet.starts_gop and packet.time <= self._until:
            self._fed_until = packet.time
            self._open(packet)

    def _feed_sound(self, packet: Packet) -> None:
        """Sound goes to the open segment, or is held back with the video past the window
        (see `_feed`); with no segment open it is not recorded (the ring keeps it)."""
        segment = self._segment
        if segment is None:
            return
        if not self._held and packet.time <= self._until:
            self._write(segment, packet)
        elif self._held_bytes < self.settings.ring_max_bytes:
            self._held.append(packet)
            self._held_bytes += len(packet.data)

    def _open(self, packet: Packet) -> None:
        assert self._info is not None and self._templates is not None
        output: SegmentOutput | None = None
        try:
            output = self._sink.open_segment(self.camera_id, packet.time)
            # A sound track only while the sound flows (came just before, or waits to
            # follow): the segment's header waits for the first sample of each track.
            sound = self._sound_follows or packet.time - self._sound_until < _SOUND_WAIT
            self._segment = _Segment(
                output, self._info, self._templates, packet, self.stats, sound=sound
            )
        except Exception as exc:
            if output is not None:
                with contextlib.suppress(Exception):
                    output.abort()
            self._failed(exc)
            return
        self._write(self._segment, packet)

    def _write(self, segment: _Segment, packet: Packet) -> None:
        try:
            segment.write(packet)
        except Exception as exc:
            self._abort(exc)

    def _end_segment(self, next_start: float | None = None) -> None:
        segment = self._segment
        self._held, self._held_bytes = [], 0
        if segment is None:
            return
        try:
            segment.finish(next_start)
        except Exception as exc:
            self._abort(exc)
            return
        self._segment = None
        if self._failing:
            self._failing = False
            log.info("camera %s: recording works again", self.camera_id)

    def _abort(self, exc: Exception) -> None:
        segment, self._segment = self._segment, None
        self._held, self._held_bytes = [], 0
        if segment is not None:
            with contextlib.suppress(Exception):
                segment.abort()
        self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """Count every failure, log only the first of a run: the next keyframe retries."""
        self.stats.errors += 1
        if not self._failing:
            self._failing = True
            log.warning(
                "camera %s: recording failed, segment dropped, retrying at next keyframe: %s: %s",
                self.camera_id,
                type(exc).__name__,
                exc,
            )
