"""HD live view: the camera's own H.264 as fMP4 over a WebSocket, muxed once, fanned out.

Real packets (the person clip, the 720p crowd clip), a real aiohttp server and real
WebSocket clients on 127.0.0.1, and a real hub watching the RTSP test camera. What a
viewer receives is decoded with PyAV: it must play from its first picture on.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import av
import pytest
from aiohttp import web
from hubkit import base, logged_in, make_hub, running
from rtsp_camera import RtspCamera

from hub.capture import open_source
from hub.capture.av_source import AVSource
from hub.daemon import Hub
from hub.fmp4 import Fragment, FragmentMuxer
from hub.media import Packet, StreamInfo
from hub.web.hdlive import (
    LIVE_SOUND_WAIT,
    VIEWER_MAX_BYTES,
    Start,
    StreamFeed,
    websocket_response,
)


def packets_of(clip: Path, count: int) -> tuple[StreamInfo, list[Packet]]:
    source = open_source(str(clip), decode=False, keep_packets=True)
    info = source.open()
    assert info is not None
    packets: list[Packet] = []
    try:
        for item in source.read():
            if isinstance(item, Packet):
                packets.append(item)
                if len(packets) == count:
                    break
    finally:
        source.close()
    return info, packets


def decoded(init: bytes, fragments: list[bytes]) -> list[av.VideoFrame]:
    """Every picture in init + fragments (wire form: 8-byte time, moof+mdat)."""
    data = init + b"".join(f[8:] for f in fragments)
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


# -- the muxer -------------------------------------------------------------------------


def test_fragments_are_the_camera_packets_one_picture_each(person_clip: Path) -> None:
    info, packets = packets_of(person_clip, 35)
    muxer = FragmentMuxer(info)
    fragments = [f for p in packets for f in muxer.push(p, time.monotonic())]
    assert muxer.init is not None and muxer.init[4:8] == b"ftyp" and b"moov" in muxer.init
    assert muxer.codec == "avc1.4d401f"  # Main profile, level 3.1, as the clip's SPS says
    # One fragment per picture, every one out already.
    assert len(fragments) == len(packets)
    assert all(f.data[12:16] == b"moof" for f in fragments)
    assert [f.keyframe for f in fragments] == [p.keyframe for p in packets]
    assert [f.time for f in fragments] == [p.time for p in packets]
    assert [struct.unpack(">d", f.data[:8])[0] for f in fragments] == [f.time for f in fragments]
    frames = decoded(muxer.init, [f.data for f in fragments])
    assert len(frames) == len(fragments)
    assert (frames[0].width, frames[0].height) == (768, 432) and frames[0].key_frame


@pytest.mark.parametrize("clip", ["person_clip", "crowd_clip"])
def test_a_picture_leaves_as_its_packet_comes(clip: str, request: pytest.FixtureRequest) -> None:
    """No picture waits for the next one but the stream's very first (its sample lasts
    until the second): each packet pushed gives its own fragment back at once."""
    info, packets = packets_of(request.getfixturevalue(clip), 30)
    muxer = FragmentMuxer(info)
    assert muxer.push(packets[0], 1.0) == [] and muxer.init is not None
    assert [f.time for f in muxer.push(packets[1], 2.0)] == [packets[0].time, packets[1].time]
    for packet in packets[2:]:
        (made,) = muxer.push(packet, 3.0)
        assert (made.time, made.keyframe, made.arrived) == (packet.time, packet.keyframe, 3.0)


def probed_packets(data: bytes) -> list[dict[str, str]]:
    """ffprobe's packets of an fMP4 given on its standard input, in file order."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_packets", "-of", "json", "-i", "pipe:0"],
        input=data, capture_output=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)["packets"]


