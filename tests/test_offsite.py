"""The off-site copy against a real S3 server (SeaweedFS, tests/s3_server.py) and the
real `camhub run` with the synthetic porch camera: what reaches the bucket, that it is
sealed and opaque, and that outages, crashes and wrong keys lose nothing."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from s3_server import S3Server
from test_daemon import PASSWORD, HubProcess, camhub, hub_processes, leaks, probe

from hub import vault
from hub.archive import Archive, RetentionPolicy
from hub.cli import offsite_status_lines
from hub.config import OffsiteSettings, load_config
from hub.daemon import Hub
from hub.offsite import journal, naming, restore
from hub.offsite.bucket import PART_SIZE, Bucket
from hub.offsite.queue import Item, OffsiteQueue, Sent
from hub.offsite.uploader import OffsiteCopy
from hub.store import EventRow, Index, SegmentRow, SegmentState, SnapshotRow
from hub.vault import KeyFile, parse_header

WAIT = 90.0  # seconds for anything the hub does in the background (machines are noisy)
CONNECTED = "connected to synthetic:porch"
OBJECT_NAME = re.compile(r"([0-9a-f]{16})/(keys|f/[0-9a-f]{32}|j/[0-9a-f]{32})")


def site(
    root: Path,
    s3: S3Server,
    bucket: str,
    *,
    record: str = "motion",
    what: str = "events",
    secret: str | None = None,
    endpoint: str | None = None,
    extra_offsite: str = "",
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
        "[storage]\nsegment_seconds = 2\nmin_free_gb = 0\n\n"
        f'[[camera]]\nid = "door"\nurl = "synthetic:porch"\nrecord = "{record}"\n'
        "pre_roll = 2.0\npost_roll = 2.0\n[camera.motion]\nquiet_seconds = 1.0\n\n"
        f'[offsite]\nendpoint = "{endpoint or s3.url}"\nbucket = "{bucket}"\n'
        f'prefix = "friends/house/"\nwhat = "{what}"\n'
        f'access_key = "{s3.access_key}"\nsecret_key = "{secret or s3.secret_key}"\n'
        + extra_offsite
    )
    return config


def queue_rows(config: Path) -> list[tuple[str, str, str, int | None, str | None]]:
    """(id, kind, state, size, sha256) of every row of the off-site queue."""
    path = config.parent / "data" / "index.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'offsite'").fetchall():
            return []
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


def offsite_failures(log: str) -> list[str]:
    return [line for line in log.splitlines() if "off-site copy failing" in line]


def journal_entries(objects: dict[str, bytes], private_key) -> list[str]:
    """Every file id the bucket's journals name, once per mention."""
    named: list[str] = []
    for name, data in objects.items():
        if "/j/" in name:
            named += [f.row.id for f in journal.parse(vault.open_bytes(data, private_key)).files]
    return named


def owner_key(config: Path):
    keyfile = KeyFile.from_json((config.parent / "data" / "keys.json").read_bytes())
    return vault.unlock(keyfile, PASSWORD)


# -- outages, crashes, wrong keys ------------------------------------------------------------


