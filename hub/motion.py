"""Motion detection: a change score per detect frame, and the events those scores add up to.

Pure numpy/OpenCV with no I/O, because `MotionDetector.process` runs inside the capture
loop on a Raspberry-Pi-class box and must cost a small fraction of decoding the frame.
Hence the shape of the work: the luma plane is shrunk to about 320 pixels wide by
OpenCV's 2x box-filter fast path, compared against a running-average background,
and every buffer is allocated once per frame size.

Why the background adapts fast (`background_rate`, default 2/s, a 0.5 s time constant):
a slow background turns anyone who stood still and then left into a "ghost" that keeps
reporting motion in an empty room for many seconds. A fast one forgets a person who
stands still (the event then ends and a new one starts when they move again, which is
fine: the recorder has pre- and post-roll) and absorbs slow light drift for free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NoReturn

import cv2
import numpy as np

# Each detect call is far too small to split across threads (cameras already run in
# parallel), and OpenCV's idle workers spin: measured ~5% of decode CPU on 2 cores.
cv2.setNumThreads(1)

Point = tuple[float, float]
Polygon = tuple[Point, ...]
BBox = tuple[float, float, float, float]  # x, y, width, height, normalised 0..1


def _reject(name: str, want: str, value: object) -> NoReturn:
    raise ValueError(f"{name}: must be {want}, got {value!r}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _reject(name, f"an integer {low}..{high}", value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(name: str, value: object, low: float, high: float, *, open_low: bool) -> None:
    """Range [low, high], or (low, high] when open_low; NaN fails every comparison."""
    if _is_number(value) and (low < value if open_low else low <= value) and value <= high:
        return
    _reject(name, f"a number in {'(' if open_low else '['}{low:g}, {high:g}]", value)


def _check_masks(masks: object) -> None:
    if not isinstance(masks, tuple):
        _reject("masks", "a tuple of polygons", masks)
    for i, polygon in enumerate(masks):
        if not isinstance(polygon, tuple) or len(polygon) < 3:
            _reject(f"masks[{i}]", "a tuple of at least 3 (x, y) points", polygon)
        for j, point in enumerate(polygon):
            if not (
                isinstance(point, tuple)
                and len(point) == 2
                and all(_is_number(c) and 0.0 <= c <= 1.0 for c in point)
            ):
                _reject(f"masks[{i}][{j}]", "an (x, y) point with both coordinates in 0..1", point)


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """How one camera's detector judges change; the defaults are tuned on the real clips."""

    detect_width: int = 320  # luma is downscaled to this width (aspect kept); never upscaled
    threshold: int = 25  # a pixel whose luma moved by at least this much has changed
    min_area: float = 0.002  # fraction of unmasked pixels that must change to count as motion
    masks: tuple[Polygon, ...] = ()  # ignored polygons, normalised (x, y) in 0..1
    # More than this fraction changed at once is a global light change (lights switched,
    # auto exposure, a head in front of the lens), not motion: the background is re-seeded.
    light_change: float = 0.35
    # Per second: the background closes 1 - exp(-rate * dt) of its gap to each new frame.
    background_rate: float = 2.0

    def __post_init__(self) -> None:
        _check_int("detect_width", self.detect_width, 16, 3840)
        _check_int("threshold", self.threshold, 1, 255)
        _check_number("light_change", self.light_change, 0, 1, open_low=True)
        _check_number("min_area", self.min_area, 0, 1, open_low=True)
        if self.min_area >= self.light_change:
            _reject("min_area", f"below light_change ({self.light_change})", self.min_area)
        _check_number("background_rate", self.background_rate, 0, 100, open_low=True)
        _check_masks(self.masks)


@dataclass(frozen=True, slots=True)
class MotionResult:
    """The verdict on one detect frame."""

    time: float
    score: float  # fraction of unmasked pixels that changed, 0..1
    moving: bool
    bbox: BBox | None  # where the change is, when moving
    light_change: bool  # the frame changed globally and the background was re-seeded


class _Downscaler:
    """Shrinks one input size to the detect size.

    Exact 2x halvings take OpenCV's SIMD box-filter path (INTER_AREA at any other ratio
    is 10-20x slower); a last bilinear step of less than 2x lands on the exact width.
    """

    def __init__(self, height: int, width: int, detect_width: int) -> None:
        out_w = min(detect_width, width)
        self.size = (out_w, max(1, round(height * out_w / width)))
        self._halves: list[np.ndarray] = []
        w, h = width, height
        while w >= 2 * self.size[0] and h >= 2 * self.size[1]:
            w, h = w // 2, h // 2
            self._halves.append(np.empty((h, w), np.uint8))
        self._last = None if (w, h) == self.size else np.empty(self.size[::-1], np.uint8)

    def __call__(self, luma: np.ndarray) -> np.ndarray:
        plane = luma
        for half in self._halves:
            h, w = half.shape
            # Cropping odd sizes to even keeps the ratio exactly 2, hence the fast path.
            cv2.resize(plane[: 2 * h, : 2 * w], (w, h), dst=half, interpolation=cv2.INTER_AREA)
            plane = half
        if self._last is not None:
            cv2.resize(plane, self.size, dst=self._last, interpolation=cv2.INTER_LINEAR)
            plane = self._last
        return plane


