"""Clips for the browser: assembled in memory, kept briefly, served with HTTP Range.

A <video> element asks for a clip in several Range requests (the start, the index at
the front, then wherever the viewer seeks). Assembling the MP4 once and keeping it in
memory for a short while answers all of those without decrypting again. Nothing
decrypted ever touches the disk. The budget is on memory that is really in use: every
clip alive counts, the one being built, the cached ones, and any the cache has let go
of while a response is still sending it (it is freed only when that ends); a build
waits for room, and is refused with "busy" if none comes. Clips go after a while
unused, and owner clips when the last owner session does.
"""

from __future__ import annotations

import asyncio
import gc
import mmap
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from hub.clip import ClipPart, ClipTooLarge, build_clip
from hub.store import SegmentRow

CLIP_TTL = 120.0  # seconds a clip stays assembled after its last request
# All clips alive together (built, being built, or still being sent) stay within this;
# so the largest clip served is this size too. Builds run one at a time (the caller's slot).
CLIP_MEMORY = 192 * 1024 * 1024
# How long a build waits for clips still being sent to finish before it answers "busy".
CLIP_WAIT = 15.0
# A response hands the socket this much of a clip at a time, and waits for it to drain
# before the next: handed all at once, a slow reader's clip is copied into the buffer.
SEND_PIECE = 256 * 1024
# A reader that takes nothing for this long is cut off: a stalled response holds its
# clip's memory, which would otherwise keep every other clip waiting (and then busy).
SEND_STALL = 30.0

OWNER = "owner"  # first item of the key of every clip made for the owner's session


class ClipBusy(Exception):
    """Clip memory is held by clips still being sent: try again in a moment."""


