"""Live view of one camera: the newest picture, JPEG-encoded once, fanned out to viewers.

Cost model (the camera loop must never pay for viewers):

- Nobody watching: `offer()` stores one reference and reads one counter. No colour
  conversion, no encode, no allocation.
- Somebody watching: at most `max_fps` frames a second are handed to the feed's encoder
  thread through a one-frame slot (the newest wins; a frame the encoder has not yet
  taken is replaced, never queued). The encoder converts to colour, downscales to
  `max_width` and encodes once, however many viewers there are. Each viewer has a
  one-picture slot on the asyncio loop, so a slow viewer misses pictures and holds up
  nobody: neither the camera, nor the encoder, nor the other viewers.

Why the feed keeps a reference to the latest Frame rather than a copy: `Frame.luma` may
be a view into a decoder buffer that is reused, but the feed never reads `luma`. Colour
comes from `Frame.bgr()`, which every source builds over a picture of its own (PyAV's
reference-counted frame; a fresh array for V4L2 and the synthetic scene), so it stays
valid after the capture thread moves on (tests/test_live.py checks this for PyAV).
Holding it keeps one decoded picture alive per camera (about 0.5 MB at 768x432, 1.4 MB
at 720p) and costs nothing per frame, where copying or converting every frame just in
case someone asks for a snapshot would cost a conversion per frame for a feature used a
few times a day.

From `offer()` on, the encoder may convert the frame on its own thread while the
capture thread still uses it (an EncodingSource encodes it next): every source's
`Frame.bgr()` is thread-safe (each conversion has its own swscale context).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import cv2
from aiohttp import web

from hub.media import Frame
from hub.motion import DetectGate

log = logging.getLogger(__name__)

BOUNDARY = "camhub-live-frame"
# How often a stream checks that its client is still there and still reading: a camera
# that stops sending must not keep a departed viewer counted (and logged) for ever.
DISCONNECT_POLL = 1.0
# A client whose pending write has not gone out for this long is dropped, so a client
# that stops reading cannot pin a response (and its socket) for ever.
STALL_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """How live view trades picture for CPU and bandwidth."""

    max_fps: float | None = 10.0  # pictures a second at most; None: every frame offered
    max_width: int | None = 1280  # wider pictures are downscaled; None: never
    quality: int = 75  # JPEG quality, 1..100

    def __post_init__(self) -> None:
        if self.max_fps is not None and not 0 < self.max_fps <= 1000:
            raise ValueError(f"live.max_fps: must be 0 < fps <= 1000, got {self.max_fps}")
        if self.max_width is not None and not 16 <= self.max_width <= 8192:
            raise ValueError(f"live.max_width: must be 16..8192, got {self.max_width}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"live.quality: must be 1..100, got {self.quality}")


@dataclass(frozen=True, slots=True)
class Still:
    """One encoded picture, shared read-only by every viewer that gets it."""

    time: float  # wall-clock seconds (Unix time) the picture shows
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class LiveStats:
    """Counters for tests, benchmarks and the status page."""

    viewers: int
    queued: int  # frames handed to the encoder (after the rate cap)
    encoded: int  # JPEG encodes, live and snapshot together
    skipped: int  # frames replaced in the encoder's slot before it took them
    missed: int  # pictures replaced in a viewer's slot before the viewer took them


class LiveFeed:
    """One camera's live view: `offer()` on the capture thread, viewers on asyncio.

    `offer()` must be called from one thread only (the camera's capture thread). The
    rest is thread-safe; `subscribe()` and `snapshot_async()` need a running loop.
    """

    def __init__(
        self,
        camera_id: str,
        settings: LiveSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings or LiveSettings()
        self._clock = clock  # for the rate cap: wall time, whatever the frames' times say
        self._gate = DetectGate(self.settings.max_fps) if self.settings.max_fps else None
        self._params = [cv2.IMWRITE_JPEG_QUALITY, self.settings.quality]
        self._latest: Frame | None = None  # written by offer() only
        self._count = 0  # viewers; read without the lock by offer(), an int read is atomic
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the encoder waits on it
        # All below are guarded by _lock.
        self._pending: Frame | None = None  # the encoder's one-frame slot
        self._closed = False
        self._thread: threading.Thread | None = None
        self._loops: dict[asyncio.AbstractEventLoop, set[Viewer]] = {}
        self._outbox: dict[asyncio.AbstractEventLoop, Still] = {}  # one pending per loop
        self._queued = 0
        self._skipped = 0
        # Guarded by _encode_lock: one conversion at a time, whichever thread asks.
        self._encode_lock = threading.Lock()
        self._encoded: tuple[Frame, Still] | None = None  # replaced whole: read unlocked
        self._encodes = 0
        self._last_error: str | None = None
        self._missed = 0  # updated on the loop thread(s)
        self._framed: tuple[Still, bytes] | None = None  # the MJPEG part of the newest still

    # -- the capture thread --------------------------------------------------------------

    def offer(self, frame: Frame) -> None:
        """Take note of a new frame; hand it to the encoder if someone watches and the
        rate cap allows. Never blocks on the encoder or on viewers."""
        self._latest = frame
        if not self._count:
            return
        if self._gate is not None and not self._gate.due(self._clock()):
            return
        with self._wake:
            if self._closed or not self._count:
                return
            if self._pending is not None:
                self._skipped += 1
            self._pending = frame
            self._queued += 1
            self._wake.notify()

    # -- stills --------------------------------------------------------------------------

    @property
    def viewers(self) -> int:
        return self._count

    def stats(self) -> LiveStats:
        with self._lock:
            return LiveStats(self._count, self._queued, self._encodes, self._skipped, self._missed)

    def snapshot(self) -> Still | None:
        """The current picture as a JPEG, or None if the camera has shown none yet.

        While someone watches this is the picture they last got (at most 1/max_fps old,
        no extra encode); otherwise the latest frame is encoded now (once: asking again
        before a new frame arrives returns the same Still). May take a few milliseconds:
        call it from a thread, or use `snapshot_async()` on the loop.
        """
        encoded = self._encoded
        if self._count and encoded is not None:
            return encoded[1]
        latest = self._latest
        return None if latest is None else self._encode(latest)

    async def snapshot_async(self) -> Still | None:
        """`snapshot()` without holding up the event loop while it encodes."""
        return await asyncio.get_running_loop().run_in_executor(None, self.snapshot)

    def _mjpeg_part(self, still: Still) -> bytes:
        """The still framed as a multipart part, built once for all its viewers."""
        framed = self._framed
        if framed is None or framed[0] is not still:
            framed = self._framed = (still, _mjpeg_part(still))
        return framed[1]

    # -- viewers -------------------------------------------------------------------------

    def subscribe(self) -> Viewer:
        """A viewer, to use as `async with feed.subscribe() as viewer: async for still in
        viewer: ...`; it counts as watching from entry to exit."""
        return Viewer(self)

    def close(self) -> None:
        """End every viewer's stream and stop the encoder thread (the camera stopped)."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._pending = None
            self._wake.notify_all()
            loops = {loop: tuple(viewers) for loop, viewers in self._loops.items()}
            thread = self._thread
        for loop, viewers in loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody left to tell
                loop.call_soon_threadsafe(_end_all, viewers)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _attach(self, viewer: Viewer) -> None:
        """Called on the viewer's loop. A new viewer gets the current picture at once
        (encoded now if it was not), so a still camera shows something."""
        with self._wake:
            if self._closed:
                viewer._end()
                return
            assert viewer.loop is not None, "attach on entering the viewer"
            self._loops.setdefault(viewer.loop, set()).add(viewer)
            self._count += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run_encoder, name=f"live-{self.camera_id}", daemon=True
                )
                self._thread.start()
            latest, encoded = self._latest, self._encoded
            if latest is None:
                return
            if encoded is not None and encoded[0] is latest:
                viewer._put(encoded[1])
            elif self._pending is None:
                self._pending = latest
                self._wake.notify()

    def _detach(self, viewer: Viewer) -> None:
        loop = viewer.loop
        if loop is None:
            return
        with self._lock:
            viewers = self._loops.get(loop)
            if viewers is None or viewer not in viewers:
                return
            viewers.discard(viewer)
            if not viewers:
                del self._loops[loop]
                self._outbox.pop(loop, None)
            self._count -= 1
            if not self._count:
                self._pending = None  # no work for nobody

    # -- the encoder thread --------------------------------------------------------------

    def _run_encoder(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                frame, self._pending = self._pending, None
            still = self._encode(frame)
            if still is not None:
                self._publish(still)

    def _encode(self, frame: Frame) -> Still | None:
        """Colour, downscale, JPEG: once per frame, whichever thread asks first."""
        with self._encode_lock:
            encoded = self._encoded
            if encoded is not None and encoded[0] is frame:
                return encoded[1]
            try:
                jpeg = self._jpeg(frame)
            except Exception as err:  # a bad frame costs its picture, not the feed
                message = f"{type(err).__name__}: {err}"
                if message != self._last_error:  # a format that always fails is told once
                    log.warning("%s: live view cannot encode a frame: %s", self.camera_id, message)
                    self._last_error = message
                return None
            still = Still(frame.time, jpeg)
            self._encoded = (frame, still)
            self._encodes += 1
            return still

    def _jpeg(self, frame: Frame) -> bytes:
        bgr = frame.bgr()
        height, width = bgr.shape[:2]
        max_width = self.settings.max_width
        if max_width is not None and width > max_width:
            size = (max_width, max(1, round(height * max_width / width)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", bgr, self._params)
        if not ok:
            raise ValueError(f"JPEG encoder refused a {width}x{height} picture")
        return buf.tobytes()

    def _publish(self, still: Still) -> None:
        """Hand a still to each loop with viewers: one callback in flight per loop, the
        newest still replacing one not yet delivered, so a busy loop queues nothing."""
        gone: list[asyncio.AbstractEventLoop] = []
        with self._lock:
            for loop in self._loops:
                scheduled = loop in self._outbox
                self._outbox[loop] = still
                if scheduled:
                    continue
                try:
                    loop.call_soon_threadsafe(self._fan_out, loop)
                except RuntimeError:  # closed without its viewers leaving
                    gone.append(loop)
            for loop in gone:
                self._count -= len(self._loops.pop(loop))
                self._outbox.pop(loop, None)

    def _fan_out(self, loop: asyncio.AbstractEventLoop) -> None:
        """On `loop`: put the newest still into each of its viewers' slots."""
        with self._lock:
            still = self._outbox.pop(loop, None)
            viewers = tuple(self._loops.get(loop, ()))
        if still is not None:
            for viewer in viewers:
                viewer._put(still)


class Attachable(Protocol):
    """A feed its viewers join on entry and leave on exit (on the viewer's loop)."""

    def _attach(self, viewer: Any) -> None: ...

    def _detach(self, viewer: Any) -> None: ...


FeedT = TypeVar("FeedT", bound=Attachable)


class LoopViewer(Generic[FeedT]):
    """What every live viewer (MJPEG and HD) shares: it lives on the asyncio loop that
    entered it, counts as watching from entry to exit, and sleeps until the feed puts
    something for it or ends."""

    def __init__(self, feed: FeedT) -> None:
        self.feed = feed
        self.loop: asyncio.AbstractEventLoop | None = None  # set on entry
        self.closed = False
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Self:
        self.loop = asyncio.get_running_loop()
        self.feed._attach(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.feed._detach(self)
        self._forget()

    def _forget(self) -> None:
        """Drop whatever was not taken (the viewer left)."""

    async def _wait(self, timeout: float | None) -> bool:
        """Sleep until the feed puts something or ends; False if `timeout` seconds (None:
        for ever) passed first."""
        self._ready.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    def _end(self) -> None:
        self.closed = True
        self._ready.set()


class Viewer(LoopViewer["LiveFeed"]):
    """One watcher's slot: holds only the newest picture not yet taken.

    Lives on one asyncio loop (the one that entered it). Async-iterable: yields Stills
    until the feed closes; `next(timeout)` is the form that can also give up waiting.
    """

    def __init__(self, feed: LiveFeed) -> None:
        super().__init__(feed)
        self.received = 0
        self.missed = 0  # pictures replaced before this viewer took them
        self._slot: Still | None = None
        self._last: Still | None = None  # the last still put, so a repeat is not news

    def _forget(self) -> None:
        self._slot = None

    def __aiter__(self) -> Viewer:
        return self

    async def __anext__(self) -> Still:
        while True:
            still = await self.next()
            if still is not None:
                return still
            if self.closed:
                raise StopAsyncIteration

    async def next(self, timeout: float | None = None) -> Still | None:
        """The newest picture not yet taken, waiting up to `timeout` seconds (None:
        for ever); None if the wait ran out or the feed closed (see `closed`)."""
        if self._slot is None and not self.closed and not await self._wait(timeout):
            return None
        still, self._slot = self._slot, None
        if still is not None:
            self.received += 1
        return still

    def _put(self, still: Still) -> None:
        """On the viewer's loop: replace whatever the viewer has not taken yet."""
        if still is self._last or self.closed:
            return
        if self._slot is not None:
            self.missed += 1
            self.feed._missed += 1
        self._slot = self._last = still
        self._ready.set()


def _end_all(viewers: tuple[Viewer, ...]) -> None:
    for viewer in viewers:
        viewer._end()


# -- HTTP ---------------------------------------------------------------------------------


async def mjpeg_response(
    request: web.Request,
    feed: LiveFeed,
    *,
    on_end: Callable[[float], Awaitable[None]] | None = None,
    set_headers: Callable[[web.Request, web.StreamResponse], None] | None = None,
    still_allowed: Callable[[], bool] | None = None,
    stall_timeout: float = STALL_TIMEOUT,
) -> web.StreamResponse:
    """Stream `feed` as multipart/x-mixed-replace (MJPEG, which every browser shows in
    an <img>) until the client leaves, takes nothing for `stall_timeout` seconds, or
    the feed closes, or `still_allowed()` (asked once a second) turns false: a stream
    opened in a session must not outlive it.

    Each part carries `X-Timestamp`, the Unix time the picture shows. `set_headers` is
    called on the response before it starts (headers cannot change after), e.g. with
    the app's security headers. `on_end(seconds)` is called once when the stream ends,
    however it ends, so the caller can log "live view stopped after N s".
    """
    response = web.StreamResponse(
        headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Pragma": "no-cache",
        }
    )
    if set_headers is not None:
        set_headers(request, response)
    response.headers["Cache-Control"] = "no-store"
    started = time.monotonic()
    try:
        await response.prepare(request)
        async with feed.subscribe() as viewer:
            what = f"{feed.camera_id}: a live viewer"
            watchdog = StreamWatchdog(request, viewer._end, what, stall_timeout, still_allowed)
            try:
                async for still in viewer:
                    watchdog.writing_since = time.monotonic()
                    await response.write(feed._mjpeg_part(still))
                    watchdog.writing_since = None
            finally:
                watchdog.stop()
        if not client_gone(request):
            await response.write(f"--{BOUNDARY}--\r\n".encode())
    except ConnectionError:
        pass  # the client left mid-write: the usual way a live view ends
    finally:
        if on_end is not None:
            await on_end(time.monotonic() - started)
    return response


class StreamWatchdog:
    """Lets a stream go when its client has left or stopped reading, or its session ended.

    A departed client is otherwise noticed only by the next write, which a camera that
    stopped sending never makes; a client that stops reading leaves a write waiting
    for ever. One check a second per stream replaces a timer per write. `end()` is
    called once, on the loop, when the stream must end; for a stalled client the
    connection is aborted first, so the waiting write fails.
    """

    def __init__(
        self,
        request: web.Request,
        end: Callable[[], None],
        what: str,
        stall_timeout: float,
        still_allowed: Callable[[], bool] | None,
    ) -> None:
        self.writing_since: float | None = None  # set by the stream around each write
        self._request = request
        self._end = end
        self._what = what  # for the log: "porch: a live viewer"
        self._stall_timeout = stall_timeout
        self._still_allowed = still_allowed
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(DISCONNECT_POLL)
            if client_gone(self._request) or (
                self._still_allowed is not None and not self._still_allowed()
            ):
                self._end()
                return
            since = self.writing_since
            if since is not None and time.monotonic() - since > self._stall_timeout:
                log.info("%s took nothing for %.0f s; dropped", self._what, self._stall_timeout)
                transport = self._request.transport
                if transport is not None:
                    transport.abort()  # the waiting write fails with ConnectionResetError
                self._end()
                return


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _mjpeg_part(still: Still) -> bytes:
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(still.jpeg)}\r\n"
        f"X-Timestamp: {still.time:.6f}\r\n\r\n"
    ).encode()
    return b"".join((head, still.jpeg, b"\r\n"))
