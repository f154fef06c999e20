"""Clips for the browser: assembled in memory, kept briefly, served with HTTP Range.

A <video> element asks for a clip in several Range requests (the start, the index at
the front, then wherever the viewer seeks). Assembling the MP4 once and keeping it in
memory for a short while answers all of those without decrypting again. Nothing
decrypted ever touches the disk; the cache is bounded in bytes and in time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

from aiohttp import web

from hub.clip import ClipPart, assemble_clip
from hub.store import SegmentRow

CLIP_TTL = 120.0  # seconds a clip stays assembled after its last request
CACHE_BYTES = 192 * 1024 * 1024


class ClipCache:
    """Assembled clips by key (which footage, for whom), least recently used first out."""

    def __init__(self, max_bytes: int = CACHE_BYTES, ttl: float = CLIP_TTL) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clips: OrderedDict[Hashable, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.assembled = 0  # how many clips were built (tests and the bench read it)

    def get_or_build(self, key: Hashable, build: Callable[[], bytes]) -> tuple[bytes, bool]:
        """The clip, and whether it was built just now (run off the event loop)."""
        now = time.monotonic()
        with self._lock:
            self._evict(now)
            found = self._clips.get(key)
            if found is not None:
                self._clips[key] = (found[0], now)
                self._clips.move_to_end(key)
                return found[0], False
        body = build()
        with self._lock:
            self.assembled += 1
            if len(body) <= self.max_bytes:
                old = self._clips.pop(key, None)
                self._bytes -= len(old[0]) if old else 0
                self._clips[key] = (body, now)
                self._bytes += len(body)
                while self._bytes > self.max_bytes:
                    _, (dropped, _) = self._clips.popitem(last=False)
                    self._bytes -= len(dropped)
        return body, True

    def drop(self, match: Callable[[Hashable], bool]) -> None:
        """Forget clips whose key matches (a revoked share, a logged-out owner)."""
        with self._lock:
            for key in [k for k in self._clips if match(k)]:
                self._bytes -= len(self._clips.pop(key)[0])

    def clear(self) -> None:
        with self._lock:
            self._clips.clear()
            self._bytes = 0

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, used) in self._clips.items() if now - used > self.ttl]:
            self._bytes -= len(self._clips.pop(key)[0])


def ranged(request: web.Request, body: bytes, content_type: str) -> web.Response:
    """The body, or the byte range the request asks for (206), or 416 for a bad range."""
    size = len(body)
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
    try:
        wanted = request.http_range
    except ValueError:
        return _unsatisfiable(size)
    if wanted.start is None and wanted.stop is None:
        return web.Response(body=body, headers=headers)
    start, stop = wanted.start, wanted.stop
    if start is not None and start < 0:  # "bytes=-N": the last N bytes
        start = max(size + start, 0)
    start = start or 0
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        return _unsatisfiable(size)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return web.Response(status=206, body=body[start:stop], headers=headers)


def _unsatisfiable(size: int) -> web.Response:
    return web.Response(
        status=416,
        headers={"Content-Range": f"bytes */{size}"},
        content_type="application/json",
        text='{"error": "range not satisfiable"}',
    )


def is_first_request(request: web.Request) -> bool:
    """Whether this request starts playback (no range, or from byte 0): the one a clip's
    access is logged for, rather than every seek."""
    try:
        wanted = request.http_range
    except ValueError:
        return False
    return wanted.start in (None, 0)


def clip_of(
    segments: list[SegmentRow], open_segment: Callable[[SegmentRow], Iterator[bytes]]
) -> bytes:
    """One MP4 of the segments, each opened (decrypted and verified) as it is read."""
    return assemble_clip(ClipPart(row.start_time, open_segment(row)) for row in segments)
