"""USB cameras through Video4Linux2 (OpenCV): raw pictures, encoded later if recorded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from hub.capture.base import Guarded, Source, SourceError
from hub.capture.timing import Monotonic
from hub.media import Frame, StreamInfo


class V4L2Source(Source):
    """One V4L2 device at a requested size and rate (the driver may pick the nearest)."""

    def __init__(self, device: str, width: int, height: int, fps: int) -> None:
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError(f"v4l2 size and fps must be > 0, got {width}x{height}@{fps}")
        self.name = f"v4l2:{device}"
        self._device = device
        self._size = (width, height)
        self._fps = fps
        self._capture: Guarded[cv2.VideoCapture] = Guarded(cv2.VideoCapture.release)

    def open(self) -> StreamInfo | None:
        if not Path(self._device).exists():
            raise SourceError(
                f"{self.name}: no such device (camera unplugged?)",
                "the USB camera is not plugged in",
            )
        capture = cv2.VideoCapture(self._device, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"{self.name}: cannot open (busy, or not a video capture device)",
                "the USB camera is busy, or not a camera",
            )
        # MJPG first: USB cameras deliver HD at full rate only compressed.
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        capture.set(cv2.CAP_PROP_FPS, self._fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 2)  # fresh pictures, not a backlog
        if not self._capture.hold(capture):
            raise SourceError(f"{self.name}: closed while opening", "stopped while connecting")
        return None

    def read(self) -> Iterator[Frame]:
        times = Monotonic(time.time(), 1 / self._fps)
        with self._capture.reading() as capture:
            if capture is None:
                raise SourceError(f"{self.name}: not open (never opened, or closed)")
            while not self._capture.closed.is_set():
                ok, image = capture.read()
                if self._capture.closed.is_set():
                    return
                if not ok:
                    raise SourceError(
                        f"{self.name}: stopped delivering pictures (unplugged?)",
                        "the USB camera stopped sending pictures",
                    )
                yield Frame(
                    time=times.next(time.time()),
                    luma=cv2.cvtColor(image, cv2.COLOR_BGR2GRAY),
                    bgr=lambda image=image: image,
                )

    def close(self) -> None:
        self._capture.close()
