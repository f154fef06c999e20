"""Peak memory of the hub while it serves long clips: sequential, concurrent, alternating.

Why: a clip is decrypted and assembled in memory, and the design gives all clips
together a budget (`hub.web.clips.CLIP_MEMORY`). An outside review showed the budget
held in Python objects but not in the process: alternating two ~110 MiB share clips
took the hub from 504 MB to 1.4-1.8 GB of RSS, past the unit's `MemoryMax=600M`. This
measures what the kernel sees (VmRSS and its peak, VmHWM) of a real `camhub run`
serving real footage over real sockets on 127.0.0.1.

Footage: the real person clip re-encoded at 2 Mbit/s (x264, CBR, B-frames, 2 s GOP,
like a modest IP camera's main stream), recorded by the hub's own `Recorder` in 4 s
segments and sealed by its own `Archive`, looped to the length asked for. Three clips
of that length are recorded back to back, each with an event over it.

It prints, never asserts (the machine is shared): the hub's RSS before the clips, its
peak over 10 sequential requests (a share holder's clip and the owner's alternating,
each read in full, so each is a new build when two do not fit the budget together)
and over 3 concurrent requests of the 3 different clips, and how each was answered.

    python bench/fault_clips.py [--short]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av

from hub.archive import Archive, RetentionPolicy
from hub.cli import init_data_dir
from hub.daemon import DataPaths, load_keyfile
from hub.media import Packet, StreamInfo
from hub.record import Recorder, RecordMode, RecordSettings
from hub.store import Index
from hub.vault import KdfParams
from hub.web.clips import CLIP_MEMORY

PASSWORD = "correct horse battery staple"
FAST_KDF = KdfParams(memory_kib=256, iterations=1, lanes=1)  # the bench is not about logins
BITRATE = "2M"
SOURCE_SECONDS = 40  # of the person clip, re-encoded once and looped
STARTUP_TIMEOUT = 60.0
MIB = 1024 * 1024
DATA_DIR = Path(
    os.environ.get("CAMHUB_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
PERSON_CLIP = DATA_DIR / "one-by-one-person-detection.mp4"


# -- footage --------------------------------------------------------------------------


def encode_source(clip: Path, out: Path, seconds: float = SOURCE_SECONDS) -> Path:
    """The clip's first `seconds` as a 2 Mbit/s camera would send it (a public sample,
    not a camera's footage: the hub under test never writes plaintext)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-t", str(seconds), "-i", str(clip), "-an",
         "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "20",
         "-b:v", BITRATE, "-minrate", BITRATE, "-maxrate", BITRATE, "-bufsize", "1M",
         "-x264-params", "nal-hrd=cbr", str(out)],
        check=True, timeout=300,
    )  # fmt: skip
    return out


@dataclass(frozen=True)
class Footage:
    """A data directory with `clips` back-to-back recordings and one event over each."""

    root: Path
    events: list[int]
    clip_bytes: list[int]  # sealed size of each event's segments


def record_footage(root: Path, source: Path, clips: int, seconds: float) -> Footage:
    """Record `clips` stretches of `seconds` each (the source looped) into a new data
    directory, through the hub's own Recorder and Archive, with an event over each."""
    paths = DataPaths(root)
    init_data_dir(paths, PASSWORD, kdf=FAST_KDF)
    index = Index(paths.index)
    try:
        keep_all = RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0)
        archive = Archive(root, index, load_keyfile(paths).public_key(), keep_all)
        settings = RecordSettings(mode=RecordMode.CONTINUOUS)
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            tb = stream.time_base
            assert tb is not None
            info = StreamInfo(ctx.name, ctx.width, ctx.height, tb, ctx.extradata, 10.0)
            packets = [
                (bytes(p), p.pts, p.dts, p.duration or 0, p.is_keyframe)
                for p in container.demux(stream)
                if p.size
            ]
        loop_ticks = max(p[1] for p in packets) + packets[-1][3]
        loop_seconds = float(loop_ticks * tb)
        recorder = Recorder("cam", settings, archive)
        recorder.start_stream(info)
        loops = int(clips * seconds / loop_seconds) + 1
        t0 = time.time() - loops * loop_seconds - 60  # recent: retention keeps it
        for n in range(loops):
            for data, pts, dts, duration, key in packets:
                shift = n * loop_ticks
                when = t0 + float((pts + shift) * tb)
                recorder.push(Packet(data, pts + shift, dts + shift, duration, key, when))
        recorder.close()
        events, sizes = [], []
        for n in range(clips):
            start, end = t0 + n * seconds, t0 + (n + 1) * seconds - 0.5
            event = index.add_event("cam", start)
            index.end_event(event, end_time=end, peak_score=0.1, peak_time=start, bbox=None)
            rows = index.segments_overlapping("cam", start, end)
            events.append(event)
            sizes.append(sum(row.size or 0 for row in rows))
    finally:
        index.close()
    return Footage(root, events, sizes)


# -- the hub --------------------------------------------------------------------------


@dataclass
class RunningHub:
    process: subprocess.Popen[bytes]
    url: str

    def status(self, field: str) -> int:
        """A /proc/<pid>/status figure in bytes (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise LookupError(field)

    def reset_peak(self) -> None:
        """Start VmHWM again from the current RSS (Linux >= 4.0; we are root in CI)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")


