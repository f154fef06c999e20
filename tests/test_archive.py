"""Sealed footage on disk: round trips, crashes, full disks, retention, file modes."""

from __future__ import annotations

import errno
import os
import random
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub.archive import (
    Archive,
    FootageUnavailable,
    LowDiskSpace,
    RetentionPolicy,
)
from hub.store import Index, SegmentState
from hub.vault import CHUNK_SIZE, HEADER_SIZE, SEALED_CHUNK_SIZE, CorruptFile, sealed_size

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DAY = 86400.0
NO_LIMITS = RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0)


@pytest.fixture
def archive(tmp_path: Path, index: Index, owner: X25519PrivateKey) -> Archive:
    return Archive(tmp_path, index, owner.public_key(), NO_LIMITS)


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def record(archive: Archive, data: bytes, start: float = T0, camera: str = "porch") -> str:
    """Write `data` as one segment in uneven writes, as a muxer does; returns its id."""
    out = archive.open_segment(camera, start)
    pos, step = 0, 1
    while pos < len(data):
        step = step * 7 % 40_000 + 1
        assert out.write(data[pos : pos + step]) == len(data[pos : pos + step])
        pos += step
    out.finish(start + 4.0, frames=100)
    return out.row.id


def read_all(archive: Archive, segment_id: str, owner: X25519PrivateKey) -> bytes:
    return b"".join(archive.read_segment(segment_id, owner))


# -- recording and reading -------------------------------------------------------------


def test_segment_round_trip(archive: Archive, index: Index, owner: X25519PrivateKey) -> None:
    data = payload(3 * 2**20 + 12345)
    segment_id = record(archive, data)
    row = index.get_segment(segment_id)
    assert row is not None
    assert row.state is SegmentState.COMPLETE
    assert (row.camera_id, row.start_time, row.end_time, row.frames) == ("porch", T0, T0 + 4, 100)
    assert row.path == f"footage/porch/2023-11-14/{segment_id}.seg"
    assert row.size == (archive.data_dir / row.path).stat().st_size == sealed_size(len(data))
    assert read_all(archive, segment_id, owner) == data


def test_date_directory_is_the_utc_day_of_the_start(archive: Archive, index: Index) -> None:
    segment_id = record(archive, b"x", start=T0 + 2 * 3600)  # 00:13 UTC the next day
    row = index.get_segment(segment_id)
    assert row is not None and row.path.startswith("footage/porch/2023-11-15/")


def test_the_row_exists_as_open_before_any_byte_is_written(archive: Archive, index: Index) -> None:
    out = archive.open_segment("porch", T0)
    row = index.get_segment(out.row.id)
    assert row is not None and row.state is SegmentState.OPEN
    assert (archive.data_dir / row.path).stat().st_size == 0
    out.abort()


