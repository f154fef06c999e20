"""A camera's disk work, in order, on a thread of its own.

Muxed segment bytes are sealed and written, segments fsynced and indexed, events
logged, snapshots encoded and sealed, and (when the disk fills) retention run, all
here: an SD card that takes a second over an fsync must not stall decoding, motion or
live view. Work runs in the order it was handed over. Packets are bounded in bytes:
if the disk falls that far behind, the caller drops packets (and skips to the next
keyframe) rather than let memory grow without end.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

QUEUE_BYTES = 32 * 1024 * 1024  # about two minutes of a 2 Mbit/s camera
STOP_TIMEOUT = 30.0  # seconds to finish queued work (the open segment's fsync) at stop


class DiskWriter:
    """Runs handed-over work on its own thread, in order, until `close()`."""

    def __init__(self, name: str, max_bytes: int = QUEUE_BYTES) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self._work: deque[tuple[Callable[[], None], int]] = deque()
        self._bytes = 0
        self._closed = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"write-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, work: Callable[[], None], size: int = 0) -> bool:
        """Queue `work`; False (nothing queued) if `size` bytes would pass the bound.
        Work of size 0 (events, control) is always taken."""
        with self._ready:
            if self._closed:
                return False
            if size and self._bytes + size > self.max_bytes:
                return False
            self._work.append((work, size))
            self._bytes += size
            self._ready.notify()
            return True

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Run what is queued, then stop the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s: disk work still running after %.0f s at stop", self.name, timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._work and not self._closed:
                    self._ready.wait()
                if not self._work:
                    return
                work, size = self._work.popleft()
            try:
                work()
            except Exception:  # one failure must not stop the camera's recording for good
                log.exception("%s: disk work failed", self.name)
            finally:
                with self._ready:
                    self._bytes -= size
