"""The page's event stream (`GET /api/stream`), against a real hub on 127.0.0.1.

One hub per module: a real RTSP camera (the person clip served by GStreamer, whose
visitors make real motion events) and the synthetic porch. Requests are real HTTP from
aiohttp's client, the index the real SQLite file, events go through the hub's own
event path (the index and the alert bus).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hubkit import base, logged_in, make_hub, running
from rtsp_camera import RtspCamera

from hub.alerts.happenings import EventChanged, Phase
from hub.alerts.sink import AnnouncingEvents
from hub.daemon import Hub, IndexedEvents
from hub.motion import MotionEvent
from hub.web.events_stream import PAGE_STREAMS, PageStreams

WAIT = 60.0  # seconds: a bound for things that come within a few seconds

Message = tuple[str, Any]


@pytest.fixture(scope="module")
def door(person_clip: Path) -> Iterator[RtspCamera]:
    with RtspCamera(person_clip) as camera:
        yield camera


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, door: RtspCamera) -> Iterator[Hub]:
    cameras = f"""
        [[camera]]
        id = "door"
        name = "Front door"
        url = "{door.url}"
        [[camera]]
        id = "porch"
        url = "synthetic:porch"
        record = "off"
        """
    with running(make_hub(tmp_path_factory.mktemp("hub"), cameras)) as started:
        yield started


def streams(hub: Hub) -> PageStreams:
    assert hub.web is not None
    return hub.web._app[PAGE_STREAMS]


async def logout(client: aiohttp.ClientSession, hub: Hub) -> None:
    async with client.post(f"{base(hub)}/api/logout", headers={"Origin": base(hub)}) as resp:
        assert resp.status == 204


class Reader:
    """Server-Sent Events from a response, message by message."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.seen: list[Message] = []

    async def next(self) -> Message | None:
        """The next message (comments skipped); None when the server ended the stream."""
        name, data = "message", ""
        while True:
            line = await self.resp.content.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text.startswith(":"):
                continue
            if text.startswith("event: "):
                name = text[len("event: ") :]
            elif text.startswith("data: "):
                data = text[len("data: ") :]
            elif text == "" and data:
                message = (name, json.loads(data))
                self.seen.append(message)
                return message

    async def until(self, wanted: Callable[[Message], bool], within: float = WAIT) -> Message:
        """The first message for which `wanted` holds; fails if the stream ends first."""
        async with asyncio.timeout(within):
            while True:
                message = await self.next()
                assert message is not None, f"the stream ended; it said {self.seen[-10:]}"
                if wanted(message):
                    return message

    async def ends(self, within: float = WAIT) -> bool:
        """Whether the server ends the stream within `within` seconds, reading meanwhile."""
        try:
            async with asyncio.timeout(within):
                while await self.next() is not None:
                    pass
                return True
        except TimeoutError:
            return False


def camera(name: str, camera_id: str, **fields: object) -> Callable[[Message], bool]:
    def wanted(message: Message) -> bool:
        kind, data = message
        return (
            kind == name
            and data.get("id", data.get("camera")) == camera_id
            and all(data.get(k) == v for k, v in fields.items())
        )

    return wanted


def event(phase: str, event_id: int | None = None) -> Callable[[Message], bool]:
    def wanted(message: Message) -> bool:
        kind, data = message
        return (
            kind == "event"
            and data["phase"] == phase
            and (event_id is None or data["event"]["id"] == event_id)
        )

    return wanted


def hub_events(hub: Hub) -> AnnouncingEvents:
    """The hub's own event path, as its cameras use it: the index, then the bus."""
    return AnnouncingEvents(IndexedEvents(hub.index, hub.archive), hub.alerts.bus)


def motion(start: float, end: float | None = None) -> MotionEvent:
    return MotionEvent(start, end, 0.2, start + 0.5, (0.1, 0.2, 0.3, 0.4), start + 0.5)


async def test_the_stream_needs_a_session(hub: Hub) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(base(hub) + "/api/stream") as resp:
            assert resp.status == 401
            assert await resp.json() == {"error": "log in first"}
        client.cookie_jar.update_cookies({"camhub_session": "forged"})
        async with client.get(base(hub) + "/api/stream") as resp:
            assert resp.status == 401


