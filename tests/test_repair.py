"""A lost or damaged index: the hub refuses to start on it, and `camhub repair` rebuilds it.

The end-to-end tests record real footage from the RTSP test camera with the real
`camhub run`, kill it mid-segment (so one segment is half-written, as after a power cut),
then break the index and drive the real CLI. The rest work on real sealed files and
real SQLite files in-process. Nothing is mocked.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rtsp_camera import serving
from test_daemon import (
    CLIP_SIZE,
    CONNECTED,
    PASSWORD,
    HubProcess,
    Site,
    camhub,
    decrypt,
    hub_processes,
    new_site,
    probe,
)
from test_faults_keys import assert_one_line_refusal, run_expecting_refusal
from test_faults_keys import new_site as keys_site

from hub import vault
from hub.archive import Archive, RetentionPolicy
from hub.clip import DEFAULT_MAX_BYTES
from hub.repair import FoundFile, check_file, rebuild_rows, repair_index
from hub.store import SCHEMA_VERSION, Index, SegmentRow, SegmentState, SnapshotRow
from hub.vault import CHUNK_SIZE, HEADER_SIZE, SEALED_CHUNK_SIZE
from hub.web.clips import clip_of

NO_LIMITS = RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0)
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DAY_DIR = "2023-11-14"
DAY0 = datetime(2023, 11, 14, tzinfo=UTC).timestamp()


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(8).randbytes(16_384))


def _damaged_page(path: Path) -> None:
    """A valid index whose second page (the first table's) is overwritten."""
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(random.Random(9).randbytes(4096))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty": lambda path: os.truncate(path, 0),
    "missing": Path.unlink,
    "garbage": _garbage,
    "damaged page": _damaged_page,
}


# -- a data directory with real footage, shared by the end-to-end tests ------------------


@dataclass(frozen=True)
class Recording:
    site: Site
    crashed: SegmentRow  # the segment being written when the hub was killed


@pytest.fixture(scope="module")
def recording(person_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """Record a few short segments and stop cleanly; then record again with long segments
    and kill -9 the hub once the one in flight holds a whole chunk. That leaves complete
    segments and one half-written, as a power cut does."""
    with serving(person_clip) as cam:
        site = new_site(
            tmp_path_factory.mktemp("recorded"), cam.url, record="continuous", segment_seconds=2
        )
        with hub_processes() as hubs:
            hub = hubs(site.config)
            hub.wait_for(CONNECTED, timeout=20)
            _wait(lambda: len(sealed(site)) >= 3, hub, "three segments")
            assert hub.terminate() == 0, hub.log
            complete = sealed(site)
            config = site.config.read_text()
            site.config.write_text(config.replace("segment_seconds = 2", "segment_seconds = 30"))
            hub = hubs(site.config)
            hub.wait_for(CONNECTED, timeout=20)
            _wait(lambda: _grown(sealed(site) - complete), hub, "a whole chunk in flight")
            hub.kill9()
    with Index(site.data / "index.sqlite3") as index:  # also checkpoints the WAL
        [crashed] = index.open_segments()
    return Recording(site, crashed)


def sealed(site: Site) -> set[Path]:
    return set((site.data / "footage").rglob("*.seg"))


def _grown(files: set[Path]) -> bool:
    return any(p.stat().st_size >= HEADER_SIZE + SEALED_CHUNK_SIZE for p in files)


def _wait(done: Callable[[], bool], hub: HubProcess, what: str) -> None:
    deadline = time.monotonic() + 45
    while not done():
        assert time.monotonic() < deadline, f"no {what} recorded:\n{hub.log}"
        assert hub.running, hub.log
        time.sleep(0.1)


@pytest.fixture
def site(recording: Recording, tmp_path: Path) -> Site:
    """A copy of the recorded site (file times kept) for one test to break."""
    root = tmp_path / "site"
    shutil.copytree(recording.site.root, root)
    return Site(root, root / "data", root / "camhub.toml", root / "password")


def footage(site: Site) -> dict[str, bytes]:
    """Every file under footage/, byte for byte."""
    return {
        p.relative_to(site.data).as_posix(): p.read_bytes()
        for p in (site.data / "footage").rglob("*")
        if p.is_file()
    }


# -- the hub refuses a missing, empty or damaged index -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_run_refuses_a_lost_or_damaged_index_and_keeps_every_file(site: Site, damage: str) -> None:
    before = footage(site)
    assert sum(rel.endswith(".seg") for rel in before) >= 3
    index = site.data / "index.sqlite3"
    DAMAGE[damage](index)
    left = index.read_bytes() if index.exists() else None

    done = run_expecting_refusal(site)

    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"camhub: the index {index} is "), lines
    assert f"run `camhub repair --config {site.config}`" in lines[0], lines
    assert "Traceback" not in done.stderr + done.stdout
    assert footage(site) == before
    assert (index.read_bytes() if index.exists() else None) == left