class ClipCache:
    """Assembled clips by key (which footage, for whom), least recently used first out.

    A clip is a read-only memoryview of an mmap (see `hub.clip`): the map is unmapped
    when the last view goes, and a finalizer on it tells the cache its bytes are free.
    A clip the cache let go of but a response still holds is taken back, not built
    again, if it is asked for meanwhile (a player's seek while its first response is
    still streaming): one copy of a clip at most, and no wait for itself.
    """

    def __init__(
        self, max_bytes: int = CLIP_MEMORY, ttl: float = CLIP_TTL, wait: float = CLIP_WAIT
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.wait = wait
        self._clips: OrderedDict[Hashable, tuple[memoryview, float]] = OrderedDict()
        self._bytes = 0  # of the clips in the cache
        self._live = 0  # of every clip not yet freed, in the cache or not
        self._building = 0  # room held for the build under way
        # every clip not yet freed, by key, to take back rather than build twice
        self._alive: dict[Hashable, tuple[weakref.ref[mmap.mmap], int]] = {}
        # Reentrant: a finalizer may run inside `_pop`, in the thread that holds it.
        self._changed = threading.Condition(threading.RLock())
        self.assembled = 0  # how many clips were built (tests and the bench read it)

    def get(self, key: Hashable) -> memoryview | None:
        """The clip if it is assembled, its clock reset."""
        now = time.monotonic()
        with self._changed:
            self._evict_stale(now)
            found = self._clips.get(key)
            if found is not None:
                self._clips[key] = (found[0], now)
                self._clips.move_to_end(key)
                return found[0]
            return self._take_back(key, now)

    def build(self, key: Hashable, expected: int, build: Callable[[int], memoryview]) -> memoryview:
        """The clip, assembled by `build(max_bytes)` unless another request did it while
        this one waited. Makes room for `expected` bytes first (the footage's size on
        disk) by dropping least recently used clips, then by waiting for clips still
        being sent, up to `wait` seconds (`ClipBusy` after that), so every clip alive
        and the new one together stay within `max_bytes`. `build` must return a view
        of an object that can be weakly referenced (an mmap), and may use at most the
        `max_bytes` it is given. Synchronous: run it off the event loop, one at a time."""
        found = self.get(key)
        if found is not None:
            return found
        if expected > self.max_bytes:
            raise ClipTooLarge(
                f"clip too large: {expected / 2**20:.0f} MiB of footage, more than "
                f"{self.max_bytes / 2**20:.0f} MiB; ask for a shorter range"
            )
        with self._changed:
            self._make_room(expected)
            room = self.max_bytes - self._live
            self._building = room
        try:
            body = build(room)
        finally:
            with self._changed:
                self._building = 0
        memory = body.obj
        weakref.finalize(memory, self._released, key, len(body))
        with self._changed:
            self._alive[key] = (weakref.ref(memory), len(body))
            self._live += len(body)
            self.assembled += 1
            self._pop(key)
            self._clips[key] = (body, time.monotonic())
            self._bytes += len(body)
        return body

    def drop(self, match: Callable[[Hashable], bool]) -> None:
        """Forget clips whose key matches (a revoked share, a logged-out owner); one
        still being sent is not taken back, and goes when it has been sent."""
        with self._changed:
            for key in [k for k in self._alive if match(k)]:
                del self._alive[key]
            for key in [k for k in self._clips if match(k)]:
                self._pop(key)

    def evict_stale(self) -> None:
        """Forget clips nobody asked for within the TTL (housekeeping calls this, so an
        abandoned clip does not wait for the next request to be dropped)."""
        with self._changed:
            self._evict_stale(time.monotonic())

    def clear(self) -> None:
        self.drop(lambda key: True)

    @property
    def size(self) -> int:
        """Bytes of the clips in the cache."""
        return self._bytes

    @property
    def live(self) -> int:
        """Bytes of every clip not yet freed: cached, or let go of but still being sent."""
        return self._live

    def __len__(self) -> int:
        return len(self._clips)

    def _evict_stale(self, now: float) -> None:
        for key in [k for k, (_, used) in self._clips.items() if now - used > self.ttl]:
            self._pop(key)

    def _make_room(self, size: int) -> None:
        """Drop the least recently used clips, then wait for sent ones to be freed,
        until `size` more bytes fit."""
        deadline = time.monotonic() + self.wait
        collected = False
        while self._live + self._building + size > self.max_bytes:
            if self._clips:
                self._pop(next(iter(self._clips)))
                continue
            if not collected:  # a finished response may wait in a reference cycle
                gc.collect()
                collected = True
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClipBusy(
                    f"clip memory is in use by clips still being sent "
                    f"({self._live / 2**20:.0f} of {self.max_bytes / 2**20:.0f} MiB)"
                )
            self._changed.wait(left)

    def _take_back(self, key: Hashable, now: float) -> memoryview | None:
        """The clip of this key that a response still holds, back in the cache."""
        ref, size = self._alive.get(key, (None, 0))
        memory = ref() if ref is not None else None
        if memory is None:
            return None
        body = memoryview(memory)[:size].toreadonly()
        self._clips[key] = (body, now)
        self._bytes += size
        return body

    def _pop(self, key: Hashable) -> None:
        found = self._clips.pop(key, None)
        if found is not None:
            self._bytes -= len(found[0])

    def _released(self, key: Hashable, size: int) -> None:
        with self._changed:
            self._live -= size
            found = self._alive.get(key)
            if found is not None and found[0]() is None:  # not a newer clip of the key
                del self._alive[key]
            self._changed.notify_all()


def is_owner_clip(key: Hashable) -> bool:
    return isinstance(key, tuple) and bool(key) and key[0] == OWNER


def ranged(request: web.Request, body: memoryview, content_type: str) -> web.Response:
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
        return web.Response(body=_Pieces(body), headers=headers)
    start, stop = wanted.start, wanted.stop
    if start is not None and start < 0:  # "bytes=-N": the last N bytes
        start = max(size + start, 0)
    start = start or 0
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        return _unsatisfiable(size)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    # a view, not a copy: a seek in a large clip must not duplicate it in memory
    return web.Response(status=206, body=_Pieces(body[start:stop]), headers=headers)


class _Pieces(Payload):
    """A response body sent `SEND_PIECE` bytes at a time, each once the socket has taken
    most of the last: the transport copies whatever it cannot send at once, so a clip
    handed over whole would be copied for every slow reader, outside the clip budget."""

    _autoclose = True  # nothing to close: a view of memory

    def __init__(self, view: memoryview) -> None:
        super().__init__(view, content_type=None)
        self._size = view.nbytes

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a clip is not text")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view: memoryview = self._value
        # Only this call holds the clip while it is sent, and lets go when done: aiohttp
        # keeps a keep-alive connection's last response until the next one has been
        # handled, which would keep the clip alive after the cache let go of it.
        self._value = memoryview(b"")
        end = view.nbytes if content_length is None else min(content_length, view.nbytes)
        try:
            for start in range(0, end, SEND_PIECE):
                # aiohttp waits for the socket to drain once more than 64 KiB is pending
                async with asyncio.timeout(SEND_STALL):
                    await writer.write(view[start : min(start + SEND_PIECE, end)])
        except TimeoutError:
            # aiohttp takes a ConnectionError for a client that went away: it closes the
            # connection without logging a traceback.
            raise ConnectionResetError(
                f"the client took nothing for {SEND_STALL:.0f} s; response cut off"
            ) from None
        finally:
            del view  # the clip goes now, not when the exception's frames do


def _unsatisfiable(size: int) -> web.Response:
    return web.Response(
        status=416,
        headers={"Content-Range": f"bytes */{size}"},
        content_type="application/json",
        text='{"error": "range not satisfiable"}',
    )


# What may stand in a quoted Content-Disposition file name as it is.
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9._-]+")


def attachment(camera: str, start: float) -> str:
    """A Content-Disposition that saves a clip as `<camera>-<local time>.mp4`: a plain
    ASCII name for every browser, and the camera's own name (RFC 6266 filename*, UTF-8)
    when it is not plain ASCII."""
    when = datetime.fromtimestamp(start).astimezone().strftime("%Y-%m-%d_%H-%M-%S")
    name = f"{camera}-{when}.mp4"
    plain = _NOT_PLAIN.sub("_", name).strip("_.") or f"clip-{when}.mp4"
    header = f'attachment; filename="{plain}"'
    if plain != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


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
) -> memoryview:
    """One MP4 of the segments, each opened (decrypted and verified) as it is read."""
    parts = (ClipPart(row.start_time, open_segment(row)) for row in segments)
    return build_clip(parts, max_bytes=max_bytes).data
