"""The demo's built-in camera: a porch drawn with OpenCV, visited now and then.

A textured wall, door and floor are rendered once; each frame only changes the light
a little, adds sensor noise and, during a visit, draws a figure walking across. The
visits are known in advance (`visits()`), which makes the scene ground truth for tests.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from hub.capture.base import Source
from hub.media import Frame, StreamInfo

_NOISE_BANK = 8  # pre-drawn noise images, picked at random per frame
_NOISE_SIGMA = 3.0
_LIGHT_PERIOD = 90.0  # seconds for one slow swing of the light
_LIGHT_SWING = 0.05  # +-5 % brightness
# Independent random streams drawn from one seed.
_VISITS, _BACKGROUND, _NOISE, _NOISE_PICK = range(4)
_SKIN = (110, 140, 190)  # BGR
_TROUSERS = (60, 45, 40)


@dataclass(frozen=True, slots=True)
class Visit:
    start: float  # seconds after stream start
    end: float
    leftwards: bool
    shirt: tuple[int, ...]  # BGR


class SyntheticPorch(Source):
    """A porch camera that needs no hardware; raw frames only, so `open()` returns None.

    `realtime` paces frames at `fps`; otherwise they come as fast as they are asked for,
    still stamped 1/fps apart, so a test sees the same frames every run.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        fps: float = 10.0,
        *,
        seed: int = 1,
        realtime: bool = True,
        visit_every: float = 20.0,
        visit_length: float = 6.0,
    ) -> None:
        if width < 64 or height < 64:
            raise ValueError(f"synthetic porch needs at least 64x64 pixels, got {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not 0 < visit_length < visit_every:
            raise ValueError(
                f"visit_length must be > 0 and < visit_every ({visit_every}), got {visit_length}"
            )
        self.name = "synthetic:porch"
        self.width = width
        self.height = height
        self.fps = fps
        self._seed = seed
        self._realtime = realtime
        self._every = visit_every
        self._length = visit_length
        self._closed = threading.Event()
        self._background: np.ndarray | None = None
        self._noise: list[tuple[np.ndarray, np.ndarray]] = []

    # -- ground truth ---------------------------------------------------------------

    def visit(self, k: int) -> Visit:
        """The k-th visit: somewhere in the middle of its own `visit_every` slot."""
        rng = np.random.default_rng([self._seed, _VISITS, k])
        slack = self._every - self._length
        start = k * self._every + slack * float(rng.uniform(0.25, 0.75))
        shirt = tuple(int(c) for c in rng.integers(30, 200, size=3))
        return Visit(start, start + self._length, bool(rng.integers(2)), shirt)

    def visits(self, until: float) -> list[tuple[float, float]]:
        """(start, end) seconds after stream start of every visit starting before `until`."""
        upcoming = map(self.visit, itertools.count())
        return [(v.start, v.end) for v in itertools.takewhile(lambda v: v.start < until, upcoming)]

    def figure_box(self, t: float) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) the figure covers at `t` seconds, clipped to the picture."""
        placed = self._figure(t)
        if placed is None:
            return None
        x = placed[0]
        top, feet, reach, _ = self._geometry()
        x0, x1 = max(0, x - reach), min(self.width, x + reach)
        return (x0, top, x1, feet) if x0 < x1 else None

    # -- Source ------------------------------------------------------------------------

    def open(self) -> StreamInfo | None:
        if self._background is None:
            self._background = _render_background(self.width, self.height, self._seed)
            rng = np.random.default_rng([self._seed, _NOISE])
            for _ in range(_NOISE_BANK):
                noise = rng.normal(0.0, _NOISE_SIGMA, (self.height, self.width, 3))
                self._noise.append(
                    (
                        np.clip(noise, 0, 255).astype(np.uint8),
                        np.clip(-noise, 0, 255).astype(np.uint8),
                    )
                )
        self._start = time.time()
        self._mono0 = time.monotonic()
        return None

    def read(self) -> Iterator[Frame]:
        if self._background is None:
            raise RuntimeError("SyntheticPorch.read() before open()")
        pick = np.random.default_rng([self._seed, _NOISE_PICK])
        i = 0
        while not self._closed.is_set():
            if self._realtime:
                due = self._mono0 + i / self.fps
                if self._closed.wait(max(0.0, due - time.monotonic())):
                    return
                # A slow reader loses frames, as with a real camera, rather than lagging.
                i = max(i, int((time.monotonic() - self._mono0) * self.fps))
            t = i / self.fps
            yield self._frame(t, self._noise[int(pick.integers(_NOISE_BANK))])
            i += 1

    def close(self) -> None:
        self._closed.set()

    # -- drawing -------------------------------------------------------------------------

    def _frame(self, t: float, noise: tuple[np.ndarray, np.ndarray]) -> Frame:
        gain = 1.0 + _LIGHT_SWING * math.sin(2 * math.pi * t / _LIGHT_PERIOD)
        image = cv2.convertScaleAbs(self._background, alpha=gain)
        self._draw_figure(image, t)
        cv2.add(image, noise[0], dst=image)
        cv2.subtract(image, noise[1], dst=image)
        return Frame(
            time=self._start + t,
            luma=cv2.cvtColor(image, cv2.COLOR_BGR2GRAY),
            bgr=lambda: image,
        )

    def _geometry(self) -> tuple[int, int, int, int]:
        """Figure rows (head top, feet), half its widest stride, and its limb thickness."""
        feet = int(self.height * 0.9)
        tall = int(self.height * 0.62)
        unit = max(2, self.height // 42)
        return feet - tall, feet, int(tall * 0.22) + 2 * unit, unit

    def _figure(self, t: float) -> tuple[int, float, Visit] | None:
        """Where the figure is at `t`: centre column, walking phase, and its visit."""
        visit = self.visit(int(t // self._every))
        if not visit.start <= t < visit.end:
            return None
        progress = (t - visit.start) / (visit.end - visit.start)
        if visit.leftwards:
            progress = 1 - progress
        reach = self._geometry()[2]
        x = int(-reach + progress * (self.width + 2 * reach))
        return x, (t - visit.start) * 2 * math.pi * 0.9, visit  # ~0.9 strides per second

    def _draw_figure(self, image: np.ndarray, t: float) -> None:
        placed = self._figure(t)
        if placed is None:
            return
        x, phase, visit = placed
        top, feet, _, unit = self._geometry()
        tall = feet - top
        hip, shoulder = top + int(tall * 0.55), top + int(tall * 0.2)
        stride = int(tall * 0.22 * math.sin(phase))
        aa = cv2.LINE_AA
        for sign in (1, -1):
            cv2.line(image, (x, hip), (x + sign * stride, feet), _TROUSERS, 2 * unit, aa)
        torso = (x, (shoulder + hip) // 2), (int(unit * 2.5), (hip - shoulder) // 2 + unit)
        cv2.ellipse(image, *torso, 0, 0, 360, visit.shirt, -1, aa)
        for sign in (1, -1):  # arms swing against the legs
            hand = (x - sign * stride // 2, hip + unit)
            cv2.line(image, (x, shoulder + unit), hand, visit.shirt, int(unit * 1.4), aa)
        cv2.circle(image, (x, top + int(tall * 0.09)), int(tall * 0.09), _SKIN, -1, aa)


def _render_background(width: int, height: int, seed: int) -> np.ndarray:
    """Wall with siding, a door and a window, porch boards; drawn once per camera."""
    rng = np.random.default_rng([seed, _BACKGROUND])
    image = np.empty((height, width, 3), np.uint8)
    floor = int(height * 0.72)

    # Siding: horizontal boards with a shadow line under each, plus wood grain.
    image[:floor] = (150, 178, 196)
    board = max(4, height // 20)
    for y in range(board - 1, floor, board):
        image[y : y + 2] = (110, 132, 150)
    # Porch floor: darker boards running towards the camera, lighter near the wall.
    image[floor:] = (92, 104, 120)
    for x in range(0, width, max(6, width // 16)):
        cv2.line(
            image, (x, floor), (int((x - width / 2) * 1.6 + width / 2), height), (70, 80, 92), 2
        )
    shade = np.linspace(1.0, 0.75, height - floor)[:, None, None]
    image[floor:] = (image[floor:] * shade).astype(np.uint8)

    # Door with four panels and a knob; a window beside it; a mat in front.
    dx0, dx1, dy0 = int(width * 0.42), int(width * 0.58), int(height * 0.14)
    cv2.rectangle(image, (dx0 - 6, dy0 - 6), (dx1 + 6, floor), (235, 235, 235), -1)
    cv2.rectangle(image, (dx0, dy0), (dx1, floor), (40, 50, 120), -1)
    pw, ph = (dx1 - dx0) // 2, (floor - dy0) // 2
    for px in (dx0, dx0 + pw):
        for py in (dy0, dy0 + ph):
            cv2.rectangle(image, (px + 5, py + 6), (px + pw - 5, py + ph - 6), (30, 38, 95), 2)
    cv2.circle(image, (dx1 - 8, (dy0 + floor) // 2), 3, (60, 190, 220), -1, cv2.LINE_AA)
    wx0, wx1, wy0, wy1 = int(width * 0.12), int(width * 0.3), int(height * 0.2), int(height * 0.5)
    cv2.rectangle(image, (wx0, wy0), (wx1, wy1), (235, 235, 235), -1)
    cv2.rectangle(image, (wx0 + 5, wy0 + 5), (wx1 - 5, wy1 - 5), (120, 100, 80), -1)
    cv2.line(image, ((wx0 + wx1) // 2, wy0), ((wx0 + wx1) // 2, wy1), (235, 235, 235), 3)
    cv2.line(image, (wx0, (wy0 + wy1) // 2), (wx1, (wy0 + wy1) // 2), (235, 235, 235), 3)
    cv2.rectangle(image, (dx0 - 4, floor + 4), (dx1 + 4, floor + height // 14), (50, 70, 90), -1)
    # A potted plant on the right.
    px, py = int(width * 0.8), floor + height // 10
    cv2.rectangle(image, (px - 14, py - 22), (px + 14, py), (60, 80, 150), -1)
    for _ in range(9):
        tip = (px + int(rng.integers(-30, 31)), py - 22 - int(rng.integers(20, 60)))
        cv2.line(image, (px, py - 22), tip, (40, 120, 50), 4, cv2.LINE_AA)

    # Grain and uneven light, so the picture has texture a detector must live with.
    grain = cv2.GaussianBlur(rng.normal(0, 12, (height, width)).astype(np.float32), (0, 0), 1.5)
    vignette = np.outer(np.hanning(height) * 0.35 + 0.65, np.hanning(width) * 0.35 + 0.65).astype(
        np.float32
    )
    lit = image.astype(np.float32) * vignette[:, :, None] + grain[:, :, None]
    return np.clip(lit, 0, 255).astype(np.uint8)
