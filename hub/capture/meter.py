"""What a camera's stream delivers, for its health on the page: pictures a second, the
bit rate, the picture size.

Counted on the capture thread (a few additions per packet; the clock is read once per
item) and published once per window as one tuple, so the web side reads the newest
figures without a lock and without a second look to make a rate from counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW = 2.0  # seconds a rate is measured over
STALE = 3 * WINDOW  # a rate this old says nothing of now: the stream has stopped


@dataclass(frozen=True, slots=True)
class Rates:
    """One window's figures; `fps` counts video packets, or decoded pictures for a
    stream that gives no packets (MJPEG, a USB camera, without recording)."""

    fps: float
    kbit_s: float | None  # None: a stream of pictures only, no bytes to count
    at: float  # monotonic time the window closed


class StreamMeter:
    """Counts one stream's video packets, bytes and pictures; one thread calls `packet`
    and `picture`, any thread reads `rates()` and `size`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._begun: float | None = None  # the window opens at the first item
        self._packets = 0
        self._pictures = 0
        self._bytes = 0
        self._published: Rates | None = None
        self.size: tuple[int, int] | None = None  # width, height of the newest picture

    def restart(self, size: tuple[int, int] | None) -> None:
        """A new connection: counts start over, with the size it says it sends. Its
        first window opens at its first item, not now: a stream starts at a keyframe,
        which may be seconds away."""
        self._begun = None
        self._packets = self._pictures = self._bytes = 0
        self._published = None
        self.size = size

    def packet(self, size: int, *, video: bool) -> None:
        """An encoded packet; sound counts towards the bit rate only."""
        self._bytes += size
        if video:
            self._packets += 1
        self._tick()

    def picture(self, width: int, height: int) -> None:
        """A decoded picture: counted (used where there are no packets), and its size
        kept unless the connection said its own (a detect substream's pictures are
        smaller than the main stream whose packets are counted)."""
        self._pictures += 1
        if self.size is None:
            self.size = (width, height)
        self._tick()

    def rates(self) -> Rates | None:
        """The newest window's figures; None before the first, or once they are stale."""
        published = self._published
        if published is None or self._clock() - published.at > STALE:
            return None
        return published

    def _tick(self) -> None:
        now = self._clock()
        if self._begun is None:
            self._begun = now
        elapsed = now - self._begun
        if elapsed < WINDOW:
            return
        if self._packets:
            rates = Rates(self._packets / elapsed, self._bytes * 8 / 1000 / elapsed, now)
        else:
            rates = Rates(self._pictures / elapsed, None, now)
        self._published = rates
        self._begun = now
        self._packets = self._pictures = self._bytes = 0
