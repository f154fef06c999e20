"""Real clips re-encoded for a test's needs (B-frames, a long keyframe interval), by ffmpeg.

Standard library only, so benches can use it too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def reencode(
    source: Path,
    target: Path,
    *,
    seconds: float,
    keyframe_frames: int,
    b_frames: int = 0,
    bitrate: str | None = None,
) -> Path:
    """The first `seconds` of `source` as H.264 MP4 with a fixed GOP, `b_frames` B-frames
    and, if given, a constant `bitrate` (e.g. "1M"); else the encoder's choice."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is needed to re-encode test clips (Debian package: ffmpeg)")
    rate = ["-b:v", bitrate, "-minrate", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-t", f"{seconds:g}", "-an",
         "-c:v", "libx264", "-preset", "veryfast", "-bf", str(b_frames),
         "-g", str(keyframe_frames), "-keyint_min", str(keyframe_frames),
         "-sc_threshold", "0", *(rate if bitrate else []), str(target)],
        check=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    return target
