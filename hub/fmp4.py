"""Live fMP4: one camera stream's own packets, stream-copied into the pieces a browser's
Media Source Extensions play: an init segment (ftyp+moov) once, then one moof+mdat
fragment per picture (with the sound since the one before it).

Nothing is decoded or encoded: PyAV's mp4 muxer wraps the packets as they are
(`empty_moov` puts no samples in the header, `default_base_moof` makes each fragment
self-contained, a 1 µs `frag_duration` cuts a fragment as soon as a track has a second
sample, so a viewer gets each picture as soon as the muxer can close it). The muxer
closes a picture's fragment when the next picture comes (the sample's duration is the
gap between the two), so a picture leaves one frame interval after it arrived; muxing
itself takes microseconds. PyAV has no call that closes a fragment without a next
packet (FFmpeg's av_write_frame(NULL)). `frag_every_frame` would cut at every packet of
either track, but FFmpeg (5.1 to 8) then gives a sound sample cut by the next sound
sample the decode time of that next one: the sound played out of order.

Sound: with a `SoundTrack` (hub/record.py), the camera's sound packets (`Packet.audio`)
go in a second track, placed by their wall-clock time on the video's timeline as in a
recorded segment. The caller hands the packets over in time order (hub.record.TimeOrder).
A fragment holds at most one sample per track; the sample counts of its `traf`s pair
it with the packets it came from. The description's codec string then names both
tracks (`…,mp4a.40.2`).
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
from collections import deque
from dataclasses import dataclass, replace

import av

from hub.media import Packet, StreamInfo
from hub.record import MOVFLAGS, SoundTrack, Templates, add_video_stream

log = logging.getLogger(__name__)

# As in recording (`delay_moov` writes the init with the first fragment, once the
# in-band SPS/PPS and each track's start are known), cut at a track's second sample (µs).
# The caller orders the tracks by time already: FFmpeg's own interleaving, which holds a
# packet until the other track has one, should hold nothing more (µs).
_OPTIONS = {"movflags": MOVFLAGS, "frag_duration": "1", "max_interleave_delta": "1"}
_INIT_BOXES = (b"ftyp", b"moov")
_TIME = struct.Struct(">d")
_BOX = struct.Struct(">I4s")
_U32 = struct.Struct(">I")
_VIDEO, _SOUND = 1, 2  # the track IDs the muxer gives them
AAC_CODEC = "mp4a.40.2"  # AAC-LC, all the hub sends (hub/capture/audio.py)


@dataclass(frozen=True, slots=True)
class Fragment:
    """One picture or sound packet as a moof+mdat, shared read-only by every viewer."""

    data: bytes  # the wire form: the packet's Unix time (8-byte big-endian double), moof+mdat
    keyframe: bool  # a viewer may start here (a video keyframe)
    time: float  # wall-clock seconds (Unix time) the packet shows or sounds
    arrived: float  # time.monotonic() when its packet came from the camera
    cut: float  # time.monotonic() when the muxer let it go (the next packet came)
    audio: bool  # sound only, no picture


class MuxError(ValueError):
    """The stream cannot be muxed to fMP4 (a codec MP4 cannot carry, bad parameters)."""


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
        self.init: bytes | None = None  # ftyp+moov, once the muxer has written it
        self._out = _Boxes()
        try:
            self._container = av.open(self._out, "w", format="mp4", options=_OPTIONS)
            self._stream = add_video_stream(self._container, info, self._templates.video)
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"{type(exc).__name__}: {exc}") from exc
        self._tick = float(info.time_base)
        self._offset: int | None = None
        self._last_dts = -1
        self._start = 0.0  # wall-clock time of the first picture
        self._sound: SoundTrack | None = None
        # Muxed, not yet out: (keyframe, time, arrived), one queue per track.
        self._pending: dict[int, deque[tuple[bool, float, float]]] = {
            _VIDEO: deque(),
            _SOUND: deque(),
        }

    @property
    def sound(self) -> bool:
        """The muxer has a sound track."""
        return self._templates.audio is not None

    @property
    def codec(self) -> str | None:
        """The MSE codec string (RFC 6381), e.g. `avc1.4d401f` or, with sound,
        `avc1.4d401f,mp4a.40.2`; the video's profile is read from the init's avcC."""
        init = self.init
        found = init.find(b"avcC") if init else -1
        if init is None or found < 0 or len(init) < found + 8:
            return None
        video = "avc1." + init[found + 5 : found + 8].hex()
        return f"{video},{AAC_CODEC}" if self.sound else video

    def push(self, packet: Packet, arrived: float) -> list[Fragment]:
        """Mux one packet; the fragments this completed (of packets before it)."""
        try:
            if packet.audio:
                self._push_sound(packet, arrived)
            else:
                self._push_video(packet, arrived)
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"{type(exc).__name__}: {exc}") from exc
        return self._collect()

    def close(self) -> None:
        """Drop the muxer; what it would still write (the last packet, an index) goes nowhere."""
        self._out.discard = True
        with contextlib.suppress(Exception):
            self._container.close()

    def _push_video(self, packet: Packet, arrived: float) -> None:
        pts, dts = self._timestamps(packet)
        if self._offset is None:
            self._start_tracks(packet, pts, dts)
        out = av.Packet(packet.data)
        out.stream = self._stream
        out.time_base = self.info.time_base
        out.dts, out.pts = self._rebased(pts, dts)
        if packet.duration > 0:
            out.duration = packet.duration
        out.is_keyframe = packet.keyframe
        self._pending[_VIDEO].append((packet.keyframe, packet.time, arrived))
        self._container.mux(out)

    def _push_sound(self, packet: Packet, arrived: float) -> None:
        if self._sound is None or packet.time < self._start:
            return  # no sound track, or sound from before the first picture
        self._pending[_SOUND].append((False, packet.time, arrived))
        self._sound.write(packet)

    def _start_tracks(self, first: Packet, pts: int, dts: int) -> None:
        """The first picture: the timeline's 0, by which the sound is placed."""
        self._offset = min(pts, dts)
        self._start = first.time
        info, template = self.info.audio, self._templates.audio
        if info is not None and template is not None:
            zero = first.time - (pts - self._offset) * self._tick
            self._sound = SoundTrack(self._container, info, template, zero)

    def _timestamps(self, packet: Packet) -> tuple[int, int]:
        """(pts, dts) in source units; some packets lack one or both."""
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else pts
        if pts is None or dts is None:
            pts = dts = round(packet.time / self._tick)
        return pts, dts

    def _rebased(self, pts: int, dts: int) -> tuple[int, int]:
        """(dts, pts) from 0 at the first picture, dts strictly rising (as the muxer needs)."""
        assert self._offset is not None
        dts = max(dts - self._offset, self._last_dts + 1)
        self._last_dts = dts
        return dts, max(pts - self._offset, dts)

    def _collect(self) -> list[Fragment]:
        made: list[Fragment] = []
        for kind, box in self._out.take():
            if kind in _INIT_BOXES:
                self.init = (self.init or b"") + box
            elif kind == b"moof+mdat" and (fragment := self._paired(box)) is not None:
                made.append(fragment)
        return made

    def _paired(self, box: bytes) -> Fragment | None:
        """The fragment of a moof+mdat, timed by its picture (else its sound)."""
        samples: dict[int, list[tuple[bool, float, float]]] = {}
        for track, count in _samples(box):
            pending = self._pending.get(track, deque())
            samples[track] = [pending.popleft() for _ in range(min(count, len(pending)))]
        sound = not samples.get(_VIDEO)
        first = (samples.get(_SOUND) if sound else samples[_VIDEO]) or [None]
        if first[0] is None:
            return None
        keyframe, when, arrived = first[0]
        data = _TIME.pack(when) + box
        return Fragment(data, keyframe, when, arrived, time.monotonic(), audio=sound)


