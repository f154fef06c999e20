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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rtsp_camera import CameraUnavailable, RtspCamera
from test_daemon import (
    COMMAND_TIMEOUT,
    CONNECTED,
    HubProcess,
    decrypt_many,
    hub_processes,
    new_site,
    read_index,
)

from hub.store import SegmentState

STALL_SECONDS = 12.0  # longer than the camera's 10 s read timeout: the hub reconnects


@pytest.fixture
def hubs() -> Iterator[Callable[[Path], HubProcess]]:
    with hub_processes() as start:
        yield start


@pytest.fixture
def own_camera(person_clip: Path) -> Iterator[RtspCamera]:
    """A camera of the test's own, free to be frozen."""
    camera = RtspCamera(person_clip)
    try:
        camera.start()
    except CameraUnavailable as err:
        pytest.fail(str(err))
    try:
        yield camera
    finally:
        camera.kill()


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
