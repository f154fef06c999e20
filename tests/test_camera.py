"""A Camera against a real camera stream, through to sealed segments that play back."""

from __future__ import annotations

import io
import itertools
import time
from pathlib import Path

import av
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub.archive import Archive, RetentionPolicy
from hub.camera import Camera
from hub.config import CameraSettings
from hub.daemon import IndexedEvents
from hub.store import Index, SegmentRow, SegmentState

NO_LIMITS = RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0)


def wait_for_segments(camera: Camera, index: Index, count: int, timeout: float) -> None:
    """Until `count` segments are complete; fails early with the camera's own error."""
    deadline = time.monotonic() + timeout
    while True:
        done = [s for s in index.segments(limit=1000) if s.state is SegmentState.COMPLETE]
        if len(done) >= count:
            return
        errors = [status.last_error for status in camera.status if status.last_error]
        if errors or time.monotonic() > deadline:
            pytest.fail(f"{len(done)} of {count} segments recorded; capture errors: {errors}")
        time.sleep(0.1)


def played(mp4: bytes) -> tuple[str, str, list[av.VideoFrame]]:
    """(container format, codec, every decoded picture) of a decrypted segment."""
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        return container.format.name, stream.codec_context.name, list(container.decode(stream))


def test_mjpeg_camera_is_encoded_once_and_recorded(mjpeg_camera: str, tmp_path: Path) -> None:
    # MJPEG cannot be stream-copied into MP4: the camera must encode it to H.264 to
    # record it at all (it used to record nothing, silently).
    owner = X25519PrivateKey.generate()
    settings = CameraSettings(id="door", name="door", url=mjpeg_camera, record="continuous")
    with Index(tmp_path / "index.sqlite3") as index:
        archive = Archive(tmp_path, index, owner.public_key(), NO_LIMITS)
        camera = Camera(settings, 1.0, archive, IndexedEvents(index, archive))
        camera.start()
        try:
            wait_for_segments(camera, index, 2, timeout=30)
        finally:
            camera.stop()  # seals the open segment too
        rows: list[SegmentRow] = sorted(index.segments(limit=1000), key=lambda s: s.start_time)
        mp4s = [b"".join(archive.read_segment(row.id, owner)) for row in rows]

    assert len(rows) >= 3 and all(row.state is SegmentState.COMPLETE for row in rows)
    for earlier, later in itertools.pairwise(rows):
        assert earlier.end_time is not None and earlier.end_time <= later.start_time + 0.01
    for row, mp4 in zip(rows, mp4s, strict=True):
        container, codec, pictures = played(mp4)
        assert "mp4" in container and codec == "h264"
        assert row.frames and len(pictures) == row.frames
        assert pictures[0].key_frame  # each segment plays from its first picture
        assert {(p.width, p.height) for p in pictures} == {(768, 432)}