def test_store_outage_loses_nothing_and_copies_each_file_once(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    # Paced at 3 Mbit/s, the files of this camera (about 1.4 Mbit/s) are on the wire
    # about half the time: the store is likely to die in the middle of one.
    config = site(tmp_path / "hub", s3, bucket, record="continuous", what="all",
                  extra_offsite="max_upload_mbps = 3.0\n")  # fmt: skip

    def pending() -> int:
        return sum(r[2] == "pending" for r in queue_rows(config))

    def confirmed() -> int:
        return sum(r[2] == "confirmed" and r[1] == "segment" for r in queue_rows(config))

    with hub_processes() as hubs:
        hub = hubs(config)
        wait_until(lambda: confirmed() >= 2, "two segments off-site", hub)
        s3.kill()  # the store dies, maybe in the middle of an upload
        try:
            hub.wait_for("off-site copy failing", timeout=WAIT)
            wait_until(lambda: pending() >= 3, "three segments queued while the store is down", hub)
        finally:
            s3.start()  # on the same directory: what it had confirmed is still there
        hub.wait_for("off-site copy working again", timeout=WAIT)
        wait_until(lambda: pending() == 0, "the queue drained after the outage", hub)
        assert hub.terminate() == 0, hub.log

    assert len(offsite_failures(hub.log)) == 1, hub.log  # one line, not one per retry
    objects = s3.objects(bucket)
    stored = footage_objects(objects, "friends/house/")
    files = local_files(config)
    rows = {r[0]: r for r in queue_rows(config) if r[1] != "journal"}
    assert set(stored) == set(files) == set(rows)
    assert all(r[2] == "confirmed" for r in rows.values())
    for file_id, path in files.items():
        data = path.read_bytes()
        assert stored[file_id] == data, file_id
        assert rows[file_id][4] == hashlib.sha256(data).hexdigest()
    named = journal_entries(objects, owner_key(config))
    assert sorted(named) == sorted(files)  # each file in exactly one journal


def test_a_pending_queue_survives_kill_9_and_is_sent_after_restart(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{_closed_port()}"
    config = site(tmp_path / "hub", s3, bucket, endpoint=closed)
    with hub_processes() as hubs:
        hub = hubs(config)
        hub.wait_for("door: motion ended", timeout=WAIT)
        wait_until(
            lambda: any(r[1] == "snapshot" for r in queue_rows(config)), "the snapshot queued", hub
        )
        hub.kill9()
        before = {r[0] for r in queue_rows(config) if r[2] == "pending"}
        assert before and not s3.objects(bucket)
        assert len(offsite_failures(hub.log)) == 1, hub.log
        config.write_text(config.read_text().replace(closed, s3.url))
        hub = hubs(config)
        wait_until(
            lambda: before <= {r[0] for r in queue_rows(config) if r[2] == "confirmed"},
            "every file pending at the crash confirmed off-site",
            hub,
        )
        assert hub.terminate() == 0, hub.log

    stored = footage_objects(s3.objects(bucket), "friends/house/")
    files = local_files(config)
    for file_id in before:
        assert stored[file_id] == files[file_id].read_bytes(), file_id


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("secret", "access denied: check access_key and secret_key"),
        ("bucket", "the bucket does not exist (camhub never creates it)"),
    ],
)
def test_a_wrong_key_or_missing_bucket_is_one_clear_error_and_recording_goes_on(
    s3: S3Server, bucket: str, tmp_path: Path, fault: str, message: str
) -> None:
    wrong = "not-the-secret-" + s3.secret_key[:6]
    config = site(
        tmp_path / "hub",
        s3,
        bucket + "-gone" if fault == "bucket" else bucket,
        record="continuous",
        what="all",
        secret=wrong if fault == "secret" else None,
    )
    with hub_processes() as hubs:
        hub = hubs(config)
        hub.wait_for("off-site copy failing", timeout=WAIT)
        recorded = len(local_files(config))
        wait_until(lambda: len(local_files(config)) >= recorded + 3, "recording going on", hub)
        status = camhub("offsite", "status", "--config", config, cwd=config.parent)
        url, opener = owner(hub)
        with opener.open(url + "api/cameras", timeout=30) as resp:
            (camera,) = json.loads(resp.read())
        assert hub.terminate() == 0, hub.log

    (line,) = offsite_failures(hub.log)
    assert message in line, line
    assert wrong not in hub.log and s3.secret_key not in hub.log
    assert "stopped cleanly" in hub.log
    assert status.returncode == 0, status.stderr
    assert message in status.stdout and wrong not in status.stdout
    # The page shows it on the camera, with what waits (nothing sent since the start).
    shown = camera["status"]["offsite"]
    assert shown["working"] is False and message in shown["error"]
    assert shown["pending"] >= 1 and wrong not in json.dumps(camera)
    assert not footage_objects(s3.objects(bucket), "")


