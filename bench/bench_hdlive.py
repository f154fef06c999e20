"""HD live view against today's MJPEG, on a real hub watching a 720p25 RTSP camera.

The camera: the 720p crowd clip, re-encoded once with a keyframe every second (as a
camera set to a 1 s GOP sends it), repeated in one file for longer than a run (the test
server's own loop makes the RTSP timestamps jump), served over RTSP by GStreamer
(tests/rtsp_camera.py) in real time. The hub: the real `Hub` in this process (capture,
motion decode, web server), recording off so the figures are live view's own.

CPU: this process's CPU time (user + system, all threads) in windows with 0 viewers,
1 and 10 HD viewers (fMP4 over WebSocket) and 1 and 10 MJPEG viewers, alternating over
the rounds so a change in the machine's other load falls on all alike. The viewers are
real aiohttp clients in a child process (logged in as the owner), so their work is not
billed to the hub. Server latency: from a packet reaching the live feed to its fragment
written to the WebSocket (hub/web/hdlive.py keeps the samples). Chromium: the owner's
page in headless Chromium (Playwright, /usr/bin/chromium) plays the HD view; the lag
is the buffered picture ahead of the playhead, sampled every 0.5 s, beside the pictures
Chromium decoded and dropped and how far the playhead went meanwhile (a picture dropped
or a stall would show there, the lag alone would not).

Targets (issue 10): 10 HD viewers add < 3% of one core; server latency median < 20 ms;
Chromium lag median < 1 s. This prints, never asserts.

With `--sound aac|alaw` the camera sends the clip's sound too (as it is, or as G.711
A-law), the hub has `audio = true` and records continuously (it takes sound only to
record it), and the HD view carries the sound as a second track: the CPU then includes
recording, and the latency the pictures' wait for the sound of their moment.

    python bench/bench_hdlive.py [--short] [--no-browser] [--sound aac|alaw] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
from av.bitstream import BitStreamFilterContext

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from rtsp_camera import RtspCamera  # noqa: E402

from hub.cli import init_data_dir  # noqa: E402
from hub.config import parse_config  # noqa: E402
from hub.daemon import DataPaths, Hub  # noqa: E402
from hub.fmp4 import FragmentMuxer  # noqa: E402
from hub.media import Packet, StreamInfo  # noqa: E402
from hub.vault import KdfParams  # noqa: E402

DATA = Path(
    os.environ.get("CAMHUB_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
CLIP = "crowd-720p-h264.avi"
PASSWORD = "bench bench bench"
FAST_KDF = KdfParams(memory_kib=256, iterations=1, lanes=1)
ROUNDS = {True: 1, False: 3}
WINDOW = {True: 4.0, False: 10.0}  # seconds measured per phase
BROWSER_SECONDS = {True: 8.0, False: 30.0}
# Plays of the clip in the camera's file, enough for a whole run: where the test server
# loops it the RTSP timestamps jump 13.6 s ahead, the sound's wall-clock times with
# them, and a view with sound stalls until it starts over without the sound.
PLAYS = {True: 6, False: 20}
MUX_PICTURES = 500  # timed through the muxer alone
SETTLE = 1.0  # after the viewer count changes
PHASES = [("none", 0), ("hd", 1), ("hd", 10), ("mjpeg", 1), ("mjpeg", 10)]


@dataclass(frozen=True, slots=True)
class Window:
    kind: str
    viewers: int
    cpu: float
    wall: float
    latencies: list[float]
    after_cut: list[float]  # from its fragment being written


def camera_clip(data: Path, into: Path, sound: bool, plays: int) -> Path:
    """The crowd clip as a camera with a 1 s GOP would send it (H.264, no B-frames), with
    its AAC sound (cut to the picture's 13.64 s, so the two still meet where it repeats)
    or without, `plays` times over."""
    once, out = into / "crowd-gop25.mp4", into / "crowd-camera.mp4"
    audio = ["-c:a", "copy"] if sound else ["-an"]
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-fflags", "+genpts", "-i", str(data / CLIP),
         "-t", "13.64", *audio, "-c:v", "libx264", "-preset", "veryfast", "-g", "25",
         "-keyint_min", "25", "-bf", "0", "-b:v", "2M", str(once)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-stream_loop", str(plays - 1), "-i", str(once),
         "-c", "copy", str(out)],
        check=True,
    )  # fmt: skip
    return out


def start_hub(root: Path, url: str, sound: bool) -> Hub:
    init_data_dir(DataPaths(root), PASSWORD, kdf=FAST_KDF)
    config = parse_config(
        f"""
        [hub]
        data_dir = "{root}"
        log_level = "warning"
        [storage]
        min_free_gb = 0
        [web]
        listen = "127.0.0.1:0"
        tls = false
        [[camera]]
        id = "door"
        url = "{url}"
        {'record = "continuous"' if sound else 'record = "off"'}
        audio = {str(sound).lower()}
        """,
        base_dir=root,
    )
    hub = Hub(config)
    hub.start()
    deadline = time.monotonic() + 30
    while hub.cameras[0].streams["main"].info is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the RTSP camera did not connect within 30 s")
        time.sleep(0.1)
    return hub


def viewers_of(hub: Hub, kind: str) -> int:
    camera = hub.cameras[0]
    return camera.streams["main"].viewers if kind == "hd" else camera.live.viewers


def measure_cpu(hub: Hub, base: str, short: bool) -> list[Window]:
    client = subprocess.Popen(
        [sys.executable, __file__, "--client", base],
        stdin=subprocess.PIPE,
        text=True,
    )
    assert client.stdin is not None
    feed = hub.cameras[0].streams["main"]
    windows = []
    try:
        for kind, count in [PHASES[0]] + PHASES[1:] * ROUNDS[short]:
            client.stdin.write(f"{kind} {count}\n")
            client.stdin.flush()
            deadline = time.monotonic() + 20
            while viewers_of(hub, "hd") + viewers_of(hub, "mjpeg") != count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind}: viewers did not reach {count}")
                time.sleep(0.05)
            time.sleep(SETTLE)
            feed.latencies.clear()
            feed.after_cut.clear()
            cpu0, wall0 = time.process_time(), time.monotonic()
            time.sleep(WINDOW[short])
            cpu1, wall1 = time.process_time(), time.monotonic()
            windows.append(
                Window(
                    kind,
                    count,
                    cpu1 - cpu0,
                    wall1 - wall0,
                    list(feed.latencies),
                    list(feed.after_cut),
                )
            )
        client.stdin.write("quit\n")
        client.stdin.flush()
        client.wait(timeout=20)
    finally:
        if client.poll() is None:
            client.kill()
    return windows


@dataclass(frozen=True, slots=True)
class Playback:
    """What headless Chromium made of the HD view over the sampled seconds."""

    lags: list[float]  # buffered end - currentTime, every 0.5 s
    decoded: int  # pictures (getVideoPlaybackQuality().totalVideoFrames)
    dropped: int  # of them dropped (droppedVideoFrames)
    played: float  # seconds the playhead advanced
    wall: float  # seconds sampled


def browser_lag(base: str, seconds: float) -> Playback | str:
    """The HD view's playback in headless Chromium, or why it was not measured."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright is not installed"
    if not Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium is missing"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.locator("#login-password").fill(PASSWORD)
            page.click("#login-submit")
            page.wait_for_function(
                "() => { const v = document.querySelector('.live-video');"
                " return v && !v.hidden && v.readyState >= 2; }",
                timeout=20_000,
            )
            page.wait_for_timeout(2000)  # past the start-up jump to the edge
            samples = []
            for _ in range(round(seconds * 2)):
                samples.append(
                    page.evaluate(
                        "() => { const v = document.querySelector('.live-video');"
                        " const b = v.buffered, q = v.getVideoPlaybackQuality();"
                        " return {lag: b.length ? b.end(b.length - 1) - v.currentTime : null,"
                        " t: v.currentTime, decoded: q.totalVideoFrames,"
                        " dropped: q.droppedVideoFrames}; }"
                    )
                )
                page.wait_for_timeout(500)
            first, last = samples[0], samples[-1]
            return Playback(
                [s["lag"] for s in samples if s["lag"] is not None],
                last["decoded"] - first["decoded"],
                last["dropped"] - first["dropped"],
                last["t"] - first["t"],
                (len(samples) - 1) * 0.5,
            )
        finally:
            browser.close()


def report(
    windows: list[Window], playback: Playback | str, width: int, height: int, sound: str
) -> None:
    what = f"{sound} sound, recording on" if sound != "none" else "no sound, recording off"
    print(f"camera: {width}x{height} 25 fps, 1 s GOP, over RTSP; {what}")
    print(
        f"{'view':>6} {'viewers':>7} {'window s':>8} {'cpu %':>6} {'+ vs 0':>7} {'lat med ms':>10}"
    )
    totals: dict[tuple[str, int], list[float]] = {}
    lat: dict[tuple[str, int], list[float]] = {}
    for w in windows:
        cpu, wall = totals.setdefault((w.kind, w.viewers), [0.0, 0.0])
        totals[(w.kind, w.viewers)] = [cpu + w.cpu, wall + w.wall]
        lat.setdefault((w.kind, w.viewers), []).extend(w.latencies)
    base_cpu, base_wall = totals[("none", 0)]
    base = base_cpu / base_wall * 100
    for (kind, count), (cpu, wall) in totals.items():
        share = cpu / wall * 100
        samples = lat.get((kind, count)) or []
        med = f"{statistics.median(samples) * 1000:.1f}" if kind == "hd" and samples else "-"
        print(f"{kind:>6} {count:>7} {wall:>8.1f} {share:>6.1f} {share - base:>+7.1f} {med:>10}")
    hd_lat = sorted(x for (kind, _), xs in lat.items() if kind == "hd" for x in xs)
    if hd_lat:
        print(
            f"server latency, packet in -> WebSocket write: median "
            f"{statistics.median(hd_lat) * 1000:.1f} ms, p95 "
            f"{hd_lat[round(0.95 * (len(hd_lat) - 1))] * 1000:.1f} ms over {len(hd_lat)} "
            "writes (target median < 20 ms)"
        )
        cut = sorted(x for w in windows if w.kind == "hd" for x in w.after_cut)
        wait = statistics.median(hd_lat) - statistics.median(cut)
        print(
            f"  of which in the feed up to the fragment written (with sound: the wait for"
            f" the sound of its moment): ~{wait * 1000:.1f} ms; fragment written -> WebSocket"
            f" write (fan-out, event loop, write): median {statistics.median(cut) * 1000:.2f} ms, "
            f"p95 {cut[round(0.95 * (len(cut) - 1))] * 1000:.2f} ms"
        )
    if isinstance(playback, str):
        print(f"Chromium live-edge lag: not measured ({playback})")
        return
    lags = playback.lags
    if lags:
        print(
            f"Chromium live-edge lag (buffered end - currentTime): median "
            f"{statistics.median(lags):.2f} s, max {max(lags):.2f} s over {len(lags)} samples "
            "(target median < 1 s)"
        )
    print(
        f"Chromium playback: {playback.decoded} pictures decoded, {playback.dropped} dropped;"
        f" the playhead advanced {playback.played:.1f} s in {playback.wall:.1f} s"
    )


def mux_cost(clip: Path) -> float:
    """Seconds FragmentMuxer.push takes per picture of the clip, given as an RTSP camera's
    are (Annex B, parameter sets in band): the fastest of 5 passes."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        annexb = BitStreamFilterContext("h264_mp4toannexb", stream)
        demuxed = itertools.islice(container.demux(stream), MUX_PICTURES)
        raw = [q for p in demuxed for q in annexb.filter(p) if q.size]
        ctx = stream.codec_context
        info = StreamInfo("h264", ctx.width, ctx.height, stream.time_base, None, 25.0)
    packets = [Packet(bytes(q), q.pts, q.dts, q.duration or 0, q.is_keyframe, 0.0) for q in raw]
    best = float("inf")
    for _ in range(5):
        muxer = FragmentMuxer(info)
        started = time.perf_counter()
        for packet in packets:
            muxer.push(packet, 0.0)
        best = min(best, (time.perf_counter() - started) / len(packets))
    return best


def hub_side(args: argparse.Namespace) -> None:
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed to make the camera's clip")
    with tempfile.TemporaryDirectory(prefix="bench-hdlive-") as tmp:
        root = Path(tmp)
        sound = args.sound != "none"
        clip = camera_clip(args.data, root, sound, PLAYS[args.short])
        per_picture = mux_cost(clip)
        with RtspCamera(clip, audio=args.sound) as camera:
            hub = start_hub(root / "data", camera.url, sound)
            try:
                assert hub.web is not None
                base = f"http://127.0.0.1:{hub.web.port}"
                info = hub.cameras[0].streams["main"].info
                assert info is not None
                windows = measure_cpu(hub, base, args.short)
                playback = (
                    "--no-browser"
                    if args.no_browser
                    else browser_lag(base, BROWSER_SECONDS[args.short])
                )
            finally:
                hub.stop()
    report(windows, playback, info.width, info.height, args.sound)
    print(f"muxing (hub/fmp4.py, Annex B in): {per_picture * 1e6:.0f} µs per picture")


# -- the viewers (child process) ----------------------------------------------------------


async def viewers_side(base: str) -> None:
    """Keeps `kind count` viewers open as stdin last said, reading everything sent."""
    loop = asyncio.get_running_loop()

    async def watch(session: aiohttp.ClientSession, kind: str) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            if kind == "hd":
                async with session.ws_connect(base + "/api/cameras/door/live.ws") as ws:
                    async for _message in ws:
                        pass
            else:
                async with session.get(base + "/api/cameras/door/live.mjpeg") as resp:
                    while await resp.content.read(65536):
                        pass

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.post(
            base + "/api/login", json={"password": PASSWORD}, headers={"Origin": base}
        ) as resp:
            resp.raise_for_status()
        tasks: list[asyncio.Task[None]] = []
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line in ("quit", ""):
                break
            kind, count = line.split()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = [asyncio.create_task(watch(session, kind)) for _ in range(int(count))]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="short windows (CI), < 60 s")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    parser.add_argument("--sound", choices=("none", "aac", "alaw"), default="none")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(viewers_side(args.client))
    else:
        hub_side(args)


if __name__ == "__main__":
    main()
