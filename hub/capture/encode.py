"""Encoding raw cameras (V4L2, the synthetic porch, MJPEG) to H.264, once per frame."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from fractions import Fraction

import av
from av.codec.context import Flags
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from hub.capture.base import Source, SourceError
from hub.media import Frame, Packet, StreamInfo

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90_000)  # as RTP uses: fine enough for any frame rate
# The Raspberry Pi's hardware encoder first; x264 where there is none.
_ENCODERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("h264_v4l2m2m", {}),
    ("libx264", {"preset": "ultrafast", "tune": "zerolatency", "sc_threshold": "0"}),
)


def open_encoder(
    width: int, height: int, *, fps: float, bitrate: int, gop: int
) -> VideoCodecContext:
    """The first H.264 encoder that opens here, set up for MP4 (parameter sets as extradata)."""
    failures = []
    for name, options in _ENCODERS:
        try:
            encoder = av.CodecContext.create(name, "w")
            encoder.width, encoder.height = width, height
            encoder.pix_fmt = "yuv420p"
            encoder.time_base = TIME_BASE
            encoder.framerate = Fraction(fps).limit_denominator(1001)
            encoder.bit_rate = bitrate
            encoder.gop_size = gop
            encoder.max_b_frames = 0
            encoder.flags |= Flags.global_header
            encoder.options = options
            encoder.open()
        except (av.FFmpegError, ValueError) as err:  # encoder not built in, or no device
            failures.append(f"{name}: {err.strerror if isinstance(err, av.FFmpegError) else err}")
            continue
        log.debug("encoding %dx%d with %s", width, height, name)
        return encoder
    raise SourceError(
        f"no H.264 encoder could be opened ({'; '.join(failures)})",
        "no H.264 encoder works on this box",
    )


class EncodingSource(Source):
    """Wraps a raw source and yields each Frame followed by the Packets it encoded to.

    `open()` reads the first frame to learn the picture size, so it waits for the camera.
    A wrapped source that turns out to be encoded already (its open() returns a
    StreamInfo) is passed through untouched: wrapping "just in case" costs nothing.
    """

    def __init__(
        self, raw: Source, *, fps: float, bitrate: int = 2_000_000, gop_seconds: float = 2.0
    ) -> None:
        if fps <= 0 or bitrate <= 0 or gop_seconds <= 0:
            raise ValueError(
                f"fps, bitrate and gop_seconds must be > 0, got {fps}, {bitrate}, {gop_seconds}"
            )
        self.name = raw.name
        self.finite = raw.finite
        self._inner = raw
        self._passthrough = False
        self._fps = fps
        self._bitrate = bitrate
        self._gop = max(1, round(gop_seconds * fps))
        self._frames: Iterator[Packet | Frame] | None = None
        self._first: Frame | None = None

    def open(self) -> StreamInfo:
        info = self._inner.open()
        if info is not None:
            self._passthrough = True
            return info
        try:
            self._frames = self._inner.read()
            self._first = next((f for f in self._frames if isinstance(f, Frame)), None)
            if self._first is None:
                raise SourceError(
                    f"{self.name}: ended before its first picture", "the camera sent no picture"
                )
            self._encoder = open_encoder(
                self._first.width,
                self._first.height,
                fps=self._fps,
                bitrate=self._bitrate,
                gop=self._gop,
            )
        except SourceError:
            self._inner.close()
            raise
        return StreamInfo(
            codec="h264",
            width=self._first.width,
            height=self._first.height,
            time_base=TIME_BASE,
            extradata=self._encoder.extradata or None,
            fps=self._fps,
        )

    def read(self) -> Iterator[Packet | Frame]:
        if self._passthrough:
            yield from self._inner.read()
            return
        if self._first is None or self._frames is None:
            raise SourceError(f"{self.name}: read() needs a successful open() first")
        t0 = self._first.time
        last_pts = -1
        for frame in itertools.chain([self._first], self._frames):
            if not isinstance(frame, Frame):
                continue
            yield frame
            last_pts = max(last_pts + 1, round((frame.time - t0) / TIME_BASE))
            yield from self._encode(self._picture(frame, last_pts), t0)
        yield from self._encode(None, t0)  # the raw stream ended: drain the encoder

    def _picture(self, frame: Frame, pts: int) -> VideoFrame:
        picture = VideoFrame.from_ndarray(frame.bgr(), format="bgr24")
        picture = picture.reformat(self._encoder.width, self._encoder.height, "yuv420p")
        picture.pts = pts
        picture.time_base = TIME_BASE
        return picture

    def _encode(self, picture: VideoFrame | None, t0: float) -> Iterator[Packet]:
        try:
            packets = self._encoder.encode(picture)
        except av.FFmpegError as err:
            raise SourceError(
                f"{self.name}: encoding failed: {err.strerror}",
                "encoding the camera's picture failed",
            ) from None
        for packet in packets:
            assert packet.pts is not None
            yield Packet(
                data=bytes(packet),
                pts=packet.pts,
                dts=packet.dts if packet.dts is not None else packet.pts,
                duration=packet.duration or 0,
                keyframe=packet.is_keyframe,
                time=t0 + float(packet.pts * TIME_BASE),
            )

    def close(self) -> None:
        self._inner.close()