def test_fragments_keep_the_cameras_timestamps(person_clip: Path) -> None:
    """ffprobe reads init + fragments as one file: every picture in decode order, with
    the camera's own decode and display times (B-frames reordered as the camera sent
    them)."""
    info, packets = packets_of(person_clip, 45)  # 10 fps, B-frames, 1/200000 ticks
    muxer = FragmentMuxer(info)
    fragments = [f for p in packets for f in muxer.push(p, 0.0)]
    assert muxer.init is not None
    probed = probed_packets(muxer.init + b"".join(f.data[8:] for f in fragments))
    assert len(probed) == len(packets)
    tick = float(info.time_base)
    for got, packet in zip(probed, packets, strict=True):
        assert packet.pts is not None and packet.dts is not None
        shown, decoded_at = packet.pts - packets[0].dts, packet.dts - packets[0].dts
        assert float(got["pts_time"]) - float(probed[0]["dts_time"]) == pytest.approx(shown * tick)
        assert float(got["dts_time"]) - float(probed[0]["dts_time"]) == pytest.approx(
            decoded_at * tick
        )
        assert ("K" in got["flags"]) == packet.keyframe


# -- the feed -------------------------------------------------------------------------


async def test_a_new_viewer_starts_at_once_at_the_gops_keyframe(person_clip: Path) -> None:
    """Nobody watching: nothing is muxed. A viewer gets the init and the current GOP
    (from its keyframe) as soon as the next packet comes, and plays from there."""
    info, packets = packets_of(person_clip, 40)
    feed = StreamFeed("door", "main")
    feed.start_stream(info)
    first_key = [i for i, p in enumerate(packets) if p.keyframe][1]
    for packet in packets[: first_key + 4]:
        feed.offer(packet)
    assert feed.fragments == 0
    async with feed.subscribe() as viewer:
        assert await viewer.take(0.05) == []
        for packet in packets[first_key + 4 :]:
            feed.offer(packet)
        got = []
        while len(got) < len(packets) - first_key + 1:
            items = await viewer.take(2.0)
            assert items, "the viewer got nothing"
            got += items
    start, fragments = got[0], got[1:]
    assert isinstance(start, Start)
    assert json.loads(start.description)["codec"] == "avc1.4d401f"
    assert fragments[0].keyframe and fragments[0].time == packets[first_key].time
    assert len(fragments) == len(packets) - first_key
    frames = decoded(start.init, [f.data for f in fragments])
    assert frames[0].key_frame and len(frames) == len(fragments)
    assert feed.viewers == 0


async def test_a_viewer_joining_before_the_first_fragment_gets_the_stream(
    person_clip: Path,
) -> None:
    """The muxer runs but has made no fragment yet (one packet in: the init is out, the
    first picture waits for the second): a viewer joining then still gets the init and
    every fragment, once each."""
    info, packets = packets_of(person_clip, 12)
    feed = StreamFeed("door", "main")
    feed.start_stream(info)
    async with feed.subscribe() as first:
        feed.offer(packets[0])
        assert [type(i) for i in await first.take(1.0)] == [Start]
        async with feed.subscribe() as late:
            for packet in packets[1:]:
                feed.offer(packet)
            got: list[Start | Fragment] = []
            while len(got) < len(packets) + 1:
                items = await late.take(2.0)
                assert items, f"the late viewer got {len(got)} items, then nothing"
                got += items
    assert isinstance(got[0], Start)
    assert [f.time for f in got[1:] if isinstance(f, Fragment)] == [p.time for p in packets]


async def test_a_viewer_gets_each_picture_before_the_next_one_comes(person_clip: Path) -> None:
    """From the second picture on, what a packet makes reaches the viewer with no other
    packet after it: nothing is held for the next one."""
    info, packets = packets_of(person_clip, 20)
    feed = StreamFeed("door", "main")
    feed.start_stream(info)
    async with feed.subscribe() as viewer:
        for packet in packets[:2]:
            feed.offer(packet)
        assert [type(i) for i in await viewer.take(1.0)] == [Start, Fragment, Fragment]
        for packet in packets[2:]:
            feed.offer(packet)
            (got,) = await viewer.take(1.0)
            assert isinstance(got, Fragment) and got.time == packet.time