class _Plane:
    """Everything sized for one input resolution: reused on every call."""

    def __init__(self, height: int, width: int, settings: MotionSettings) -> None:
        self.input_shape = (height, width)
        self.downscale = _Downscaler(height, width, settings.detect_width)
        w, h = self.downscale.size
        self.background = np.empty((h, w), np.float32)
        self.reference = np.empty((h, w), np.uint8)
        self.diff = np.empty((h, w), np.uint8)
        self.changed = np.empty((h, w), np.uint8)
        self.changed_gain = np.empty((h, w), np.uint8)
        self.roi: np.ndarray | None = None
        self.pixels = w * h
        if settings.masks:
            self.roi = np.full((h, w), 255, np.uint8)
            polygons = [np.rint(np.array(m) * (w, h)).astype(np.int32) for m in settings.masks]
            cv2.fillPoly(self.roi, polygons, 0)
            self.pixels = cv2.countNonZero(self.roi)


class MotionDetector:
    """Scores each detect frame against a running-average background.

    Global light changes: the background is also compared after scaling it by the
    ratio of mean brightness (what exposure and gain changes do), and the smaller
    of the two change counts is the score, so a brightness ramp is not motion. When
    more than `light_change` of the frame changed before that compensation, the
    background is re-seeded from the frame and the result says light_change.
    """

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._plane: _Plane | None = None
        self._last_time = 0.0
        # Pixels' difference must exceed this (cv2.threshold is strict) to count.
        self._cut = settings.threshold - 1

    def process(self, luma: np.ndarray, time: float) -> MotionResult:
        """Judge one frame. `luma` is an H x W uint8 plane (views are fine)."""
        if luma.ndim != 2 or luma.dtype != np.uint8:
            raise ValueError(f"luma: must be a 2-D uint8 plane, got {luma.dtype} {luma.shape}")
        plane = self._plane
        if plane is None or plane.input_shape != luma.shape:
            # First frame, or the camera came back at another resolution: start over.
            plane = self._plane = _Plane(*luma.shape, self.settings)
            return self._seed(plane, plane.downscale(luma), time, 0.0, light_change=False)

        small = plane.downscale(luma)
        background = plane.background
        reference = plane.reference
        cv2.convertScaleAbs(background, dst=reference)
        changed = self._count_changed(plane, small, plane.changed)
        total = max(plane.pixels, 1)
        if changed > self.settings.light_change * total:
            return self._seed(plane, small, time, changed / total, light_change=True)

        mask = plane.changed
        mean_bg = cv2.mean(reference)[0]
        gain = cv2.mean(small)[0] / mean_bg if mean_bg >= 1.0 else 1.0
        if abs(gain - 1.0) * 255.0 >= 1.0:  # otherwise no pixel of the reference would move
            cv2.convertScaleAbs(background, dst=reference, alpha=gain)
            changed_gain = self._count_changed(plane, small, plane.changed_gain)
            if changed_gain < changed:
                changed, mask = changed_gain, plane.changed_gain

        alpha = 1.0 - math.exp(-self.settings.background_rate * max(time - self._last_time, 0.0))
        cv2.accumulateWeighted(small, background, alpha)
        self._last_time = time

        score = changed / total
        if score < self.settings.min_area:
            return MotionResult(time, score, moving=False, bbox=None, light_change=False)
        x, y, w, h = cv2.boundingRect(mask)
        width, height = plane.downscale.size
        bbox = (x / width, y / height, w / width, h / height)
        return MotionResult(time, score, moving=True, bbox=bbox, light_change=False)

    def _count_changed(self, plane: _Plane, small: np.ndarray, out: np.ndarray) -> int:
        cv2.absdiff(small, plane.reference, dst=plane.diff)
        cv2.threshold(plane.diff, self._cut, 255, cv2.THRESH_BINARY, dst=out)
        if plane.roi is not None:
            cv2.bitwise_and(out, plane.roi, dst=out)
        return cv2.countNonZero(out)

    def _seed(
        self, plane: _Plane, small: np.ndarray, time: float, score: float, *, light_change: bool
    ) -> MotionResult:
        np.copyto(plane.background, small)
        self._last_time = time
        return MotionResult(time, score, moving=False, bbox=None, light_change=light_change)


