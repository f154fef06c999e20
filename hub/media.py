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
class StreamInfo:
    """What a muxer needs to stream-copy a camera's encoded video."""

    codec: str  # FFmpeg codec name, e.g. "h264"
    width: int
    height: int
    time_base: Fraction  # unit of Packet.pts / Packet.dts
    extradata: bytes | None  # codec setup (avcC / SPS+PPS); None for Annex B in-band
    fps: float | None  # nominal rate if the source knows it


@dataclass(slots=True)
class Packet:
    """One encoded video packet, kept as-is for stream copy."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int  # in time_base units; 0 when unknown
    keyframe: bool
    time: float  # wall-clock seconds (Unix time) of this packet


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