async def test_a_viewer_joining_with_fragments_undelivered_gets_each_once(
    person_clip: Path,
) -> None:
    """Fragments already published to the loop but not yet handed out are in the GOP a
    new viewer starts with: it must not get them a second time."""
    info, packets = packets_of(person_clip, 8)
    feed = StreamFeed("door", "main")
    feed.start_stream(info)
    async with feed.subscribe() as first:
        feed.offer(packets[0])
        feed.offer(packets[1])
        assert [type(i) for i in await first.take(2.0)] == [Start, Fragment, Fragment]
        for packet in packets[2:]:
            feed.offer(packet)  # the loop does not run: fragments wait in its outbox
        async with feed.subscribe() as late:
            await asyncio.sleep(0.05)  # now the loop hands them out
            got = await late.take(2.0)
        assert len(await first.take(2.0)) == len(packets) - 2  # the rest
    times = [f.time for f in got if isinstance(f, Fragment)]
    assert times == [p.time for p in packets]


def camera_packets(clip: Path, count: int) -> tuple[StreamInfo, list[Packet]]:
    """The first `count` packets of a clip with its sound, as the capture thread has them."""
    source = AVSource(str(clip), decode=False, audio=True)
    info = source.open()
    assert info is not None and info.audio is not None
    items: list[Packet] = []
    try:
        for item in source.read():
            if isinstance(item, Packet):
                items.append(item)
                if len(items) == count:
                    break
    finally:
        source.close()
    return info, items


async def view(feed: StreamFeed, packets: list[Packet]) -> list[Start | Fragment]:
    """Everything one viewer gets while the packets are offered."""
    got: list[Start | Fragment] = []
    async with feed.subscribe() as viewer:
        for packet in packets:
            feed.offer(packet)
        while taken := await viewer.take(1.0):
            got += taken
    return got


def tracks(init: bytes, fragments: list[bytes]) -> tuple[list[av.VideoFrame], list[av.AudioFrame]]:
    """The pictures and the sound decoded from init + fragments (wire form)."""
    data = init + b"".join(f[8:] for f in fragments)
    with av.open(io.BytesIO(data)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        pictures = list(container.decode(video=0))
    with av.open(io.BytesIO(data)) as container:
        sound = list(container.decode(audio=0))
    return pictures, sound


async def test_a_camera_with_sound_is_heard_in_live_view(crowd_av_clip: Path) -> None:
    """Sound packets go into a second track of the same fMP4, on the video's timeline:
    the view plays every picture from its keyframe and decodes its sound."""
    info, items = camera_packets(crowd_av_clip, 300)
    video, sound = [p for p in items if not p.audio], [p for p in items if p.audio]
    assert sound, "the clip's sound did not come"
    feed = StreamFeed("door", "main")
    feed.start_stream(info)
    got = await view(feed, items)
    start, fragments = got[0], [f for f in got[1:] if isinstance(f, Fragment)]
    assert isinstance(start, Start)
    description = json.loads(start.description)
    assert description["codec"] == "avc1.64001f,mp4a.40.2" and description["audio"] is True
    pictures = [f for f in fragments if not f.audio]
    # Every picture but those still waiting for the sound of their moment (TimeOrder).
    heard, newest = max(p.time for p in sound), items[-1].time
    out = [p for p in video if p.time <= heard or p.time <= newest - LIVE_SOUND_WAIT]
    assert len(out) < len(video)
    assert [f.time for f in pictures] == [p.time for p in out]
    frames, samples = tracks(start.init, [f.data for f in fragments])
    assert frames[0].key_frame and len(frames) == len(pictures)
    # The sound from the first picture on (what came before it is dropped); the newest
    # waits for the video of its time.
    audible = [p for p in sound if p.time >= video[0].time]
    assert len(audible) - 10 <= len(samples) <= len(audible)
    # On one timeline, in order, back to back: as the camera's own sound was.
    starts = [float(s.time) for s in samples if s.time is not None]
    assert starts == sorted(starts) and len(starts) == len(samples)
    first_picture = min(float(f.time) for f in frames if f.time is not None)
    assert abs(starts[0] - first_picture - (audible[0].time - video[0].time)) < 0.03
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) < 1.5 * 1024 / info.audio.sample_rate