@contextmanager
def running_hub(root: Path, env: dict[str, str] | None = None) -> Iterator[RunningHub]:
    """`camhub run` on the footage, no cameras, plain HTTP on a free 127.0.0.1 port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    config = root / "camhub.toml"
    config.write_text(
        f'[hub]\ndata_dir = "{root}"\n[storage]\nmin_free_gb = 0\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\ntls = false\norigins = ["{url}"]\n'
    )
    script = Path(sys.executable).with_name("camhub")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]
    log = (root / "hub.log").open("wb")
    process = subprocess.Popen(
        [*command, "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "camhub did not start: " + (root / "hub.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)
        yield RunningHub(process, url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def owner_session(hub: RunningHub) -> aiohttp.ClientSession:
    client = _client()
    async with client.post(
        f"{hub.url}/api/login", json={"password": PASSWORD}, headers={"Origin": hub.url}
    ) as resp:
        if resp.status != 200:
            await client.close()
            raise RuntimeError(f"login: {resp.status} {await resp.text()}")
    return client


@dataclass(frozen=True)
class Viewer:
    """Someone who may watch one clip: the owner, or a share holder with its cookie."""

    client: aiohttp.ClientSession
    url: str


def owner_viewer(hub: RunningHub, owner: aiohttp.ClientSession, event: int) -> Viewer:
    return Viewer(owner, f"{hub.url}/api/events/{event}/clip.mp4")


async def share_viewer(hub: RunningHub, owner: aiohttp.ClientSession, event: int) -> Viewer:
    """A share of the event made by the owner, opened as the recipient's browser does."""
    origin = {"Origin": hub.url}
    share = {"event_id": event, "expires_in": 3600, "label": "bench"}
    async with owner.post(f"{hub.url}/api/shares", json=share, headers=origin) as resp:
        if resp.status != 201:
            raise RuntimeError(f"share: {resp.status} {await resp.text()}")
        path, _, secret = (await resp.json())["link"].partition("#")
    visitor = _client()
    async with visitor.post(
        f"{hub.url}{path}open", json={"secret": secret}, headers=origin
    ) as resp:
        if resp.status != 200:
            await visitor.close()
            raise RuntimeError(f"open share: {resp.status} {await resp.text()}")
    return Viewer(visitor, f"{hub.url}{path}clip.mp4")


async def fetch_clip(viewer: Viewer) -> tuple[int, int]:
    """The whole clip read and thrown away, as a download would: status and size."""
    size = 0
    async with viewer.client.get(viewer.url) as resp:
        async for piece in resp.content.iter_chunked(1 << 20):
            size += len(piece)
        return resp.status, size


@dataclass(frozen=True)
class Peaks:
    baseline: int  # RSS before any clip
    sequential: int  # peak RSS over the sequential requests
    concurrent: int  # peak RSS over the concurrent requests
    after: int  # RSS once done
    answers: list[tuple[int, int]]  # (status, size) of each request, sequential first


async def measure(hub: RunningHub, events: list[int], sequential: int, concurrent: int) -> Peaks:
    """Alternate a share holder's clip and the owner's `sequential` times (each time a
    new build if the two do not fit the budget together), then ask for `concurrent`
    different clips at once, the share's among them."""
    owner = await owner_session(hub)
    shared = await share_viewer(hub, owner, events[0])
    viewers = [shared, *(owner_viewer(hub, owner, event) for event in events[1:])]
    try:
        baseline = hub.status("VmRSS")
        hub.reset_peak()
        answers = [await fetch_clip(viewers[n % 2]) for n in range(sequential)]
        seq_peak = hub.status("VmHWM")
        hub.reset_peak()
        together = [viewers[-1 - n] for n in range(concurrent)]  # the share's clip last
        answers += await asyncio.gather(*(fetch_clip(viewer) for viewer in together))
        return Peaks(baseline, seq_peak, hub.status("VmHWM"), hub.status("VmRSS"), answers)
    finally:
        await owner.close()
        await shared.client.close()


# -- the bench ------------------------------------------------------------------------


def main(short: bool) -> None:
    """Print the hub's baseline and peak RSS serving 10 sequential and 3 concurrent
    clips (10 minutes each; 2 minutes each with `short`)."""
    if not PERSON_CLIP.exists():
        print(f"fault_clips: skipped, {PERSON_CLIP} is missing")
        return
    if shutil.which("ffmpeg") is None:
        print("fault_clips: skipped, ffmpeg is missing")
        return
    seconds = 120.0 if short else 600.0
    with tempfile.TemporaryDirectory(prefix="camhub-clips-") as tmp:
        started = time.monotonic()
        source = encode_source(PERSON_CLIP, Path(tmp) / "source.mp4")
        footage = record_footage(Path(tmp) / "data", source, clips=3, seconds=seconds)
        made = time.monotonic() - started
        with running_hub(footage.root) as hub:
            peaks = asyncio.run(measure(hub, footage.events, sequential=10, concurrent=3))
    size = max(size for _, size in peaks.answers)
    statuses = ", ".join(
        f"{status} x{n}" for status, n in Counter(s for s, _ in peaks.answers).items()
    )
    print(
        f"clips: {seconds / 60:.0f}-minute clips at {BITRATE}bit/s, {size / MIB:.0f} MiB each "
        f"({footage.clip_bytes[0] / MIB:.0f} MiB sealed; footage made in {made:.0f} s); "
        f"budget {CLIP_MEMORY / MIB:.0f} MiB"
    )
    print(f"clips: hub RSS before any clip              {peaks.baseline / MIB:7.0f} MiB")
    print(f"clips: peak RSS, 10 sequential (share/owner) {peaks.sequential / MIB:7.0f} MiB")
    print(f"clips: peak RSS, 3 concurrent, 3 clips       {peaks.concurrent / MIB:7.0f} MiB")
    print(f"clips: RSS afterwards                        {peaks.after / MIB:7.0f} MiB")
    print(f"clips: answers {statuses}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="2-minute clips, for CI")
    main(parser.parse_args().short)
