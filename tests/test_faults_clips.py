"""Clip memory holds in the process, not just in the cache's count (issue 8, item 10).

A real `camhub run` serves real footage (the person clip at 2 Mbit/s, recorded by the
hub's own Recorder and sealed by its Archive; see bench/fault_clips.py) over real
sockets, and the kernel's figures for its memory (VmRSS, VmHWM) are what is checked.
Before the fix, each clip stayed alive after the cache let it go (PyAV's containers sit
in reference cycles that held the whole output buffer until a garbage collection, and
aiohttp kept a connection's last response), and whole bodies were copied into the
socket's buffer: alternating two clips grew RSS by about a clip per request.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import mmap
import sys
import threading
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web

from hub.web import clips
from hub.web.clips import CLIP_MEMORY, ClipBusy, ClipCache

MIB = 1024 * 1024
CLIP_SECONDS = 300.0  # 5 minutes at 2 Mbit/s: about 72 MiB per clip
ALTERNATIONS = 8
# Besides the clips themselves: the parts and packets of the build under way, the
# sockets' buffers, and what the allocator keeps. Generous: the memory is not timed.
MARGIN = 64 * MIB


def _bench() -> ModuleType:
    """bench/fault_clips.py, whose footage and hub runner this test shares."""
    path = Path(__file__).resolve().parents[1] / "bench" / "fault_clips.py"
    spec = importlib.util.spec_from_file_location("fault_clips", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Any:
    tmp = tmp_path_factory.mktemp("clips")
    source = bench.encode_source(person_clip, tmp / "source.mp4")
    made = bench.record_footage(tmp / "data", source, clips=3, seconds=CLIP_SECONDS)
    assert all(60 * MIB < size < CLIP_MEMORY / 2 for size in made.clip_bytes), made.clip_bytes
    return made


def test_alternating_large_clips_keeps_rss_within_the_clip_budget(footage: Any) -> None:
    """A share holder's ~72 MiB clip and the owner's, asked for in turn (each time a new
    build: the two do not fit the budget together), then three different clips at once:
    the hub's peak RSS stays within its RSS before the clips plus the clip budget and a
    margin, for the share holder and the owner alike."""
    with bench.running_hub(footage.root) as hub:
        peaks = asyncio.run(bench.measure(hub, footage.events, ALTERNATIONS, concurrent=3))
    turns, together = peaks.answers[:ALTERNATIONS], peaks.answers[ALTERNATIONS:]
    assert [status for status, _ in turns] == [200] * ALTERNATIONS, turns
    assert all(size > 60 * MIB for _, size in turns), turns
    # At once, a build may wait for a clip being sent and, if none is freed in time,
    # answer "busy"; it never takes the memory anyway.
    assert all(status in (200, 503) for status, _ in together), together
    assert any(status == 200 for status, _ in together), together
    for peak in (peaks.sequential, peaks.concurrent):
        growth = peak - peaks.baseline
        assert growth < CLIP_MEMORY + MARGIN, (
            f"peak RSS {peak / MIB:.0f} MiB, {growth / MIB:.0f} MiB over the "
            f"{peaks.baseline / MIB:.0f} MiB before any clip"
        )


def _clip(size: int) -> memoryview:
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    return memoryview(memory).toreadonly()


def test_a_clip_still_being_sent_counts_until_it_is_freed() -> None:
    """The cache may let go of a clip a response still holds; its memory counts until
    the last view goes, and a build waits for it, then answers busy."""
    cache = ClipCache(max_bytes=100, wait=0.2)
    sending = cache.build("a", 60, lambda room: _clip(60))
    with pytest.raises(ClipBusy):
        cache.build("b", 60, lambda room: _clip(60))  # a is dropped, but still alive
    assert len(cache) == 0 and cache.live == 60
    del sending  # the response is done
    assert cache.live == 0
    assert len(cache.build("b", 60, lambda room: _clip(room))) == 100


def test_a_build_waiting_for_room_goes_ahead_when_a_response_ends() -> None:
    cache = ClipCache(max_bytes=100, wait=30.0)
    holder = [cache.build("a", 60, lambda room: _clip(60))]
    cache.drop(lambda key: True)
    built: list[memoryview] = []
    waiting = threading.Thread(target=lambda: built.append(cache.build("b", 60, _clip)))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and not built  # it waits for a's memory...
    holder.clear()  # ...which goes when a's response ends
    waiting.join(30)
    assert len(built) == 1 and len(built[0]) == 100 and cache.live == 100


def test_a_clip_still_being_sent_is_taken_back_not_built_twice() -> None:
    """A player's seek while its first response still streams the clip: the cache had
    let go of it for another clip, and takes it back instead of building a second copy
    (which would wait for the first to be freed)."""
    cache = ClipCache(max_bytes=100, ttl=-1.0, wait=0.2)  # every clip stale at once
    sending = cache.build("a", 60, lambda room: _clip(60))
    cache.evict_stale()  # let go of, but still being sent
    assert len(cache) == 0 and cache.live == 60
    again = cache.build("a", 60, lambda room: pytest.fail("built again"))
    assert again.obj is sending.obj and cache.live == cache.size == 60
    cache.drop(lambda key: key == "a")  # revoked: not taken back any more
    assert cache.get("a") is None
    del sending, again
    assert cache.live == 0


async def test_a_reader_that_stalls_is_cut_off_and_its_clip_freed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A share holder who reads a little of a clip and then stops must not hold its
    memory for good (every other clip would then wait for room, then be refused)."""
    monkeypatch.setattr(clips, "SEND_STALL", 1.0)
    memory = mmap.mmap(-1, 32 * MIB)
    freed = threading.Event()
    weakref.finalize(memory, freed.set)
    body: list[memoryview] = [memoryview(memory).toreadonly()]
    del memory

    async def clip(request: web.Request) -> web.Response:
        return clips.ranged(request, body.pop(), "video/mp4")

    app = web.Application()
    app.router.add_get("/clip.mp4", clip)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /clip.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await reader.read(4096)  # the reader takes a little, then nothing more
        freed_in_time = await asyncio.to_thread(freed.wait, 20.0)
        writer.close()
    finally:
        await runner.cleanup()
    assert freed_in_time, "the stalled response still holds its clip"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
