"""HD live view: a camera stream's own H.264, as fMP4 over a WebSocket, for MSE players.

Cost model (the capture loop must never pay for viewers, nor a viewer for another):

- Nobody watching: `offer()` appends the packet to the current GOP (a reference; the
  GOP is dropped at the next keyframe) and reads one counter. Nothing is muxed. A
  stream with sound first puts its packets in time order (a deque each way).
- Somebody watching: each packet is muxed once (hub/fmp4.py, tens of microseconds, no
  decode, no encode; its fragment is out before the next packet comes), however many
  viewers there are; the fragment is handed to each asyncio loop with viewers (one
  callback in flight per loop) and from there to each viewer.
- A new viewer starts at a keyframe at once: it gets the shared init segment and the
  current GOP's fragments (the player then jumps to the live edge).
- Sound (StreamInfo.audio) is a second track of the same fMP4 while it flows: a browser
  plays one SourceBuffer only as far as both tracks reach, so a stream whose sound has
  been missing for SOUND_GONE seconds of video starts over without it at the next
  keyframe, and with it again at the first keyframe after the sound is back. A picture
  waits for the sound of its moment (at most LIVE_SOUND_WAIT s): the browser could not
  show it sooner.
- Each viewer holds only the fragments it has not sent yet. One that falls behind (its
  oldest unsent fragment older than MAX_LAG at the next keyframe, or more than
  VIEWER_MAX_BYTES unsent) drops them and goes on from the next keyframe: a slow viewer
  sees a jump, never a growing queue, and holds up nobody.

Wire protocol (one WebSocket per view): a text message describing the stream (JSON:
stream, codec, width, height, fps, audio), then the init segment (binary), then one
binary message per picture or sound packet: its Unix time (8-byte big-endian double)
and its moof+mdat. A new description and init segment may follow at any time (the camera
reconnected): the player starts over with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from hub.fmp4 import Fragment, FragmentMuxer, MuxError
from hub.media import Packet, StreamInfo
from hub.record import TimeOrder
from hub.web.live import STALL_TIMEOUT, LoopViewer, StreamWatchdog

log = logging.getLogger(__name__)

LIVE_CODECS = frozenset({"h264"})  # what every MSE browser plays
MAX_GOP_BYTES = 16 * 1024 * 1024  # the GOP kept for a quick start; past it, wait for a keyframe
VIEWER_MAX_BYTES = 8 * 1024 * 1024  # unsent per viewer before it skips to a keyframe
MAX_LAG = 1.0  # seconds a viewer's oldest unsent fragment may wait, checked at keyframes
LOOP_MAX_BYTES = 32 * 1024 * 1024  # undelivered to a stalled event loop before a skip
LATENCY_SAMPLES = 2048
LIVE_SOUND_WAIT = 0.5  # seconds a picture waits for the sound of its moment (G.711 lags 0.3 s)
SOUND_GONE = 2.0  # seconds of video without sound before the view goes on without it


@dataclass(frozen=True, slots=True)
class Start:
    """A stream (re)starts: what a player needs before any fragment."""

    description: str  # JSON text message
    init: bytes  # ftyp+moov


_GAP = None  # in a loop's outbox: fragments were dropped, viewers wait for a keyframe
_Item = Start | Fragment | None


class StreamFeed:
    """One camera stream's live fMP4: `start_stream()`/`offer()` on the capture thread,
    viewers on asyncio loops. Everything but `offer()` and `start_stream()` is
    thread-safe; `subscribe()` needs a running loop."""

    def __init__(self, camera_id: str, name: str) -> None:
        self.camera_id = camera_id
        self.name = name  # "main" or "sub"
        self._info: StreamInfo | None = None
        self._gop: list[Packet] = []  # since the newest keyframe; capture thread only
        self._gop_bytes = 0
        self._order = TimeOrder(LIVE_SOUND_WAIT)  # capture thread only, as are the two below
        self._arrivals: dict[int, float] = {}  # id(packet) → monotonic arrival, while ordered
        self._sound_time = -math.inf  # Packet.time of the latest sound packet
        self._count = 0  # viewers; read unlocked by offer(), an int read is atomic
        self._lock = threading.Lock()
        # Guarded by _lock:
        self._muxer: FragmentMuxer | None = None
        self._start: Start | None = None
        self._gop_fragments: list[Fragment] = []
        self._loops: dict[asyncio.AbstractEventLoop, set[StreamViewer]] = {}
        self._outbox: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._outbox_bytes: dict[asyncio.AbstractEventLoop, int] = {}
        self._closed = False
        self._failing = False
        self.fragments = 0  # muxed (stats for tests and benchmarks)
        self.skips = 0  # a viewer or a loop dropped fragments to catch up
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)  # picture in → ws write
        self.after_cut: deque[float] = deque(maxlen=LATENCY_SAMPLES)  # fragment made → ws write

    # -- what the page is offered -----------------------------------------------------

    @property
    def info(self) -> StreamInfo | None:
        """The stream's parameters, while it is connected and a browser can play it."""
        info = self._info
        return info if info is not None and info.codec in LIVE_CODECS else None

    @property
    def viewers(self) -> int:
        return self._count

    # -- the capture thread -------------------------------------------------------------

    def start_stream(self, info: StreamInfo | None) -> None:
        """A (re)connection, with its parameters (None: not connected, or not copyable)."""
        self._info = info
        self._gop, self._gop_bytes = [], 0
        self._order, self._arrivals = TimeOrder(LIVE_SOUND_WAIT), {}
        self._sound_time = -math.inf
        with self._lock:
            self._stop_muxer()

    def offer(self, packet: Packet) -> None:
        """Take note of a packet; mux it if someone watches. Never blocks on viewers."""
        arrived = time.monotonic()
        info = self._info
        if info is None or info.audio is None:
            self._take(packet, arrived)
            return
        if packet.audio:
            self._sound_time = max(self._sound_time, packet.time)
        arrivals = self._arrivals
        arrivals[id(packet)] = arrived
        for ordered in self._order.push(packet):
            self._take(ordered, arrivals.pop(id(ordered), arrived))

    def _take(self, packet: Packet, arrived: float) -> None:
        """One packet in time order: into the GOP kept, and muxed if someone watches."""
        if packet.starts_gop:
            self._gop, self._gop_bytes = [packet], len(packet.data)
        elif self._gop:
            self._gop_bytes += len(packet.data)
            if self._gop_bytes > MAX_GOP_BYTES:
                self._gop, self._gop_bytes = [], 0  # a new viewer waits for a keyframe
            else:
                self._gop.append(packet)
        if not self._count:
            if self._muxer is not None:
                with self._lock:
                    self._stop_muxer()
            return
        with self._lock:
            if self._closed or not self._count or self.info is None:
                return
            try:
                self._mux(packet, arrived)
            except MuxError as exc:
                self._stop_muxer()
                self._gop, self._gop_bytes = [], 0  # not again on this GOP: the next one
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "%s: live %s stream cannot be muxed; retrying at the next keyframe: %s",
                        self.camera_id,
                        self.name,
                        exc,
                    )

    def _mux(self, packet: Packet, arrived: float) -> None:
        """Under the lock: mux the packet (starting the muxer on the GOP kept so far, and
        again at a keyframe where the sound came or went)."""
        info = self.info
        assert info is not None
        sound = info.audio is not None and packet.time - self._sound_time < SOUND_GONE
        muxer = self._muxer
        if muxer is not None and muxer.sound != sound and packet.starts_gop:
            self._stop_muxer()
            muxer = None
        if muxer is None:
            if not self._gop or self._gop[-1] is not packet:
                return  # mid-GOP with no start kept: wait for the next keyframe
            muxer = self._muxer = FragmentMuxer(info, sound=sound)
            self._gop_fragments = []
            made = [f for p in self._gop[:-1] for f in muxer.push(p, arrived)]
            made += muxer.push(packet, arrived)
        else:
            made = muxer.push(packet, arrived)
        if self._start is None and muxer.init is not None:
            self._failing = False
            self._start = Start(self._describe(muxer), muxer.init)
            self._publish(self._start)
        for fragment in made:
            self.fragments += 1
            if fragment.keyframe:
                self._gop_fragments = [fragment]
            elif self._gop_fragments:
                self._gop_fragments.append(fragment)
            self._publish(fragment)

    def _describe(self, muxer: FragmentMuxer) -> str:
        info = muxer.info
        return json.dumps(
            {
                "type": "stream",
                "stream": self.name,
                "codec": muxer.codec,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "audio": muxer.sound,
            }
        )

    def _stop_muxer(self) -> None:
        """Under the lock: the next viewer or packet starts a new muxer (and init)."""
        self._muxer, self._start, self._gop_fragments = None, None, []

    # -- fan-out ------------------------------------------------------------------------

    def _publish(self, item: Start | Fragment) -> None:
        """Under the lock: queue the item for each loop with viewers; one callback in
        flight per loop. A loop that does not run for LOOP_MAX_BYTES skips ahead."""
        size = len(item.init) if isinstance(item, Start) else len(item.data)
        gone = []
        for loop in self._loops:
            box = self._outbox.setdefault(loop, [])
            scheduled = bool(box)
            held = self._outbox_bytes.get(loop, 0) + size
            if held > LOOP_MAX_BYTES:
                starts = [i for i in box if isinstance(i, Start)]
                box[:] = [*starts[-1:], _GAP]
                held = size
                self.skips += 1
            box.append(item)
            self._outbox_bytes[loop] = held
            if scheduled:
                continue
            try:
                loop.call_soon_threadsafe(self._fan_out, loop)
            except RuntimeError:  # closed without its viewers leaving
                gone.append(loop)
        for loop in gone:
            self._count -= len(self._loops.pop(loop))
            self._outbox.pop(loop, None)
            self._outbox_bytes.pop(loop, None)

    def _fan_out(self, loop: asyncio.AbstractEventLoop) -> None:
        """On `loop`: hand what came to each of its viewers."""
        with self._lock:
            items = self._outbox.pop(loop, [])
            self._outbox_bytes.pop(loop, None)
            viewers = tuple(self._loops.get(loop, ()))
        overflowed = _GAP in items  # the outbox was cut short: its indexes changed
        for viewer in viewers:
            for item in items if overflowed else items[viewer._known :]:
                viewer._put(item)
            viewer._known = 0

    # -- viewers ------------------------------------------------------------------------

    def subscribe(self) -> StreamViewer:
        """`async with feed.subscribe() as viewer:` counts as watching from entry to exit."""
        return StreamViewer(self)

    def close(self) -> None:
        """End every viewer (the camera stopped)."""
        with self._lock:
            self._closed = True
            self._stop_muxer()
            loops = {loop: tuple(viewers) for loop, viewers in self._loops.items()}
        for loop, viewers in loops.items():
            for viewer in viewers:
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody to tell
                    loop.call_soon_threadsafe(viewer._end)

    def _attach(self, viewer: StreamViewer) -> None:
        """On the viewer's loop: it starts with the current GOP if the muxer runs, else
        with the init the next keyframe (or the GOP kept) brings."""
        with self._lock:
            if self._closed:
                viewer._end()
                return
            assert viewer.loop is not None
            self._loops.setdefault(viewer.loop, set()).add(viewer)
            self._count += 1
            if self._start is not None:
                viewer._put(self._start)
                for fragment in self._gop_fragments:
                    viewer._put(fragment)
                # What waits in the loop's outbox is in that state already.
                viewer._known = len(self._outbox.get(viewer.loop, ()))

    def _detach(self, viewer: StreamViewer) -> None:
        loop = viewer.loop
        with self._lock:
            viewers = self._loops.get(loop) if loop is not None else None
            if viewers is None or viewer not in viewers:
                return
            viewers.discard(viewer)
            if not viewers:
                del self._loops[loop]
                self._outbox.pop(loop, None)
                self._outbox_bytes.pop(loop, None)
            self._count -= 1


