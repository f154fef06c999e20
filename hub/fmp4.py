"""Live fMP4: one camera stream's own packets, stream-copied into the pieces a browser's
Media Source Extensions play: an init segment (ftyp+moov) once, then one moof+mdat
fragment per picture.

Nothing is decoded or encoded: PyAV's mp4 muxer wraps the packets as they are
(`empty_moov` puts no samples in the header, `default_base_moof` makes each fragment
self-contained, `frag_every_frame` cuts a fragment per picture so a viewer gets each
picture as soon as the muxer can close it). The muxer closes a picture's fragment when
the next packet comes (the sample's duration is the gap between the two), so a picture
leaves one frame interval after it arrived; muxing itself takes microseconds.

Sound (not yet in live view): the camera's sound arrives as `Packet`s with `audio`
set, described by `StreamInfo.audio` (hub/media.py), and StreamFeed.offer() passes them
by. To add it: a second stream here from the AudioInfo (as hub/record.py adds it), its
packets muxed in time order (`hub.record.TimeOrder`), `frag_every_frame` then cutting on
either track's packets, so `_pending` must pair fragments with the packet that closed
them, and the description's codec string gains `mp4a.40.2`.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections import deque
from dataclasses import dataclass

import av

from hub.media import Packet, StreamInfo
from hub.record import _stream_template

log = logging.getLogger(__name__)

_MOVFLAGS = "frag_every_frame+empty_moov+default_base_moof"
# Without extradata the muxer must see the first keyframe's in-band SPS/PPS first.
_MOVFLAGS_INBAND = _MOVFLAGS + "+delay_moov"
_INIT_BOXES = (b"ftyp", b"moov")
_TIME = struct.Struct(">d")


@dataclass(frozen=True, slots=True)
class Fragment:
    """One picture as a moof+mdat, shared read-only by every viewer that gets it."""

    data: bytes  # the wire form: the picture's Unix time (8-byte big-endian double), moof+mdat
    keyframe: bool  # a viewer may start here
    time: float  # wall-clock seconds (Unix time) the picture shows
    arrived: float  # time.monotonic() when its packet came from the camera


class MuxError(ValueError):
    """The stream cannot be muxed to fMP4 (a codec MP4 cannot carry, bad parameters)."""


class FragmentMuxer:
    """Packets in (from a keyframe on), init segment and fragments out, in memory.

    Not thread-safe: one caller at a time (the feed holds its lock around it).
    """

    def __init__(self, info: StreamInfo) -> None:
        try:
            template = _stream_template(info)
        except ValueError as exc:
            raise MuxError(str(exc)) from exc
        self.info = info
        self.init: bytes | None = None  # ftyp+moov, once the muxer has written it
        self._out = _Boxes()
        flags = _MOVFLAGS if info.extradata else _MOVFLAGS_INBAND
        try:
            self._container = av.open(self._out, "w", format="mp4", options={"movflags": flags})
            stream = self._container.add_stream_from_template(template)
            stream.codec_context.width = info.width
            stream.codec_context.height = info.height
            if info.extradata:
                stream.codec_context.extradata = info.extradata
            stream.time_base = info.time_base
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"{type(exc).__name__}: {exc}") from exc
        self._stream = stream
        self._tick = float(info.time_base)
        self._offset: int | None = None
        self._last_dts = -1
        self._pending: deque[tuple[bool, float, float]] = deque()  # muxed, not yet out

    @property
    def codec(self) -> str | None:
        """The MSE codec string (RFC 6381), e.g. avc1.4d401f, read from the init's avcC."""
        init = self.init
        found = init.find(b"avcC") if init else -1
        if init is None or found < 0 or len(init) < found + 8:
            return None
        return "avc1." + init[found + 5 : found + 8].hex()

    def push(self, packet: Packet, arrived: float) -> list[Fragment]:
        """Mux one packet; the fragments this completed (the previous picture's)."""
        pts, dts = self._timestamps(packet)
        out = av.Packet(packet.data)
        out.stream = self._stream
        out.time_base = self.info.time_base
        out.dts = dts
        out.pts = max(pts, dts)
        if packet.duration > 0:
            out.duration = packet.duration
        out.is_keyframe = packet.keyframe
        self._pending.append((packet.keyframe, packet.time, arrived))
        try:
            self._container.mux(out)
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"{type(exc).__name__}: {exc}") from exc
        return self._collect()

    def close(self) -> None:
        """Drop the muxer; what it would still write (the last picture, an index) goes nowhere."""
        self._out.discard = True
        with contextlib.suppress(Exception):
            self._container.close()

    def _timestamps(self, packet: Packet) -> tuple[int, int]:
        """(pts, dts) from 0 at the first packet, dts strictly rising (as the muxer needs)."""
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else pts
        if pts is None or dts is None:
            pts = dts = round(packet.time / self._tick)
        if self._offset is None:
            self._offset = min(pts, dts)
        dts = max(dts - self._offset, self._last_dts + 1)
        self._last_dts = dts
        return pts - self._offset, dts

    def _collect(self) -> list[Fragment]:
        made: list[Fragment] = []
        for kind, box in self._out.take():
            if kind in _INIT_BOXES:
                self.init = (self.init or b"") + box
            elif kind == b"moof+mdat" and self._pending:
                keyframe, when, arrived = self._pending.popleft()
                made.append(Fragment(_TIME.pack(when) + box, keyframe, when, arrived))
        return made


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
