"""The small objects that travel from a camera to the recorder and the detector.

Capture produces them, motion and recording consume them; none of those modules
needs to know about the others' libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a muxer needs to stream-copy a camera's sound (always AAC by then: capture
    transcodes anything else once)."""

    codec: str  # FFmpeg codec name: "aac"
    sample_rate: int
    channels: int
    layout: str  # FFmpeg's channel layout name, e.g. "mono", "stereo", "5.1"
    time_base: Fraction  # unit of an audio Packet's pts / dts
    extradata: bytes  # AudioSpecificConfig, which MP4 needs before the first sample


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a muxer needs to stream-copy a camera's encoded video, and its sound if kept."""

    codec: str  # FFmpeg codec name, e.g. "h264"
    width: int
    height: int
    time_base: Fraction  # unit of Packet.pts / Packet.dts
    extradata: bytes | None  # codec setup (avcC / SPS+PPS); None for Annex B in-band
    fps: float | None  # nominal rate if the source knows it
    audio: AudioInfo | None = None  # the sound's packets follow, marked `Packet.audio`


@dataclass(slots=True)
class Packet:
    """One encoded packet, video or sound, kept as-is for stream copy.

    Both travel one path, in arrival order: a consumer tells them apart by `audio`,
    and places them on one timeline by `time`. Timestamps are in the time base of their
    own stream (StreamInfo's, or its AudioInfo's). Every audio packet is a keyframe.
    """

    data: bytes
    pts: int | None
    dts: int | None
    duration: int  # in time_base units; 0 when unknown
    keyframe: bool
    time: float  # wall-clock seconds (Unix time) of this packet
    audio: bool = False

    @property
    def starts_gop(self) -> bool:
        """A video keyframe: where a segment, a pre-roll GOP or a viewer may start."""
        return self.keyframe and not self.audio


@dataclass(slots=True)
class Frame:
    """One decoded picture.

    `luma` is the full-resolution Y plane (H x W uint8); it may be a view into the
    decoder's buffer, so consumers that keep it must copy. `bgr()` converts to
    colour on demand, for the few consumers (live view, snapshots) that need it.
    """

    time: float  # wall-clock seconds (Unix time) this picture shows
    luma: np.ndarray
    bgr: Callable[[], np.ndarray]

    @property
    def width(self) -> int:
        return int(self.luma.shape[1])

    @property
    def height(self) -> int:
        return int(self.luma.shape[0])
