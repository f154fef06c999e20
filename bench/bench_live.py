"""Live view cost and latency on one camera, with real viewers over loopback.

CPU: process CPU time (user + system, all threads) of the hub side -- a thread offering
the real clip at its camera rate into a LiveFeed, the feed's encoder, and an aiohttp
server streaming MJPEG -- with 0, 1 and 10 viewers. The viewers are real aiohttp
clients in a child process, so their parsing is not billed to the hub. The 1- and
10-viewer windows alternate over several rounds, so a change in the machine's other
load falls on both alike.

The frames are decoded once up front (decoding is the camera's cost, not live view's);
each offer converts its picture afresh, as a newly decoded frame would (a new colour
conversion context per frame), then downscale and JPEG are done live, as in the hub.

Latency: from offer() to the last byte of that picture read by the viewer (each part's
X-Timestamp is the Unix time it was offered; both processes share the clock).

Targets: 10 viewers cost at most 1.2x one viewer; median latency under 150 ms.
This prints, never asserts.

    python bench/bench_live.py [--short] [--clip person|crowd] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
import numpy as np
from aiohttp import web
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from hub.capture.av_source import luma_of
from hub.media import Frame
from hub.web.live import BOUNDARY, LiveFeed, LiveSettings, mjpeg_response

DATA = Path(
    os.environ.get("CAMHUB_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
CLIPS = {  # name: (file, camera fps)
    "person": ("one-by-one-person-detection.mp4", 10.0),
    "crowd": ("crowd-720p-h264.avi", 25.0),
}
FRAMES_KEPT = 60  # decoded once, offered in a loop
ROUNDS = {True: 3, False: 6}  # --short: rounds of (1 viewer, 10 viewers)
WINDOW = {True: 2.0, False: 8.0}  # seconds measured per phase
SETTLE = 0.5  # seconds after the viewer count changes before measuring


@dataclass(frozen=True, slots=True)
class Window:
    viewers: int
    cpu: float  # process CPU seconds, user + system
    system: float  # of which in the kernel (socket writes, mostly)
    wall: float  # seconds
    encoded: int
    missed: int
    span: tuple[float, float]  # Unix times, to pick this window's latency samples


# -- the hub side ---------------------------------------------------------------------------


def decode(path: Path, count: int) -> list[VideoFrame]:
    with av.open(str(path)) as container:
        pictures = []
        for picture in container.decode(video=0):
            pictures.append(picture)
            if len(pictures) == count:
                break
    return pictures


def fresh_bgr(picture: VideoFrame) -> np.ndarray:
    """What bgr() costs on a newly decoded frame: PyAV caches its conversion context on
    the frame, which a clip offered in a loop would otherwise reuse."""
    return VideoReformatter().reformat(picture, format="bgr24").to_ndarray()


class Camera(threading.Thread):
    """Offers the clip at the camera's rate, stamping each frame with the offer time."""

    def __init__(self, feed: LiveFeed, pictures: list[VideoFrame], fps: float) -> None:
        super().__init__(name="bench-camera", daemon=True)
        self.feed, self.pictures, self.period = feed, pictures, 1.0 / fps
        self.stop = threading.Event()

    def run(self) -> None:
        due = time.monotonic()
        i = 0
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            picture = self.pictures[i % len(self.pictures)]
            frame = Frame(
                time=time.time(),
                luma=luma_of(picture),
                bgr=lambda picture=picture: fresh_bgr(picture),
            )
            self.feed.offer(frame)
            i += 1
            due += self.period


async def wait_for_viewers(feed: LiveFeed, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while feed.viewers != count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"viewers did not reach {count} (at {feed.viewers})")
        await asyncio.sleep(0.02)


async def measure(feed: LiveFeed, viewers: int, seconds: float) -> Window:
    before = feed.stats()
    wall0, unix0 = time.monotonic(), time.time()
    cpu0, sys0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    await asyncio.sleep(seconds)
    cpu1, sys1 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    wall1, unix1 = time.monotonic(), time.time()
    after = feed.stats()
    return Window(
        viewers,
        cpu1 - cpu0,
        sys1 - sys0,
        wall1 - wall0,
        after.encoded - before.encoded,
        after.missed - before.missed,
        (unix0, unix1),
    )


async def hub_side(args: argparse.Namespace) -> None:
    name, fps = CLIPS[args.clip]
    pictures = decode(args.data / name, FRAMES_KEPT)
    feed = LiveFeed("bench", LiveSettings())
    s = feed.settings
    print(
        f"clip {name}: {pictures[0].width}x{pictures[0].height} offered at {fps:g} fps; "
        f"live max_fps={s.max_fps} max_width={s.max_width} quality={s.quality}"
    )

    async def live(request: web.Request) -> web.StreamResponse:
        return await mjpeg_response(request, feed)

    app = web.Application()
    app.router.add_get("/live", live)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    viewers = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        f"http://{host}:{port}/live",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert viewers.stdin is not None and viewers.stdout is not None
    camera = Camera(feed, pictures, fps)
    camera.start()
    schedule = [0] + [1, 10] * ROUNDS[args.short]
    windows: list[Window] = []
    try:
        for count in schedule:
            viewers.stdin.write(f"{count}\n".encode())
            await viewers.stdin.drain()
            await wait_for_viewers(feed, count)
            await asyncio.sleep(SETTLE)
            windows.append(await measure(feed, count, WINDOW[args.short]))
        viewers.stdin.write(b"quit\n")
        await viewers.stdin.drain()
        out = await asyncio.wait_for(viewers.stdout.read(), timeout=20.0)
        await asyncio.wait_for(viewers.wait(), timeout=5.0)
    finally:
        camera.stop.set()
        feed.close()
        if viewers.returncode is None:
            viewers.kill()
        await runner.cleanup()
    report(windows, json.loads(out))


