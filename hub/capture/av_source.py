"""Cameras and files that FFmpeg can open: RTSP(S), HTTP(S) (MJPEG or H.264), video files."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import unquote, urlsplit

import av
import numpy as np
from av.container import Flags as ContainerFlags
from av.container import InputContainer
from av.format import Flags
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from hub.capture.audio import AudioOut, AudioTrack
from hub.capture.base import Guarded, Source, SourceError, redact
from hub.capture.timing import (
    BestEffort,
    DisplayOrder,
    Monotonic,
    PacketTimestamps,
    SharedTimeline,
    WallClock,
)
from hub.media import Frame, Packet, StreamInfo

log = logging.getLogger(__name__)

#: Codecs the recorder stream-copies into MP4; anything else (MJPEG, ...) is re-encoded once.
COPYABLE_CODECS = frozenset({"h264", "hevc"})
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
RTSP_TRANSPORTS = frozenset({"tcp", "udp", "udp_multicast", "http", "https"})
# Pixel formats whose first plane is the 8-bit luma, usable without a conversion.
_LUMA_FIRST = frozenset(
    {
        "gray",
        "nv12",
        "nv16",
        "nv21",
        "yuv410p",
        "yuv411p",
        "yuv420p",
        "yuv422p",
        "yuv440p",
        "yuv444p",
        "yuvj411p",
        "yuvj420p",
        "yuvj422p",
        "yuvj440p",
        "yuvj444p",
    }
)
# A live camera's clock may wander this far (seconds) from ours before we re-anchor.
_MAX_DRIFT = 3.0
# A live camera's sound may land this far (seconds) from the latest picture before it is
# re-anchored beside it (see SharedTimeline): more than a camera's two streams arrive
# apart, less than the 2 s after which the live view goes on without sound.
_SOUND_APART = 1.0
# Decoder threads per stream. FFmpeg's automatic choice is one per core plus one (3 on a
# 2-core box), and each frame thread holds its own pictures in flight (~6 MB at 720p):
# memory that two 720p cameras cannot spare, for no speed once the cores are busy anyway.
DECODER_THREADS = min(2, os.cpu_count() or 1)


def luma_of(frame: VideoFrame) -> np.ndarray:
    """The Y plane as a view into the decoder's buffer, converting only when there is none."""
    if frame.format.name not in _LUMA_FIRST:
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8, count=plane.line_size * frame.height)
    return rows.reshape(frame.height, plane.line_size)[:, : frame.width]


def bgr_of(picture: VideoFrame) -> np.ndarray:
    """`Frame.bgr` for a decoded picture, safe to call from any thread.

    PyAV's `to_ndarray` converts with a swscale context kept on the picture: two threads
    converting the same picture at once (live view, a snapshot, an encoder) crashed the
    process. Each call gets a context of its own, freed on return; PyAV made one per
    picture anyway, so this costs no more, where one kept per thread holds a few MB at
    720p. No lock per picture either: it cost two cameras 3-5 MB of peak RSS (heap
    fragmentation), and when two threads race on the colour tags PyAV rewrites during a
    conversion, the tags left behind are equivalent ones: the colours come out the same.
    """
    return VideoReformatter().reformat(picture, format="bgr24").to_ndarray()


def _reorder_depth(codec: VideoCodecContext) -> int:
    """Pictures the codec may show before one decoded earlier (FFmpeg's has_b_frames).

    Older PyAV (14, which the project still allows; 17 has `reorder_depth`) tells only
    whether there are B-frames: then assume a depth of one, and PacketTimestamps learns
    a deeper one from the stream.
    """
    depth = getattr(codec, "reorder_depth", None)
    return int(codec.has_b_frames) if depth is None else int(depth)


def _describe_error(err: BaseException, timeout: float, *, timed_out: bool = False) -> str:
    """FFmpeg's reason without the file name it carries (a URL may hold a password).

    A connect cut short by the timeout surfaces as whatever error the protocol makes of
    the interruption (RTSP says "invalid data"), so the caller says whether time ran out.
    """
    if timed_out or isinstance(err, av.ExitError):
        return f"no data within {timeout:g} s (camera stalled or unreachable)"
    if isinstance(err, av.FFmpegError) and err.strerror:
        return str(err.strerror)
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return type(err).__name__


