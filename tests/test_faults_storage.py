"""Storage under faults: revoked keys shredded from the WAL, a full disk mid-recording,
a damaged index while recording. Real files, real SQLite, real small filesystems."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hubkit import PASSWORD, make_hub, wait_until

from hub import daemon, vault
from hub.archive import Archive, NotIndexed, RetentionPolicy
from hub.daemon import Hub, load_keyfile
from hub.shares import ShareRequest, create_share
from hub.store import Index, SegmentState, ShareEnd
from hub.vault import CHUNK_SIZE, HEADER_SIZE, SEALED_CHUNK_SIZE

T0 = 1_700_000_000.0
DAY = 86400.0
NO_LIMITS = RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0)


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def record(archive: Archive, data: bytes, start: float, camera: str = "porch") -> str:
    out = archive.open_segment(camera, start)
    out.write(data)
    out.finish(start + 4.0, frames=40)
    return out.row.id


# -- 16. a revoked share's wrapped keys leave the WAL too -----------------------------


def wrapped_keys(db: Path, share_id: str) -> list[bytes]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT wrapped FROM share_keys WHERE share_id = ?", (share_id,))
        return [bytes(row[0]) for row in rows]
    finally:
        conn.close()


@pytest.mark.parametrize("reason", [ShareEnd.REVOKED, ShareEnd.EXPIRED])
def test_an_ended_share_leaves_no_wrapped_key_in_the_database_files(
    tmp_path: Path, index: Index, owner: X25519PrivateKey, reason: ShareEnd
) -> None:
    archive = Archive(tmp_path, index, owner.public_key(), NO_LIMITS)
    for i in range(3):
        record(archive, payload(70_000, i), T0 + 4 * i)
    share, _secret = create_share(
        archive, owner, ShareRequest("porch", T0, T0 + 12, expires_in=3600, label="for Ann")
    )
    db = tmp_path / "index.sqlite3"
    keys = wrapped_keys(db, share.id)
    assert len(keys) == 3
    files = [db, db.with_name(db.name + "-wal")]

    def found() -> list[str]:
        data = {path.name: path.read_bytes() if path.exists() else b"" for path in files}
        return [name for name, blob in data.items() for key in keys if key in blob]

    assert found(), "the wrapped keys were never on disk: the test proves nothing"
    assert index.end_share(share.id, T0 + 60, reason)
    assert wrapped_keys(db, share.id) == []
    assert found() == []
    # The share itself (its hash, label, times) is still listed as ended.
    ended = index.get_share(share.id)
    assert ended is not None and ended.end_reason is reason


# -- 6. a disk filled up while recording ----------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), mounted for the test and unmounted after."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (the tests run as root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("ab") as out:
        out.write(bytes(max(0, free - leave)))
    return filler


def test_segments_cut_short_by_a_full_disk_are_closed_once_space_returns(
    small_disk: Path, owner: X25519PrivateKey
) -> None:
    with Index(small_disk / "index.sqlite3") as index:
        archive = Archive(small_disk, index, owner.public_key(), NO_LIMITS)
        for i in range(3):
            record(archive, payload(100_000, i), T0 + 4 * i)
        data = payload(CHUNK_SIZE * 12, 9)
        out = archive.open_segment("porch", T0 + 20)
        out.write(data[: 3 * CHUNK_SIZE + 100])  # three whole chunks reach the disk
        filler = fill(small_disk, leave=0)  # then something else takes the rest
        with pytest.raises(OSError) as full:
            for pos in range(3 * CHUNK_SIZE + 100, len(data), 10_000):  # as a muxer writes
                out.write(data[pos : pos + 10_000])
        assert full.value.errno == errno.ENOSPC
        out.abort()  # what the recorder does on a write error; the index is full too
        filler.unlink()  # the disk has room again
        archive.enforce_retention(T0 + 60)
        assert index.open_segments() == []
        row = index.get_segment(out.row.id)
        assert row is not None and row.state is SegmentState.RECOVERED
        assert row.size == (small_disk / row.path).stat().st_size == sealed_prefix(3)
        assert b"".join(archive.read_segment(row.id, owner)) == data[: 3 * CHUNK_SIZE]
        # Retention counts it and can reclaim it like any other footage.
        total = index.total_size()
        assert total == sum(p.stat().st_size for p in (small_disk / "footage").rglob("*.seg"))
        archive.policy = RetentionPolicy(0, row.size, 0)
        assert archive.enforce_retention(T0 + 60).segments == 3  # the older three
        archive.policy = RetentionPolicy(0, row.size - 1, 0)
        assert archive.enforce_retention(T0 + 60).segments == 1
        assert index.get_segment(row.id) is None
        assert index.check_integrity() == "ok"


def sealed_prefix(chunks: int) -> int:
    return HEADER_SIZE + chunks * SEALED_CHUNK_SIZE


# -- 3. an index damaged on disk while the hub records -------------------------------

STORAGE = "segment_seconds = 1\nretention_days = 30"
HALL = """
[[camera]]
id = "hall"
url = "file://{clip}"
realtime = true
record = "continuous"
"""
ROUNDS = 12  # failing housekeeping rounds to watch
WAIT = 60.0  # seconds, for anything the hub is expected to do


def damage(index: Index, db: Path, name: str) -> None:
    """Overwrite the root page of table or index `name` in the index file with garbage,
    as a bad SD card block would, and make the open connections read it from disk."""
    with index._lock, index._read_lock:  # the hub's statements wait meanwhile
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            assert busy == 0
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            (root,) = conn.execute(
                "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
            ).fetchone()
            fd = os.open(db, os.O_WRONLY)
            try:
                os.pwrite(fd, random.Random(root).randbytes(page_size), (root - 1) * page_size)
                os.fsync(fd)
            finally:
                os.close(fd)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(version)}")  # others re-read pages
        finally:
            conn.close()


def test_with_a_damaged_index_footage_is_still_sealed_and_nothing_is_deleted(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    # Every limit would delete all footage, if retention could read the index.
    policy = RetentionPolicy(1, 1, 0, keep_newest_seconds=0)
    archive = Archive(tmp_path, index, owner.public_key(), policy)
    record(archive, payload(70_000), T0)
    for name in ("segments", "snapshots"):
        damage(index, tmp_path / "index.sqlite3", name)
    data = payload(3 * CHUNK_SIZE + 5, 2)
    out = archive.open_segment("porch", T0 + 10)
    assert not out.indexed
    out.write(data)
    out.finish(T0 + 14, 40)
    with (tmp_path / out.row.path).open("rb") as src:
        assert b"".join(vault.open_sealed(src, owner)) == data  # whole, final chunk too
    cut = archive.open_segment("porch", T0 + 20)
    cut.write(payload(2 * CHUNK_SIZE + 9, 3))
    cut.abort()  # a write error: cut back to whole chunks, row or not
    assert (tmp_path / cut.row.path).stat().st_size == sealed_prefix(2)
    with pytest.raises(NotIndexed, match="kept footage/porch/"):
        archive.save_snapshot("porch", None, T0 + 30, b"jpeg")
    footage = sorted((tmp_path / "footage").rglob("*"))
    assert sorted(p.suffix for p in footage if p.is_file()) == [".seg"] * 3 + [".snap"]
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        archive.enforce_retention(T0 + 100 * DAY)
    assert sorted((tmp_path / "footage").rglob("*")) == footage
    problem = index.health.problem
    assert problem is not None and "camhub repair" in problem
    index.add_event("porch", T0)  # other tables still work; the damage stays reported
    assert index.health.problem == problem


def test_a_full_disk_is_reported_until_the_index_writes_again(small_disk: Path) -> None:
    with Index(small_disk / "index.sqlite3") as index:
        index.add_event("porch", T0)
        assert index.health.problem is None
        filler = fill(small_disk, leave=0)
        with pytest.raises(sqlite3.OperationalError, match="full"):
            for i in range(10_000):
                index.add_event("porch", T0 + i)
        assert index.health.problem == "database or disk is full"
        filler.unlink()
        index.add_event("porch", T0)
        assert index.health.problem is None


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def owner_session(base: str) -> dict[str, object]:
    """Log in as the owner's page does; what GET /api/session tells it."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = urllib.request.Request(
        f"{base}/api/login",
        data=json.dumps({"password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json", "Origin": base},
        method="POST",
    )
    opener.open(login, timeout=10).close()
    with opener.open(f"{base}/api/session", timeout=10) as response:
        return json.loads(response.read())


