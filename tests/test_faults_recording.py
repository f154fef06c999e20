"""Recording under faults, end to end: a stalled camera, and kill -9 mid-segment.

Each test runs the real `camhub run` (as tests/test_daemon.py does) against its own real
RTSP camera (tests/rtsp_camera.py), and reads the result as the owner would: the index,
`camhub decrypt` and ffprobe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from clips import reencode
from rtsp_camera import RtspCamera, camera_fixture
from test_daemon import (
    CLIP_FPS,
    COMMAND_TIMEOUT,
    CONNECTED,
    HubProcess,
    decrypt,
    decrypt_many,
    new_site,
    probe,
    read_index,
    sealed_files,
)

from hub.store import Index, SegmentState

STALL_SECONDS = 12.0  # longer than the camera's 10 s read timeout: the hub reconnects
KEYFRAME_SECONDS = 5  # a long GOP, as many IP cameras are set to
KILL_AFTER = 4.0  # seconds into a segment: inside its first GOP
MAX_LOSS = 3.0  # seconds of footage a kill -9 may cost (DESIGN.md §10)


@pytest.fixture(scope="module")
def long_gop_clip(person_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of the person clip at 1 Mbit/s (a modest main stream), one keyframe per 5 s."""
    target = tmp_path_factory.mktemp("clips") / "long-gop.mp4"
    frames = KEYFRAME_SECONDS * CLIP_FPS
    return reencode(person_clip, target, seconds=20, keyframe_frames=frames, bitrate="1M")


own_camera = camera_fixture("person_clip")  # a camera of the test's own, free to be frozen
long_gop_camera = camera_fixture("long_gop_clip")


def probe_duration(video: Path) -> float:
    """The footage's length as ffprobe reads it from the file."""
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe not found: apt-get install ffmpeg")
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(video)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return float(json.loads(done.stdout)["format"]["duration"])


@pytest.mark.slow
def test_a_stalled_camera_does_not_stretch_segment_end_times(
    own_camera: RtspCamera, tmp_path: Path, hubs: Callable[[Path], HubProcess]
) -> None:
    # A camera frozen mid-segment stretched that segment's end in the index to 13.2 s
    # for 3.5 s of video: the end was taken from wall-clock arrival, not the footage.
    site = new_site(tmp_path, own_camera.url, record="continuous", segment_seconds=4)
    hub = hubs(site.config)
    hub.wait_for(CONNECTED, timeout=20)
    time.sleep(5.5)  # one whole segment, then into the next
    own_camera.freeze()
    frozen = time.time()
    try:
        hub.wait_for("camera door: disconnected", timeout=STALL_SECONDS + 10)
        time.sleep(max(0.0, frozen + STALL_SECONDS - time.time()))
    finally:
        own_camera.thaw()
    hub.wait_for(CONNECTED, timeout=30, count=2)
    time.sleep(5.0)
    assert hub.terminate() == 0, hub.log

    segments, _ = read_index(site)
    assert segments and all(s.state is SegmentState.COMPLETE for s in segments), segments
    assert any(s.start_time < frozen for s in segments), segments
    assert any(s.start_time > frozen + STALL_SECONDS for s in segments), segments
    outs = [tmp_path / f"{s.id}.mp4" for s in segments]
    pairs = list(zip(segments, outs, strict=True))
    done = decrypt_many(site, [(site.data / s.path, out, ()) for s, out in pairs])
    assert all(d.returncode == 0 for d in done), [d.stderr for d in done]
    lengths = [(round(s.end_time - s.start_time, 2), probe_duration(out)) for s, out in pairs]
    assert all(abs(index - footage) <= 0.05 for index, footage in lengths), lengths


@pytest.mark.slow
def test_kill_9_inside_a_long_gop_loses_at_most_a_few_seconds(
    long_gop_camera: RtspCamera, tmp_path: Path, hubs: Callable[[Path], HubProcess]
) -> None:
    # With a 5 s keyframe interval the muxer held the whole GOP: killed 4 s into a
    # segment, the hub had written nothing of it and recovery deleted it.
    site = new_site(tmp_path, long_gop_camera.url, record="continuous", segment_seconds=30)
    hub = hubs(site.config)
    hub.wait_for(CONNECTED, timeout=20)
    deadline = time.monotonic() + 20
    while not (files := sealed_files(site, ".seg")):
        assert time.monotonic() < deadline and hub.running, f"no segment opened:\n{hub.log}"
        time.sleep(0.02)
    (victim,) = files
    time.sleep(KILL_AFTER)
    hub.kill9()
    killed = time.time()
    with Index(site.data / "index.sqlite3") as index:
        (row,) = index.open_segments()
    assert row.id == victim.stem

    again = hubs(site.config)
    again.wait_for("recording 1 camera(s)", timeout=20)
    assert again.terminate() == 0, again.log
    segments, _ = read_index(site)
    recovered = [s for s in segments if s.id == row.id]
    assert recovered, f"the segment in flight was lost whole:\n{again.log}"
    assert recovered[0].state is SegmentState.RECOVERED
    out = tmp_path / "partial.mp4"
    done = decrypt(site, victim, out, "--partial")
    assert done.returncode == 0, done.stderr
    frames, _, _ = probe(out)  # plays up to its cut: every sealed frame decodes
    lost = (killed - row.start_time) - frames / CLIP_FPS
    assert lost <= MAX_LOSS, f"{lost:.1f} s lost of {killed - row.start_time:.1f} s"