def _owner_reason(
    err: BaseException, timeout: float, *, connecting: bool, timed_out: bool = False
) -> str:
    """The failure in the owner's words, from FFmpeg's error class (never its text, which
    may name the URL): what the camera's status on the page says."""
    if timed_out or isinstance(err, (av.ExitError, av.TimeoutError)):
        return (
            f"cannot connect: no answer for {timeout:g} s"
            if connecting
            else (f"no picture for {timeout:g} s")
        )
    if isinstance(err, (av.HTTPUnauthorizedError, av.HTTPForbiddenError)):
        return "the camera refused the login"
    if isinstance(err, av.HTTPNotFoundError):
        return "the camera has no stream at that address"
    if isinstance(err, (av.ConnectionRefusedError, ConnectionRefusedError)):
        return "cannot connect: connection refused"
    if isinstance(err, (av.ConnectionResetError, av.BrokenPipeError, av.EOFError)):
        return "the camera closed the connection"
    if isinstance(err, av.FileNotFoundError):
        return "no such file" if not connecting else "the camera's address was not found"
    strerror = getattr(err, "strerror", None)
    if isinstance(strerror, str) and strerror:
        words = strerror[0].lower() + strerror[1:]
        return f"cannot connect: {words}" if connecting else f"the stream broke off: {words}"
    return "cannot connect" if connecting else "the stream broke off"