async def test_live_view_goes_on_without_sound_and_takes_it_back(crowd_av_clip: Path) -> None:
    """A camera whose sound starts late, or stops: the pictures keep coming; the view
    starts over without a sound track (a browser would wait for it), and with it again."""
    info, items = camera_packets(crowd_av_clip, 1000)  # 14.6 s, keyframes at 0, 5.12,
    first = items[0].time  # 10.24 and 13.63 s
    # Sound from 6 to 11 s only: video only from the first keyframe, with sound from the
    # keyframe at 10.24 s, video only again from 13.63 s.
    late = [p for p in items if not p.audio or 6 <= p.time - first <= 11]
    feed = StreamFeed("door", "main")
    feed.start_stream(info)
    async with feed.subscribe() as viewer:
        got: list[Start | Fragment] = []
        for packet in late:
            feed.offer(packet)
            await asyncio.sleep(0)  # the loop hands it out
            got += await viewer.take(0)
        while taken := await viewer.take(1.0):
            got += taken
    starts = [i for i, item in enumerate(got) if isinstance(item, Start)]
    descriptions = [json.loads(got[i].description) for i in starts]
    assert [d["audio"] for d in descriptions] == [False, True, False]
    parts = [got[a:b] for a, b in itertools.pairwise([*starts, len(got)])]
    fragments = [[f for f in part if isinstance(f, Fragment)] for part in parts]
    assert [round(part[0].time - first, 2) for part in fragments] == [0, 10.24, 13.63]
    assert [any(f.audio for f in part) for part in fragments] == [False, True, False]
    # Every picture, in order, none lost where a muxer ends and the next begins, but
    # those still waiting for sound at the end.
    pictures = [f.time for part in fragments for f in part if not f.audio]
    video = [p.time for p in late if not p.audio]
    waiting = [t for t in video if t > late[-1].time - LIVE_SOUND_WAIT]
    assert waiting and pictures == video[: len(video) - len(waiting)]


# -- over a real WebSocket ----------------------------------------------------------------


@asynccontextmanager
async def serve(feed: StreamFeed) -> AsyncIterator[str]:
    """The feed at /live; each connection's send buffer is small, as on a slow link, so
    a client that stops reading is felt at once rather than after megabytes."""

    async def live(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 8192
        )
        return await websocket_response(request, feed, stall_timeout=60.0)

    app = web.Application()
    app.router.add_get("/live", live)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/live"
    finally:
        feed.close()
        await runner.cleanup()


async def stalled_client(url: str) -> socket.socket:
    """A WebSocket client that opens and then never reads (tiny receive buffer)."""
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    sock = socket.socket()
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await loop.sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET /live HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    assert await loop.sock_recv(sock, 12) == b"HTTP/1.1 101"
    return sock


def feed_paced(feed: StreamFeed, packets: list[Packet], interval: float, stop: threading.Event):
    """The capture thread: offer the packets, `interval` s apart, until told to stop."""

    def run() -> None:
        for packet in packets:
            if stop.wait(interval):
                return
            feed.offer(packet)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def test_a_stalled_viewer_skips_ahead_and_delays_nobody(crowd_clip: Path) -> None:
    """One client stops reading: its unsent fragments stay bounded (it skips to a later
    keyframe), while another client keeps getting every picture, decodable."""
    info, packets = packets_of(crowd_clip, 340)  # 720p25, 1.6 Mbit/s, a GOP of 128
    feed = StreamFeed("door", "main")
    feed.start_stream(info)
    stop = threading.Event()
    async with serve(feed) as url, aiohttp.ClientSession() as client:
        stuck = await stalled_client(url)
        while not feed.viewers:
            await asyncio.sleep(0.01)
        (stalled,) = feed._loops[asyncio.get_running_loop()]
        async with client.ws_connect(url) as ws:
            thread = feed_paced(feed, packets, 0.01, stop)  # 4x real time
            description = json.loads((await ws.receive(timeout=10)).data)
            init = (await ws.receive(timeout=10)).data
            fragments: list[bytes] = []
            biggest = 0
            while len(fragments) < len(packets):
                message = await ws.receive(timeout=10)
                assert message.type is aiohttp.WSMsgType.BINARY
                fragments.append(message.data)
                viewers = feed._loops.get(asyncio.get_running_loop(), set())
                biggest = max([biggest, *(v.pending_bytes for v in viewers)])
            stop.set()
            thread.join(5)
        stuck.close()
    assert description["width"] == 1280 and description["codec"].startswith("avc1.")
    assert biggest <= VIEWER_MAX_BYTES
    assert stalled.skips >= 1, "the stalled viewer never skipped ahead"
    frames = decoded(init, fragments)
    assert len(frames) == len(fragments) and frames[0].key_frame


