"""The off-site copy against a real S3 server (SeaweedFS, tests/s3_server.py) and the
real `camhub run` with the synthetic porch camera: what reaches the bucket, that it is
sealed and opaque, and that outages, crashes and wrong keys lose nothing."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_server import S3Server, S3Unavailable
from test_daemon import PASSWORD, HubProcess, camhub, hub_processes, leaks

from hub.offsite import naming
from hub.vault import KeyFile, parse_header

WAIT = 90.0  # seconds for anything the hub does in the background (machines are noisy)
CONNECTED = "connected to synthetic:porch"
OBJECT_NAME = re.compile(r"([0-9a-f]{16})/(keys|f/[0-9a-f]{32}|j/[0-9a-f]{32})")


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


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A fresh bucket for each test (made beforehand, as camhub never makes one)."""
    name = f"cams-{next(_buckets)}-{int(time.time())}"
    s3.client().make_bucket(name)
    return name


def site(
    root: Path,
    s3: S3Server,
    bucket: str,
    *,
    record: str = "motion",
    what: str = "events",
    secret: str | None = None,
    endpoint: str | None = None,
    extra_storage: str = "",
) -> Path:
    """An initialised data dir and a config with the synthetic camera and [offsite]."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "password").write_text(PASSWORD + "\n")
    done = camhub("init", "--data-dir", root / "data", "--password-file", root / "password",
                  cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (root / "recovery").write_text(re.findall(r"[A-Z2-7]{5}(?:-[A-Z2-7]{5}){5}", done.stdout)[0])
    config = root / "camhub.toml"
    config.write_text(
        '[hub]\ndata_dir = "data"\n\n[web]\nlisten = "127.0.0.1:0"\ntls = false\n\n'
        f"[storage]\nsegment_seconds = 2\nmin_free_gb = 0\n{extra_storage}\n"
        f'[[camera]]\nid = "door"\nurl = "synthetic:porch"\nrecord = "{record}"\n'
        "pre_roll = 2.0\npost_roll = 2.0\n[camera.motion]\nquiet_seconds = 1.0\n\n"
        f'[offsite]\nendpoint = "{endpoint or s3.url}"\nbucket = "{bucket}"\n'
        f'prefix = "friends/house/"\nwhat = "{what}"\n'
        f'access_key = "{s3.access_key}"\nsecret_key = "{secret or s3.secret_key}"\n'
    )
    return config


def queue_rows(config: Path) -> list[tuple[str, str, str, int | None, str | None]]:
    """(id, kind, state, size, sha256) of every row of the off-site queue."""
    db = sqlite3.connect(f"file:{config.parent / 'data' / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT id, kind, state, size, sha256 FROM offsite ORDER BY id"
        ).fetchall()
    finally:
        db.close()


def local_files(config: Path) -> dict[str, Path]:
    return {p.name.partition(".")[0]: p for p in (config.parent / "data" / "footage").rglob("*.s*")}


def wait_until(check, what: str, hub: HubProcess | None = None, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if hub is not None and not hub.running:
            pytest.fail(f"camhub run exited before {what}:\n{hub.log}")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}" + (f"\n{hub.log}" if hub else ""))
        time.sleep(0.2)


def all_confirmed(config: Path, kinds: tuple[str, ...] = ("snapshot",)) -> bool:
    rows = queue_rows(config)
    return (
        bool(rows)
        and all(r[2] == "confirmed" for r in rows)
        and all(any(r[1] == kind for r in rows) for kind in kinds)
    )


def footage_objects(objects: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    return {name.rsplit("/", 1)[1]: data for name, data in objects.items() if "/f/" in name}


# -- events reach the bucket, sealed and opaque --------------------------------------------


def test_events_reach_the_bucket_sealed_under_opaque_names(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    config = site(tmp_path / "hub", s3, bucket)
    with hub_processes() as hubs:
        hub = hubs(config)
        hub.wait_for("door: motion ended", timeout=WAIT)
        wait_until(lambda: all_confirmed(config), "the event's files confirmed off-site", hub)
        assert hub.terminate() == 0, hub.log

    objects = s3.objects(bucket)
    rows = queue_rows(config)
    files = local_files(config)
    keyfile = KeyFile.from_json((config.parent / "data" / "keys.json").read_bytes())
    tag = naming.hub_tag(keyfile.public_bytes)
    # Names: the prefix, the hub's tag, then random ids; no camera name, no date.
    for name in objects:
        match = OBJECT_NAME.fullmatch(name.removeprefix("friends/house/"))
        assert match is not None and match[1] == tag, name
        assert "door" not in name and time.strftime("%Y-%m-%d", time.gmtime()) not in name
    # Every file the index lists is off-site byte for byte, with the checksum it recorded.
    stored = footage_objects(objects, "friends/house/")
    # A clean stop sent the segments the camera closed as it stopped, too.
    confirmed = {r[0]: r for r in rows if r[1] != "journal" and r[2] == "confirmed"}
    assert set(confirmed) == set(files) == set(stored)
    for file_id, (_, _, _, size, digest) in confirmed.items():
        data = files[file_id].read_bytes()
        assert stored[file_id] == data and size == len(data)
        assert digest == hashlib.sha256(data).hexdigest()
    assert any(r[1] == "snapshot" for r in rows) and any(r[1] == "segment" for r in rows)
    # Journals are sealed files of kind 3; nothing in the bucket is plaintext footage.
    journals = [data for name, data in objects.items() if "/j/" in name]
    assert journals and all(parse_header(j).kind == 3 for j in journals)
    for name, data in objects.items():
        assert leaks(data) == [], name
