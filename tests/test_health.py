"""A camera's health as the owner sees it: online or not, why not in words, frame rate,
bit rate, picture size, last picture, reconnects since start.

Against real things: a real RTSP camera (the person clip, 768x432 at 10 fps, served by
GStreamer) recorded by a real hub and read through /api/cameras and the page's stream;
real refusals from a real HTTP server on 127.0.0.1 (a camera that refuses the login,
a wrong path) and a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hubkit import base, logged_in, make_hub, running
from rtsp_camera import RtspCamera
from test_events_stream import (  # the door camera and the hub that records it
    Reader,
    camera,
    door,  # noqa: F401 - a fixture
    hub,  # noqa: F401 - a fixture
)

from hub.capture import AVSource, SourceError, V4L2Source
from hub.capture.meter import WINDOW, StreamMeter
from hub.daemon import Hub

WAIT = 60.0  # seconds: a bound for what comes within a few seconds
CLIP_SIZE = (768, 432)
CLIP_FPS = 10.0


# -- the meter ---------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand (the meter reads time through it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_publishes_a_window_of_packets_and_goes_stale() -> None:
    clock = Clock()
    meter = StreamMeter(clock)
    meter.restart((1920, 1080))
    clock.now += 5.0  # the stream's first keyframe comes late: the window waits for it
    published = []
    for _ in range(51):  # 25 fps of 5000-byte pictures and 200-byte sound, for 2 s
        clock.now += 0.04
        meter.packet(200, video=False)
        meter.packet(5000, video=True)
        meter.picture(640, 360)  # a detect substream's pictures: not the stream's size
        published.append(meter.rates())
    rates = next(r for r in published if r is not None)  # the first window
    # Within a packet: the window closes at the first item 2 s after it opened.
    assert rates.fps == pytest.approx(25, abs=1)
    assert rates.kbit_s == pytest.approx(51 * 5200 * 8 / 1000 / WINDOW, abs=5200 * 8 / 1000)
    assert meter.size == (1920, 1080)
    clock.now += 3 * WINDOW + 0.1  # the stream stopped: the old rate says nothing of now
    assert meter.rates() is None


def test_a_stream_of_pictures_has_a_frame_rate_and_no_bit_rate() -> None:
    clock = Clock()
    meter = StreamMeter(clock)
    meter.restart(None)
    assert meter.rates() is None
    for _ in range(22):
        clock.now += 0.1
        meter.picture(1280, 720)
    rates = meter.rates()
    assert rates is not None and rates.kbit_s is None
    assert rates.fps == pytest.approx(10, abs=1)
    assert meter.size == (1280, 720)


# -- failures in words, at their source --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reason_of(url: str) -> SourceError:
    source = AVSource(url, timeout=3.0)
    with pytest.raises(SourceError) as caught:
        source.open()
    source.close()
    return caught.value


@pytest.fixture
def refusing_camera() -> Iterator[str]:
    """An HTTP camera at 127.0.0.1 that wants a login (401) at /video and has
    nothing (404) anywhere else; yields its base URL."""

    async def video(_: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})

    ready = threading.Event()
    stop: list[Callable[[], None]] = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/video", video)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", port)
        loop.run_until_complete(site.start())
        stop.append(lambda: loop.call_soon_threadsafe(loop.stop))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    port = free_port()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the HTTP camera did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop[0]()
        thread.join(10)


def test_a_refused_login_and_a_wrong_path_are_said_in_words(refusing_camera: str) -> None:
    refused = reason_of(f"http://admin:hunter2@{refusing_camera.removeprefix('http://')}/video")
    assert refused.reason == "the camera refused the login"
    assert "hunter2" not in str(refused)  # the log line names the camera, never the password
    assert reason_of(f"{refusing_camera}/nothing").reason == (
        "the camera has no stream at that address"
    )


def test_nobody_listening_is_a_refused_connection() -> None:
    error = reason_of(f"rtsp://127.0.0.1:{free_port()}/cam")
    assert error.reason == "cannot connect: connection refused"


def test_an_unplugged_usb_camera_is_said_so(tmp_path: Path) -> None:
    source = V4L2Source(str(tmp_path / "video9"), 640, 480, 15)
    with pytest.raises(SourceError) as caught:
        source.open()
    assert caught.value.reason == "the USB camera is not plugged in"


def test_a_stalled_camera_is_no_picture_for_the_timeout(person_clip: Path) -> None:
    with RtspCamera(person_clip) as cam:
        source = AVSource(cam.url, timeout=2.0)
        source.open()
        items = source.read()
        next(items)
        cam.freeze()
        try:
            with pytest.raises(SourceError) as caught:
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline:  # what was in flight, then the stall
                    next(items)
            assert caught.value.reason == "no picture for 2 s"
        finally:
            cam.thaw()
            source.close()


# -- through the hub -------------------------------------------------------------------


async def door_status(client: aiohttp.ClientSession, running: Hub) -> dict[str, Any]:
    async with client.get(base(running) + "/api/cameras") as resp:
        assert resp.status == 200
        cameras = await resp.json()
    (found,) = [c for c in cameras if c["id"] == "door"]
    return found["status"]


async def until_status(
    client: aiohttp.ClientSession, running: Hub, ok: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        status = await door_status(client, running)
        if ok(status):
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} within {WAIT} s; last status {status}")


def measured(status: dict[str, Any]) -> bool:
    return bool(status["connected"] and status["fps"] and status["kbit_s"])


async def test_a_real_camera_s_health_through_the_api_and_the_stream(
    hub: Hub,  # noqa: F811 - the fixture
    door: RtspCamera,  # noqa: F811 - the fixture
) -> None:
    client = await logged_in(hub)
    async with client:
        status = await until_status(client, hub, measured, "the door's figures")
        assert (status["width"], status["height"]) == CLIP_SIZE
        assert status["fps"] == pytest.approx(CLIP_FPS, abs=2.0)
        assert 50 < status["kbit_s"] < 1000  # the clip is ~190 kbit/s on average
        assert status["error"] is None and time.time() - status["last_frame"] < 5
        before = status["reconnects"]

        async with client.get(base(hub) + "/api/stream") as resp:
            page = Reader(resp)
            _, streamed = await page.until(
                lambda m: camera("camera", "door", online=True)(m) and bool(m[1]["kbit_s"])
            )
            assert (streamed["width"], streamed["height"]) == CLIP_SIZE
            assert streamed["fps"] == pytest.approx(CLIP_FPS, abs=2.0)

            door.kill()
            try:
                _, down = await page.until(
                    lambda m: camera("camera", "door", online=False)(m) and bool(m[1]["error"])
                )
                # In words, without the camera's URL: the connection dropped or is refused.
                assert "rtsp://" not in down["error"] and "127.0.0.1" not in down["error"]
                assert down["error"] in {
                    "cannot connect: connection refused",
                    "the camera closed the connection",
                    "the camera ended its stream",
                }, down["error"]
                assert down["fps"] is None or down["fps"] < CLIP_FPS  # it stopped
                status = await door_status(client, hub)
                assert not status["connected"] and status["error"]
                assert status["reconnects"] > before
            finally:
                door.start()
            _, back = await page.until(
                lambda m: camera("camera", "door", online=True)(m) and bool(m[1]["fps"])
            )
            assert back["reconnects"] > before and back["error"] is None


async def test_a_camera_with_a_substream_is_measured_on_its_main_stream(
    tmp_path: Path, person_clip: Path, crowd_av_clip: Path
) -> None:
    """Main stream: the crowd clip, 1280x720 at 25 fps with AAC sound (recorded);
    detect substream: the person clip, 768x432 at 10 fps. The figures are the main
    stream's, its sound counted in the bit rate, never the substream's size or rate."""
    with RtspCamera(crowd_av_clip, audio="aac") as main, RtspCamera(person_clip) as sub:
        cameras = f"""
            [[camera]]
            id = "door"
            url = "{main.url}"
            detect_url = "{sub.url}"
            record = "continuous"
            audio = true
            """
        with running(make_hub(tmp_path, cameras)) as started:
            client = await logged_in(started)
            async with client:
                status = await until_status(client, started, measured, "the door's figures")
    assert (status["width"], status["height"]) == (1280, 720)
    assert status["fps"] == pytest.approx(25, abs=3)
    assert 1000 < status["kbit_s"] < 4000  # ~1.6 Mbit/s of video, 128 kbit/s of sound
