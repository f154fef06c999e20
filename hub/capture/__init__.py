"""Camera sources, chosen by URL, and the loop that keeps each camera connected."""

from __future__ import annotations

from urllib.parse import urlsplit

from hub.capture.av_source import NETWORK_SCHEMES, AVSource
from hub.capture.base import Source, SourceError, redact
from hub.capture.encode import EncodingSource
from hub.capture.supervisor import CaptureLoop, CaptureStatus
from hub.capture.synthetic import SyntheticPorch
from hub.capture.v4l2 import V4L2Source
from hub.media import StreamInfo

__all__ = [
    "AVSource",
    "CaptureLoop",
    "CaptureStatus",
    "EncodingSource",
    "Source",
    "SourceError",
    "SyntheticPorch",
    "V4L2Source",
    "needs_encoding",
    "open_source",
]

SCHEMES_HELP = (
    "rtsp://, rtsps://, http(s)://, file://, a file path, v4l2:///dev/videoN, synthetic:porch"
)


def open_source(
    url: str,
    *,
    decode: bool = True,
    keep_packets: bool = True,
    rtsp_transport: str = "tcp",
    realtime: bool = False,
    loop: bool = False,
    audio: bool = False,
    v4l2_size: tuple[int, int, int] = (1280, 720, 15),
) -> Source:
    """The source for a camera URL, not yet opened, and not wrapped for encoding: to
    record it, wrap it in an EncodingSource (see Source).

    `realtime` and `loop` apply to files (demo cameras made of clips); the synthetic
    scene is a camera and always runs at its own frame rate. `v4l2_size` is
    (width, height, fps). `audio` takes a network or file camera's sound along with
    its packets; the other sources have none.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in NETWORK_SCHEMES or scheme in ("", "file"):
        return AVSource(
            url,
            decode=decode,
            keep_packets=keep_packets,
            rtsp_transport=rtsp_transport,
            realtime=realtime,
            loop=loop,
            audio=audio,
        )
    if scheme == "v4l2" and parts.path:
        return V4L2Source(parts.path, *v4l2_size)
    if scheme == "synthetic" and parts.path == "porch":
        return SyntheticPorch(realtime=True)
    raise SourceError(
        f"unsupported camera URL {redact(url)!r}; use {SCHEMES_HELP}",
        "the camera's URL is not one camhub reads",
    )


def needs_encoding(info: StreamInfo | None) -> bool:
    """Whether an opened source gives only raw pictures, so recording must encode them."""
    return info is None
