"""Live view cost and latency on one camera, with real viewers over loopback.

CPU: process CPU time (user + system, all threads) of the hub side -- a thread offering
the real clip at its camera rate into a LiveFeed, the feed's encoder, and an aiohttp
server streaming MJPEG -- over a fixed window, with 0, 1 and 10 viewers. The viewers
are real aiohttp clients in a child process, so their parsing is not billed to the hub.
The frames are decoded once up front (decoding is the camera's cost, not live view's);
colour conversion, downscale and JPEG are done live, as in the hub.

Latency: from offer() to the last byte of that picture read by the viewer (each part's
X-Timestamp is the Unix time it was offered; both processes share the clock).

Targets: 10 viewers cost at most 1.2x one viewer; median latency under 150 ms.
This prints, never asserts.

    python bench/bench_live.py [--short] [--clip person|crowd] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from hub.capture import open_source
from hub.media import Frame
from hub.web.live import BOUNDARY, LiveFeed, LiveSettings, LiveStats, mjpeg_response

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = {  # name: (file, camera fps)
    "person": ("one-by-one-person-detection.mp4", 10.0),
    "crowd": ("crowd-720p-h264.avi", 25.0),
}
FRAMES_KEPT = 60  # decoded once, offered in a loop
VIEWER_COUNTS = (0, 1, 10)


@dataclass(frozen=True, slots=True)
class Phase:
    viewers: int
    cpu: float  # process CPU seconds over the window
    window: float  # wall seconds
    encoded: int
    missed: int
    latencies: list[float]  # seconds, parts that arrived inside the window


# -- the hub side ---------------------------------------------------------------------------


def decode(path: Path, count: int) -> list[Frame]:
    """Frames as the camera's own source yields them (PyAV, pictures kept by reference)."""
    source = open_source(str(path), decode=True, keep_packets=False)
    source.open()
    frames: list[Frame] = []
    try:
        for item in source.read():
            if isinstance(item, Frame):
                frames.append(item)
                if len(frames) == count:
                    break
    finally:
        source.close()
    return frames


class Camera(threading.Thread):
    """Offers the clip at the camera's rate, stamping each frame with the offer time."""

    def __init__(self, feed: LiveFeed, frames: list[Frame], fps: float) -> None:
        super().__init__(name="bench-camera", daemon=True)
        self.feed, self.frames, self.period = feed, frames, 1.0 / fps
        self.stop = threading.Event()

    def run(self) -> None:
        due = time.monotonic()
        i = 0
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            source = self.frames[i % len(self.frames)]
            self.feed.offer(Frame(time=time.time(), luma=source.luma, bgr=source.bgr))
            i += 1
            due += self.period


async def measure(feed: LiveFeed, url: str, viewers: int, warmup: float, window: float) -> Phase:
    client = None
    if viewers:
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            url,
            "--viewers",
            str(viewers),
            "--seconds",
            str(warmup + window + 1.5),
            stdout=asyncio.subprocess.PIPE,
        )
        deadline = time.monotonic() + 15.0
        while feed.viewers < viewers and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    await asyncio.sleep(warmup)
    before: LiveStats = feed.stats()
    wall0, cpu0, unix0 = time.monotonic(), time.process_time(), time.time()
    await asyncio.sleep(window)
    cpu1, wall1, unix1 = time.process_time(), time.monotonic(), time.time()
    after = feed.stats()
    latencies: list[float] = []
    if client is not None:
        out, _ = await asyncio.wait_for(client.communicate(), timeout=warmup + window + 20)
        samples = json.loads(out or b"[]")
        latencies = [lat for arrived, lat in samples if unix0 <= arrived <= unix1]
    deadline = time.monotonic() + 5.0
    while feed.viewers and time.monotonic() < deadline:  # let the streams wind down
        await asyncio.sleep(0.02)
    return Phase(
        viewers,
        cpu1 - cpu0,
        wall1 - wall0,
        after.encoded - before.encoded,
        after.missed - before.missed,
        latencies,
    )


