"""Real clips re-encoded for a test's needs (B-frames, a long keyframe interval), by ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def reencode(
    source: Path, target: Path, *, seconds: float, keyframe_frames: int, b_frames: int = 0
) -> Path:
    """The first `seconds` of `source` as H.264 MP4 with a fixed GOP and `b_frames` B-frames."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed to re-encode test clips (Debian package: ffmpeg)")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-t", f"{seconds:g}", "-an",
         "-c:v", "libx264", "-preset", "veryfast", "-bf", str(b_frames),
         "-g", str(keyframe_frames), "-keyint_min", str(keyframe_frames),
         "-sc_threshold", "0", str(target)],
        check=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    return target