class DetectGate:
    """Lets frames through at about `fps`, for decimating a camera to the detect rate.

    Due times sit on a fixed grid, so the rate does not drift, and the frame nearest
    each grid point is the one taken (a frame is due once it is within half a frame
    gap of the grid point), so jitter in frame times does not make the choice flap.
    """

    def __init__(self, fps: float) -> None:
        _check_number("fps", fps, 0, 1000, open_low=True)
        self.period = 1.0 / fps
        self._next: float | None = None
        self._last: float | None = None

    def due(self, time: float) -> bool:
        """True when the frame at `time` should be run through the detector."""
        last, self._last = self._last, time
        upcoming = self._next
        if upcoming is None or last is None or time < last:
            # First frame, or the clock went back: start a new grid here.
            self._next = time + self.period
            return True
        slack = min(time - last, self.period) / 2
        if time < upcoming - slack:
            return False
        upcoming += self.period
        # Behind by a whole period (a stall, or a source slower than the rate): re-anchor.
        self._next = upcoming if time < upcoming - slack else time + self.period
        return True


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """How per-frame verdicts become events."""

    # Consecutive moving results needed to start an event: rejects one-frame flickers at
    # the cost of confirming an event start (start_frames - 1) detect periods late; the
    # event's start is still the first moving result, so no footage is lost.
    start_frames: int = 2
    # An event ends this long after its last moving result. Kept short because the
    # recorder adds its own pre/post-roll, and because people who leave and come back
    # a few seconds later should be a new event (the real clip has 2.5 s gaps).
    quiet_seconds: float = 2.0
    min_event_seconds: float = 0.0  # an event is never ended before it is this long

    def __post_init__(self) -> None:
        _check_int("start_frames", self.start_frames, 1, 1000)
        _check_number("quiet_seconds", self.quiet_seconds, 0, 3600, open_low=True)
        _check_number("min_event_seconds", self.min_event_seconds, 0, 3600, open_low=False)


@dataclass(frozen=True, slots=True)
class MotionEvent:
    start: float  # time of the first moving result
    end: float | None  # None while open; else last_motion + quiet_seconds (or when flushed)
    peak_score: float
    peak_time: float
    bbox: BBox  # union of the moving results' boxes
    last_motion: float  # time of the latest moving result


@dataclass(frozen=True, slots=True)
class EventStarted:
    event: MotionEvent


@dataclass(frozen=True, slots=True)
class EventEnded:
    event: MotionEvent


_WHOLE_FRAME: BBox = (0.0, 0.0, 1.0, 1.0)  # where a moving result without a box moved


@dataclass(slots=True)
class _Open:
    """The event being built; frozen MotionEvent snapshots are made from it on demand."""

    start: float
    peak_score: float
    peak_time: float
    bbox: BBox
    last_motion: float

    @classmethod
    def from_run(cls, run: list[MotionResult]) -> _Open:
        first = run[0]
        event = cls(first.time, first.score, first.time, first.bbox or _WHOLE_FRAME, first.time)
        for result in run[1:]:
            event.add(result)
        return event

    def add(self, result: MotionResult) -> None:
        self.last_motion = result.time
        if result.score > self.peak_score:
            self.peak_score, self.peak_time = result.score, result.time
        self.bbox = _union(self.bbox, result.bbox or _WHOLE_FRAME)

    def snapshot(self, end: float | None) -> MotionEvent:
        return MotionEvent(
            self.start, end, self.peak_score, self.peak_time, self.bbox, self.last_motion
        )


def _union(a: BBox, b: BBox) -> BBox:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


class EventTracker:
    """Turns a camera's stream of MotionResults into started and ended events."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self._run: list[MotionResult] = []  # moving results waiting to confirm a start
        self._open: _Open | None = None

    @property
    def active(self) -> MotionEvent | None:
        return None if self._open is None else self._open.snapshot(None)

    def update(self, result: MotionResult) -> list[EventStarted | EventEnded]:
        """Feed the next result; returns what happened, in order (an end can precede a start)."""
        changes: list[EventStarted | EventEnded] = []
        event = self._open
        if event is not None and result.time >= self._natural_end(event):
            changes.append(self._close(event, self._natural_end(event)))
            event = None
        if not result.moving:
            self._run.clear()
        elif event is not None:
            event.add(result)
        else:
            self._run.append(result)
            if len(self._run) >= self.settings.start_frames:
                self._open = _Open.from_run(self._run)
                self._run.clear()
                changes.append(EventStarted(self._open.snapshot(None)))
        return changes

    def flush(self, time: float) -> list[EventEnded]:
        """The camera stopped at `time`: close the open event, forget a pending start."""
        self._run.clear()
        event = self._open
        if event is None:
            return []
        return [self._close(event, max(event.last_motion, min(time, self._natural_end(event))))]

    def _natural_end(self, event: _Open) -> float:
        settings = self.settings
        return max(
            event.last_motion + settings.quiet_seconds, event.start + settings.min_event_seconds
        )

    def _close(self, event: _Open, end: float) -> EventEnded:
        self._open = None
        return EventEnded(event.snapshot(end))