# -- `camhub repair` ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_repair_rebuilds_the_index_and_the_hub_serves_the_footage(
    site: Site, recording: Recording, tmp_path: Path, damage: str
) -> None:
    before = footage(site)
    segments = sorted(rel for rel in before if rel.endswith(".seg"))
    index_path = site.data / "index.sqlite3"
    DAMAGE[damage](index_path)
    broken = index_path.read_bytes() if index_path.exists() else None

    done = camhub("repair", "--config", site.config, cwd=site.root)

    assert done.returncode == 0, done.stderr
    assert (
        f"index {index_path}: {len(segments)} segment(s) and 0 snapshot(s) adopted, "
        "0 file(s) already indexed, 0 file(s) skipped"
    ) in done.stdout, done.stdout
    aside = sorted(site.data.glob("index.sqlite3.damaged-*"))
    if broken is None:
        assert not aside
    else:  # the damaged index is set aside, never deleted
        assert [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))] == [broken]
        assert "moved aside to index.sqlite3.damaged-" in done.stdout
    assert footage(site) == before
    with Index(index_path) as index:
        rows = sorted(index.segments(limit=10_000), key=lambda r: r.start_time)
    assert [r.path for r in sorted(rows, key=lambda r: r.path)] == segments
    assert {r.state for r in rows} == {SegmentState.RECOVERED}
    for row, following in itertools.pairwise(rows):
        assert row.end_time is not None and row.start_time <= row.end_time
        assert row.end_time <= following.start_time  # estimates never overlap
    assert recording.crashed.id in {r.id for r in rows}

    # The hub starts on the rebuilt index and leaves every file as it is.
    with hub_processes() as hubs:
        hub = hubs(site.config)
        hub.wait_for("recording 1 camera(s)", timeout=20)
        assert hub.terminate() == 0, hub.log
    assert "Traceback" not in hub.log and "sealed file" not in hub.log, hub.log
    assert footage(site) == before

    # The owner's clip route opens all of it, the half-written segment included...
    keyfile = vault.KeyFile.from_json((site.data / "keys.json").read_text())
    key = vault.unlock(keyfile, PASSWORD)
    with Index(index_path) as index:
        archive = Archive(site.data, index, keyfile.public_key(), NO_LIMITS)
        clip = clip_of(rows, lambda row: archive.read_segment(row.id, key), DEFAULT_MAX_BYTES)
    (tmp_path / "clip.mp4").write_bytes(clip)
    frames, width, height = probe(tmp_path / "clip.mp4")
    assert (width, height) == CLIP_SIZE and frames >= len(segments) * 10, frames
    # ...and so does `camhub decrypt --partial` (a complete file needs no flag).
    out = tmp_path / "crashed.mp4"
    done = decrypt(site, site.data / recording.crashed.path, out, "--partial")
    assert done.returncode == 0, done.stderr
    assert probe(out)[0] > 0


def test_repair_leaves_an_index_of_a_newer_camhub_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with Index(data / "index.sqlite3"):
        pass
    with sqlite3.connect(data / "index.sqlite3") as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    before = (data / "index.sqlite3").read_bytes()

    done = camhub("repair", "--data-dir", data, cwd=tmp_path)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"camhub: index schema version 99 is newer than this camhub understands "
        f"({SCHEMA_VERSION}); upgrade camhub"
    ], done.stderr
    assert (data / "index.sqlite3").read_bytes() == before
    assert not list(data.glob("*.damaged-*"))


# -- repair on real sealed files, in-process ---------------------------------------------


@pytest.fixture
def owner() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def archive(tmp_path: Path, owner: X25519PrivateKey) -> Iterator[Archive]:
    with Index(tmp_path / "index.sqlite3") as index:
        yield Archive(tmp_path, index, owner.public_key(), NO_LIMITS)


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def record(archive: Archive, data: bytes, start: float) -> SegmentRow:
    out = archive.open_segment("porch", start)
    out.write(data)
    out.finish(start + 3.0, frames=30)
    return out.row


