"""Shared fixtures: where the real camera clips live, an MJPEG camera serving one, an
owner's key pair and an index in a test's own folder, a real MQTT broker, a real S3
store (one per session, shared by the off-site tests), and `camhub run` processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from mosquitto import Broker
from s3_server import S3Server, S3Unavailable

from hub.store import Index

if TYPE_CHECKING:
    from test_daemon import HubProcess

DATA_DIR = Path(
    os.environ.get("CAMHUB_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
PERSON_CLIP = DATA_DIR / "one-by-one-person-detection.mp4"
CROWD_CLIP = DATA_DIR / "crowd-720p-h264.avi"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(
            f"real camera clip missing: {path} "
            "(put shared/data beside the repo or set CAMHUB_TEST_DATA)"
        )
    return path


@pytest.fixture(scope="session")
def person_clip() -> Path:
    return _require(PERSON_CLIP)


@pytest.fixture(scope="session")
def crowd_clip() -> Path:
    return _require(CROWD_CLIP)


@pytest.fixture(scope="session")
def crowd_av_clip(crowd_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crowd clip (H.264 + AAC) three times over as one MP4, which qtdemux can serve:
    41 s before the camera loops. Its sound is first cut to the video's 13.64 s (it runs
    0.17 s longer), so that where it repeats the two tracks still meet within 25 ms."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed to remux the crowd clip (Debian package: ffmpeg)")
    folder = tmp_path_factory.mktemp("clips")
    once, out = folder / "crowd-once.mp4", folder / "crowd-av.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-fflags", "+genpts", "-i", str(crowd_clip),
         "-t", "13.64", "-c", "copy", str(once)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-v", "error", "-stream_loop", "2", "-i", str(once), "-c", "copy", str(out)],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def owner() -> X25519PrivateKey:
    """The owner's key pair, as the vault seals footage to it."""
    return X25519PrivateKey.generate()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    """A new, real SQLite index in the test's folder."""
    with Index(tmp_path / "index.sqlite3") as idx:
        yield idx


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto on 127.0.0.1, with a password (tests/mosquitto.py)."""
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
def hubs() -> Iterator[Callable[[Path], HubProcess]]:
    """Starts `camhub run` processes; any still running at the end is stopped."""
    from test_daemon import hub_processes  # a test module's helper: imported when used

    with hub_processes() as start:
        yield start


@pytest.fixture
def mjpeg_camera(person_clip: Path) -> Iterator[str]:
    """ffmpeg serving the person clip (20 s of it) as MJPEG over HTTP (multipart), as
    cheap IP cameras do. It serves one client, once: a reconnect finds nobody."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed for the MJPEG camera (Debian package: ffmpeg)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}/video.mjpg"
    server = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-re", "-i", str(person_clip), "-t", "20", "-an",
         "-c:v", "mjpeg", "-q:v", "8", "-f", "mpjpeg", "-listen", "1", url],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Wait for it to listen without connecting, which would use up its one client.
        listening = f"0100007F:{port:04X} 00000000:0000 0A"
        deadline = time.monotonic() + 10
        while listening not in Path("/proc/net/tcp").read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("ffmpeg did not start serving MJPEG within 10 s")
            time.sleep(0.02)
        yield url
    finally:
        server.kill()
        server.wait()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    try:
        server.start()
    except S3Unavailable as err:
        server.kill()
        pytest.fail(str(err))
    try:
        yield server
    finally:
        server.kill()


_buckets = iter(range(10_000))


def new_bucket(s3: S3Server, *, locked: bool = False) -> str:
    """A fresh bucket (made beforehand, as camhub never makes one); `locked`: with
    object lock enabled (versioning on)."""
    name = f"cams-{next(_buckets)}-{int(time.time())}"
    s3.client().make_bucket(name, object_lock=locked)
    return name


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return new_bucket(s3)


@pytest.fixture
def locked_bucket(s3: S3Server) -> str:
    return new_bucket(s3, locked=True)
