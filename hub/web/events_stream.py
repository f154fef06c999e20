"""The page's own stream of what happens: motion events, camera status, the hub's status.

One Server-Sent Events stream per open page (`GET /api/stream`), fed by a subscription
to the alert bus (hub/alerts/bus.py) and by one look a `STATUS_INTERVAL` at the cameras
and the hub, shared by every open page. Why SSE, not a WebSocket: the page only
listens; SSE is a plain GET through the same middlewares as every other route (the
session, the Host check, the headers), with no upgrade whose Origin would need a check
of its own, and the browser's EventSource parses it and reconnects.

Costs and bounds:
- A camera never waits for a page: the bus only touches memory, and each stream's
  subscription is bounded (states keep one slot, the newest winning; event records
  up to 64, the oldest dropped). A page that stops reading is dropped after
  `STALL_TIMEOUT` (hub/web/live.py's watchdog), and holds up no other page.
- At most `MAX_PER_SESSION` streams per session (browser tabs) and `MAX_STREAMS` in all.
- Metadata only, as over MQTT (§15): ids, times, scores, status. No picture: a page
  loads an event's snapshot through its own route, which writes the access log.
- A camera's message carries its off-site copy's state too (hub/offsite/uploader.py,
  read from memory), so the card follows a failing or catching-up copy as it changes.
- The stream ends when its session does (logout, idle expiry), as live view does, with
  an `ended` message so the page stops instead of reconnecting. Opening it does not
  count as the owner's use of the session, and neither does anything it sends, so an
  unattended page does not keep the session (and the unlocked key) alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from hub.alerts.bus import AlertBus, Subscription
from hub.alerts.happenings import (
    CameraChanged,
    EventChanged,
    Happening,
    HealthChanged,
    MotionChanged,
    OffsiteChanged,
)
from hub.web.app import CameraView
from hub.web.live import STALL_TIMEOUT, StreamWatchdog, client_gone

log = logging.getLogger(__name__)

STATUS_INTERVAL = 2.0  # seconds between looks at the cameras' frame rate and the hub
HEARTBEAT = 25.0  # a comment line after this long without a message, so proxies keep it
MAX_PER_SESSION = 4  # open pages (tabs) of one session
MAX_STREAMS = 32  # open pages in all
ENDED_WRITE_TIMEOUT = 2.0  # to tell a page its session ended, if it still reads
DESCRIBED = 32  # event records described from the index, kept for the other pages

Doc = dict[str, Any]


class StreamsFull(Exception):
    """Too many pages already stream, for this session or in all."""


def sse(name: str, data: object) -> bytes:
    """One Server-Sent Event: its name, and its data as one line of JSON."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"event: {name}\ndata: {text}\n\n".encode()


class StatusBoard:
    """The cameras' and the hub's status as the page shows it; looked at once for
    every open page."""

    def __init__(self, cameras: dict[str, CameraView], hub: Callable[[], Doc]) -> None:
        self._cameras = cameras
        self._hub = hub
        self.cameras: dict[str, Doc] = {}
        self.hub: Doc = {}

    def look(self) -> None:
        for cam in self._cameras.values():
            self.cameras[cam.id] = camera_health(cam)
        self.hub = self._hub()


def camera_health(cam: CameraView) -> Doc:
    """A camera's health as the page shows it (a `camera` message, §8.10)."""
    status = cam.status()
    last = status.get("last_frame")
    return {
        "id": cam.id,
        "online": bool(status.get("connected")),
        "error": status.get("error"),
        "reconnects": status.get("reconnects", 0),
        "fps": status.get("fps"),
        "kbit_s": status.get("kbit_s"),
        "width": status.get("width"),
        "height": status.get("height"),
        "last_frame": round(last, 1) if isinstance(last, float) else None,
        "viewers": cam.live.viewers,
        # working, pending, lag_seconds, error; None when nothing is copied off-site
        "offsite": status.get("offsite"),
    }