# -- the hub's route ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def door_cameras(person_clip: Path) -> Iterator[tuple[RtspCamera, RtspCamera]]:
    """The camera's main stream and its substream (the same clip: each its own server,
    as two clients joining the test server's shared media at once were seen to stall)."""
    main, sub = RtspCamera(person_clip), RtspCamera(person_clip)
    main.start()
    try:
        sub.start()
        try:
            yield main, sub
        finally:
            sub.kill()
    finally:
        main.kill()


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, door_cameras: tuple[RtspCamera, RtspCamera]
) -> Iterator[Hub]:
    """A hub watching a camera's main stream and its substream over RTSP."""
    main, sub = door_cameras
    cameras = f"""
        [[camera]]
        id = "door"
        url = "{main.url}"
        detect_url = "{sub.url}"
        [[camera]]
        id = "porch"
        url = "synthetic:porch"
        record = "off"
        """
    with door_hub(tmp_path_factory.mktemp("hub"), cameras) as started:
        yield started


@contextmanager
def door_hub(root: Path, cameras: str) -> Iterator[Hub]:
    """A running hub with these `[[camera]]`s, once each stream of "door" can be watched."""
    with running(make_hub(root, cameras)) as started:
        door = next(c for c in started.cameras if c.id == "door")
        deadline = time.monotonic() + 60
        while not all(feed.info for feed in door.streams.values()):
            assert time.monotonic() < deadline, f"the RTSP camera did not connect: {door.status}"
            time.sleep(0.1)
        yield started


def live_records(hub: Hub, since: int) -> list[tuple[str, dict]]:
    rows = hub.index.audit_records(since, 10000)
    return [(r.kind, json.loads(r.detail)) for r in rows if r.kind.startswith("live view")]


def last_seq(hub: Hub) -> int:
    rows = hub.audit.recent(0, 1)
    return rows[0].seq if rows else 0