class StreamViewer(LoopViewer["StreamFeed"]):
    """One viewer's unsent fragments, from a keyframe on; lives on one asyncio loop."""

    def __init__(self, feed: StreamFeed) -> None:
        super().__init__(feed)
        self.skips = 0
        self._pending: list[Start | Fragment] = []
        self._bytes = 0
        self._started = False  # has had a Start
        self._waiting = True  # for a keyframe
        self._known = 0  # items at the head of the loop's outbox it started with

    def _forget(self) -> None:
        self._pending = []

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    async def take(self, timeout: float | None = None) -> list[Start | Fragment]:
        """Everything not yet sent, waiting up to `timeout` s for something (None: for
        ever); empty if the wait ran out or the viewer ended (see `closed`)."""
        if not self._pending and not self.closed and not await self._wait(timeout):
            return []
        taken, self._pending, self._bytes = self._pending, [], 0
        return taken

    def _put(self, item: _Item) -> None:
        """On the viewer's loop: queue an item, or skip ahead if this viewer is behind."""
        if self.closed:
            return
        if item is _GAP:
            self._skip()
            return
        if isinstance(item, Start):
            self._pending, self._bytes = [item], len(item.init)
            self._started, self._waiting = True, True
            self._ready.set()
            return
        if not self._started:
            return
        if self._waiting:
            if not item.keyframe:
                return
            self._waiting = False
        elif item.keyframe and self._behind(item):
            self._skip()
            self._waiting = False
        self._pending.append(item)
        self._bytes += len(item.data)
        if self._bytes > VIEWER_MAX_BYTES:
            self._skip()
        self._ready.set()

    def _behind(self, keyframe: Fragment) -> bool:
        oldest = next((i for i in self._pending if isinstance(i, Fragment)), None)
        return oldest is not None and keyframe.arrived - oldest.arrived > MAX_LAG

    def _skip(self) -> None:
        """Drop unsent fragments (a Start not yet sent stays) and wait for a keyframe."""
        self._pending = [i for i in self._pending if isinstance(i, Start)]
        self._bytes = sum(len(i.init) for i in self._pending if isinstance(i, Start))
        self._waiting = True
        self.skips += 1
        self.feed.skips += 1