class _Page:
    """One open page's stream state, on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wake = asyncio.Event()
        self.ended = False
        self.watchdog: StreamWatchdog | None = None  # set once the stream has started
        self.sent_cameras: dict[str, Doc] = {}
        self.sent_hub: Doc | None = None

    def notify(self) -> None:
        """From any thread (the bus's publisher): wake the stream on its loop. A loop
        already closed (the hub stopping) has nobody left to tell."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.wake.set)

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    async def write(self, response: web.StreamResponse, data: bytes) -> None:
        """Write, the watchdog knowing how long the write has waited for the client."""
        assert self.watchdog is not None
        self.watchdog.writing_since = time.monotonic()
        await response.write(data)
        self.watchdog.writing_since = None

    def stalled(self, now: float, after: float) -> bool:
        since = self.watchdog.writing_since if self.watchdog is not None else None
        return since is not None and now - since > after


class PageStreams:
    """Every open page stream: the caps, one bus subscription each, the shared look."""

    def __init__(
        self,
        bus: AlertBus,
        cameras: dict[str, CameraView],
        hub_status: Callable[[], Doc],
        describe_event: Callable[[int], Doc | None],
        *,
        max_per_session: int = MAX_PER_SESSION,
        max_streams: int = MAX_STREAMS,
        status_interval: float = STATUS_INTERVAL,
        heartbeat: float = HEARTBEAT,
        stall_timeout: float = STALL_TIMEOUT,
    ) -> None:
        self._bus = bus
        self.board = StatusBoard(cameras, hub_status)
        self._describe_event = describe_event
        self._described: dict[EventChanged, Doc | None] = {}
        self.max_per_session = max_per_session
        self.max_streams = max_streams
        self._status_interval = status_interval
        self._heartbeat = heartbeat
        self._stall_timeout = stall_timeout
        self._per_session: Counter[bytes] = Counter()
        self._pages: set[_Page] = set()
        self._looking: asyncio.Task[None] | None = None

    @property
    def open(self) -> int:
        return len(self._pages)

    def stalled(self, now: float, after: float = 1.0) -> int:
        """Streams whose write has waited for their page more than `after` seconds."""
        return sum(1 for page in self._pages if page.stalled(now, after))

    async def serve(
        self,
        request: web.Request,
        token: str,
        *,
        still_allowed: Callable[[], bool],
        set_headers: Callable[[web.Request, web.StreamResponse], None],
    ) -> web.StreamResponse:
        """Stream to one page until it leaves, stops reading, or its session ends.
        Raises StreamsFull (before anything is sent) past the caps."""
        session = hashlib.sha256(token.encode()).digest()  # counted by hash, never the token
        if len(self._pages) >= self.max_streams:
            raise StreamsFull(f"too many open pages ({self.max_streams}); close one")
        if self._per_session[session] >= self.max_per_session:
            raise StreamsFull(f"too many open pages in this session ({self.max_per_session})")
        page = _Page(asyncio.get_running_loop())
        self._per_session[session] += 1
        self._pages.add(page)
        self._start_looking()
        subscription = self._bus.subscribe(notify=page.notify)
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            set_headers(request, response)
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Accel-Buffering"] = "no"  # a proxy must not hold messages
            await response.prepare(request)
            await self._stream(request, response, page, subscription, still_allowed)
        finally:
            self._bus.unsubscribe(subscription)
            self._pages.discard(page)
            self._per_session[session] -= 1
            if not self._per_session[session]:
                del self._per_session[session]
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        page: _Page,
        subscription: Subscription,
        still_allowed: Callable[[], bool],
    ) -> None:
        what = f"a page's event stream from {request.remote or 'unknown'}"
        watchdog = StreamWatchdog(request, page.end, what, self._stall_timeout, still_allowed)
        page.watchdog = watchdog
        try:
            self.board.look()  # a new page starts from the newest status
            while not page.ended:
                message = self._pending(page, subscription)
                if message:
                    await page.write(response, message)
                try:
                    async with asyncio.timeout(self._heartbeat):
                        await page.wake.wait()
                except TimeoutError:
                    await page.write(response, b": still here\n\n")
                page.wake.clear()
            if not still_allowed() and not client_gone(request):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ENDED_WRITE_TIMEOUT):
                        await response.write(sse("ended", {"reason": "session"}))
        except ConnectionError:
            pass  # the page left mid-write: the usual way a stream ends
        finally:
            watchdog.stop()

    def _pending(self, page: _Page, subscription: Subscription) -> bytes:
        """Everything the page has not been told yet, as one write."""
        parts = [self._message(happening) for happening in subscription.drain()]
        for camera_id, doc in self.board.cameras.items():
            if page.sent_cameras.get(camera_id) != doc:
                page.sent_cameras[camera_id] = doc
                parts.append(sse("camera", doc))
        if page.sent_hub != self.board.hub:
            page.sent_hub = self.board.hub
            parts.append(sse("hub", self.board.hub))
        return b"".join(part for part in parts if part)

    def _message(self, happening: Happening) -> bytes:
        if isinstance(happening, MotionChanged):
            doc = {"camera": happening.camera_id, "moving": happening.moving}
            return sse("motion", doc | {"time": happening.time})
        if isinstance(happening, CameraChanged):
            # Told at once; the next look also brings its figures and, if down, why.
            doc = {"id": happening.camera_id, "online": happening.online}
            if happening.online:
                doc["error"] = None
            return sse("camera", self.board.cameras.get(happening.camera_id, {}) | doc)
        if isinstance(happening, HealthChanged | OffsiteChanged):
            return b""  # the page looks at the cameras' health (and their off-site copy) itself
        event = self._describe(happening)
        return b"" if event is None else sse("event", {"phase": happening.phase, "event": event})

    def _describe(self, happening: EventChanged) -> Doc | None:
        """The event as `GET /api/events` lists it (snapshot link included once it has
        one): read from the index once for all open pages."""
        if happening not in self._described:
            if len(self._described) >= DESCRIBED:
                del self._described[next(iter(self._described))]
            self._described[happening] = self._describe_event(happening.event_id)
        return self._described[happening]

    # -- the shared look ------------------------------------------------------------------

    def _start_looking(self) -> None:
        if self._looking is None or self._looking.done():
            self._looking = asyncio.create_task(self._look_while_open())

    async def _look_while_open(self) -> None:
        while self._pages:
            await asyncio.sleep(self._status_interval)
            try:
                self.board.look()
            except Exception:  # a failing look must not end the streams' status for good
                log.exception("the page streams' status look failed")
                continue
            for page in self._pages:
                page.wake.set()


PAGE_STREAMS = web.AppKey("page_streams", PageStreams)
