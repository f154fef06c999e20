"""The recording daemon end to end, through its real command line.

Every test runs `camhub` as a subprocess against a real RTSP camera (tests/rtsp_camera.py)
serving real footage, and checks the result the way the owner would: the index, the
sealed files on disk, `camhub decrypt` and ffprobe. No mocks anywhere.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from rtsp_camera import RtspCamera, serving

from hub.store import EventRow, Index, SegmentRow, SegmentState
from hub.vault import HEADER_SIZE, SEALED_CHUNK_SIZE

PASSWORD = "correct horse battery staple"
CLIP_FPS = 10  # one-by-one-person-detection.mp4, see shared/data/README.md
CLIP_SIZE = (768, 432)
COMMAND_TIMEOUT = 60.0  # any single camhub/ffprobe command
STOP_TIMEOUT = 20.0  # SIGTERM to exit
CONNECTED = "connected to rtsp://"
PRE_ROLL = 3.0  # seconds, for the motion hub
KEYFRAME_INTERVAL = 1.0  # seconds, in the clip

# Plaintext that must never reach the data directory. Each pattern is a signature as
# it appears in a real file, pinned down enough that random ciphertext (a few MB here)
# cannot match by chance: a 3-byte JPEG SOI alone would turn up in ~1 run in 30.
LEAK_PATTERNS: dict[str, re.Pattern[bytes]] = {
    # An MP4 box header: 32-bit size (under 256 MiB) then the box type.
    "MP4 box (ftyp/moov/mdat/moof)": re.compile(
        rb"\x00[\x00-\x0f][\x00-\xff]{2}(?:ftyp|moov|mdat|moof)"
    ),
    # JPEG start of image, then a DQT/APPn marker with its (short) length's high byte.
    "JPEG SOI + marker": re.compile(rb"\xff\xd8\xff[\xdb\xe0-\xef]\x00"),
    # An H.264 Annex B start code (the 3-byte form is the tail of the 4-byte one) opening
    # a sequence parameter set, then its profile (baseline, main, extended, high...).
    "H.264 start code + SPS": re.compile(rb"\x00\x00\x01\x67[\x42\x4d\x58\x64\x6e\x7a\xf4]"),
}


# -- running camhub ---------------------------------------------------------------------


def camhub_command() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("camhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]


def camhub(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one short camhub command to completion."""
    return subprocess.run(
        [*camhub_command(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


class HubProcess:
    """`camhub run --config FILE` as a subprocess, its log (stdout + stderr) in a file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*camhub_command(), "run", "--config", str(config)],
            cwd=config.parent,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, text: str, timeout: float, *, count: int = 1) -> float:
        """Wait until `text` is in the log `count` times; the time.time() it was seen."""
        deadline = time.monotonic() + timeout
        while self.log.count(text) < count:
            if not self.running:
                pytest.fail(
                    f"camhub run exited ({self.proc.returncode}) before {text!r}:\n{self.log}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no {text!r} (x{count}) in the hub's log after {timeout} s:\n{self.log}"
                )
            time.sleep(0.05)
        return time.time()

    def terminate(self) -> int:
        """SIGTERM, as systemd stops it; the exit status."""
        assert self.running, f"camhub run died early ({self.proc.returncode}):\n{self.log}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"camhub run did not stop within {STOP_TIMEOUT} s of SIGTERM:\n{self.log}")

    def kill9(self) -> None:
        """A power cut, as far as the process can tell."""
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)

    def close(self) -> None:
        if self.running:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._log.close()


@contextmanager
def hub_processes() -> Iterator[Callable[[Path], HubProcess]]:
    """Start `camhub run` processes; every one still alive at the end is killed."""
    started: list[HubProcess] = []

    def start(config: Path) -> HubProcess:
        hub = HubProcess(config, config.with_suffix(f".{len(started)}.log"))
        started.append(hub)
        return hub

    try:
        yield start
    finally:
        for hub in started:
            hub.close()


# -- data directories, configs and reading results --------------------------------------


@dataclass(frozen=True)
class Site:
    """One initialised data directory with its config file."""

    root: Path  # holds the config, the password file and the logs
    data: Path
    config: Path
    password_file: Path

    @property
    def keys(self) -> Path:
        return self.data / "keys.json"

    def segments(self) -> list[Path]:
        """The sealed segment files on disk, indexed or not."""
        return sorted((self.data / "footage").rglob("*.seg"))


def new_site(
    root: Path, camera_url: str, *, record: str, segment_seconds: int, camera_extra: str = ""
) -> Site:
    """`camhub init` a data directory under `root` and write a one-camera config."""
    root.mkdir(parents=True, exist_ok=True)
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    data = root / "data"
    done = camhub("init", "--data-dir", data, "--password-file", password_file, cwd=root)
    assert done.returncode == 0, done.stderr
    config = root / "camhub.toml"
    config.write_text(
        f'[hub]\ndata_dir = "data"\n\n'
        # Several hubs run at once here: each serves its owner page on a free port.
        f'[web]\nlisten = "127.0.0.1:0"\n\n'
        f"[storage]\nsegment_seconds = {segment_seconds}\nmin_free_gb = 0\n\n"
        f'[[camera]]\nid = "door"\nurl = "{camera_url}"\nrecord = "{record}"\n{camera_extra}'
    )
    return Site(root=root, data=data, config=config, password_file=password_file)


def read_index(site: Site) -> tuple[list[SegmentRow], list[EventRow]]:
    """Segments oldest first, and events, from the hub's own index."""
    with Index(site.data / "index.sqlite3") as index:
        segments = sorted(index.segments(limit=10_000), key=lambda s: s.start_time)
        return segments, index.events(limit=10_000)


def decrypt(site: Site, sealed: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return camhub(
        "decrypt",
        sealed,
        "--out",
        out,
        "--password-file",
        site.password_file,
        *extra,
        cwd=site.root,
    )


def decrypt_many(
    site: Site, jobs: list[tuple[Path, Path, tuple[str, ...]]]
) -> list[subprocess.CompletedProcess[str]]:
    """`decrypt` for each (sealed, out, extra args), a few at a time: each pays Argon2."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda job: decrypt(site, job[0], job[1], *job[2]), jobs))


def probe(video: Path) -> tuple[int, int, int]:
    """(frames decoded, width, height) of the first video stream, by ffprobe."""
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe not found: apt-get install ffmpeg")
    done = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames,width,height", "-of", "json", str(video),
        ],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    streams = json.loads(done.stdout or "{}").get("streams") or []
    assert streams, f"ffprobe found no video in {video}: {done.stderr}"
    stream = streams[0]
    return int(stream.get("nb_read_frames", 0)), stream["width"], stream["height"]


def leaks(data: bytes) -> list[str]:
    return [name for name, pattern in LEAK_PATTERNS.items() if pattern.search(data)]


def sealed_files(site: Site, suffix: str) -> set[Path]:
    return set((site.data / "footage").rglob(f"*{suffix}"))


# -- fixtures: one camera, and one recording session shared by several tests -----------


@pytest.fixture(scope="module")
def camera(person_clip: Path) -> Iterator[RtspCamera]:
    """One RTSP camera for the module, serving the person clip in a loop."""
    with serving(person_clip) as cam:
        yield cam


@dataclass(frozen=True)
class Session:
    """A continuous and a motion hub that recorded the same camera at the same time."""

    continuous: Site
    motion: Site
    connected: float  # when the continuous hub logged its connection (time.time())
    stopped: float  # when both were sent SIGTERM
    logs: dict[str, str]
    exit_codes: dict[str, int]


@pytest.fixture(scope="module")
def session(
    camera: RtspCamera,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Session]:
    """Run both hubs until someone has walked in and been recorded, then stop them."""
    root = tmp_path_factory.mktemp("session")
    continuous = new_site(root / "continuous", camera.url, record="continuous", segment_seconds=3)
    motion = new_site(
        root / "motion",
        camera.url,
        record="motion",
        segment_seconds=3,
        camera_extra=f"pre_roll = {PRE_ROLL}\npost_roll = 2.0\n",
    )
    with hub_processes() as hubs:
        cont_hub = hubs(continuous.config)
        motion_hub = hubs(motion.config)
        connected = cont_hub.wait_for(CONNECTED, timeout=20)
        motion_hub.wait_for(CONNECTED, timeout=20)
        # The first visitor enters 6 s into the clip; record a few seconds of them.
        motion_hub.wait_for("door: motion started", timeout=45)
        time.sleep(3.0)
        stopped = time.time()
        codes = {"continuous": cont_hub.terminate(), "motion": motion_hub.terminate()}
    yield Session(
        continuous=continuous,
        motion=motion,
        connected=connected,
        stopped=stopped,
        logs={"continuous": cont_hub.log, "motion": motion_hub.log},
        exit_codes=codes,
    )


# -- 1. init ----------------------------------------------------------------------------


def test_init_creates_keys_and_shows_the_recovery_code_once(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    data = tmp_path / "data"

    first = camhub("init", "--data-dir", data, "--password-file", password_file, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    codes = re.findall(r"\b[A-Z2-7]{5}(?:-[A-Z2-7]{5}){5}\b", first.stdout)
    assert len(codes) == 1, f"expected one recovery code in:\n{first.stdout}"
    keys = data / "keys.json"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    doc = json.loads(keys.read_text())
    assert {"public_key", "password", "recovery"} <= doc.keys()
    assert codes[0] not in keys.read_text() and PASSWORD not in keys.read_text()
    before = tree_state(data)

    second = camhub("init", "--data-dir", data, "--password-file", password_file, cwd=tmp_path)

    assert second.returncode == 1
    assert "already has owner keys; nothing was changed" in second.stderr
    assert not re.search(r"[A-Z2-7]{5}-[A-Z2-7]{5}", second.stdout + second.stderr)
    assert tree_state(data) == before


def tree_state(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file and directory under `root`: mode, mtime and content."""
    return {
        str(p.relative_to(root)): (
            p.stat().st_mode,
            p.stat().st_mtime_ns,
            p.read_bytes() if p.is_file() else b"",
        )
        for p in [root, *root.rglob("*")]
    }


# -- 2. continuous recording ------------------------------------------------------------


@pytest.mark.slow
def test_continuous_recording_stops_cleanly_and_every_segment_opens(
    session: Session, tmp_path: Path
) -> None:
    site, log = session.continuous, session.logs["continuous"]
    assert session.exit_codes["continuous"] == 0, log
    assert "received SIGTERM, stopping" in log and "stopped cleanly" in log, log
    assert "Traceback" not in log, log

    segments, _ = read_index(site)
    assert len(segments) >= 3, f"too few segments for {session.stopped - session.connected:.1f} s"
    assert all(s.state is SegmentState.COMPLETE for s in segments), segments
    assert {site.data / s.path for s in segments} == sealed_files(site, ".seg")
    for earlier, later in itertools.pairwise(segments):
        # Cut on keyframes, back to back: no packet lost or written twice between them.
        assert abs(later.start_time - earlier.end_time) < 0.3, (earlier, later)

    outs = [tmp_path / f"{segment.id}.mp4" for segment in segments]
    jobs = [(site.data / s.path, out, ()) for s, out in zip(segments, outs, strict=True)]
    results = decrypt_many(site, jobs)
    for segment, out, done in zip(segments, outs, results, strict=True):
        assert segment.size == (site.data / segment.path).stat().st_size
        assert done.returncode == 0, done.stderr
        frames, width, height = probe(out)
        assert (width, height) == CLIP_SIZE
        assert frames == segment.frames, segment
        assert segment.end_time is not None
        spanned = (segment.end_time - segment.start_time) * CLIP_FPS
        if segment is segments[-1]:
            # Cut by the stop mid-GOP: the clip's B-frames make the last pts run ahead.
            assert 0 < frames <= spanned + 1, segment
        else:
            assert frames == pytest.approx(spanned, abs=1), segment

    recorded = session.stopped - session.connected
    total = sum(s.frames or 0 for s in segments)
    assert total == pytest.approx(recorded * CLIP_FPS, rel=0.15, abs=10), (total, recorded)


# -- 3. nothing in the clear on disk ----------------------------------------------------


@pytest.mark.slow
def test_no_plaintext_footage_anywhere_in_the_data_dirs(session: Session, tmp_path: Path) -> None:
    scanned = 0
    for site in (session.continuous, session.motion):
        files = [p for p in site.data.rglob("*") if p.is_file()]
        assert any(p.suffix == ".seg" for p in files) and any(p.suffix == ".snap" for p in files)
        for path in files:
            data = path.read_bytes()
            scanned += len(data)
            assert not leaks(data), f"{path.relative_to(site.data)} holds {leaks(data)}"
    assert scanned > 200_000, scanned

    # The patterns do find what they look for: the same files, decrypted, are caught.
    site = session.motion
    segment = min(sealed_files(site, ".seg"), key=lambda p: p.stat().st_size)
    snapshot = next(iter(sealed_files(site, ".snap")))
    mp4, jpeg = tmp_path / "clear.mp4", tmp_path / "clear.jpg"
    assert decrypt(site, segment, mp4).returncode == 0
    assert decrypt(site, snapshot, jpeg).returncode == 0
    assert "MP4 box (ftyp/moov/mdat/moof)" in leaks(mp4.read_bytes())
    assert "JPEG SOI + marker" in leaks(jpeg.read_bytes())
    assert "H.264 start code + SPS" in leaks(annex_b(mp4, tmp_path / "clear.h264"))


def annex_b(mp4: Path, out: Path) -> bytes:
    """The H.264 of an MP4 as a camera sends it: start codes, SPS in band."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not found: apt-get install ffmpeg")
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c:v", "copy", "-bsf:v",
         "h264_mp4toannexb", "-f", "h264", str(out)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


# -- 4. motion mode ---------------------------------------------------------------------


@pytest.mark.slow
def test_motion_mode_records_events_with_sealed_snapshots(session: Session, tmp_path: Path) -> None:
    site, log = session.motion, session.logs["motion"]
    assert session.exit_codes["motion"] == 0, log
    assert "stopped cleanly" in log, log

    segments, events = read_index(site)
    assert events, f"no motion event in the index:\n{log}"
    assert all(e.end_time is not None for e in events), "clean stop left an event open"
    with_snapshots = [e for e in events if e.snapshot_id is not None]
    assert with_snapshots, events
    assert all(e.peak_score and e.bbox for e in with_snapshots), with_snapshots

    # Motion mode records around the event only, pre-roll included, and not before it.
    first = min(e.start_time for e in events)
    assert segments and all(s.state is SegmentState.COMPLETE for s in segments), segments
    slack = KEYFRAME_INTERVAL + 0.1  # recording starts on the keyframe at or before
    assert abs(segments[0].start_time - (first - PRE_ROLL)) <= slack, (segments[0], first)
    assert segments[-1].end_time is not None and segments[-1].end_time > first

    for event in with_snapshots:
        snaps = [p for p in sealed_files(site, ".snap") if p.stem == event.snapshot_id]
        assert len(snaps) == 1, f"snapshot {event.snapshot_id} not on disk"
        out = tmp_path / f"{event.id}.jpg"
        done = decrypt(site, snaps[0], out)
        assert done.returncode == 0, done.stderr
        jpeg = out.read_bytes()
        assert jpeg[:3] == b"\xff\xd8\xff" and jpeg.rstrip(b"\x00")[-2:] == b"\xff\xd9"
        assert re.search(rb"\xff\xc0\x00\x11\x08\x01\xb0\x03\x00", jpeg), "not a 768x432 JPEG"


# -- 5. kill -9, then start again -------------------------------------------------------


@pytest.mark.slow
def test_restart_after_kill_9_recovers_the_open_segment(
    camera: RtspCamera, tmp_path: Path, hubs: Callable[[Path], HubProcess]
) -> None:
    site = new_site(tmp_path, camera.url, record="continuous", segment_seconds=30)
    hub = hubs(site.config)
    hub.wait_for(CONNECTED, timeout=20)

    def open_segment_with_a_whole_chunk() -> Path | None:
        files = list(sealed_files(site, ".seg"))
        grown = [p for p in files if p.stat().st_size >= HEADER_SIZE + SEALED_CHUNK_SIZE]
        return grown[0] if len(files) == 1 and grown else None

    deadline = time.monotonic() + 30
    while (victim := open_segment_with_a_whole_chunk()) is None:
        assert time.monotonic() < deadline, f"segment never reached a whole chunk:\n{hub.log}"
        assert hub.running, hub.log
        time.sleep(0.1)
    time.sleep(0.3)  # part of the next chunk is in memory only, and dies with the process
    hub.kill9()
    on_disk = victim.stat().st_size
    with Index(site.data / "index.sqlite3") as index:
        assert [s.id for s in index.open_segments()] == [victim.stem]

    again = hubs(site.config)
    again.wait_for("recording 1 camera(s)", timeout=20)
    log = again.log
    recovery = f"door: segment {victim.stem[:8]}… recovered after an unclean stop"
    assert recovery in log, log
    assert log.index(recovery) < log.index("recording 1 camera(s)"), log
    again.wait_for(CONNECTED, timeout=20)
    time.sleep(2.5)
    assert again.terminate() == 0, again.log
    assert "stopped cleanly" in again.log

    segments, _ = read_index(site)
    assert not [s for s in segments if s.state is SegmentState.OPEN], segments
    states = {s.id: s.state for s in segments}
    assert states.pop(victim.stem) is SegmentState.RECOVERED, segments
    assert states and set(states.values()) == {SegmentState.COMPLETE}, segments
    assert {site.data / s.path for s in segments} == sealed_files(site, ".seg")

    recovered = next(s for s in segments if s.state is SegmentState.RECOVERED)
    sealed = site.data / recovered.path
    size = sealed.stat().st_size
    assert size == recovered.size and (size - HEADER_SIZE) % SEALED_CHUNK_SIZE == 0
    assert HEADER_SIZE < size <= on_disk
    complete = [s for s in segments if s.state is SegmentState.COMPLETE]
    refused_out, partial_out = tmp_path / "refused.mp4", tmp_path / "partial.mp4"
    outs = [tmp_path / f"{segment.id}.mp4" for segment in complete]
    refused, partial, *results = decrypt_many(
        site,
        [
            (sealed, refused_out, ()),
            (sealed, partial_out, ("--partial",)),
            *[(site.data / s.path, out, ()) for s, out in zip(complete, outs, strict=True)],
        ],
    )
    assert refused.returncode == 1 and "--partial" in refused.stderr, refused.stderr
    assert not refused_out.exists()
    assert partial.returncode == 0, partial.stderr
    frames, width, height = probe(partial_out)  # the fragments sealed before the kill
    assert frames > 0 and (width, height) == CLIP_SIZE
    for segment, out, done in zip(complete, outs, results, strict=True):
        assert done.returncode == 0, done.stderr
        assert probe(out) == (segment.frames, *CLIP_SIZE)


# -- 6. the camera drops and comes back -------------------------------------------------


@pytest.mark.slow
def test_hub_reconnects_after_the_camera_drops(
    person_clip: Path, tmp_path: Path, hubs: Callable[[Path], HubProcess]
) -> None:
    # A camera of its own: killing it must not disturb the others.
    with serving(person_clip) as cam:
        site = new_site(tmp_path, cam.url, record="continuous", segment_seconds=2)
        hub = hubs(site.config)
        hub.wait_for(CONNECTED, timeout=20)
        time.sleep(2.5)
        cam.kill()
        dropped = time.time()
        hub.wait_for("camera door: disconnected", timeout=15)
        time.sleep(1.0)
        assert hub.running, hub.log
        cam.start()  # same port, as a rebooted camera
        back = time.time()
        hub.wait_for(CONNECTED, timeout=30, count=2)
        time.sleep(3.0)
        assert hub.terminate() == 0, hub.log

    log = hub.log
    assert "stopped cleanly" in log and "Traceback" not in log, log
    segments, _ = read_index(site)
    assert all(s.state is SegmentState.COMPLETE for s in segments), segments
    before = [s for s in segments if s.start_time < dropped]
    after = [s for s in segments if s.start_time >= back]
    assert before, f"nothing recorded before the drop:\n{log}"
    assert after, f"nothing recorded after the camera came back:\n{log}"
    assert sum(s.frames or 0 for s in after) >= 2 * CLIP_FPS, after
    newest = after[-1]
    out = tmp_path / "after.mp4"
    done = decrypt(site, site.data / newest.path, out)
    assert done.returncode == 0, done.stderr
    assert probe(out) == (newest.frames, *CLIP_SIZE)


# -- 7. refusals ------------------------------------------------------------------------


@pytest.mark.slow
def test_decrypt_with_a_wrong_password_fails_and_writes_nothing(
    session: Session, tmp_path: Path
) -> None:
    site = session.continuous
    sealed = next(iter(sealed_files(site, ".seg")))
    wrong = tmp_path / "wrong"
    wrong.write_text("not the owner's password\n")
    out = tmp_path / "out.mp4"

    done = camhub("decrypt", sealed, "--out", out, "--password-file", wrong, cwd=tmp_path)

    assert done.returncode == 1
    assert done.stderr.startswith("camhub: wrong password"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()
    assert done.stdout == ""


def test_a_bad_config_stops_run_with_the_key_path(tmp_path: Path) -> None:
    config = tmp_path / "camhub.toml"
    config.write_text(
        '[hub]\ndata_dir = "data"\n\n'
        '[[camera]]\nid = "door"\nurl = "rtsp://127.0.0.1:8554/cam"\n\n'
        "[camera.motion]\nthreshold = 300\n"
    )

    done = camhub("run", "--config", config, cwd=tmp_path)

    assert done.returncode == 1
    assert "camera[0].motion.threshold: must be 1..255, got 300" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "data").exists(), "a refused config must not create the data dir"


def test_run_refuses_an_uninitialised_data_dir(tmp_path: Path) -> None:
    config = tmp_path / "camhub.toml"
    config.write_text('[hub]\ndata_dir = "data"\n\n[web]\nlisten = "127.0.0.1:0"\n')

    done = camhub("run", "--config", config, cwd=tmp_path)

    assert done.returncode == 1
    assert "run `camhub init` first" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