def owner(hub: HubProcess) -> tuple[str, urllib.request.OpenerDirector]:
    """The hub's page URL and a client logged in as the owner (cookies kept)."""
    hub.wait_for("owner page at", timeout=WAIT)
    url = re.search(r"owner page at (\S+)", hub.log)[1]
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = urllib.request.Request(
        url + "api/login",
        data=json.dumps({"password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json", "Origin": url.rstrip("/")},
    )
    with opener.open(login, timeout=60) as resp:
        assert resp.status == 200
    return url, opener


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- local retention keeps what is not yet off-site -------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 24 MiB filesystem (tmpfs), to fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", mount],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the tests run as root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=False)


def test_retention_keeps_footage_not_yet_off_site_until_the_disk_would_fill(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    old = now - 5 * 86400
    owner = X25519PrivateKey.generate()
    keyfile, _ = vault.create_owner_keys(PASSWORD, kdf=vault.KdfParams(8 * 1024, 1, 1))
    settings = OffsiteSettings(endpoint="http://127.0.0.1:9", bucket="never-contacted",
                               access_key="a", secret_key="b")  # fmt: skip
    with Index(small_disk / "index.sqlite3") as index:
        copy = OffsiteCopy(settings, index, small_disk, keyfile, {})
        floor = 8 * 2**20
        policy = RetentionPolicy(1, 0, floor, keep_newest_seconds=0)
        archive = Archive(small_disk, index, owner.public_key(), policy,
                          on_sealed=copy.file_sealed, keep=copy.keep)  # fmt: skip
        ids = []
        for i in range(3):
            out = archive.open_segment("door", old + 4 * i)
            out.write(os.urandom(2**20))
            out.finish(old + 4 * i + 4, frames=40)
            ids.append(out.row.id)
        snapshot = archive.save_snapshot("door", None, old + 1, b"\xff\xd8 jpeg")
        # The queue holds every one of them; only the first made it off-site.
        assert {i.id for i in copy.queue.next_pending(10)} == {*ids, snapshot}
        sent = copy.queue.next_pending(10)
        copy.queue.confirm([Sent(i, 1, "0" * 64) for i in sent if i.id == ids[0]], now)

        report = archive.enforce_retention(now)
        left = {s.id for s in index.segments()}
        assert (report.segments, report.by_age, report.not_offsite) == (1, 1, 0)
        assert left == set(ids[1:]) and index.get_snapshot(snapshot) is not None

        # Fill the disk: the pending files go after all, and the log says so.
        filler = small_disk / "filler"
        free = shutil.disk_usage(small_disk).free
        filler.write_bytes(b"\0" * (free - floor + 2**20 + 2**19))
        with caplog.at_level(logging.WARNING):
            report = archive.enforce_retention(now)
        assert report.by_free_space >= 1 and report.not_offsite == report.by_free_space
        assert any("not yet copied off-site" in line for line in report.lines())
        copy.queue.close()


# -- restore on a new box ------------------------------------------------------------------


def test_restore_into_an_empty_directory_lists_events_plays_and_decrypts(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    config = site(tmp_path / "old", s3, bucket)
    with hub_processes() as hubs:
        hub = hubs(config)
        hub.wait_for("door: motion ended", timeout=WAIT)
        wait_until(lambda: all_confirmed(config), "the event's files off-site", hub)
        assert hub.terminate() == 0, hub.log
    with Index(config.parent / "data" / "index.sqlite3") as index:
        events = index.events(limit=100)
    originals = local_files(config)

    # The new box has the config, the recovery code and nothing else of the old one.
    new = tmp_path / "new"
    new.mkdir()
    new_config = new / "camhub.toml"
    new_config.write_text(re.sub(r"\[\[camera\]\].*?\n\n", "", config.read_text(), flags=re.DOTALL))
    (new / "password").write_text(PASSWORD + "\n")
    code = config.parent / "recovery"
    listed = camhub("restore", "--config", new_config, "--list", "--recovery-code",
                    "--password-file", code, cwd=new)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        rf"door: \d+ segment\(s\), \d+ snapshot\(s\), {len(events)} event", listed.stdout
    )
    assert not (new / "data").exists()
    # With a copy of keys.json kept elsewhere, the password opens it instead.
    with_keys = camhub("restore", "--config", new_config, "--list", "--keys",
                       config.parent / "data" / "keys.json", "--password-file",
                       new / "password", cwd=new)  # fmt: skip
    assert with_keys.stdout == listed.stdout, with_keys.stderr
    without_code = camhub("restore", "--config", new_config, "--password-file", new / "password",
                          cwd=new)  # fmt: skip
    assert without_code.returncode == 1 and "--recovery-code" in without_code.stderr
    done = camhub("restore", "--config", new_config, "--recovery-code", "--password-file", code,
                  "--new-password-file", new / "password", cwd=new)  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = camhub("restore", "--config", new_config, "--recovery-code", "--password-file", code,
                   "--new-password-file", new / "password", cwd=new)  # fmt: skip
    assert again.returncode == 1 and "not empty" in again.stderr

    # The sealed files are back byte for byte, and the index lists the events.
    restored = local_files(new_config)
    assert set(restored) == set(originals)
    assert all(restored[k].read_bytes() == originals[k].read_bytes() for k in originals)
    with Index(new / "data" / "index.sqlite3") as index:
        assert [(e.id, e.start_time, e.snapshot_id) for e in index.events(limit=100)] == [
            (e.id, e.start_time, e.snapshot_id) for e in events
        ]
        assert index.last_audit("footage restored") is not None
    segment = next(p for p in restored.values() if p.suffix == ".seg")
    old_plain, new_plain = tmp_path / "old.mp4", tmp_path / "new.mp4"
    by_old = camhub("decrypt", originals[segment.stem], "--out", old_plain, "--password-file",
                    config.parent / "password", cwd=tmp_path)  # fmt: skip
    by_new = camhub("decrypt", segment, "--out", new_plain, "--password-file", new / "password",
                    cwd=tmp_path)  # fmt: skip
    assert by_old.returncode == 0 and by_new.returncode == 0, by_new.stderr
    assert new_plain.read_bytes() == old_plain.read_bytes()
    none = camhub("restore", "--config", new_config, "--list", "--since", "2999-01-01T00:00",
                  "--recovery-code", "--password-file", code, cwd=new)  # fmt: skip
    assert "the bucket holds no footage of this hub" in none.stdout, none.stderr
    in_bucket = set(s3.objects(bucket))

    # The restored hub serves the event's clip on the owner's page.
    with hub_processes() as hubs:
        hub = hubs(new_config)
        hub.wait_for("owner page at", timeout=WAIT)
        url, opener = owner(hub)
        with opener.open(url + "api/events", timeout=30) as resp:
            listed_events = json.loads(resp.read())["events"]
        assert {e["id"] for e in listed_events} == {e.id for e in events}
        with opener.open(url + listed_events[0]["clip_url"].lstrip("/"), timeout=60) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "video/mp4"
            clip = resp.read()
        assert hub.terminate() == 0, hub.log
    assert set(s3.objects(bucket)) == in_bucket  # the restored hub uploads nothing again
    (tmp_path / "clip.mp4").write_bytes(clip)
    frames, _, _ = probe(tmp_path / "clip.mp4")
    assert frames > 10


# -- in-process: multipart in bounded memory, expiry -------------------------------------------


def copy_for(s3: S3Server, bucket: str, root: Path, **settings: object):
    """A real Index, Archive and OffsiteCopy on `root`, copying to the real store."""
    keyfile, _ = vault.create_owner_keys(PASSWORD, kdf=vault.KdfParams(8 * 1024, 1, 1))
    offsite = OffsiteSettings(endpoint=s3.url, bucket=bucket, access_key=s3.access_key,
                              secret_key=s3.secret_key, **settings)  # fmt: skip
    index = Index(root / "index.sqlite3")
    copy = OffsiteCopy(offsite, index, root, keyfile, {})
    archive = Archive(root, index, keyfile.public_key(), RetentionPolicy(0, 0, 0),
                      on_sealed=copy.file_sealed, keep=copy.keep,
                      on_owner_delete=copy.owner_deleted)  # fmt: skip
    copy_for.keyfile = keyfile  # type: ignore[attr-defined]  # the last one made
    return index, copy, archive, naming.hub_tag(keyfile.public_bytes)


def confirmed_in(root: Path, states: tuple[str, ...] = ("confirmed",)) -> set[str]:
    """Ids the off-site queue under `root` holds in one of `states`."""
    db = sqlite3.connect(f"file:{root / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, state FROM offsite").fetchall()
    finally:
        db.close()
    return {file_id for file_id, state in rows if state in states}


def record_segment(archive: Archive, start: float, data: bytes) -> str:
    out = archive.open_segment("door", start)
    for i in range(0, len(data), 1 << 20):
        out.write(data[i : i + (1 << 20)])
    out.finish(start + 4, frames=40)
    return out.row.id


def test_a_large_file_goes_up_in_parts_without_being_read_whole(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    index, copy, archive, tag = copy_for(s3, bucket, tmp_path)
    try:
        segment = record_segment(archive, time.time(), os.urandom(40 * 2**20))
        path = tmp_path / index.get_segment(segment).path
        tracemalloc.start()
        try:
            stored = copy._bucket.put_file(naming.file_object("", tag, segment), path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        copy.queue.close()
        index.close()
    data = path.read_bytes()
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert stored.locked_until is None  # no lock asked for
    assert s3.objects(bucket)[naming.file_object("", tag, segment)] == data
    assert peak < 4 * PART_SIZE < len(data) / 1.9, peak  # a part at a time, not the file


def test_copies_older_than_keep_days_are_deleted_from_the_bucket(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    now = time.time()
    index, copy, archive, tag = copy_for(s3, bucket, tmp_path, keep_days=2)
    try:
        old = record_segment(archive, now - 3 * 86400, b"old footage" * 1000)
        new = record_segment(archive, now - 60, b"new footage" * 1000)
        copy.start()
        wait_until(lambda: new in confirmed_in(tmp_path), "the new segment off-site")
        queued = ("pending", "confirmed")
        wait_until(lambda: old not in confirmed_in(tmp_path, queued), "the old copy expired")
        copy.stop()
    finally:
        index.close()
    names = set(s3.objects(bucket))
    assert naming.file_object("", tag, new) in names
    assert naming.file_object("", tag, old) not in names
    assert naming.keys_object("", tag) in names
    assert any("/j/" in name for name in names)  # the new segment's journal stays


# -- the owner's deletion reaches the bucket; retention's does not ----------------------------


def in_bucket(s3: S3Server, bucket: str, tag: str, file_id: str) -> bool:
    return naming.file_object("", tag, file_id) in s3.objects(bucket)


def with_doomed_segment(s3: S3Server, bucket: str, root: Path, now: float):
    """copy_for's four, and a segment of ten minutes ago the owner is going to delete."""
    index, copy, archive, tag = copy_for(s3, bucket, root)
    doomed = record_segment(archive, now - 600, b"footage the owner deletes" * 500)
    return index, copy, archive, tag, doomed


def test_what_the_owner_deletes_is_deleted_off_site_and_retention_leaves_the_copy(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    now = time.time()
    index, copy, archive, tag = copy_for(s3, bucket, tmp_path)
    try:
        aged = record_segment(archive, now - 3 * 86400, b"footage past retention" * 500)
        doomed = record_segment(archive, now - 600, b"footage the owner deletes" * 500)
        kept = record_segment(archive, now - 300, b"footage the owner keeps" * 500)
        copy.start()
        wait_until(lambda: {aged, doomed, kept} <= confirmed_in(tmp_path), "all three off-site")

        # Local retention (by age) deletes the old file here, never its copy (§16).
        archive.policy = RetentionPolicy(1, 0, 0, keep_newest_seconds=0)
        assert archive.enforce_retention(now).by_age == 1
        assert index.get_segment(aged) is None and in_bucket(s3, bucket, tag, aged)

        # The owner deletes one: gone here and, soon, from the bucket.
        deletion = archive.delete_footage("door", now - 600, now - 599)
        assert (deletion.segments, deletion.offsite) == (1, 1)
        assert index.get_segment(doomed) is None
        wait_until(lambda: not in_bucket(s3, bucket, tag, doomed), "the copy deleted")
        wait_until(lambda: copy.queue.summary().owner_deleted == 1, "the deletion counted")
        summary = copy.queue.summary()
        copy.stop()
    finally:
        index.close()
    assert in_bucket(s3, bucket, tag, kept) and in_bucket(s3, bucket, tag, aged)
    assert doomed not in confirmed_in(tmp_path, ("pending", "confirmed"))
    assert summary.deletions_pending == 0 and summary.last_owner_delete is not None
    lines = offsite_status_lines(summary, time.time())
    assert any("0 object(s) still to delete off-site, 1 deleted" in line for line in lines)


def owner_request(
    opener: urllib.request.OpenerDirector, base: str, method: str, path: str, body: object = None
) -> tuple[int, dict]:
    """One request of the owner's page (JSON, same Origin); its status and answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Origin": base, "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with opener.open(request, timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"{}")


@contextmanager
def event_to_delete(config: Path) -> Iterator[tuple[Hub, Callable[[], dict]]]:
    """The hub running in this process, once an event has ended and its files are
    off-site, and the owner logged in: yields the hub and `delete()`, which deletes
    that event with the page's route and gives the answer. Stops the hub after."""
    hub = Hub(load_config(config))
    hub.start()
    try:
        assert hub.web is not None
        base = f"http://127.0.0.1:{hub.web.port}"
        wait_until(lambda: any(e.end_time for e in hub.index.events()), "an event ended")
        wait_until(lambda: all_confirmed(config), "the event's files off-site")
        event = next(e for e in hub.index.events() if e.end_time)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        assert owner_request(opener, base, "POST", "/api/login", {"password": PASSWORD})[0] == 200

        def delete() -> dict:
            status, answer = owner_request(opener, base, "DELETE", f"/api/events/{event.id}")
            assert status == 200
            return answer

        yield hub, delete
    finally:
        hub.stop()


def test_deleting_an_event_on_the_page_deletes_its_copies_in_the_bucket(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Through the running hub: the event's footage reaches the bucket, the owner
    deletes the event with the page's route, its copies go from the bucket, the rest
    stays, and `camhub offsite status` says how many went."""
    config = site(tmp_path / "hub", s3, bucket)
    with event_to_delete(config) as (_, delete):
        before = local_files(config)
        answer = delete()
        gone = set(before) - set(local_files(config))
        assert answer["offsite"] == len(gone)  # every file of the event was off-site
        assert gone, "the deletion deleted no file"
        keys = KeyFile.from_json((config.parent / "data" / "keys.json").read_bytes())
        tag = naming.hub_tag(keys.public_bytes)

        def copies(ids: set[str]) -> set[str]:
            names = set(s3.objects(bucket))
            return {i for i in ids if naming.file_object("friends/house/", tag, i) in names}

        wait_until(lambda: not copies(gone), "the deleted event's copies gone from the bucket")
        kept = {r[0] for r in queue_rows(config) if r[1] != "journal" and r[2] == "confirmed"}
        assert copies(kept) == kept  # the rest of the footage is still off-site
    status = camhub("offsite", "status", "--config", config, cwd=config.parent)
    assert status.returncode == 0, status.stderr
    assert f"0 object(s) still to delete off-site, {len(gone)} deleted" in status.stdout


def test_a_deletion_while_the_store_is_down_is_done_when_it_is_back(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    now = time.time()
    index, copy, archive, tag, doomed = with_doomed_segment(s3, bucket, tmp_path, now)
    try:
        copy.start()
        wait_until(lambda: doomed in confirmed_in(tmp_path), "the segment off-site")
        s3.kill()
        try:
            archive.delete_footage("door", now - 600, now - 599)
            wait_until(lambda: copy.queue.summary().last_error is not None, "the failure seen")
            assert copy.queue.summary().deletions_pending == 1
        finally:
            s3.start()
        wait_until(lambda: copy.queue.summary().deletions_pending == 0, "the deletion retried")
        copy.stop()
    finally:
        index.close()
    assert not in_bucket(s3, bucket, tag, doomed)


def test_a_file_the_owner_deletes_during_its_upload_is_not_kept_off_site(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """The upload thread took the file, the owner deletes it, the upload ends: the
    confirmation must not bring its row back, and its object must go."""
    now = time.time()
    index, copy, archive, tag, doomed = with_doomed_segment(s3, bucket, tmp_path, now)
    try:
        (taken,) = copy.queue.next_pending(16)  # as the thread takes it
        name = naming.file_object("", tag, doomed)
        path = tmp_path / index.get_segment(doomed).path
        stored = copy._bucket.put_file(name, path)  # the upload, under way
        archive.delete_footage("door", now - 600, now - 599)
        copy.queue.confirm([Sent(taken, stored.size, stored.sha256)], time.time())  # it ends
        assert doomed not in confirmed_in(tmp_path, ("pending", "confirmed"))
        assert in_bucket(s3, bucket, tag, doomed)
        copy.start()
        wait_until(lambda: not in_bucket(s3, bucket, tag, doomed), "the late copy deleted")
        copy.stop()
    finally:
        index.close()


def test_restore_rejects_altered_files_skips_forged_journals_and_reports_missing(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "old").mkdir()
    index, copy, archive, tag = copy_for(s3, bucket, tmp_path / "old")
    try:
        start = time.time() - 60
        ids = [record_segment(archive, start + 4 * i, os.urandom(3000)) for i in range(4)]
        copy.start()
        wait_until(lambda: set(ids) <= confirmed_in(tmp_path / "old"), "four segments off-site")
        copy.stop()
    finally:
        index.close()
    keyfile = copy_for.keyfile  # type: ignore[attr-defined]
    client = s3.client()
    names = [naming.file_object("", tag, i) for i in ids]
    altered = bytearray(s3.objects(bucket)[names[0]])
    altered[-1] ^= 1  # one bit of the last chunk
    client.put_object(bucket, names[0], io.BytesIO(altered), len(altered))
    swapped = s3.objects(bucket)[names[2]]  # another file of the owner's, under this name
    client.put_object(bucket, names[3], io.BytesIO(swapped), len(swapped))
    client.remove_object(bucket, names[1])
    for forged in (b"not sealed at all", vault.seal_bytes(b'{"format": 1}', keyfile.public_key(),
                                                         vault.FileKind.JOURNAL)):  # fmt: skip
        name = naming.journal_object("", tag, os.urandom(16).hex())
        client.put_object(bucket, name, io.BytesIO(forged), len(forged))

    settings = OffsiteSettings(endpoint=s3.url, bucket=bucket, access_key=s3.access_key,
                               secret_key=s3.secret_key)  # fmt: skip
    remote = Bucket(settings)
    held = restore.read_holdings(remote, "", tag, vault.unlock(keyfile, PASSWORD))
    assert len(held.unreadable) == 2 and set(held.files) == set(ids)
    new = tmp_path / "new"
    new.mkdir()
    with Index(new / "index.sqlite3") as fresh:
        queue = OffsiteQueue(new / "index.sqlite3")
        report = restore.rebuild(new, fresh, queue, remote, "", tag, held, time.time())
        queue.close()
        restored = {s.id for s in fresh.segments()}
    assert report.missing == (ids[1],)
    assert {r.split(":")[0] for r in report.rejected} == {ids[0], ids[3]}
    assert restored == {ids[2]}
    assert not list(new.rglob("*.tmp"))  # rejected downloads leave nothing behind


# -- the journal's parser trusts nothing (FORMAT.md §6.2) ---------------------------------------


def _journal_doc() -> dict[str, object]:
    segment = SegmentRow("a" * 32, "door", 100.0, 104.0, "", 5000, 40, SegmentState.COMPLETE, 104.0)
    snapshot = SnapshotRow("b" * 32, "door", 7, 102.0, "", 600)
    event = EventRow(7, "door", 101.0, 103.0, 0.04, 102.0, (0.1, 0.2, 0.3, 0.4), "b" * 32)
    files = (journal.JournalFile(segment, "c" * 64), journal.JournalFile(snapshot, "d" * 64))
    return json.loads(journal.build(journal.Journal("e" * 16, 105.0, files, (event,))))


def test_a_journal_reads_back_what_was_written() -> None:
    parsed = journal.parse(json.dumps(_journal_doc()).encode())
    assert [f.row.id for f in parsed.files] == ["a" * 32, "b" * 32]
    assert parsed.files[0].row.state is SegmentState.COMPLETE and parsed.files[1].row.event_id == 7
    assert parsed.events[0].bbox == (0.1, 0.2, 0.3, 0.4) and parsed.events[0].snapshot_id


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("format",), "camhub-keyfile", "not a version 1"),
        (("version",), 2, "not a version 1"),
        (("files", 0, "id"), "../../etc/passwd", "id"),
        (("files", 0, "camera"), "../x", "camera"),
        (("files", 0, "kind"), "keys", "file kind"),
        (("files", 0, "state"), "open", "state"),
        (("files", 0, "end"), 99.0, "ends before it starts"),
        (("files", 0, "size"), -1, "size"),
        (("files", 0, "size"), True, "size"),
        (("files", 0, "frames"), 1.5, "frames"),
        (("files", 0, "sha256"), "C" * 64, "sha256"),
        (("files", 1, "time"), float("inf"), "written|time"),
        (("files", 1, "event"), 2**63, "event"),
        (("events", 0, "bbox"), [1, 2, 3], "bbox"),
        (("events", 0, "snapshot"), "zz", "snapshot"),
        (("files", 0, "extra"), 1, "exactly"),
    ],
)
def test_a_journal_that_breaks_the_format_is_refused(
    path: tuple[object, ...], value: object, message: str
) -> None:
    doc = _journal_doc()
    target = doc
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    with pytest.raises(journal.JournalError, match=message):
        journal.parse(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "data", [b"\xff\xfe", b"[]", b"{" * 100_000, b"x" * (journal.MAX_SIZE + 1)]
)
def test_a_journal_that_is_not_json_is_refused(data: bytes) -> None:
    with pytest.raises(journal.JournalError):
        journal.parse(data)


def test_a_change_of_the_offsite_table_is_in_the_access_log(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    config = site(tmp_path / "hub", s3, bucket)
    with hub_processes() as hubs:
        for edit in (None, "keep_days = 30\n", "keep_days = 30\n"):
            if edit is not None:
                config.write_text(config.read_text().replace("keep_days = 30\n", "") + edit)
            hub = hubs(config)
            hub.wait_for("owner page at", timeout=WAIT)
            assert hub.terminate() == 0, hub.log
        config.write_text(config.read_text().replace(s3.secret_key, "a-new-secret-key"))
        hub = hubs(config)
        hub.wait_for("owner page at", timeout=WAIT)
        assert hub.terminate() == 0, hub.log

    shown = camhub("audit", "show", "--config", config, cwd=config.parent)
    changes = [line for line in shown.stdout.splitlines() if "config changed" in line]
    assert len(changes) == 2, shown.stdout  # keep_days added; the key replaced; not the rerun
    assert all('"changed":["offsite"]' in line for line in changes), changes
    assert "a-new-secret-key" not in shown.stdout and s3.secret_key not in shown.stdout


def test_the_queue_gives_event_footage_first_oldest_first_and_promotes(tmp_path: Path) -> None:
    with Index(tmp_path / "index.sqlite3"):
        pass
    queue = OffsiteQueue(tmp_path / "index.sqlite3")
    try:
        add = [
            Item("1" * 32, "segment", "door", 30.0, urgent=False),
            Item("2" * 32, "segment", "door", 20.0, urgent=True),
            Item("3" * 32, "segment", "yard", 10.0, urgent=False),
            Item("4" * 32, "snapshot", "door", 25.0, urgent=True),
        ]
        assert queue.add(add, 100.0) == 4
        assert [i.id[0] for i in queue.next_pending(10)] == ["2", "4", "3", "1"]
        # The same segment found to be an event's pre-roll: promoted, not added twice.
        assert queue.add([Item("3" * 32, "segment", "yard", 10.0, urgent=True)], 101.0) == 1
        assert [i.id[0] for i in queue.next_pending(10)] == ["3", "2", "4", "1"]
        queue.confirm([Sent(queue.next_pending(1)[0], 10, "0" * 64)], 102.0)
        assert queue.add([Item("3" * 32, "segment", "yard", 10.0, urgent=True)], 103.0) == 0
        assert not queue.is_pending("3" * 32) and queue.is_pending("1" * 32)
        assert queue.pending_by_camera() == {"door": (3, 100.0)}
        summary = queue.summary()
        assert (summary.pending, summary.urgent_pending, summary.confirmed) == (3, 2, 1)
    finally:
        queue.close()


def test_only_closed_files_are_queued(tmp_path: Path) -> None:
    """A segment whose row is still open (being written, or its index update waits for
    room) is not copied: its journal entry would name no end and no state."""
    keyfile, _ = vault.create_owner_keys(PASSWORD, kdf=vault.KdfParams(8 * 1024, 1, 1))
    settings = OffsiteSettings(endpoint="http://127.0.0.1:9", bucket="never-contacted",
                               access_key="a", secret_key="b")  # fmt: skip
    with Index(tmp_path / "index.sqlite3") as index:
        copy = OffsiteCopy(settings, index, tmp_path, keyfile, {})
        archive = Archive(tmp_path, index, keyfile.public_key(), RetentionPolicy(0, 0, 0),
                          on_sealed=copy.file_sealed, keep=copy.keep)  # fmt: skip
        out = archive.open_segment("door", time.time())
        out.write(os.urandom(70_000))
        copy.file_sealed(vault.FileKind.SEGMENT, out.row.id)
        assert copy.queue.next_pending(10) == []
        out.finish(time.time(), frames=10)
        assert [i.id for i in copy.queue.next_pending(10)] == [out.row.id]
        copy.queue.close()


def test_the_upload_cap_paces_the_bytes(s3: S3Server, bucket: str) -> None:
    """3 MiB at 16 Mbit/s (2 MB/s, with 1 s of burst) cannot take under half a second;
    a lower bound only, so a slow machine cannot make it fail."""
    settings = OffsiteSettings(endpoint=s3.url, bucket=bucket, access_key=s3.access_key,
                               secret_key=s3.secret_key, max_upload_mbps=16.0)  # fmt: skip
    data = os.urandom(3 * 2**20)
    capped = Bucket(settings)
    started = time.monotonic()
    size = capped.put_bytes("capped", data).size
    assert size == len(data) and time.monotonic() - started >= 0.5


def test_check_config_names_the_copy_and_a_bad_credentials_file(tmp_path: Path) -> None:
    config = tmp_path / "camhub.toml"
    config.write_text(
        '[offsite]\nendpoint = "https://s3.example.net"\nbucket = "cams"\n'
        'credentials_file = "offsite.keys"\n'
    )
    missing = camhub("check-config", config, cwd=tmp_path)
    (tmp_path / "offsite.keys").write_text("AKIA-house\nthe-secret-key\n")
    good = camhub("check-config", config, cwd=tmp_path)

    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "offsite.credentials_file: cannot read" in missing.stderr
    assert good.returncode == 0, good.stderr
    assert "off-site copy of events to bucket cams at https://s3.example.net" in good.stdout
    assert "the-secret-key" not in good.stdout + good.stderr
