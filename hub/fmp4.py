"""Live fMP4: one camera stream's own packets, stream-copied into the pieces a browser's
Media Source Extensions play: an init segment (ftyp+moov) once, then one moof+mdat
fragment per packet (a picture, or a sound packet), each out the moment its packet
comes.

Nothing is decoded or encoded. PyAV's mp4 muxer writes the init segment (it knows the
boxes: avcC from the in-band SPS/PPS, the sound's esds, an edit list for B-frames); the
fragments are written here (hub/fmp4_boxes.py), because the muxer closes a fragment only
when the next packet comes (it needs the sample's duration) and PyAV cannot make it
close one sooner (no av_write_frame(NULL)): that held each picture one frame interval.

The timeline, shifted so no duration is ever guessed: picture n's sample starts where
picture n-1's ended and lasts dts(n) - dts(n-1), both known when picture n comes; the
first picture starts at its own dts and waits for the second (once per stream) to learn
its duration. The samples are back to back, so MSE never sees a gap (Chrome takes a
decode-time jump of more than twice the last duration for a discontinuity and drops
pictures up to the next keyframe). Each sample ends at dts(n) + (dts(1) - dts(0)): with
a steady frame rate every picture is exactly where the muxer put it; when the intervals
vary, a picture moves by the difference (one that comes late shows that much early).

Sound: with `sound`, the init has a second track (`SoundTrack`, hub/record.py) and the
camera's sound packets (`Packet.audio`) go in it, each placed by its wall-clock time on
the video's timeline as in a recorded segment, not shifted: a sample ends where its
packet ends (AAC: 1024 samples) and starts where the previous one ended, so a lost
packet stretches the next one over the gap rather than leaving one (a gap in either
track is a discontinuity for MSE too). Picture and sound keep the places a recording
gives them. The caller hands the packets over in
time order (hub.record.TimeOrder). The description's codec string then names both
tracks (`…,mp4a.40.2`).
"""

from __future__ import annotations

import contextlib
import io
import struct
import time
from dataclasses import dataclass, replace
from fractions import Fraction

import av

from hub.fmp4_boxes import Sample, Track, avc_config, fragment, length_prefixed, tracks
from hub.media import Packet, StreamInfo
from hub.record import MOVFLAGS, SoundTrack, Templates, add_video_stream

# As in recording: `delay_moov` writes the init with the first fragment, once the
# in-band SPS/PPS and each track's start are known; a 1 µs `frag_duration` cuts that
# fragment at the next packet, and `max_interleave_delta` (µs) lets the video out
# without waiting for a sound packet.
_OPTIONS = {"movflags": MOVFLAGS, "frag_duration": "1", "max_interleave_delta": "1"}
_INIT_BOXES = (b"ftyp", b"moov")
_INIT_TRIES = 4  # copies of the first picture the muxer is given to cut its first fragment
_TIME = struct.Struct(">d")
AAC_CODEC = "mp4a.40.2"  # AAC-LC, all the hub sends (hub/capture/audio.py)
AAC_FRAME = 1024  # samples per AAC-LC packet


@dataclass(frozen=True, slots=True)
class Fragment:
    """One picture or sound packet as a moof+mdat, shared read-only by every viewer."""

    data: bytes  # the wire form: the packet's Unix time (8-byte big-endian double), moof+mdat
    keyframe: bool  # a viewer may start here (a video keyframe)
    time: float  # wall-clock seconds (Unix time) the packet shows or sounds
    arrived: float  # time.monotonic() when its packet came from the camera
    cut: float  # time.monotonic() when the fragment was written
    audio: bool  # sound only, no picture


class MuxError(ValueError):
    """The stream cannot be muxed to fMP4 (a codec MP4 cannot carry, bad parameters)."""


@dataclass(frozen=True, slots=True)
class _Picture:
    """A picture between its packet and its fragment; times in source ticks, rebased."""

    packet: Packet
    arrived: float
    pts: int
    dts: int