async def test_a_page_sees_status_then_an_event_start_and_end(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client, client.get(base(hub) + "/api/stream") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        page = Reader(resp)
        _, status = await page.until(lambda m: m[0] == "hub")  # in the first write
        assert status == {"mqtt": None, "index_problem": None}
        _, porch = await page.until(camera("camera", "porch", online=True))
        assert set(porch) == {
            "id",
            "online",
            "error",
            "reconnects",
            "fps",
            "kbit_s",
            "width",
            "height",
            "last_frame",
            "viewers",
            "offsite",
        }
        assert porch["offsite"] is None  # this hub copies nothing off-site
        # The frame rate comes with a look at the cameras once a window is measured.
        await page.until(lambda m: camera("camera", "porch")(m) and bool(m[1]["fps"]))

        sink = hub_events(hub)
        start = time.time()
        event_id = sink.event_started("porch", motion(start))
        _, started = await page.until(event("start", event_id))
        # As GET /api/events lists it, the clip's span included (it follows the footage).
        span = {k: started["event"][k] for k in ("clip_start", "clip_end", "motion_offset")}
        assert started["event"] | {"start": start} == span | {
            "id": event_id,
            "camera_id": "porch",
            "start": start,
            "end": None,
            "peak_score": None,
            "bbox": None,
            "snapshot_url": None,
            "clip_url": f"/api/events/{event_id}/clip.mp4",
        }
        still = hub.cameras[1].live.snapshot()
        assert still is not None
        sink.event_ended("porch", event_id, motion(start, start + 4), still.jpeg)
        _, ended = await page.until(event("end", event_id))
        assert ended["event"]["end"] == pytest.approx(start + 4)
        assert ended["event"]["snapshot_url"] == f"/api/events/{event_id}/snapshot.jpg"
        # Metadata only: no message carries a picture.
        assert all(len(json.dumps(data)) < 2000 for _, data in page.seen)


async def test_a_real_camera_event_and_the_camera_dropping_reach_the_page(
    hub: Hub, door: RtspCamera
) -> None:
    """The person clip's visitors make a real event on the RTSP camera; killing the
    camera's server shows it offline, restarting it online again."""
    client = await logged_in(hub)
    async with client, client.get(base(hub) + "/api/stream") as resp:
        page = Reader(resp)
        await page.until(camera("camera", "door", online=True))
        await page.until(camera("motion", "door", moving=True), within=90)
        _, started = await page.until(
            lambda m: event("start")(m) and m[1]["event"]["camera_id"] == "door"
        )
        assert started["event"]["end"] is None
        door.kill()
        try:
            _, offline = await page.until(camera("camera", "door", online=False))
        finally:
            door.start()
        await page.until(camera("camera", "door", online=True))
        assert offline["id"] == "door"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: an off-site store that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_off_site_copy_reaches_the_page_as_it_changes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A card's off-site line follows the copy without a reload: the camera's message
    first has the copy's state, then, as its store refuses connections, that the copy
    fails and why, then that files wait, and later that more of them do. The keys are
    never in it."""
    secret = "offsite-secret-key-7f1c"
    tables = f"""
        [offsite]
        endpoint = "http://127.0.0.1:{closed_port()}"
        bucket = "cams"
        what = "all"
        access_key = "house"
        secret_key = "{secret}"
        [[camera]]
        id = "porch"
        url = "synthetic:porch"
        record = "continuous"
        """
    made = make_hub(tmp_path_factory.mktemp("offsite"), tables, storage="segment_seconds = 1")
    with running(made) as offsite_hub:
        client = await logged_in(offsite_hub)
        async with client, client.get(base(offsite_hub) + "/api/stream") as resp:
            page = Reader(resp)

            def offsite(wanted: Callable[[dict[str, Any]], bool]) -> Callable[[Message], bool]:
                return lambda m: camera("camera", "porch")(m) and wanted(m[1]["offsite"] or {})

            _, first = await page.until(camera("camera", "porch"))
            assert set(first["offsite"]) == {"working", "pending", "lag_seconds", "error"}
            _, failing = await page.until(offsite(lambda o: o.get("working") is False))
            assert "127.0.0.1" in failing["offsite"]["error"]
            _, waiting = await page.until(offsite(lambda o: o.get("pending", 0) >= 1))
            _, later = await page.until(
                offsite(lambda o: o.get("pending", 0) > waiting["offsite"]["pending"])
            )
            assert later["offsite"]["working"] is False
            assert later["offsite"]["lag_seconds"] > 0
    assert all(secret not in json.dumps(data) for _, data in page.seen)


async def test_the_stream_ends_with_its_session(hub: Hub) -> None:
    """Logout (from another tab) or idle expiry ends a stream already open, with an
    `ended` message so the page stops instead of reconnecting."""
    client = await logged_in(hub)
    async with client, client.get(base(hub) + "/api/stream") as resp:
        page = Reader(resp)
        await page.until(lambda m: m[0] == "hub")
        await logout(client, hub)
        assert await page.until(lambda m: m[0] == "ended") == ("ended", {"reason": "session"})
        assert await page.ends(), "the stream went on after logout"

    client = await logged_in(hub)
    idle = hub.sessions.idle_seconds
    async with client, client.get(base(hub) + "/api/stream") as resp:
        page = Reader(resp)
        await page.until(lambda m: m[0] == "hub")
        hub.sessions.idle_seconds = 1.5
        try:
            await page.until(lambda m: m[0] == "ended")
            assert await page.ends(), "the stream kept an idle session open"
            async with client.get(base(hub) + "/api/session") as session:
                assert session.status == 401
        finally:
            hub.sessions.idle_seconds = idle


async def test_opening_the_stream_is_not_use_of_the_session(hub: Hub) -> None:
    """A page reconnecting its stream again and again (a flaky network, a proxy that
    cuts idle connections) must not keep an unattended session open."""
    client = await logged_in(hub)
    idle = hub.sessions.idle_seconds
    hub.sessions.idle_seconds = 2.0
    try:
        async with client:
            expired = False
            for _ in range(40):
                async with client.get(base(hub) + "/api/stream") as resp:
                    if resp.status == 401:
                        expired = True
                        break
                    assert resp.status == 200
                    await Reader(resp).until(lambda m: m[0] == "hub")
                await asyncio.sleep(0.25)
            assert expired, "reconnecting the stream kept the session alive"
    finally:
        hub.sessions.idle_seconds = idle


async def gone(caps: PageStreams, left: int, within: float = 10.0) -> None:
    """Wait (bounded) until at most `left` streams are open: the hub notices a page that
    left within a second."""
    for _ in range(int(within * 10)):
        if caps.open <= left:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{caps.open} streams still open, wanted at most {left}")


async def test_the_caps_hold(hub: Hub) -> None:
    caps = streams(hub)
    await gone(caps, 0)  # the pages of earlier tests
    saved = caps.max_per_session, caps.max_streams
    caps.max_per_session, caps.max_streams = 2, 3
    first, second = await logged_in(hub), await logged_in(hub)
    try:
        async with first, second:
            a1 = await first.get(base(hub) + "/api/stream")
            a2 = await first.get(base(hub) + "/api/stream")
            async with first.get(base(hub) + "/api/stream") as a3:
                assert a3.status == 429
                assert "in this session" in (await a3.json())["error"]
            b1 = await second.get(base(hub) + "/api/stream")
            async with second.get(base(hub) + "/api/stream") as b2:
                assert b2.status == 429  # the total cap, though this session has one only
            assert [r.status for r in (a1, a2, b1)] == [200, 200, 200]
            a1.close()  # a page leaves: its place is free
            await gone(caps, 2)
            async with second.get(base(hub) + "/api/stream") as b2:
                assert b2.status == 200
            a2.close()
            b1.close()
    finally:
        caps.max_per_session, caps.max_streams = saved


def stalled_stream(hub: Hub, cookie: str) -> socket.socket:
    """A page that opens the stream and then reads nothing, with a tiny receive window."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert hub.web is not None
    sock.connect(("127.0.0.1", hub.web.port))
    sock.sendall(
        f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{hub.web.port}\r\n"
        f"Cookie: camhub_session={cookie}\r\n\r\n".encode()
    )
    return sock


def updates(ids: list[int], rounds: int, of: int) -> Iterator[EventChanged]:
    """Event updates, each one news (a higher peak) for every event in `ids`."""
    for n in range(rounds):
        for event_id in ids:
            yield EventChanged(
                Phase.UPDATE, "porch", event_id, 0.0, None, (of + n) / 1e6, (0.1, 0.1, 0.5, 0.5)
            )


async def test_a_stalled_page_delays_neither_the_cameras_nor_other_pages(hub: Hub) -> None:
    """A page that stops reading: its stream's writes wait, the bus publisher does not,
    another page gets everything new, and the stalled one is dropped."""
    caps = streams(hub)
    saved = caps._stall_timeout
    caps._stall_timeout = 10.0
    client = await logged_in(hub)
    cookie = next(c.value for c in client.cookie_jar if c.key == "camhub_session")
    await gone(caps, 0)
    subscribers = len(hub.alerts.bus._subscriptions)
    stalled = stalled_stream(hub, cookie)
    sink = hub_events(hub)
    ids = [sink.event_started("porch", motion(time.time())) for _ in range(50)]
    published = threading.Event()

    def flood() -> None:
        for change in updates(ids, 400, 1_000):
            hub.alerts.bus.publish(change)
        published.set()

    try:
        async with client, client.get(base(hub) + "/api/stream") as resp:
            page = Reader(resp)
            await page.until(lambda m: m[0] == "hub")
            # Fill the stalled page's buffers: rounds of news that the reading page takes.
            for n in range(1_000):
                if caps.stalled(time.monotonic()):
                    break
                for change in updates(ids, 1, n * 1_000_000):
                    hub.alerts.bus.publish(change)
                await page.until(lambda m: event("update", ids[-1])(m))
                await asyncio.sleep(0.02)
            assert caps.stalled(time.monotonic()) == 1, "the page that reads nothing never stalled"
            publisher = threading.Thread(target=flood)
            publisher.start()
            await asyncio.to_thread(publisher.join, WAIT)
            assert published.is_set(), "publishing waited for a page"
            last = sink.event_started("porch", motion(time.time()))
            await page.until(event("start", last))  # the reading page got everything new
            await gone(caps, 1, WAIT)  # the stalled page was dropped
        for _ in range(100):
            if len(hub.alerts.bus._subscriptions) == subscribers:
                break
            await asyncio.sleep(0.1)
        assert len(hub.alerts.bus._subscriptions) == subscribers
    finally:
        stalled.close()
        caps._stall_timeout = saved