def report(windows: list[Window], samples: list[tuple[float, float]]) -> None:
    cpu: dict[int, float] = defaultdict(float)
    system: dict[int, float] = defaultdict(float)
    wall: dict[int, float] = defaultdict(float)
    encoded: dict[int, int] = defaultdict(int)
    missed: dict[int, int] = defaultdict(int)
    latency: dict[int, list[float]] = defaultdict(list)
    for w in windows:
        cpu[w.viewers] += w.cpu
        system[w.viewers] += w.system
        wall[w.viewers] += w.wall
        encoded[w.viewers] += w.encoded
        missed[w.viewers] += w.missed
        latency[w.viewers] += [lat for at, lat in samples if w.span[0] <= at <= w.span[1]]
    print(
        f"{'viewers':>7} {'window s':>8} {'cpu s':>7} {'sys s':>6} {'cpu %':>6} {'ms/frame':>8} "
        f"{'encodes/s':>9} {'missed':>6} {'lat med ms':>10} {'lat p95 ms':>10} {'parts':>6}"
    )
    for n in sorted(cpu):
        lat = sorted(latency[n])
        med = f"{statistics.median(lat) * 1000:.1f}" if lat else "-"
        p95 = f"{percentile(lat, 0.95) * 1000:.1f}" if lat else "-"
        per_frame = f"{cpu[n] / encoded[n] * 1000:.2f}" if encoded[n] else "-"
        print(
            f"{n:>7} {wall[n]:>8.1f} {cpu[n]:>7.3f} {system[n]:>6.3f} "
            f"{cpu[n] / wall[n] * 100:>6.1f} "
            f"{per_frame:>8} {encoded[n] / wall[n]:>9.1f} {missed[n]:>6} {med:>10} {p95:>10} "
            f"{len(lat):>6}"
        )
    rate = {n: cpu[n] / wall[n] for n in cpu}
    if rate.get(1):
        line = f"CPU, 10 viewers / 1 viewer: {rate[10] / rate[1]:.2f}x (target <= 1.2x)"
        if rate[1] > rate.get(0, 0.0):
            own = (rate[10] - rate[0]) / (rate[1] - rate[0])
            line += f"; less the 0-viewer baseline: {own:.2f}x"
        print(line)
    lat = sorted(x for n in latency for x in latency[n])
    if lat:
        print(
            f"latency offer() -> bytes at the viewer, every viewer: median "
            f"{statistics.median(lat) * 1000:.1f} ms, p95 {percentile(lat, 0.95) * 1000:.1f} ms "
            "(target median < 150 ms)"
        )


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the viewers (child process) ----------------------------------------------------------


async def read_part(response: aiohttp.ClientResponse) -> float:
    """Read the next part of an MJPEG stream whole; its X-Timestamp."""
    content = response.content
    line = await content.readline()
    if line != f"--{BOUNDARY}\r\n".encode():
        raise EOFError(f"stream ended ({line!r})")
    headers: dict[str, str] = {}
    while (line := await content.readline()) not in (b"\r\n", b""):
        key, value = line.decode().rstrip("\r\n").split(": ", 1)
        headers[key.lower()] = value
    await content.readexactly(int(headers["content-length"]) + 2)  # JPEG and CRLF
    return float(headers["x-timestamp"])


async def viewers_side(url: str) -> None:
    """Keeps as many viewers open as stdin last said; on "quit" prints every part's
    (arrival, latency) as JSON."""
    samples: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()

    async def watch(session: aiohttp.ClientSession) -> None:
        with contextlib.suppress(EOFError, aiohttp.ClientError):
            async with session.get(url) as response:
                while True:
                    stamp = await read_part(response)
                    arrived = time.time()
                    samples.append((arrived, arrived - stamp))

    async with aiohttp.ClientSession() as session:
        tasks: list[asyncio.Task[None]] = []
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line in ("quit", ""):
                break
            count = int(line)
            while len(tasks) < count:
                tasks.append(asyncio.create_task(watch(session)))
            while len(tasks) > count:
                tasks.pop().cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="short windows (CI), < 30 s")
    parser.add_argument("--clip", choices=sorted(CLIPS), default="person")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(viewers_side(args.client))
    else:
        asyncio.run(hub_side(args))


if __name__ == "__main__":
    main()
