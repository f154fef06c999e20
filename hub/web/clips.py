"""Clips for the browser: assembled in memory, kept briefly, served with HTTP Range.

A <video> element asks for a clip in several Range requests (the start, the index at
the front, then wherever the viewer seeks). Assembling the MP4 once and keeping it in
memory for a short while answers all of those without decrypting again. Nothing
decrypted ever touches the disk; the cache is bounded in bytes (the clip being built
counted in) and in time, and owner clips go when the last owner session does.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

from aiohttp import web

from hub.clip import ClipPart, ClipTooLarge, assemble_clip
from hub.store import SegmentRow

CLIP_TTL = 120.0  # seconds a clip stays assembled after its last request
# All assembled clips together, the one being built included, stay within this; so the
# largest clip served is this size too. Builds run one at a time (the caller's slot).
CLIP_MEMORY = 192 * 1024 * 1024

OWNER = "owner"  # first item of the key of every clip made for the owner's session


class ClipCache:
    """Assembled clips by key (which footage, for whom), least recently used first out."""

    def __init__(self, max_bytes: int = CLIP_MEMORY, ttl: float = CLIP_TTL) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clips: OrderedDict[Hashable, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.assembled = 0  # how many clips were built (tests and the bench read it)

    def get(self, key: Hashable) -> bytes | None:
        """The clip if it is assembled, its clock reset."""
        now = time.monotonic()
        with self._lock:
            self._evict_stale(now)
            found = self._clips.get(key)
            if found is None:
                return None
            self._clips[key] = (found[0], now)
            self._clips.move_to_end(key)
            return found[0]

    def build(self, key: Hashable, expected: int, build: Callable[[int], bytes]) -> bytes:
        """The clip, assembled by `build(max_bytes)` unless another request did it while
        this one waited. Makes room for `expected` bytes first (the footage's size on
        disk), so the cache and the new clip together stay within `max_bytes`.
        Synchronous: run it off the event loop, one build at a time."""
        found = self.get(key)
        if found is not None:
            return found
        if expected > self.max_bytes:
            raise ClipTooLarge(
                f"clip too large: {expected / 2**20:.0f} MiB of footage, more than "
                f"{self.max_bytes / 2**20:.0f} MiB; ask for a shorter range"
            )
        with self._lock:
            self._make_room(expected)
        body = build(self.max_bytes)
        with self._lock:
            self.assembled += 1
            self._pop(key)
            self._make_room(len(body))
            self._clips[key] = (body, time.monotonic())
            self._bytes += len(body)
        return body

    def drop(self, match: Callable[[Hashable], bool]) -> None:
        """Forget clips whose key matches (a revoked share, a logged-out owner)."""
        with self._lock:
            for key in [k for k in self._clips if match(k)]:
                self._pop(key)

    def evict_stale(self) -> None:
        """Forget clips nobody asked for within the TTL (housekeeping calls this, so an
        abandoned clip does not wait for the next request to be dropped)."""
        with self._lock:
            self._evict_stale(time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._clips.clear()
            self._bytes = 0

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._clips)

    def _evict_stale(self, now: float) -> None:
        for key in [k for k, (_, used) in self._clips.items() if now - used > self.ttl]:
            self._pop(key)

    def _make_room(self, size: int) -> None:
        """Drop the least recently used clips until `size` more bytes fit."""
        while self._clips and self._bytes + size > self.max_bytes:
            self._pop(next(iter(self._clips)))

    def _pop(self, key: Hashable) -> None:
        found = self._clips.pop(key, None)
        if found is not None:
            self._bytes -= len(found[0])


def is_owner_clip(key: Hashable) -> bool:
    return isinstance(key, tuple) and bool(key) and key[0] == OWNER


def ranged(request: web.Request, body: bytes, content_type: str) -> web.Response:
    """The body, or the byte range the request asks for (206), or 416 for a bad range."""
    size = len(body)
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
    try:
        wanted = request.http_range
    except ValueError:
        return _unsatisfiable(size)
    suffix = request.headers.get("Range", "").partition("=")[2].lstrip().startswith("-")
    if suffix and wanted.start == 0:  # "bytes=-0", the last 0 bytes, which aiohttp reads as 0-
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
    # a view, not a copy: a seek in a large clip must not duplicate it in memory
    return web.Response(status=206, body=memoryview(body)[start:stop], headers=headers)


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
    segments: list[SegmentRow],
    open_segment: Callable[[SegmentRow], Iterator[bytes]],
    max_bytes: int,
) -> bytes:
    """One MP4 of the segments, each opened (decrypted and verified) as it is read."""
    return assemble_clip(
        (ClipPart(row.start_time, open_segment(row)) for row in segments), max_bytes=max_bytes
    )
