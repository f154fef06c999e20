"""Live view: encoded once per frame, fanned out without anyone waiting on anyone.

Real decoded frames of the person clip, a real aiohttp server on 127.0.0.1 and real
clients; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import statistics
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import web

from hub.capture import open_source
from hub.media import Frame
from hub.web.live import BOUNDARY, LiveFeed, LiveSettings, Still, mjpeg_response

UNCAPPED = LiveSettings(max_fps=None, max_width=None)


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_frames(person_clip: Path) -> list[Frame]:
    """A dozen frames as the camera's own source decodes them (PyAV, 768x432)."""
    source = open_source(str(person_clip), decode=True, keep_packets=False)
    source.open()
    frames: list[Frame] = []
    try:
        for item in source.read():
            assert isinstance(item, Frame)
            frames.append(item)
            if len(frames) == 12:
                break
    finally:
        source.close()
    return frames


class Picture:
    """A synthetic frame that counts its colour conversions."""

    def __init__(self, t: float, width: int = 320, height: int = 240, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        self.conversions = 0
        self.frame = Frame(time=t, luma=self.image[:, :, 1], bgr=self._bgr)

    def _bgr(self) -> np.ndarray:
        self.conversions += 1
        return self.image


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serve(
    feed: LiveFeed, stall_timeout: float = 30.0
) -> AsyncIterator[tuple[str, list[float]]]:
    """The feed at /live on 127.0.0.1; yields its URL and the on_end durations."""
    ended: list[float] = []

    async def live(request: web.Request) -> web.StreamResponse:
        async def on_end(seconds: float) -> None:
            ended.append(seconds)

        return await mjpeg_response(request, feed, on_end=on_end, stall_timeout=stall_timeout)

    app = web.Application()
    app.router.add_get("/live", live)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/live", ended
    finally:
        feed.close()
        await runner.cleanup()


async def read_part(response: aiohttp.ClientResponse, timeout: float = 5.0) -> Still:
    """The next picture of an MJPEG stream, with its X-Timestamp."""
    async with asyncio.timeout(timeout):
        content = response.content
        assert await content.readline() == f"--{BOUNDARY}\r\n".encode()
        headers: dict[str, str] = {}
        while (line := await content.readline()) != b"\r\n":
            name, value = line.decode().rstrip("\r\n").split(": ", 1)
            headers[name.lower()] = value
        assert headers["content-type"] == "image/jpeg"
        jpeg = await content.readexactly(int(headers["content-length"]))
        assert await content.readexactly(2) == b"\r\n"
    return Still(float(headers["x-timestamp"]), jpeg)


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a valid JPEG"
    return image


# -- the assumption the feed rests on ------------------------------------------------------


def test_bgr_stays_valid_after_the_decoder_moves_on(person_clip: Path) -> None:
    """The feed keeps a reference to the latest Frame and converts later, on another
    thread: that needs bgr() to give the same picture after decoding has moved on."""
    source = open_source(str(person_clip), decode=True, keep_packets=False)
    source.open()
    kept: list[tuple[Frame, np.ndarray]] = []
    try:
        for item in source.read():
            assert isinstance(item, Frame)
            kept.append((item, item.bgr().copy()))
            if len(kept) == 60:
                break
    finally:
        source.close()
    assert all(np.array_equal(frame.bgr(), then) for frame, then in kept)


# -- nobody watching -----------------------------------------------------------------------


def test_offer_without_viewers_converts_encodes_and_allocates_nothing() -> None:
    feed = LiveFeed("porch")
    pictures = [Picture(i / 10, seed=i) for i in range(50)]
    frames = [p.frame for p in pictures]
    feed.offer(frames[0])  # first call: any lazy setup happens outside the measurement
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for frame in frames * 20:
            feed.offer(frame)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown == 0
    assert sum(p.conversions for p in pictures) == 0
    stats = feed.stats()
    assert (stats.queued, stats.encoded, stats.viewers) == (0, 0, 0)
    feed.close()


async def test_snapshot_encodes_on_demand_once_per_frame(clip_frames: list[Frame]) -> None:
    feed = LiveFeed("porch", LiveSettings(max_width=320))
    assert feed.snapshot() is None  # no frame yet
    feed.offer(clip_frames[0])
    still = await feed.snapshot_async()
    assert still is not None and still.time == clip_frames[0].time
    assert decode(still.jpeg).shape == (180, 320, 3)  # 768x432 downscaled, aspect kept
    assert feed.snapshot() is still  # same frame: no second encode
    feed.offer(clip_frames[1])
    again = feed.snapshot()
    assert again is not None and again.time == clip_frames[1].time
    assert feed.stats().encoded == 2
    feed.close()


# -- the rate cap and the slots -----------------------------------------------------------


async def test_rate_cap_hands_the_encoder_max_fps() -> None:
    now = [0.0]
    feed = LiveFeed("porch", LiveSettings(max_fps=10), clock=lambda: now[0])
    picture = Picture(0.0)
    async with feed.subscribe():
        for i in range(90):  # a 30 fps camera for three seconds
            now[0] = i / 30
            feed.offer(picture.frame)
        assert 29 <= feed.stats().queued <= 31
    feed.close()


async def test_slow_viewer_keeps_only_the_latest_picture(clip_frames: list[Frame]) -> None:
    feed = LiveFeed("porch", UNCAPPED)
    async with feed.subscribe() as fast, feed.subscribe() as slow:
        for frame in clip_frames[:5]:
            feed.offer(frame)
            still = await fast.next(timeout=5.0)
            assert still is not None and still.time == frame.time
        latest = await slow.next(timeout=5.0)
        assert latest is not None and latest.time == clip_frames[4].time
        assert slow.missed == 4 and fast.missed == 0
        assert feed.stats().encoded == 5
    assert feed.viewers == 0
    feed.close()


async def test_a_frame_that_cannot_be_converted_costs_only_its_picture(
    clip_frames: list[Frame],
) -> None:
    def broken() -> np.ndarray:
        raise ValueError("unsupported pixel format")

    feed = LiveFeed("porch", UNCAPPED)
    async with feed.subscribe() as viewer:
        feed.offer(Frame(time=1.0, luma=clip_frames[0].luma, bgr=broken))
        assert await viewer.next(timeout=0.3) is None
        feed.offer(clip_frames[1])
        still = await viewer.next(timeout=5.0)
        assert still is not None and still.time == clip_frames[1].time
    feed.close()


# -- over HTTP -----------------------------------------------------------------------------


async def test_viewer_gets_valid_jpegs_of_the_real_frames(clip_frames: list[Frame]) -> None:
    feed = LiveFeed("porch", UNCAPPED)
    async with serve(feed) as (url, ended), aiohttp.ClientSession() as client:
        feed.offer(clip_frames[0])  # before anyone watches: shown on connecting
        async with client.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == (
                f"multipart/x-mixed-replace; boundary={BOUNDARY}"
            )
            assert response.headers["Cache-Control"] == "no-store"
            first = await read_part(response)
            assert first.time == pytest.approx(clip_frames[0].time, abs=1e-6)
            for frame in clip_frames[1:6]:
                feed.offer(frame)
                still = await read_part(response)
                assert still.time == pytest.approx(frame.time, abs=1e-6)
                image = decode(still.jpeg)
                assert image.shape == (432, 768, 3)
                # The right picture, in the right colour order.
                diff = np.abs(image.astype(np.int16) - frame.bgr().astype(np.int16))
                assert float(diff.mean()) < 4.0
        await eventually(lambda: len(ended) == 1)
        assert ended[0] > 0
    assert feed.stats().encoded == 6


async def test_many_viewers_share_one_encode_per_frame(clip_frames: list[Frame]) -> None:
    feed = LiveFeed("porch", UNCAPPED)
    async with serve(feed) as (url, ended), aiohttp.ClientSession() as client:
        async with contextlib.AsyncExitStack() as stack:
            responses = [await stack.enter_async_context(client.get(url)) for _ in range(5)]
            await eventually(lambda: feed.viewers == 5)
            for frame in clip_frames[:6]:
                feed.offer(frame)
                stills = await asyncio.gather(*(read_part(r) for r in responses))
                assert all(s.time == pytest.approx(frame.time, abs=1e-6) for s in stills)
                assert len({hashlib.sha256(s.jpeg).digest() for s in stills}) == 1
        await eventually(lambda: feed.viewers == 0 and len(ended) == 5)
    stats = feed.stats()
    assert (stats.queued, stats.encoded) == (6, 6)


async def connect_and_never_read(url: str) -> socket.socket:
    """A client that asks for the stream and never reads a byte of it."""
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    loop = asyncio.get_running_loop()
    host, port = url.split("/")[2].split(":")
    await loop.sock_connect(stalled, (host, int(port)))
    await loop.sock_sendall(stalled, f"GET /live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return stalled


async def test_stalled_viewer_holds_up_neither_the_camera_nor_other_viewers() -> None:
    feed = LiveFeed("porch", UNCAPPED)
    pictures = [Picture(1000.0 + i, width=640, height=480, seed=i) for i in range(40)]
    async with serve(feed) as (url, ended), aiohttp.ClientSession() as client:
        stalled = await connect_and_never_read(url)
        await eventually(lambda: feed.viewers == 1)
        async with client.get(url) as response:
            await eventually(lambda: feed.viewers == 2)
            offer_times: list[float] = []

            def capture() -> None:  # the camera's thread, at 50 fps
                for picture in pictures:
                    began = time.perf_counter()
                    feed.offer(picture.frame)
                    offer_times.append(time.perf_counter() - began)
                    time.sleep(0.02)

            camera = threading.Thread(target=capture)
            camera.start()
            got: list[float] = []
            while not got or got[-1] != pictures[-1].frame.time:
                got.append((await read_part(response)).time)
            await asyncio.to_thread(camera.join, 5.0)
            assert len(got) >= 10  # the other viewer kept up while one stalled
            # The camera never waited for it (blocking would mean seconds, not the
            # scheduling noise of a busy CI box).
            assert statistics.median(offer_times) < 0.005 and max(offer_times) < 0.5
            assert feed.viewers == 2
            assert feed.stats().missed > 0  # the stalled one really was stalled
            stalled.close()  # unread data: the kernel resets the connection
            await eventually(lambda: feed.viewers == 1 and len(ended) == 1)
        await eventually(lambda: feed.viewers == 0 and len(ended) == 2)


async def test_a_client_that_stops_reading_is_dropped_after_stall_timeout() -> None:
    feed = LiveFeed("porch", UNCAPPED)
    async with serve(feed, stall_timeout=1.0) as (url, ended):
        stalled = await connect_and_never_read(url)
        try:
            await eventually(lambda: feed.viewers == 1)
            for i in range(40):  # far more than the socket buffers hold
                feed.offer(Picture(float(i), width=640, height=480, seed=i).frame)
                await asyncio.sleep(0.01)
            assert feed.stats().missed > 0  # its write is stuck
            await eventually(lambda: feed.viewers == 0 and len(ended) == 1, timeout=5.0)
        finally:
            stalled.close()


async def test_disconnect_is_noticed_while_the_camera_sends_nothing(
    clip_frames: list[Frame],
) -> None:
    feed = LiveFeed("porch", UNCAPPED)
    async with serve(feed) as (url, ended), aiohttp.ClientSession() as client:
        feed.offer(clip_frames[0])
        async with client.get(url) as response:
            await read_part(response)
            assert feed.viewers == 1
        # No frame will come to fail a write: the viewer must still be let go.
        await eventually(lambda: feed.viewers == 0 and len(ended) == 1, timeout=5.0)


async def test_closing_the_feed_ends_every_stream(clip_frames: list[Frame]) -> None:
    feed = LiveFeed("porch", UNCAPPED)
    async with serve(feed) as (url, ended), aiohttp.ClientSession() as client:
        feed.offer(clip_frames[0])
        async with client.get(url) as response:
            await read_part(response)
            feed.close()
            async with asyncio.timeout(5.0):
                rest = await response.content.read()
            assert rest == f"--{BOUNDARY}--\r\n".encode()
        await eventually(lambda: feed.viewers == 0 and len(ended) == 1)
        feed.offer(clip_frames[1])  # after close: harmless
        async with feed.subscribe() as late:
            assert late.closed
            assert [s async for s in late] == []