def test_repair_adds_only_what_a_readable_index_lacks(
    archive: Archive, owner: X25519PrivateKey, tmp_path: Path
) -> None:
    index = archive.index
    known = record(archive, payload(CHUNK_SIZE + 10, 1), T0)
    forgotten = record(archive, payload(2 * CHUNK_SIZE + 10, 2), T0 + 3)
    cut = record(archive, payload(4 * CHUNK_SIZE, 3), T0 + 6)
    snapshot = archive.save_snapshot("porch", None, T0 + 5, b"jpeg bytes")
    event = index.add_event("porch", T0 + 1)
    for row in (forgotten, cut):
        index.delete_segment(row.id)
    index.delete_snapshot(snapshot)
    day = tmp_path / "footage" / "porch" / DAY_DIR
    # A power cut mid-chunk: three whole chunks, then part of the fourth.
    with (tmp_path / cut.path).open("r+b") as f:
        f.truncate(HEADER_SIZE + 3 * SEALED_CHUNK_SIZE + 1000)
    os.utime(tmp_path / forgotten.path, (T0 + 6, T0 + 6))
    os.utime(tmp_path / cut.path, (T0 + 9, T0 + 9))
    os.utime(day / f"{snapshot}.snap", (T0 + 8, T0 + 8))
    skipped = {
        f"{'e' * 32}.snap.tmp": b"a snapshot being saved",
        f"{'a' * 32}.seg": (tmp_path / known.path).read_bytes(),  # a renamed copy
        f"{'b' * 32}.snap": b"not sealed",
        f"{'c' * 32}.seg": b"",
        "notes.txt": b"the owner's",
    }
    for name, data in skipped.items():
        (day / name).write_bytes(data)
    files_before = {p.name: p.read_bytes() for p in day.iterdir()}

    report = repair_index(tmp_path, tmp_path / "index.sqlite3", segment_seconds=3, now=T0 + 100)

    assert {p.name: p.read_bytes() for p in day.iterdir()} == files_before
    assert report.set_aside == ()
    assert report.already_indexed == 1
    assert [r.id for r in report.adopted] == [forgotten.id, cut.id, snapshot]  # oldest first
    assert {s.rel.rpartition("/")[2] for s in report.skipped} == set(skipped)
    why = {s.rel.rpartition("/")[2]: s.why for s in report.skipped}
    assert "renamed or swapped" in why[f"{'a' * 32}.seg"]
    assert "no chunk" in why[f"{'c' * 32}.seg"]
    assert "not a camhub sealed file" in why[f"{'b' * 32}.snap"]
    assert report.lines()[0] == (
        f"index {tmp_path / 'index.sqlite3'}: 2 segment(s) and 1 snapshot(s) adopted, "
        "1 file(s) already indexed, 5 file(s) skipped"
    )
    assert index.get_event(event) is not None  # what the index knew stays
    adopted = index.get_segment(cut.id)
    assert adopted is not None and adopted.state is SegmentState.RECOVERED
    assert (adopted.start_time, adopted.end_time) == (T0 + 6, T0 + 9)
    assert (
        b"".join(archive.read_segment(cut.id, owner))
        == payload(4 * CHUNK_SIZE, 3)[: 3 * CHUNK_SIZE]
    )
    assert b"".join(archive.read_segment(forgotten.id, owner)) == payload(2 * CHUNK_SIZE + 10, 2)
    assert archive.read_snapshot(snapshot, owner) == b"jpeg bytes"
    snap = index.get_snapshot(snapshot)
    assert snap is not None and (snap.time, snap.event_id) == (T0 + 8, None)
    # Recovery keeps what repair skipped, and a second repair adds nothing.
    assert list(archive.recover().unknown) == [
        f"footage/porch/{DAY_DIR}/{name}" for name in (f"{'a' * 32}.seg", f"{'b' * 32}.snap")
    ]
    again = repair_index(tmp_path, tmp_path / "index.sqlite3", segment_seconds=3, now=T0)
    assert (again.adopted, again.already_indexed) == ((), 4)


def found(name: str, mtime: float, size: int = 10_000, day: str = DAY_DIR) -> FoundFile:
    return FoundFile(f"footage/porch/{day}/{name}", "porch", day, name, size, mtime)