async def test_cameras_offer_hd_and_sd_streams(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client, client.get(base(hub) + "/api/cameras") as resp:
        cams = {c["id"]: c for c in await resp.json()}
    door = cams["door"]["streams"]
    assert [(s["name"], s["label"], s["width"], s["height"]) for s in door] == [
        ("main", "HD", 768, 432),
        ("sub", "SD", 768, 432),
    ]
    assert door[0]["url"] == "/api/cameras/door/live.ws?stream=main"
    assert cams["porch"]["streams"] == []  # not recorded, not encoded: MJPEG only


async def test_the_websocket_is_refused_without_a_session_or_from_another_site(hub: Hub) -> None:
    url = base(hub) + "/api/cameras/door/live.ws"
    async with aiohttp.ClientSession() as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anonymous.ws_connect(url)
        assert refused.value.status == 401
    client = await logged_in(hub)
    async with client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(url, headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        for query, status in (("?stream=bogus", 400), ("", 400)):
            async with client.get(url + query) as resp:  # not a WebSocket, or a bad stream
                assert resp.status == status
                assert "error" in await resp.json()
        async with client.get(base(hub) + "/api/cameras/porch/live.ws") as resp:
            assert resp.status == 404  # no H.264 to pass on: the page uses MJPEG


async def receive_view(
    ws: aiohttp.ClientWebSocketResponse, pictures: int
) -> tuple[dict, bytes, list[bytes]]:
    description = json.loads((await ws.receive(timeout=10)).data)
    init = (await ws.receive(timeout=10)).data
    fragments = []
    while len(fragments) < pictures:
        message = await ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.BINARY, message
        fragments.append(message.data)
    return description, init, fragments


@pytest.mark.parametrize(("stream", "label"), [("main", "HD"), ("sub", "SD")])
async def test_a_live_view_plays_from_a_keyframe_and_is_logged(
    hub: Hub, stream: str, label: str
) -> None:
    since = last_seq(hub)
    client = await logged_in(hub)
    async with client:
        url = f"{base(hub)}/api/cameras/door/live.ws?stream={stream}"
        async with client.ws_connect(url, headers={"Origin": base(hub)}) as ws:
            description, init, fragments = await receive_view(ws, 25)
    assert description["stream"] == stream and description["width"] == 768
    frames = decoded(init, fragments)
    assert frames[0].key_frame and len(frames) == len(fragments)
    times = [struct.unpack(">d", f[:8])[0] for f in fragments]
    assert abs(max(times) - time.time()) < 30  # display times; B-frames come out of order
    deadline = time.monotonic() + 10
    while len(live_records(hub, since)) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    (started, start), (stopped, stop) = live_records(hub, since)
    assert (started, stopped) == ("live view started", "live view stopped")
    assert start == {"camera": "door", "stream": label}
    assert stop["stream"] == label and stop["seconds"] >= 0


async def ends(ws: aiohttp.ClientWebSocketResponse, within: float = 10.0) -> bool:
    """Whether the server closes the WebSocket within `within` s (reading meanwhile)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        message = await ws.receive(timeout=within)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return True
    return False


async def test_a_live_view_ends_with_its_session(hub: Hub) -> None:
    client = await logged_in(hub)
    url = base(hub) + "/api/cameras/door/live.ws"
    async with client, client.ws_connect(url) as ws:
        await receive_view(ws, 2)
        async with client.post(base(hub) + "/api/logout", headers={"Origin": base(hub)}) as out:
            assert out.status == 204
        assert await ends(ws), "the live view went on after logout"
    client = await logged_in(hub)
    idle = hub.sessions.idle_seconds
    async with client, client.ws_connect(url) as ws:
        await receive_view(ws, 2)
        hub.sessions.idle_seconds = 1.5
        try:
            assert await ends(ws), "the live view kept an idle session open"
        finally:
            hub.sessions.idle_seconds = idle


async def test_a_live_view_starts_over_when_the_camera_comes_back(
    hub: Hub, door_cameras: tuple[RtspCamera, RtspCamera]
) -> None:
    """The camera drops and comes back: the open view gets a new description and init,
    and plays again from a keyframe, without the owner reopening it."""
    main, _sub = door_cameras
    client = await logged_in(hub)
    async with client, client.ws_connect(base(hub) + "/api/cameras/door/live.ws") as ws:
        await receive_view(ws, 3)
        main.restart()
        deadline = time.monotonic() + 60
        while (message := await ws.receive(timeout=60)).type is not aiohttp.WSMsgType.TEXT:
            assert message.type is aiohttp.WSMsgType.BINARY, message
            assert time.monotonic() < deadline, "no new stream after the camera came back"
        assert json.loads(message.data)["stream"] == "main"
        init = (await ws.receive(timeout=10)).data
        fragments = [(await ws.receive(timeout=10)).data for _ in range(12)]
    frames = decoded(init, fragments)
    assert frames[0].key_frame and len(frames) == len(fragments)


@pytest.mark.parametrize("sound", ["aac", "alaw"])
async def test_a_doorbells_live_view_carries_its_sound(
    crowd_av_clip: Path, tmp_path: Path, sound: str
) -> None:
    """The real RTSP camera sending AAC as it is, or G.711 A-law (transcoded to AAC
    once): what the WebSocket brings is one fMP4 with the picture and the sound."""
    with RtspCamera(crowd_av_clip, audio=sound) as camera:
        cameras = f"""
            [[camera]]
            id = "door"
            url = "{camera.url}"
            audio = true
            """
        with door_hub(tmp_path, cameras) as started:
            client = await logged_in(started)
            url = base(started) + "/api/cameras/door/live.ws"
            async with client, client.ws_connect(url) as ws:
                description, init, fragments = await receive_view(ws, 100)
    assert description["codec"] == "avc1.64001f,mp4a.40.2" and description["audio"] is True
    pictures, samples = tracks(init, fragments)
    assert pictures[0].key_frame and len(samples) > 20
    rate = 44100 if sound == "aac" else 8000
    assert {(s.sample_rate, s.layout.name) for s in samples} == {
        (rate, "stereo" if sound == "aac" else "mono")
    }
    # Sound and picture on one timeline: they start within an AAC frame of each other.
    first_picture = min(float(p.time) for p in pictures if p.time is not None)
    assert samples[0].time is not None
    assert abs(samples[0].time - first_picture) < 1024 / rate + 0.05