def test_a_damaged_index_is_reported_and_recording_goes_on(
    tmp_path: Path,
    person_clip: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(daemon, "HOUSEKEEPING_INTERVAL", 0.2)  # a round every 0.2 s
    data_dir = tmp_path / "data"
    hub = make_hub(tmp_path, HALL.format(clip=person_clip), storage=STORAGE, data_dir=data_dir)
    footage = data_dir / "footage"
    caplog.set_level(logging.INFO)
    hub.start()
    try:
        assert hub.web is not None
        health = f"http://127.0.0.1:{hub.web.port}/healthz"
        wait_until(lambda: len(hub.index.segments()) >= 2, WAIT, "two segments indexed")
        assert get(health) == (200, {"ok": True})
        damage(hub.index, hub.paths.index, "segments")
        damage(hub.index, hub.paths.index, "shares_live")  # share expiry fails each round too
        damaged = set(footage.rglob("*.seg"))
        wait_until(lambda: get(health)[0] == 503, WAIT, "/healthz to say the index fails")
        assert get(health) == (503, {"ok": False, "reason": "the index is failing"})
        problem = owner_session(f"http://127.0.0.1:{hub.web.port}")["index_problem"]
        assert isinstance(problem, str) and "malformed" in problem  # on the owner's page
        # Footage goes on being sealed to disk, rows or not.
        wait_until(
            lambda: len(set(footage.rglob("*.seg")) - damaged) >= 3, WAIT, "three more segments"
        )
        wait_until(
            lambda: any(r.getMessage().startswith("retention failed") for r in caplog.records),
            WAIT,
            "retention to fail",
        )
        time.sleep(ROUNDS * daemon.HOUSEKEEPING_INTERVAL)  # more failing rounds
        assert hub._housekeeping.is_alive()
    finally:
        hub.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert [r for r in caplog.records if r.exc_info] == []  # no traceback, at all
    for task in ("retention", "ending shares and sessions", "the index"):
        said = [m for m in messages if m.startswith(f"{task} failed")]
        assert len(said) == 1, (task, messages)  # once, however many rounds failed
    # Each file written since the damage is whole: sealed to the end, and opens.
    key = vault.unlock(load_keyfile(hub.paths), PASSWORD)
    new = sorted(set(footage.rglob("*.seg")) - damaged)
    assert len(new) >= 3
    for path in new[:-1]:
        with path.open("rb") as src:
            assert b"".join(vault.open_sealed(src, key))  # refuses a truncated file


def start_hub(root: Path, data_dir: Path, clip: Path) -> Hub:
    hub = make_hub(root, HALL.format(clip=clip), storage=STORAGE, data_dir=data_dir)
    hub.start()
    return hub


@pytest.mark.parametrize("space_returns", [True, False])
def test_a_hub_whose_disk_fills_while_recording_closes_what_it_cut_short(
    tmp_path: Path,
    small_disk: Path,
    person_clip: Path,
    caplog: pytest.LogCaptureFixture,
    space_returns: bool,
) -> None:
    caplog.set_level(logging.INFO)
    data = small_disk / "data"
    hub = start_hub(tmp_path, data, person_clip)
    try:
        wait_until(lambda: len(hub.index.segments()) >= 2, WAIT, "two segments indexed")
        filler = fill(small_disk, leave=0)
        wait_until(
            lambda: any("aborted segment" in r.msg for r in caplog.records),
            WAIT,
            "a segment cut short by the full disk",
        )
        aborted = next(r.args[1] for r in caplog.records if "aborted segment" in r.msg)
        [cut] = [  # the segment that was being written when the disk filled
            row for row in hub.index.segments(limit=1000) if row.id[:8] == aborted[:8]
        ]
        if space_returns:
            filler.unlink()
            wait_until(lambda: closed(hub.index, data, cut.id), WAIT, "the cut segment to close")
    finally:
        hub.stop()
    with Index(data / "index.sqlite3") as index:
        if space_returns:
            assert index.open_segments() == []
            assert closed(index, data, cut.id)
            assert caplog.records[-1].getMessage() == "stopped cleanly"
        else:  # still full at the stop: it says so, and the next start recovers it
            row = index.get_segment(cut.id)
            assert row is not None and row.state is SegmentState.OPEN
            assert "stopped cleanly" not in caplog.text
            assert "stopped, not cleanly: 1 segment(s) left open" in caplog.text


def closed(index: Index, data: Path, segment_id: str) -> bool:
    """Recovered to its whole chunks, or gone with its file if it had none."""
    row = index.get_segment(segment_id)
    if row is None:
        return not any(data.rglob(f"{segment_id}.seg"))
    return row.state is SegmentState.RECOVERED and row.size == (data / row.path).stat().st_size