def _without_sound(info: StreamInfo) -> StreamInfo:
    return StreamInfo(info.codec, info.width, info.height, info.time_base, info.extradata, info.fps)


def _samples(fragment: bytes) -> list[tuple[int, int]]:
    """(track ID, sample count) of each traf in a moof: its tfhd's track_ID and the
    sample_count of its trun (ISO/IEC 14496-12 8.8.7, 8.8.8; the muxer writes one trun)."""
    found: list[tuple[int, int]] = []
    size, _ = _BOX.unpack_from(fragment)
    at = 8
    while at + 8 <= size:
        length, kind = _BOX.unpack_from(fragment, at)
        if length < 8:
            break
        if kind == b"traf":
            traf = fragment[at : at + length]
            header, run = traf.find(b"tfhd"), traf.find(b"trun")
            if header >= 0 and run >= 0:
                found.append(
                    (_U32.unpack_from(traf, header + 8)[0], _U32.unpack_from(traf, run + 8)[0])
                )
        at += length
    return found


class _Boxes:
    """The muxer's write-only output, cut into whole top-level boxes (a moof is held back
    until its mdat, so a fragment is always handed out whole)."""

    __slots__ = ("_boxes", "_buffer", "_moof", "discard")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._boxes: list[tuple[bytes, bytes]] = []
        self._moof: bytes | None = None
        self.discard = False

    def write(self, data: bytes) -> int:
        if not self.discard:
            self._buffer += data
            self._split()
        return len(data)

    def take(self) -> list[tuple[bytes, bytes]]:
        boxes, self._boxes = self._boxes, []
        return boxes

    def _split(self) -> None:
        buffer = self._buffer
        while len(buffer) >= 8:
            size, kind = struct.unpack_from(">I4s", buffer)
            if size == 1 and len(buffer) >= 16:
                size = struct.unpack_from(">Q", buffer, 8)[0]
            if size < 8 or len(buffer) < size:
                return  # incomplete (a size below 8 never comes from our muxer)
            box = bytes(buffer[:size])
            del buffer[:size]
            if kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._moof is not None:
                self._boxes.append((b"moof+mdat", self._moof + box))
                self._moof = None
            else:
                self._boxes.append((kind, box))