def test_files_are_private_and_never_plaintext(
    archive: Archive, tmp_path: Path, owner: X25519PrivateKey
) -> None:
    # Three bytes turn up by chance in a few hundred KB of ciphertext, so look for
    # longer runs that only a plaintext copy would contain.
    marker = b"camhub-plaintext-marker-7d1f"
    mp4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + marker
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + marker + b"\xff\xd9"
    record(archive, (mp4 + payload(5000)) * 40)
    archive.save_snapshot("porch", None, T0, jpeg)
    signatures = (b"ftypisom", b"\xff\xd8\xff\xe0\x00\x10JFIF", marker)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix in (".seg", ".snap")]) == 2
    for path in files:
        content = path.read_bytes()
        assert not [s for s in signatures if s in content], path
    footage = tmp_path / "footage"
    for path in [footage, *footage.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_write_after_finish_is_refused(archive: Archive) -> None:
    out = archive.open_segment("porch", T0)
    out.write(b"abc")
    out.finish(T0 + 1, 1)
    with pytest.raises(ValueError, match="already finished"):
        out.write(b"more")
    with pytest.raises(ValueError, match="already finished"):
        out.finish(T0 + 2, 2)


def test_camera_ids_that_are_not_plain_names_are_refused(archive: Archive) -> None:
    for bad in ("../etc", "a/b", ".hidden", "", "x" * 65):
        with pytest.raises(ValueError, match="camera id"):
            archive.open_segment(bad, T0)


def test_reading_what_is_not_there_or_not_ready(
    archive: Archive, index: Index, owner: X25519PrivateKey
) -> None:
    with pytest.raises(FootageUnavailable, match="no segment"):
        archive.read_segment("0" * 32, owner)
    with pytest.raises(FootageUnavailable, match="no snapshot"):
        archive.read_snapshot("0" * 32, owner)
    out = archive.open_segment("porch", T0)
    with pytest.raises(FootageUnavailable, match="still being recorded"):
        archive.read_segment(out.row.id, owner)
    out.finish(T0 + 1, 0)
    (archive.data_dir / out.row.path).unlink()
    with pytest.raises(FootageUnavailable, match="missing"):
        archive.read_segment(out.row.id, owner)


def test_swapped_files_and_foreign_keys_are_detected(
    archive: Archive, index: Index, owner: X25519PrivateKey
) -> None:
    first, second = record(archive, b"first" * 100), record(archive, b"second" * 100, T0 + 4)
    rows = [index.get_segment(first), index.get_segment(second)]
    paths = [archive.data_dir / row.path for row in rows if row is not None]
    a, b = paths[0].read_bytes(), paths[1].read_bytes()
    paths[0].write_bytes(b)
    paths[1].write_bytes(a)
    with pytest.raises(CorruptFile, match="swapped or renamed"):
        archive.read_segment(first, owner)
    paths[0].write_bytes(a)
    with pytest.raises(CorruptFile, match="another owner key"):
        archive.read_segment(first, X25519PrivateKey.generate())


def test_a_complete_segment_cut_short_fails_loudly(
    archive: Archive, index: Index, owner: X25519PrivateKey
) -> None:
    segment_id = record(archive, payload(3 * CHUNK_SIZE + 10))
    row = index.get_segment(segment_id)
    assert row is not None
    os.truncate(archive.data_dir / row.path, HEADER_SIZE + 2 * SEALED_CHUNK_SIZE)
    with pytest.raises(CorruptFile, match="truncated"):
        read_all(archive, segment_id, owner)


# -- snapshots -------------------------------------------------------------------------


def test_snapshot_round_trip(archive: Archive, index: Index, owner: X25519PrivateKey) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + payload(40_000) + b"\xff\xd9"
    event_id = index.add_event("porch", T0)
    snapshot_id = archive.save_snapshot("porch", event_id, T0 + 1, jpeg)
    row = index.get_snapshot(snapshot_id)
    assert row is not None
    assert (row.camera_id, row.event_id, row.time) == ("porch", event_id, T0 + 1)
    path = archive.data_dir / row.path
    assert path.name == f"{snapshot_id}.snap"
    assert row.size == path.stat().st_size
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert archive.read_snapshot(snapshot_id, owner) == jpeg


# -- abort, crash and recovery ---------------------------------------------------------


def test_abort_keeps_the_whole_chunks(
    archive: Archive, index: Index, owner: X25519PrivateKey
) -> None:
    data = payload(int(2.5 * CHUNK_SIZE))
    out = archive.open_segment("porch", T0)
    out.write(data)
    out.abort()
    out.abort()  # a second abort is harmless
    row = index.get_segment(out.row.id)
    assert row is not None
    assert row.state is SegmentState.RECOVERED
    assert row.size == HEADER_SIZE + 2 * SEALED_CHUNK_SIZE
    assert row.end_time is not None and row.end_time >= T0
    assert read_all(archive, out.row.id, owner) == data[: 2 * CHUNK_SIZE]
    with pytest.raises(ValueError, match="already finished"):
        out.write(b"x")


def test_abort_before_a_whole_chunk_leaves_nothing(archive: Archive, index: Index) -> None:
    out = archive.open_segment("porch", T0)
    out.write(b"a few bytes")
    path = archive.data_dir / out.row.path
    out.abort()
    assert index.get_segment(out.row.id) is None
    assert not path.exists()
    assert not path.parent.exists()  # the empty day directory went too


CHILD = """
import os, random, resource, signal, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from hub.archive import Archive, RetentionPolicy
from hub.store import Index

data_dir, public_hex, size, how = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
public_key = X25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
archive = Archive(data_dir, Index(data_dir / "index.sqlite3"), public_key,
                  RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0))
out = archive.open_segment("porch", 1_700_000_000.0)
data = random.Random(1).randbytes(size)
if how.startswith("fsize="):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(how.partition("=")[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    for pos in range(0, size, 10_000):
        out.write(data[pos : pos + 10_000])
except OSError as exc:
    print(exc.errno)
    out.abort()
    sys.exit(0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def run_child(data_dir: Path, owner: X25519PrivateKey, size: int, how: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    public_hex = owner.public_key().public_bytes_raw().hex()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(data_dir), public_hex, str(size), how],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == (0 if how != "kill" else -9), done.stderr
    return done.stdout.strip()


def test_crash_mid_write_is_recovered_to_whole_chunks(
    archive: Archive, index: Index, tmp_path: Path, owner: X25519PrivateKey
) -> None:
    index.close()  # the child must find a checkpointed database, as after a reboot
    run_child(tmp_path, owner, int(5.5 * CHUNK_SIZE), "kill")
    with Index(tmp_path / "index.sqlite3") as after:
        archive = Archive(tmp_path, after, owner.public_key(), NO_LIMITS)
        [row] = after.open_segments()
        path = tmp_path / row.path
        assert path.stat().st_size == HEADER_SIZE + 5 * SEALED_CHUNK_SIZE
        # A power cut can also persist part of a chunk being written: cut into the 6th.
        with path.open("ab") as f:
            f.write(b"\x00" * 1000)
        report = archive.recover()
        assert [r.id for r in report.recovered] == [row.id]
        assert report.lines() == [
            f"porch: segment {row.id[:8]}… recovered after an unclean stop: "
            "5 whole chunks (320 KiB) kept"
        ]
        recovered = after.get_segment(row.id)
        assert recovered is not None
        assert recovered.state is SegmentState.RECOVERED
        assert recovered.size == path.stat().st_size == HEADER_SIZE + 5 * SEALED_CHUNK_SIZE
        assert recovered.end_time is not None and recovered.end_time >= T0
        expected = payload(int(5.5 * CHUNK_SIZE))[: 5 * CHUNK_SIZE]
        assert read_all(archive, row.id, owner) == expected
        assert archive.recover().lines() == []  # nothing left to do


def test_crash_before_a_whole_chunk_drops_the_segment(
    index: Index, tmp_path: Path, owner: X25519PrivateKey
) -> None:
    index.close()
    run_child(tmp_path, owner, 30_000, "kill")
    with Index(tmp_path / "index.sqlite3") as after:
        [row] = after.open_segments()
        report = Archive(tmp_path, after, owner.public_key(), NO_LIMITS).recover()
        assert [r.id for r in report.dropped] == [row.id]
        assert "no whole chunk of it reached the disk" in report.lines()[0]
        assert after.get_segment(row.id) is None
        assert not (tmp_path / row.path).exists()


def test_write_error_from_a_full_disk_leaves_a_readable_partial_segment(
    index: Index, tmp_path: Path, owner: X25519PrivateKey
) -> None:
    # The kernel's per-process file size limit stands in for a full disk without root:
    # writes stop part-way with EFBIG, just as they stop with ENOSPC.
    index.close()
    limit = HEADER_SIZE + int(3.5 * SEALED_CHUNK_SIZE)
    reported = run_child(tmp_path, owner, 8 * CHUNK_SIZE, f"fsize={limit}")
    assert int(reported) == errno.EFBIG
    with Index(tmp_path / "index.sqlite3") as after:
        [row] = after.segments()
        assert row.state is SegmentState.RECOVERED
        assert row.size == (tmp_path / row.path).stat().st_size
        assert row.size == HEADER_SIZE + 3 * SEALED_CHUNK_SIZE
        archive = Archive(tmp_path, after, owner.public_key(), NO_LIMITS)
        assert read_all(archive, row.id, owner) == payload(8 * CHUNK_SIZE)[: 3 * CHUNK_SIZE]
        assert after.check_integrity() == "ok"
        assert archive.recover().lines() == []


def test_recover_drops_rows_whose_file_is_gone_and_only_leftovers_that_hold_nothing(
    archive: Archive, index: Index, tmp_path: Path
) -> None:
    kept = record(archive, b"kept" * 1000)
    snapshot = archive.save_snapshot("porch", None, T0, b"jpeg")
    # A row whose file never became durable (its directory entry was lost).
    lost = index.add_segment_open("c" * 32, "porch", T0 + 10, "footage/porch/2023-11-14/c.seg")
    day = tmp_path / "footage" / "porch" / "2023-11-14"
    # The crash windows of invariants 1-2 and 8 leave files that hold no footage.
    header = (day / f"{kept}.seg").read_bytes()[:HEADER_SIZE]
    leftovers = {
        day / f"{'e' * 32}.snap.tmp": b"a snapshot being saved",
        day / f"{'f' * 32}.seg": b"",  # created, never indexed, nothing written
        day / f"{'a' * 32}.seg": header,  # at most a header: no chunk
    }
    # Sealed files the index does not list are kept whatever they hold: the index may
    # be the one at fault. One is real footage whose row is gone.
    forgotten = record(archive, payload(3 * CHUNK_SIZE), start=T0 + 20)
    index.delete_segment(forgotten)
    unknown = {
        day / f"{forgotten}.seg": (day / f"{forgotten}.seg").read_bytes(),
        day / f"{'d' * 32}.snap": b"sealed bytes nobody indexed",
    }
    for path, data in (leftovers | unknown).items():
        path.write_bytes(data)

    report = archive.recover()

    assert [r.id for r in report.dropped] == [lost.id]
    assert index.get_segment(lost.id) is None
    assert list(report.removed) == sorted(p.relative_to(tmp_path).as_posix() for p in leftovers)
    assert not any(p.exists() for p in leftovers)
    assert list(report.unknown) == sorted(p.relative_to(tmp_path).as_posix() for p in unknown)
    assert all(path.read_bytes() == data for path, data in unknown.items())
    assert {p.name for p in day.iterdir()} == {f"{kept}.seg", f"{snapshot}.snap"} | {
        p.name for p in unknown
    }
    assert (
        f"kept 2 sealed files the index does not list (the first: {report.unknown[0]}): "
        "not shown and not reached by retention until `camhub repair` adopts them"
    ) in report.lines()
    assert archive.recover().removed == ()  # the next start finds nothing more to remove


def test_recover_closes_events_a_crash_left_open(archive: Archive, index: Index) -> None:
    event_id = index.add_event("porch", T0)
    [closed] = archive.recover().events_closed
    assert closed.id == event_id
    event = index.get_event(event_id)
    assert event is not None and event.end_time == T0


def test_recover_refuses_to_run_while_recording(archive: Archive) -> None:
    out = archive.open_segment("porch", T0)
    with pytest.raises(RuntimeError, match="before any segment is opened"):
        archive.recover()
    out.finish(T0 + 1, 0)
    assert archive.recover().lines() == []


# -- retention -------------------------------------------------------------------------


def make_archive(
    tmp_path: Path, index: Index, owner: X25519PrivateKey, policy: RetentionPolicy, **kw: object
) -> Archive:
    return Archive(tmp_path, index, owner.public_key(), policy, **kw)  # type: ignore[arg-type]


def test_retention_by_age_deletes_old_footage_and_events(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    # Without the guard for the newest footage (tested on its own in test_clock_skew.py).
    archive = make_archive(tmp_path, index, owner, RetentionPolicy(7, 0, 0, 0))
    now = T0 + 30 * DAY
    ids = [record(archive, payload(1000, i), now - age * DAY) for i, age in enumerate((20, 10))]
    old_event = index.add_event("porch", now - 9 * DAY)
    snap = archive.save_snapshot("porch", old_event, now - 9 * DAY, b"jpeg")
    index.end_event(
        old_event, end_time=now - 9 * DAY, peak_score=1, peak_time=now, bbox=None, snapshot_id=snap
    )
    ids += [record(archive, payload(1000, i), now - age * DAY) for i, age in ((2, 8), (3, 6))]
    new_event = index.add_event("porch", now - DAY)
    ids.append(record(archive, payload(1000, 4), now - DAY))
    old_paths = [tmp_path / r.path for r in index.segments(end=now - 7 * DAY)]

    report = archive.enforce_retention(now)
    assert (report.segments, report.snapshots, report.events) == (3, 1, 1)
    assert (report.by_age, report.by_budget, report.by_free_space) == (4, 0, 0)
    assert report.bytes_freed == 3 * sealed_size(1000) + sealed_size(4)
    assert [r.id for r in index.segments()] == ids[:2:-1]
    assert index.get_snapshot(snap) is None
    assert [e.id for e in index.events()] == [new_event]
    assert not any(p.exists() for p in old_paths)
    assert not any(p.parent.exists() for p in old_paths)  # their day directories are gone
    assert report.lines() == [
        "retention: deleted 3 segment(s) and 1 snapshot(s), 0.0 MiB (4 older than 7 days)",
        "retention: forgot 1 event(s) older than the age limit",
    ]
    assert archive.enforce_retention(now).lines() == []


def test_deleted_footage_takes_its_key_with_it(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    archive = make_archive(tmp_path, index, owner, RetentionPolicy(1, 0, 0, 0))
    segment_id = record(archive, payload(1000), T0)
    row = index.get_segment(segment_id)
    assert row is not None
    held = tmp_path / "held-open-by-someone"  # sees the inode after the unlink
    os.link(tmp_path / row.path, held)
    assert archive.enforce_retention(T0 + 2 * DAY).segments == 1
    assert held.read_bytes()[:HEADER_SIZE] == bytes(HEADER_SIZE)
    assert held.read_bytes()[HEADER_SIZE:]  # the rest is ciphertext, now without its key


def test_retention_forgets_rows_whose_file_is_already_gone(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    # A crash after the unlink (and the empty directory's removal), before the row went.
    archive = make_archive(tmp_path, index, owner, RetentionPolicy(1, 0, 0, 0))
    segment_id = record(archive, payload(1000), T0)
    row = index.get_segment(segment_id)
    assert row is not None
    (tmp_path / row.path).unlink()
    (tmp_path / row.path).parent.rmdir()
    assert archive.enforce_retention(T0 + 2 * DAY).segments == 1
    assert index.get_segment(segment_id) is None


def test_retention_by_footage_budget_deletes_oldest_first(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    size = sealed_size(50_000)
    archive = make_archive(tmp_path, index, owner, RetentionPolicy(0, 3 * size, 0))
    ids = [record(archive, payload(50_000, i), T0 + 5 * i) for i in range(5)]
    report = archive.enforce_retention(T0 + 100)
    assert (report.segments, report.by_budget, report.bytes_freed) == (2, 2, 2 * size)
    assert sorted(r.id for r in index.segments()) == sorted(ids[2:])
    assert index.total_size() == 3 * size


def test_retention_by_free_disk_space(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    size = sealed_size(50_000)
    capacity = 2**40  # room enough while recording

    def free_space(path: Path) -> int:
        assert path == tmp_path
        return capacity - index.total_size()

    policy = RetentionPolicy(0, 0, min_free_bytes=7 * size)
    archive = make_archive(tmp_path, index, owner, policy, free_space=free_space)
    ids = [record(archive, payload(50_000, i), T0 + 5 * i) for i in range(5)]
    capacity = 10 * size  # now 5 free, 7 wanted: the two oldest must go
    report = archive.enforce_retention(T0 + 100)
    assert (report.segments, report.by_free_space, report.free_bytes) == (2, 2, 7 * size)
    assert sorted(r.id for r in index.segments()) == sorted(ids[2:])
    assert [line for line in report.lines() if "below" in line] == []


def test_snapshots_and_segments_go_in_recording_order_together(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    # Recorded first, though a clock stamped it after the rest: it goes first.
    archive = make_archive(tmp_path, index, owner, RetentionPolicy(0, 1, 0))
    older = archive.save_snapshot("porch", None, T0 + 30, b"old jpeg")
    record(archive, b"seg", T0 + 10)
    newer = archive.save_snapshot("porch", None, T0 + 20, b"new jpeg")
    budget = index.total_size() - 1  # only the oldest item must go
    archive.policy = RetentionPolicy(0, budget, 0)
    report = archive.enforce_retention(T0 + 100)
    assert (report.segments, report.snapshots) == (0, 1)
    assert index.get_snapshot(older) is None
    assert index.get_snapshot(newer) is not None


def test_a_segment_being_written_is_never_deleted(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    free = {"bytes": 2**40}
    policy = RetentionPolicy(
        max_age_days=1, max_footage_bytes=1, min_free_bytes=1, keep_newest_seconds=0
    )
    archive = make_archive(tmp_path, index, owner, policy, free_space=lambda _: free["bytes"])
    finished = record(archive, payload(1000), T0)
    out = archive.open_segment("porch", T0 + 5)
    out.write(payload(3 * CHUNK_SIZE))
    free["bytes"] = 0  # every limit now asks for deletion
    report = archive.enforce_retention(T0 + 100 * DAY)
    assert (report.segments, report.by_age) == (1, 1)
    assert index.get_segment(finished) is None
    assert index.get_segment(out.row.id) is not None
    assert (tmp_path / out.row.path).exists()
    assert report.lines()[-1] == (
        "retention: only 0.0 MiB free on the data disk, below the 0.0 MiB floor, "
        "and no finished footage is left to delete"
    )
    out.finish(T0 + 9, 10)
    assert index.get_segment(out.row.id) is not None


def test_opening_a_segment_on_a_full_disk_makes_room_or_refuses(
    tmp_path: Path, index: Index, owner: X25519PrivateKey
) -> None:
    size = sealed_size(10_000)
    capacity = 3 * size
    archive = make_archive(
        tmp_path,
        index,
        owner,
        RetentionPolicy(0, 0, min_free_bytes=2 * size),
        free_space=lambda _: capacity - index.total_size(),
    )
    first = record(archive, payload(10_000, 1), T0)
    second = record(archive, payload(10_000, 2), T0 + 5)
    third = record(archive, payload(10_000, 3), T0 + 10)  # only 1 of 2 was free
    assert index.get_segment(first) is None  # deleted to make room for the third
    assert {r.id for r in index.segments()} == {second, third}
    capacity = 0  # something else filled the disk: nothing we delete is enough
    with pytest.raises(LowDiskSpace, match="not recording") as raised:
        archive.open_segment("porch", T0 + 15)
    assert raised.value.errno == errno.ENOSPC
    assert index.segments() == []
    assert index.open_segments() == []


def test_retention_policy_rejects_negative_or_fractional_limits() -> None:
    with pytest.raises(ValueError, match="max_age_days"):
        RetentionPolicy(-1, 0, 0)
    with pytest.raises(ValueError, match="min_free_bytes"):
        RetentionPolicy(0, 0, 1.5)  # type: ignore[arg-type]


# -- threads ---------------------------------------------------------------------------


def test_two_cameras_recording_at_once(
    archive: Archive, index: Index, owner: X25519PrivateKey
) -> None:
    errors: list[BaseException] = []
    written: dict[str, bytes] = {}

    def camera(name: str, seed: int) -> None:
        try:
            for i in range(8):
                data = payload(20_000 + 3000 * i, seed * 100 + i)
                written[record(archive, data, T0 + 5 * i, camera=name)] = data
                archive.save_snapshot(name, index.add_event(name, T0 + 5 * i), T0, b"jpeg")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(n, s)) for s, n in enumerate(("a", "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = index.segments(limit=100)
    assert len(rows) == 16
    assert all(r.state is SegmentState.COMPLETE for r in rows)
    for row in rows:
        assert read_all(archive, row.id, owner) == written[row.id]
    assert index.check_integrity() == "ok"
