"""What the alert benches share: the person clip, a hub in this process watching it as
one camera, and the on-CPU time of the hub's threads.

Used by bench_alerts.py and bench_events_page.py (run as scripts, so this folder is on
sys.path); it also puts tests/ there, for the real RTSP camera and broker they start.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hub.config import (
    CameraMotion,
    CameraSettings,
    Config,
    HubSettings,
    MqttSettings,
    StorageSettings,
    WebSettings,
)
from hub.daemon import Hub
from hub.vault import KdfParams, create_owner_keys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

DATA = Path(
    os.environ.get("CAMHUB_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
CLIP = "one-by-one-person-detection.mp4"
FAST_KDF = KdfParams(memory_kib=256, iterations=1, lanes=1)  # the benches are not about logins


@dataclass(frozen=True, slots=True)
class Window:
    """On-CPU time over a stretch of wall-clock time."""

    seconds: float
    cpu_ns: int

    @property
    def percent(self) -> float:
        return 100.0 * self.cpu_ns / 1e9 / self.seconds if self.seconds > 0 else 0.0


def cpu_line(threads: str, label: str, window: Window, target: float) -> str:
    """How a bench prints a CPU figure, with its verdict against `target` (%)."""
    verdict = "ok" if window.percent < target else "OVER"
    return (
        f"{threads} CPU, {label}: {window.percent:.3f} % of one core over "
        f"{window.seconds:.0f} s (target < {target:g} %: {verdict})"
    )


def threads_cpu(wanted: Callable[[str], bool]) -> int:
    """Nanoseconds on CPU so far of every thread alive now whose name is `wanted`, from
    /proc/self/task/<tid>/schedstat."""
    total = 0
    for thread in threading.enumerate():
        if thread.native_id is None or not wanted(thread.name):
            continue
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text()
        except OSError:
            continue  # ended meanwhile
        total += int(stat.split()[0])
    return total


def door_hub(
    data: Path, camera_url: str, password: str, motion: CameraMotion, mqtt: MqttSettings
) -> Hub:
    """A hub over a new data directory `data` with one camera, "door", recording its
    motion; the web page on 127.0.0.1 without TLS."""
    data.mkdir(mode=0o700, parents=True)
    keyfile, _ = create_owner_keys(password, kdf=FAST_KDF)
    (data / "keys.json").write_text(keyfile.to_json())
    camera = CameraSettings(
        id="door", name="Front door", url=camera_url, record="motion", motion=motion
    )
    return Hub(
        Config(
            hub=HubSettings(data_dir=data),
            storage=StorageSettings(min_free_gb=0),
            web=WebSettings(listen="127.0.0.1:0", tls=False),
            cameras=(camera,),
            mqtt=mqtt,
        )
    )


def find_clip(data: Path, bench: str) -> Path | None:
    """The person clip in `data`; None (having said so) when it is missing."""
    clip = data / CLIP
    if not clip.exists():
        print(f"{bench}: clip missing: {clip} (pass --data or set CAMHUB_TEST_DATA)")
        return None
    return clip