class FragmentMuxer:
    """Packets in (from a video keyframe on, in time order), init and fragments out, in
    memory. With `sound`, the stream's sound (StreamInfo.audio) is a second track.

    Not thread-safe: one caller at a time (the feed holds its lock around it).
    """

    def __init__(self, info: StreamInfo, *, sound: bool = False) -> None:
        try:
            self._templates = Templates.of(info if sound else replace(info, audio=None))
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(str(exc)) from exc
        self.info = info
        self.init: bytes | None = None  # ftyp+moov, from the first picture on
        self._tick = Fraction(info.time_base)
        # H.264 as MP4 carries it: length-prefixed already if the parameter sets came
        # as an avcC (it starts with its version, 1), else Annex B, to convert (as
        # FFmpeg's mp4 muxer decides).
        self._annexb = not (info.extradata or b"\x00").startswith(b"\x01")
        self._length_size = 4
        self._video = self._sound_track = Track(0, 1, "")
        self._video_scale = self._sound_scale = _Scale(1, 1)  # source ticks to the track's
        self._offset: int | None = None  # source ticks of the timeline's 0
        self._start = 0.0  # wall-clock time of the first picture
        self._zero = 0.0  # wall-clock time of the timeline's 0 (where the sound is placed)
        self._last_dts = -1
        self._first: _Picture | None = None  # the first picture, until the second comes
        self._lead = 0  # dts(1) - dts(0): how far each sample ends past its picture's dts
        self._video_end = 0  # where the latest picture's sample ended (source ticks)
        self._held_sound: list[tuple[Packet, float]] = []  # sound before the second picture
        self._sound_end: int | None = None  # where the latest sound sample ended (ticks)
        self._sequence = 0

    @property
    def sound(self) -> bool:
        """The muxer has a sound track."""
        return self._templates.audio is not None

    @property
    def codec(self) -> str | None:
        """The MSE codec string (RFC 6381), e.g. `avc1.4d401f` or, with sound,
        `avc1.4d401f,mp4a.40.2`; the video's profile is read from the init's avcC."""
        config = avc_config(self.init) if self.init is not None else None
        if config is None or len(config) < 4:
            return None
        video = "avc1." + config[1:4].hex()
        return f"{video},{AAC_CODEC}" if self.sound else video

    def push(self, packet: Packet, arrived: float) -> list[Fragment]:
        """One packet in; the fragments it completes: its own, except for the very
        first picture (out with the second) and the sound between those two."""
        try:
            if packet.audio:
                return self._push_sound(packet, arrived)
            return self._push_video(packet, arrived)
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"{type(exc).__name__}: {exc}") from exc

    def _push_video(self, packet: Packet, arrived: float) -> list[Fragment]:
        pts, dts = self._timestamps(packet)
        if self._offset is None:
            self._offset = min(pts, dts)
            self._start = packet.time
            self._zero = packet.time - float((pts - self._offset) * self._tick)
            picture = _Picture(packet, arrived, *self._rebased(pts, dts))
            self._write_init(picture)
            self._first = picture
            return []
        picture = _Picture(packet, arrived, *self._rebased(pts, dts))
        made = []
        if (first := self._first) is not None:
            self._first = None
            self._lead = picture.dts - first.dts
            self._video_end = first.dts
            made.append(self._picture(first))
            made += [self._sound(p, a) for p, a in self._held_sound]
            self._held_sound = []
        made.append(self._picture(picture))
        return made

    def _push_sound(self, packet: Packet, arrived: float) -> list[Fragment]:
        if not self.sound or self._offset is None or packet.time < self._start:
            return []  # no sound track, or sound from before the first picture
        if self._first is not None:
            self._held_sound.append((packet, arrived))
            return []
        return [self._sound(packet, arrived)]

    def _picture(self, picture: _Picture) -> Fragment:
        """The fragment of a picture: its sample starts where the previous one ended
        and ends at its dts plus the lead."""
        start, self._video_end = self._video_end, picture.dts + self._lead
        scale = self._video_scale
        begin, end = scale.of(start), scale.of(self._video_end)
        shown = scale.of(start + picture.pts - picture.dts)
        packet = picture.packet
        data = length_prefixed(packet.data, self._length_size) if self._annexb else packet.data
        sample = Sample(begin, end - begin, shown - begin, packet.keyframe, data)
        return self._fragment(self._video, sample, packet, picture.arrived)

    def _sound(self, packet: Packet, arrived: float) -> Fragment:
        """A sound packet's fragment: its sample ends where the packet ends on the
        timeline, and starts where the previous one ended (never overlapping it)."""
        length = packet.duration if packet.duration > 0 else AAC_FRAME
        duration = max(1, self._sound_scale.of(length))
        start = round((packet.time - self._zero) * self._sound_track.timescale)
        begin = start if self._sound_end is None else self._sound_end
        end = max(start + duration, begin + duration)
        self._sound_end = end
        sample = Sample(begin, end - begin, 0, True, packet.data)
        return self._fragment(self._sound_track, sample, packet, arrived)

    def _fragment(self, track: Track, sample: Sample, packet: Packet, arrived: float) -> Fragment:
        self._sequence += 1
        data = _TIME.pack(packet.time) + fragment(self._sequence, track.track_id, sample)
        return Fragment(
            data, packet.starts_gop, packet.time, arrived, time.monotonic(), packet.audio
        )

    def _write_init(self, first: _Picture) -> None:
        """ftyp+moov from PyAV's muxer, given the first picture and then copies of it a
        tick apart until it cuts its first fragment (the moov comes with it); what it
        writes past the moov is dropped, and the muxer with it."""
        out = io.BytesIO()
        try:
            container = av.open(out, "w", format="mp4", options=_OPTIONS)
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"{type(exc).__name__}: {exc}") from exc
        try:
            stream = add_video_stream(container, self.info, self._templates.video)
            audio, template = self.info.audio, self._templates.audio
            if audio is not None and template is not None:
                SoundTrack(container, audio, template, self._zero).write(_placeholder(self._zero))
            for copy in range(_INIT_TRIES):
                packet = av.Packet(first.packet.data)
                packet.stream = stream
                packet.time_base = self.info.time_base
                packet.dts, packet.pts = first.dts + copy, first.pts + copy
                packet.is_keyframe = first.packet.keyframe
                container.mux(packet)
                boxes = _top_level(out.getvalue())
                if any(kind == b"moov" for kind, _ in boxes):
                    break
            else:
                raise MuxError("the mp4 muxer wrote no moov for the first picture")
        finally:
            with contextlib.suppress(Exception):
                container.close()
        init = b"".join(box for kind, box in boxes if kind in _INIT_BOXES)
        found = tracks(init)
        self._video = _track(found, "vide")
        self._video_scale = _Scale.of_ticks(self.info.time_base, self._video.timescale)
        if self.info.audio is not None and self.sound:
            self._sound_track = _track(found, "soun")
            self._sound_scale = _Scale.of_ticks(
                self.info.audio.time_base, self._sound_track.timescale
            )
        config = avc_config(init)
        if self._annexb and config is not None and len(config) > 4:
            self._length_size = (config[4] & 0x03) + 1
        self.init = init

    def _timestamps(self, packet: Packet) -> tuple[int, int]:
        """(pts, dts) in source units; some packets lack one or both."""
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else pts
        if pts is None or dts is None:
            pts = dts = round(packet.time / self._tick)
        return pts, dts

    def _rebased(self, pts: int, dts: int) -> tuple[int, int]:
        """(pts, dts) from 0 at the first picture, dts strictly rising, pts never before it."""
        assert self._offset is not None
        dts = max(dts - self._offset, self._last_dts + 1)
        self._last_dts = dts
        return max(pts - self._offset, dts), dts


def _placeholder(zero: float) -> Packet:
    """A sound packet at the timeline's 0, for the init's muxer only: FFmpeg interleaves
    the tracks and would hold the pictures until the sound track had a packet. Its bytes
    never leave."""
    return Packet(bytes(2), 0, 0, AAC_FRAME, True, zero, audio=True)


def _track(found: dict[str, Track], handler: str) -> Track:
    if handler not in found:
        raise ValueError(f"the init segment has no {handler} track")
    return found[handler]


@dataclass(frozen=True, slots=True)
class _Scale:
    """Ticks of a packet's time base in a track's timescale: times `num`, over `den`,
    rounded the same way each time (so a sample ending at t and the next starting at t
    agree); integers only, as this runs for every packet."""

    num: int
    den: int

    @classmethod
    def of_ticks(cls, tick: Fraction, timescale: int) -> _Scale:
        ratio = Fraction(tick) * timescale
        return cls(ratio.numerator, ratio.denominator)

    def of(self, ticks: int) -> int:
        return (2 * ticks * self.num + self.den) // (2 * self.den)


def _top_level(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole box) of each complete top-level box of the muxer's output."""
    boxes, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > len(data):
            break
        boxes.append((kind, data[at : at + size]))
        at += size
    return boxes
