"""Footage lost to kill -9: the seconds of the segment in flight that a crash costs.

Why: the design promises that a crash loses at most a couple of seconds of footage,
whatever the camera's keyframe interval. This runs the real `camhub run` against the
real RTSP test camera (tests/rtsp_camera.py) serving the person clip re-encoded with a
1 s and a 5 s keyframe interval, kills it with SIGKILL a few times at different points
of a segment, lets the next start recover the segment, and reads what survived as the
owner would (`camhub decrypt --partial`, then ffprobe counts the frames that decode).
Lost = (kill time - segment start) - frames / fps.

It prints, never asserts: the figures depend on the machine and its load.

    python bench/fault_kill.py [--short]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the RTSP test camera and the clip maker

from clips import reencode  # noqa: E402
from rtsp_camera import RtspCamera  # noqa: E402

from hub.store import Index  # noqa: E402

DATA = Path(os.environ.get("CAMHUB_TEST_DATA", ROOT.parent / "shared" / "data"))
CLIP = "one-by-one-person-detection.mp4"
FPS = 10  # the clip's frame rate
PASSWORD = "fault-kill bench password"
SEGMENT_SECONDS = 30  # longer than any kill offset: each kill hits the first segment
KILL_AFTER = (1.5, 3.0, 4.5, 6.0, 7.5)  # seconds into a segment
KILL_AFTER_SHORT = (2.5, 4.5)
WAIT = 30.0  # seconds for any one step (a start, a segment to open)


@dataclass(frozen=True)
class Case:
    keyframe_seconds: int
    bitrate: str  # ffmpeg's notation


CASES = (Case(1, "1M"), Case(5, "1M"))
# Only in the full run: a low bitrate, where the sealer's 64 KiB chunk dominates.
CASES_LOW_BITRATE = (Case(5, "256k"),)


class Hub:
    """`camhub run` in a data directory of its own, killed or stopped by its pid."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*_camhub(), "run", "--config", str(config)],
                cwd=config.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_for(self, text: str, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.log.read_text(errors="replace").count(text) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"camhub run: no {text!r}; see {self.log}")
            time.sleep(0.05)

    def kill9(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        killed = time.time()
        self.proc.wait(timeout=WAIT)
        return killed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=WAIT)


def _camhub() -> list[str]:
    script = Path(sys.executable).with_name("camhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]


def _run(*args: str | Path) -> str:
    done = subprocess.run(
        list(map(str, args)), capture_output=True, text=True, timeout=WAIT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(str(args[0])).name} failed: {done.stderr.strip()}")
    return done.stdout


def _site(root: Path, camera_url: str) -> tuple[Path, Path]:
    """An initialised data directory under `root`: (config, password file)."""
    password = root / "password"
    password.write_text(PASSWORD + "\n")
    _run(*_camhub(), "init", "--data-dir", root / "data", "--password-file", password)
    config = root / "camhub.toml"
    config.write_text(
        '[hub]\ndata_dir = "data"\n\n[web]\nlisten = "127.0.0.1:0"\n\n'
        f"[storage]\nsegment_seconds = {SEGMENT_SECONDS}\nmin_free_gb = 0\n\n"
        f'[[camera]]\nid = "door"\nurl = "{camera_url}"\nrecord = "continuous"\n'
    )
    return config, password


def _new_segment(data: Path, seen: set[Path], hub: Hub) -> Path:
    deadline = time.monotonic() + WAIT
    while True:
        fresh = set((data / "footage").rglob("*.seg")) - seen
        if fresh:
            return fresh.pop()
        if hub.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no segment opened; see {hub.log}")
        time.sleep(0.02)


def _frames(sealed: Path, password: Path, out: Path) -> int:
    """Frames that decode from what recovery kept of `sealed` (0 if it was dropped)."""
    if not sealed.exists():
        return 0
    _run(*_camhub(), "decrypt", sealed, "--out", out, "--password-file", password, "--partial")
    probe = _run(
        "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
        "-show_entries", "stream=nb_read_frames", "-of", "json", out,
    )  # fmt: skip
    out.unlink()
    streams = json.loads(probe).get("streams") or [{}]
    return int(streams[0].get("nb_read_frames", 0))


def losses(case: Case, kill_after: tuple[float, ...], work: Path) -> list[float]:
    """Seconds lost by each kill -9, `kill_after` seconds into a fresh segment."""
    clip = reencode(
        DATA / CLIP,
        work / "clip.mp4",
        seconds=20,
        keyframe_frames=case.keyframe_seconds * FPS,
        bitrate=case.bitrate,
    )
    camera = RtspCamera(clip)
    camera.start()
    try:
        config, password = _site(work, camera.url)
        data = work / "data"
        seen: set[Path] = set()
        kills: list[tuple[Path, float, float]] = []  # (segment, its start, kill time)
        hub = Hub(config, work / "hub.log")
        try:
            for after in kill_after:
                victim = _new_segment(data, seen, hub)
                seen.add(victim)
                time.sleep(after)
                killed = hub.kill9()
                with Index(data / "index.sqlite3") as index:
                    start = next(r.start_time for r in index.open_segments() if r.id == victim.stem)
                kills.append((victim, start, killed))
                hub = Hub(config, work / "hub.log")  # recovers the segment, then records on
                hub.wait_for("recording 1 camera(s)", count=len(kills) + 1)
        finally:
            hub.stop()
    finally:
        camera.kill()
    out = work / "partial.mp4"
    return [
        (killed - start) - _frames(victim, password, out) / FPS for victim, start, killed in kills
    ]


def main(short: bool) -> None:
    """Print the footage lost per kill -9 for each keyframe interval (median and max)."""
    kill_after = KILL_AFTER_SHORT if short else KILL_AFTER
    cases = CASES if short else CASES + CASES_LOW_BITRATE
    print("footage lost per kill -9 (seconds), killed", ", ".join(f"{s:g}" for s in kill_after),
          "s into a segment")  # fmt: skip
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="fault-kill-") as tmp:
            lost = losses(case, kill_after, Path(tmp))
        print(
            f"  keyframe every {case.keyframe_seconds} s, {case.bitrate}bit/s: "
            f"median {statistics.median(lost):.1f}, max {max(lost):.1f} "
            f"({', '.join(f'{x:.1f}' for x in lost)})",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="two kills per case (CI)")
    main(parser.parse_args().short)