# -- the WebSocket ------------------------------------------------------------------------


async def websocket_response(
    request: web.Request,
    feed: StreamFeed,
    *,
    on_end: Callable[[float], Awaitable[None]] | None = None,
    set_headers: Callable[[web.Request, web.StreamResponse], None] | None = None,
    still_allowed: Callable[[], bool] | None = None,
    stall_timeout: float = STALL_TIMEOUT,
) -> web.WebSocketResponse:
    """Stream `feed` over a WebSocket (the protocol above) until the client leaves or
    closes, takes nothing for `stall_timeout` s, the feed closes, or `still_allowed()`
    (asked once a second) turns false. `on_end(seconds)` is called once, however it ends.
    The caller checks `can_prepare` first (a plain GET is a 400 before anything is logged).
    """
    ws = web.WebSocketResponse(max_msg_size=4096)
    if set_headers is not None:
        set_headers(request, ws)
    started = time.monotonic()
    try:
        await ws.prepare(request)
        async with feed.subscribe() as viewer:
            what = f"{feed.camera_id}: an {feed.name} stream live viewer"
            watchdog = StreamWatchdog(request, viewer._end, what, stall_timeout, still_allowed)
            reader = asyncio.create_task(_read_until_closed(ws, viewer))
            try:
                await _send(ws, viewer, watchdog)
            finally:
                watchdog.stop()
                reader.cancel()
        if not ws.closed:
            await ws.close()
    except ConnectionError:
        pass  # the client left mid-write: the usual way a live view ends
    finally:
        if on_end is not None:
            await on_end(time.monotonic() - started)
    return ws


async def _send(ws: web.WebSocketResponse, viewer: StreamViewer, watchdog: StreamWatchdog) -> None:
    feed = viewer.feed
    while not viewer.closed:
        for item in await viewer.take():
            watchdog.writing_since = time.monotonic()
            if isinstance(item, Start):
                await ws.send_str(item.description)
                await ws.send_bytes(item.init)
            else:
                await ws.send_bytes(item.data)
                if not item.audio:
                    now = time.monotonic()
                    feed.latencies.append(now - item.arrived)
                    feed.after_cut.append(now - item.cut)
            watchdog.writing_since = None


async def _read_until_closed(ws: web.WebSocketResponse, viewer: StreamViewer) -> None:
    """The client says nothing but its close: reading lets aiohttp answer it."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
    viewer._end()