def test_rebuilt_times_follow_the_files_and_the_day() -> None:
    ids = [f"{i:032x}" for i in range(5)]
    files = [
        found(f"{ids[0]}.seg", DAY0 + 1.0),  # would start before its day: the day's start
        found(f"{ids[1]}.seg", T0 + 4.0),
        found(f"{ids[2]}.seg", T0 + 6.0),  # back to back: starts where the one before ended
        found(f"{ids[3]}.snap", T0 + 5.0),
        found(f"{ids[4]}.seg", DAY0 + 2 * 86400, day=DAY_DIR),  # mtime days later
    ]

    rows = rebuild_rows(files, segment_seconds=4, now=T0)

    times = {
        r.id: (r.start_time, r.end_time) if isinstance(r, SegmentRow) else r.time for r in rows
    }
    assert times == {
        ids[0]: (DAY0, DAY0 + 1.0),
        ids[1]: (T0, T0 + 4.0),
        ids[2]: (T0 + 4.0, T0 + 6.0),
        ids[3]: T0 + 5.0,
        ids[4]: (DAY0 + 86400 - 1e-3, DAY0 + 2 * 86400),
    }
    assert [r.id for r in rows] == [ids[0], ids[1], ids[2], ids[3], ids[4]]  # oldest first
    assert all(r.event_id is None for r in rows if isinstance(r, SnapshotRow))


def test_check_file_reads_names_and_headers_without_a_key(owner: X25519PrivateKey) -> None:
    sealed = vault.seal_bytes(b"x", owner.public_key(), vault.FileKind.SNAPSHOT)
    file_id = vault.parse_header(sealed).file_id.hex()
    assert check_file(found(f"{file_id}.snap", T0), sealed[:HEADER_SIZE]) is None
    assert "renamed or swapped" in str(check_file(found(f"{file_id}.seg", T0), sealed))
    bad_day = check_file(found(f"{file_id}.snap", T0, day="2023-13-01"), sealed)
    assert bad_day is not None and "day directory" in bad_day.why
    odd = FoundFile(f"footage/../{file_id}.snap", "..", DAY_DIR, f"{file_id}.snap", 200, T0)
    assert "not a camera id" in str(check_file(odd, sealed))


def test_a_crash_before_the_first_row_does_not_block_the_start(tmp_path: Path) -> None:
    """The index lists nothing, and the only file is a `.seg` created just before a crash
    (0 bytes): that is no footage to protect, so the hub starts and recovery removes it."""
    site = new_site(tmp_path, "rtsp://127.0.0.1:9/cam", record="continuous", segment_seconds=2)
    with Index(site.data / "index.sqlite3"):
        pass
    leftover = site.data / "footage" / "door" / DAY_DIR / f"{'f' * 32}.seg"
    leftover.parent.mkdir(parents=True)
    leftover.touch()

    with hub_processes() as hubs:
        hub = hubs(site.config)
        hub.wait_for("recording 1 camera(s)", timeout=20)
        assert hub.terminate() == 0, hub.log

    assert f"removed footage/door/{DAY_DIR}/{leftover.name}" in hub.log, hub.log
    assert not leftover.exists()


def test_other_commands_name_a_damaged_index_in_one_line(tmp_path: Path) -> None:
    site = new_site(tmp_path, "rtsp://127.0.0.1:9/cam", record="continuous", segment_seconds=2)
    _garbage(site.data / "index.sqlite3")

    done = camhub("audit", "verify", "--config", site.config, cwd=site.root)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"camhub: {site.data / 'index.sqlite3'}: not a usable camhub index (file is not a "
        "database); `camhub repair` sets it aside and rebuilds it"
    ], done.stderr


# -- one camhub process per data directory -----------------------------------------------


def test_a_running_hub_keeps_repair_and_a_second_hub_out(tmp_path: Path) -> None:
    """Repair rebuilding rows under a recording hub would race its inserts, and a second
    hub would take the first one's files for its own crash leftovers: each is refused in
    one line while the hub runs, and repair works once it has stopped."""
    site = keys_site(tmp_path)
    with hub_processes() as start:
        hub = start(site.config)
        hub.wait_for("recording 1 camera(s)", timeout=60)

        second = run_expecting_refusal(site)
        repaired = camhub("repair", "--config", site.config, cwd=site.root)

        assert hub.running, hub.log
        assert hub.terminate() == 0, hub.log
    assert_one_line_refusal(second, "in use by another camhub process")
    assert_one_line_refusal(repaired, "in use by another camhub process")
    after = camhub("repair", "--config", site.config, cwd=site.root)
    assert after.returncode == 0, after.stderr