def _location(url: str) -> tuple[str, bool]:
    """What to hand FFmpeg, and whether it is a network stream."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in NETWORK_SCHEMES:
        return url, True
    if scheme == "file":
        return unquote(parts.path), False
    return url, False


class AVSource(Source):
    """Reads one stream with PyAV, yielding packets for stream copy and decoded frames.

    A stream the recorder cannot copy (MJPEG) makes `open()` return None, and `read()`
    yields frames only, whatever `decode` says. A stream stored without pts whose codec
    reorders pictures (H.264 with B-frames in AVI) is decoded whatever `decode` says, to
    learn each packet's pts from the decoder (see DisplayOrder); its packets then come a
    few pictures late. Times are wall clock anchored when `open()` starts, then follow
    the stream's pts. Both the connect and every read wait at most `timeout` seconds,
    so a stalled camera raises SourceError instead of hanging the capture thread;
    `close()` from another thread takes effect at the next packet, or after `timeout`
    at worst.

    With `audio`, a copied stream's first sound track comes too, as AAC packets marked
    `Packet.audio` (see AudioTrack), timed on the video's timeline and handed out from
    the video's first keyframe on. A stream without sound, or whose sound comes late or
    stops, still yields its video; video that stops while sound goes on is a stall.
    """

    def __init__(
        self,
        url: str,
        *,
        decode: bool = True,
        keep_packets: bool = True,
        rtsp_transport: str = "tcp",
        timeout: float = 10.0,
        realtime: bool = False,
        loop: bool = False,
        audio: bool = False,
    ) -> None:
        self.name = redact(url)
        if not (decode or keep_packets):
            raise ValueError(f"{self.name}: nothing to read (decode and keep_packets both off)")
        if rtsp_transport not in RTSP_TRANSPORTS:
            raise ValueError(
                f"rtsp_transport must be one of {sorted(RTSP_TRANSPORTS)}, got {rtsp_transport!r}"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self._location, self._live = _location(url)
        self._decode = decode
        self._keep_packets = keep_packets
        self._want_audio = audio
        self._options = {
            "rtsp_transport": rtsp_transport,
            "allowed_media_types": "video+audio" if audio else "video",
            # Skip frame-rate probing: it holds the connect up ~3 s and pts are what count.
            "fpsprobesize": "0",
        }
        self._timeout = timeout
        self._realtime = realtime and not self._live
        self._loop = loop and not self._live
        self.finite = not (self._live or self._loop)
        self._container: Guarded[InputContainer] = Guarded(InputContainer.close)
        self._copy = False
        self._started = False  # see _begins()
        self._reorder = False  # pts learnt from the decoder, see _begins()
        self._arrival = False  # time frames by arrival, see _open_container()
        self._audio: AudioTrack | None = None
        self._sound_anchor: tuple[float, Fraction] | None = None  # see _sound_packet()
        self._video_seen = 0.0  # monotonic time of the latest video packet

    # -- connection ---------------------------------------------------------------

    def open(self) -> StreamInfo | None:
        if self._container.closed.is_set() or self._container.item is not None:
            raise SourceError(f"{self.name}: already used; make a new source to reconnect")
        self._anchor = time.time()
        self._mono0 = time.monotonic()
        stream = self._open_container()
        codec = stream.codec_context
        self._copy = self._keep_packets and codec.name in COPYABLE_CODECS
        # Pictures are the only way to record a stream that cannot be copied (MJPEG):
        # decode it even when asked for packets only, for an EncodingSource to encode.
        self._decode = self._decode or not self._copy
        time_base = stream.time_base or Fraction(1, 90_000)
        self._time_base = time_base
        rate = stream.guessed_rate or stream.average_rate
        fps = float(rate) if rate else None
        interval = 1 / fps if fps else 0.1
        self._timestamps = PacketTimestamps(
            time_base, frame_ticks=round(interval / time_base), reorder=_reorder_depth(codec)
        )
        self._clock = WallClock(
            time_base, self._anchor, max_drift=_MAX_DRIFT if self._live else None
        )
        self._timeline = SharedTimeline(max_apart=_SOUND_APART if self._live else None)
        self._frame_ts = BestEffort()
        self._b_frames = bool(codec.has_b_frames)
        self._display: DisplayOrder[av.Packet] = DisplayOrder()
        self._frame_times = Monotonic(self._anchor, interval)
        if not self._copy:
            return None
        self._audio = self._open_audio()
        return StreamInfo(
            codec=codec.name,
            width=codec.width,
            height=codec.height,
            time_base=time_base,
            extradata=codec.extradata or None,
            fps=fps,
            audio=None if self._audio is None else self._audio.info,
        )

    def _open_audio(self) -> AudioTrack | None:
        container = self._container.item
        if not self._want_audio or container is None:
            return None
        if not container.streams.audio:
            log.info("%s: no sound track; recording video only", self.name)
            return None
        track = AudioTrack.open(container.streams.audio[0], self.name)
        if track is not None:
            self._audio_ts = PacketTimestamps(track.info.time_base, frame_ticks=1, jump=1.0)
        return track

    def _open_container(self) -> VideoStream:
        started = time.monotonic()
        try:
            container = av.open(
                self._location,
                options=self._options if self._live else {},
                timeout=(self._timeout, self._timeout),
            )
        except (av.FFmpegError, OSError) as err:
            timed_out = time.monotonic() - started >= self._timeout
            detail = _describe_error(err, self._timeout, timed_out=timed_out)
            reason = _owner_reason(err, self._timeout, connecting=True, timed_out=timed_out)
            raise SourceError(f"{self.name}: {detail}", reason) from None
        if not self._container.hold(container):
            raise SourceError(f"{self.name}: closed while connecting", "stopped while connecting")
        # PyAV asks FFmpeg to make up missing pts, which it does in decode order (an AVI's
        # B-frames then play out of order); see DisplayOrder for how they are learnt.
        container.flags &= ~ContainerFlags.gen_pts.value
        if not container.streams.video:
            self.close()
            raise SourceError(f"{self.name}: no video stream", "the camera sends no video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = DECODER_THREADS
        # A live stream whose demuxer makes its timestamps up (MJPEG over HTTP counts
        # frames at a nominal 25 fps) is timed by arrival instead.
        self._arrival = self._live and bool(container.format.flags & Flags.no_timestamps.value)
        return stream

    def close(self) -> None:
        self._container.close()

    # -- reading ------------------------------------------------------------------

    def read(self) -> Iterator[Packet | Frame]:
        with self._container.reading() as container:
            if container is None:
                raise SourceError(f"{self.name}: not open (never opened, or closed)")
            while True:
                yield from self._read_pass()
                if not self._loop or self._container.closed.is_set():
                    yield from self._sound_tail()
                    return
                self._container.drop()
                self._open_container()

    def _read_pass(self) -> Iterator[Packet | Frame]:
        """One pass over the container, from its current position to its end."""
        container = self._container.item
        assert container is not None
        stream = container.streams.video[0]
        sound = container.streams.audio[0] if self._audio is not None else None
        packets = container.demux(stream) if sound is None else container.demux(stream, sound)
        self._timeline.reset()
        self._video_seen = time.monotonic()
        closed = self._container.closed
        while not closed.is_set():
            try:
                packet = next(packets, None)
            except (av.FFmpegError, OSError) as err:
                if closed.is_set():
                    return
                raise SourceError(
                    f"{self.name}: {_describe_error(err, self._timeout)}",
                    _owner_reason(err, self._timeout, connecting=False),
                ) from None
            if packet is None:
                # The decoder was flushed (demux ends with an empty packet): no more pts.
                yield from self._reordered(self._display.drain())
                return
            if sound is not None and packet.stream_index == sound.index:
                if packet.size:
                    yield from self._sound(packet, sound.time_base)
                continue
            if packet.size:
                self._video_seen = time.monotonic()  # (video before its first keyframe too)
            if packet.size and self._begins(packet):
                raw = packet.pts if packet.pts is not None else packet.dts
                arrived = time.monotonic() if self._live else None  # (a file: no step)
                fixed = self._timestamps.fix(packet.pts, packet.dts, arrived=arrived)
                assert fixed is not None and raw is not None  # _begins() saw a timestamp
                packet.pts, packet.dts = fixed
                if sound is not None:
                    self._timeline.video(float(raw * self._time_base), self._packet_time(fixed[0]))
                if self._realtime and not self._pace(packet.dts):
                    return
                if self._reorder:
                    self._display.hold(packet.dts, packet)  # packet.pts is its tag
                elif self._copy:
                    yield self._packet(packet)
            if self._decode or self._reorder:
                yield from self._frames(stream, packet)
            if self._reorder:
                yield from self._reordered(self._display.ready())

    def _begins(self, packet: av.Packet) -> bool:
        """Whether this packet is part of the stream handed out, which starts at the first
        keyframe with a timestamp. Packets before it are only decoded: an RTSP stream's
        first packets come before the parser knows their timing, so guessing would be wrong.
        """
        if not self._started:
            has_time = packet.pts is not None or packet.dts is not None
            self._started = packet.is_keyframe and has_time
            # AVI stores dts only: with B-frames, pts = dts would put pictures out of order.
            self._reorder = self._started and self._copy and packet.pts is None and self._b_frames
        return self._started

    def _sound(self, packet: av.Packet, time_base: Fraction | None) -> Iterator[Packet]:
        """The AAC packets of one sound packet, from the video's first keyframe on."""
        assert self._audio is not None
        if self._live and time.monotonic() - self._video_seen > self._timeout:
            raise SourceError(
                f"{self.name}: no video for {self._timeout:g} s (sound only)",
                f"no picture for {self._timeout:g} s (sound only)",
            )
        raw = packet.pts if packet.pts is not None else packet.dts
        wall = None if raw is None or not time_base else self._timeline.at(float(raw * time_base))
        fixed = self._audio_ts.fix(packet.pts, packet.dts) if wall is not None else None
        if wall is None or fixed is None:
            return  # before the video's first keyframe: nothing to place it by
        pts = fixed[0]
        self._sound_anchor = (wall, pts * time_base)
        for out in self._audio.convert(bytes(packet), pts):
            yield self._sound_packet(out, packet.duration or 0)

    def _sound_tail(self) -> Iterator[Packet]:
        """The sound a transcoding track still holds once the stream has ended."""
        if self._audio is not None and self._sound_anchor is not None:
            for out in self._audio.flush():
                yield self._sound_packet(out, 0)

    def _sound_packet(self, out: AudioOut, duration: int) -> Packet:
        """An AAC packet, timed by the latest input sound packet's wall-clock time."""
        assert self._audio is not None and self._sound_anchor is not None
        wall, start = self._sound_anchor  # (time, pts in seconds) of that input packet
        base = self._audio.info.time_base  # the input's, when the sound is copied
        return Packet(
            data=out.data,
            pts=out.pts,
            dts=out.pts,
            duration=out.duration or duration,
            keyframe=True,
            time=wall + float(out.pts * base - start),
            audio=True,
        )

    def _pace(self, dts: int) -> bool:
        """Wait until this packet is due in real time; False if closed meanwhile."""
        delay = self._mono0 + self._clock.elapsed(dts) - time.monotonic()
        return delay <= 0 or not self._container.closed.wait(delay)

    def _packet(self, packet: av.Packet) -> Packet:
        assert packet.pts is not None
        return Packet(
            data=bytes(packet),
            pts=packet.pts,
            dts=packet.dts,
            duration=packet.duration or 0,
            keyframe=packet.is_keyframe,
            time=self._packet_time(packet.pts),
        )

    def _frames(self, stream: VideoStream, packet: av.Packet) -> Iterator[Frame]:
        try:
            decoded = stream.decode(packet)
        except av.InvalidDataError:
            return  # a damaged packet costs its pictures, not the connection
        except av.FFmpegError as err:
            raise SourceError(
                f"{self.name}: decoding failed: {_describe_error(err, self._timeout)}",
                "the camera's picture cannot be decoded",
            ) from None
        for picture in decoded:
            if self._reorder:
                self._display.shown(picture.pts, picture.dts)
            if self._decode:
                yield Frame(
                    time=self._picture_time(picture),
                    luma=luma_of(picture),
                    bgr=lambda picture=picture: bgr_of(picture),
                )

    def _reordered(self, ready: Iterator[tuple[av.Packet, int]]) -> Iterator[Packet]:
        for packet, pts in ready:
            packet.pts = pts
            yield self._packet(packet)

    def _packet_time(self, pts: int) -> float:
        now = time.time()
        return now if self._arrival else self._clock.at(pts, now)

    def _picture_time(self, picture: VideoFrame) -> float:
        if self._arrival:
            return self._frame_times.next(time.time())
        # A reordered stream's pictures carry tags as pts, and their display slot as dts.
        ts = picture.dts if self._reorder else self._frame_ts(picture.pts, picture.dts)
        return self._frame_times.next(None if ts is None else self._clock.at(ts, time.time()))