async def hub_side(args: argparse.Namespace) -> None:
    name, fps = CLIPS[args.clip]
    path = args.data / name
    frames = decode(path, FRAMES_KEPT)
    feed = LiveFeed("bench", LiveSettings())
    settings = feed.settings
    print(
        f"clip {name}: {frames[0].width}x{frames[0].height} offered at {fps:g} fps; "
        f"live max_fps={settings.max_fps} max_width={settings.max_width} "
        f"quality={settings.quality}"
    )
    warmup, window = (1.0, 3.0) if args.short else (2.0, 20.0)

    async def live(request: web.Request) -> web.StreamResponse:
        return await mjpeg_response(request, feed)

    app = web.Application()
    app.router.add_get("/live", live)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    camera = Camera(feed, frames, fps)
    camera.start()
    phases: list[Phase] = []
    try:
        for viewers in VIEWER_COUNTS:
            phases.append(
                await measure(feed, f"http://{host}:{port}/live", viewers, warmup, window)
            )
    finally:
        camera.stop.set()
        feed.close()
        await runner.cleanup()
    report(phases)


def report(phases: list[Phase]) -> None:
    print(
        f"{'viewers':>7} {'cpu s':>7} {'cpu %':>6} {'encodes/s':>9} {'missed':>6}"
        f" {'lat med ms':>10} {'lat p95 ms':>10} {'samples':>7}"
    )
    for p in phases:
        lat = sorted(p.latencies)
        med = f"{statistics.median(lat) * 1000:.1f}" if lat else "-"
        p95 = f"{lat[min(len(lat) - 1, int(0.95 * len(lat)))] * 1000:.1f}" if lat else "-"
        print(
            f"{p.viewers:>7} {p.cpu:>7.3f} {p.cpu / p.window * 100:>6.1f} "
            f"{p.encoded / p.window:>9.1f} {p.missed:>6} {med:>10} {p95:>10} {len(lat):>7}"
        )
    by = {p.viewers: p for p in phases}
    if 1 in by and 10 in by and by[1].cpu > 0:
        ratio = by[10].cpu / by[1].cpu
        line = f"10 viewers / 1 viewer CPU: {ratio:.2f}x (target <= 1.2x)"
        if 0 in by and by[1].cpu > by[0].cpu:
            live = (by[10].cpu - by[0].cpu) / (by[1].cpu - by[0].cpu)
            line += f"; live view's own share (minus 0 viewers): {live:.2f}x"
        print(line)
    lat = sorted(x for p in phases for x in p.latencies)
    if lat:
        print(
            f"latency offer() -> viewer, all viewers: median {statistics.median(lat) * 1000:.1f}"
            f" ms, p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.1f} ms (target median < 150 ms)"
        )


# -- the viewers (child process) ----------------------------------------------------------


async def read_part(response: aiohttp.ClientResponse) -> tuple[float, bytes]:
    """(X-Timestamp, JPEG) of the next part of an MJPEG stream."""
    content = response.content
    line = await content.readline()
    if line != f"--{BOUNDARY}\r\n".encode():
        raise EOFError(f"stream ended ({line!r})")
    headers: dict[str, str] = {}
    while (line := await content.readline()) not in (b"\r\n", b""):
        key, value = line.decode().rstrip("\r\n").split(": ", 1)
        headers[key.lower()] = value
    jpeg = await content.readexactly(int(headers["content-length"]))
    await content.readexactly(2)
    return float(headers["x-timestamp"]), jpeg


async def viewers_side(url: str, count: int, seconds: float) -> None:
    samples: list[tuple[float, float]] = []  # (arrival, latency)
    deadline = time.monotonic() + seconds

    async def watch(session: aiohttp.ClientSession) -> None:
        async with session.get(url) as response:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    stamp, _ = await asyncio.wait_for(read_part(response), left)
                except (TimeoutError, EOFError, aiohttp.ClientError):
                    return
                arrived = time.time()
                samples.append((arrived, arrived - stamp))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(watch(session) for _ in range(count)))
    print(json.dumps(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="short windows (CI), < 30 s")
    parser.add_argument("--clip", choices=sorted(CLIPS), default="person")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--viewers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(viewers_side(args.client, args.viewers, args.seconds))
    else:
        asyncio.run(hub_side(args))


if __name__ == "__main__":
    main()
