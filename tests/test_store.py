"""The SQLite index: schema and migrations, typed rows, queries, threads."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.store import (
    SCHEMA_VERSION,
    EventRow,
    Index,
    SchemaError,
    SegmentRow,
    SegmentState,
    SnapshotRow,
    migrate,
)

T0 = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "index.sqlite3"


@pytest.fixture
def index(db_path: Path) -> Iterator[Index]:
    with Index(db_path) as idx:
        yield idx


def add_finished(index: Index, seg_id: str, start: float, *, camera: str = "porch") -> SegmentRow:
    index.add_segment_open(seg_id, camera, start, f"footage/{camera}/{seg_id}.seg")
    index.complete_segment(seg_id, start + 4.0, 1000, 100)
    row = index.get_segment(seg_id)
    assert row is not None
    return row


# -- schema ----------------------------------------------------------------------------


def test_new_index_is_wal_private_and_at_the_current_schema(db_path: Path) -> None:
    with Index(db_path) as index:
        index.add_event("porch", T0)  # makes the -wal file exist
        wal = db_path.with_name(db_path.name + "-wal")
        for path in (db_path, wal):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"segments", "events", "snapshots"} <= tables
        indices = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"segments_by_camera", "events_by_camera", "snapshots_by_camera"} <= indices
    finally:
        conn.close()


def test_migrate_is_idempotent_and_rows_survive_reopening(db_path: Path) -> None:
    with Index(db_path) as index:
        add_finished(index, "aa" * 16, T0)
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        assert migrate(conn) == SCHEMA_VERSION
    finally:
        conn.close()
    with Index(db_path) as index:
        assert [row.id for row in index.segments()] == ["aa" * 16]


def test_a_database_from_a_newer_camhub_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer than this camhub"):
        Index(db_path)


def test_a_file_that_is_not_a_database_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SchemaError, match="not a usable camhub index"):
        Index(db_path)


# -- segments --------------------------------------------------------------------------


def test_reads_do_not_wait_for_a_write_in_progress(index: Index) -> None:
    """A camera's commit can take a slow SD card's fsync; the web page's lookups go
    through the read connection and must not queue behind it."""
    add_finished(index, "a" * 32, 100.0)
    done = threading.Event()

    def look() -> None:
        assert [s.id for s in index.segments("porch")] == ["a" * 32]
        done.set()

    with index._lock:  # what a writer holds for the length of its commit
        reader = threading.Thread(target=look)
        reader.start()
        finished = done.wait(timeout=10)
    reader.join()
    assert finished, "a read waited for the writer"
    add_finished(index, "b" * 32, 200.0)  # and a read after a write sees it at once
    assert [s.id for s in index.segments("porch")] == ["b" * 32, "a" * 32]


def test_segment_lifecycle_open_complete_delete(index: Index) -> None:
    opened = index.add_segment_open("ab" * 16, "porch", T0, "footage/porch/x.seg")
    assert opened.state is SegmentState.OPEN
    assert index.get_segment("ab" * 16) == opened
    assert index.open_segments() == [opened]
    index.complete_segment("ab" * 16, T0 + 4, 123456, 120)
    done = index.get_segment("ab" * 16)
    assert done is not None
    assert (done.state, done.end_time, done.size, done.frames) == ("complete", T0 + 4, 123456, 120)
    assert index.open_segments() == []
    with pytest.raises(LookupError, match="no open segment"):
        index.complete_segment("ab" * 16, T0 + 5, 1, 1)  # only an open segment completes
    assert index.delete_segment("ab" * 16)
    assert not index.delete_segment("ab" * 16)
    assert index.get_segment("ab" * 16) is None


def test_recovered_segments_keep_size_and_have_no_frame_count(index: Index) -> None:
    index.add_segment_open("cd" * 16, "porch", T0, "footage/porch/y.seg")
    index.mark_recovered("cd" * 16, T0 + 2.5, 65632)
    row = index.get_segment("cd" * 16)
    assert row is not None
    assert (row.state, row.end_time, row.size, row.frames) == ("recovered", T0 + 2.5, 65632, None)
    with pytest.raises(LookupError):
        index.mark_recovered("cd" * 16, T0 + 3, 1)


def test_state_outside_the_three_is_rejected_by_the_schema(index: Index, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO segments VALUES ('x', 'porch', 0, NULL, 'p', NULL, NULL, 'lost', 0, 1)"
            )
    finally:
        conn.close()


def test_segment_listing_filters_orders_and_pages(index: Index) -> None:
    for i in range(6):
        add_finished(index, f"{i:032x}", T0 + 10 * i, camera="porch" if i % 2 else "yard")
    porch = index.segments(camera_id="porch")
    assert [r.start_time for r in porch] == [T0 + 50, T0 + 30, T0 + 10]  # newest first
    window = index.segments(start=T0 + 10, end=T0 + 40)
    assert [r.start_time for r in window] == [T0 + 30, T0 + 20, T0 + 10]
    assert [r.start_time for r in index.segments(limit=2, offset=1)] == [T0 + 40, T0 + 30]
    with pytest.raises(ValueError, match="limit"):
        index.segments(limit=0)
    with pytest.raises(ValueError, match="offset"):
        index.segments(offset=-1)


def test_segments_overlapping_a_clip_range(index: Index) -> None:
    # porch records 0-4, 4-8, 8-12, then a gap, then 20-24; yard interleaves.
    for i, start in enumerate((0, 4, 8, 20)):
        add_finished(index, f"a{i:031x}", T0 + start)
        add_finished(index, f"b{i:031x}", T0 + start + 1, camera="yard")
    index.add_segment_open("c" * 32, "porch", T0 + 24, "footage/porch/open.seg")

    def starts(start: float, end: float) -> list[float]:
        return [
            r.start_time - T0 for r in index.segments_overlapping("porch", T0 + start, T0 + end)
        ]

    assert starts(5, 9) == [4, 8]  # the one running at `start` and the one after
    assert starts(4, 8) == [4]  # ranges are half-open
    assert starts(13, 19) == []  # in the gap
    assert starts(14, 22) == [20]
    assert starts(-100, 100) == [0, 4, 8, 20]  # the open segment is not readable yet


def test_oldest_segments_skip_open_ones_and_continue_after_a_key(index: Index) -> None:
    index.add_segment_open("f" * 32, "porch", T0 - 100, "footage/porch/open.seg")
    for i in range(5):
        add_finished(index, f"{i:032x}", T0 + i)
    first = index.oldest_segments(2)
    assert [r.start_time - T0 for r in first] == [0, 1]
    rest = index.oldest_segments(10, after=first[-1].seq)
    assert [r.start_time - T0 for r in rest] == [2, 3, 4]


def test_total_size_counts_finished_segments_and_snapshots(index: Index) -> None:
    assert index.total_size() == 0
    add_finished(index, "1" * 32, T0)
    index.add_segment_open("2" * 32, "porch", T0 + 4, "footage/porch/open.seg")
    index.add_snapshot("3" * 32, "porch", None, T0, "footage/porch/s.snap", 500)
    assert index.total_size() == 1500


def test_known_ids_covers_segments_and_snapshots(index: Index) -> None:
    add_finished(index, "1" * 32, T0)
    index.add_snapshot("3" * 32, "porch", None, T0, "footage/porch/s.snap", 500)
    assert index.known_ids(["1" * 32, "3" * 32, "9" * 32]) == {"1" * 32, "3" * 32}
    assert index.known_ids([]) == set()


def test_values_are_parameters_never_sql(index: Index) -> None:
    evil = "porch'); DROP TABLE segments; --"
    add_finished(index, "1" * 32, T0, camera=evil)
    assert [r.camera_id for r in index.segments(camera_id=evil)] == [evil]
    assert index.check_integrity() == "ok"


# -- events and snapshots --------------------------------------------------------------


def test_event_lifecycle(index: Index) -> None:
    event_id = index.add_event("porch", T0)
    started = index.get_event(event_id)
    assert started is not None
    assert (started.end_time, started.peak_score, started.bbox) == (None, None, None)
    index.update_event(event_id, peak_score=0.2, peak_time=T0 + 1, bbox=(10, 20, 30, 40))
    snapshot = index.add_snapshot("5" * 32, "porch", event_id, T0 + 2, "f/s.snap", 900)
    index.end_event(
        event_id,
        end_time=T0 + 9,
        peak_score=0.4,
        peak_time=T0 + 2,
        bbox=(1.0, 2.0, 3.0, 4.0),
        snapshot_id=snapshot.id,
    )
    ended = index.get_event(event_id)
    assert ended is not None
    assert (ended.end_time, ended.peak_score, ended.peak_time) == (T0 + 9, 0.4, T0 + 2)
    assert ended.bbox == (1.0, 2.0, 3.0, 4.0)
    assert ended.snapshot_id == snapshot.id
    assert index.get_snapshot(snapshot.id) == snapshot
    with pytest.raises(LookupError, match="no event 999"):
        index.end_event(999, end_time=T0, peak_score=0, peak_time=T0, bbox=None)


def test_an_event_number_is_never_given_twice(index: Index) -> None:
    """Alerts link to `/#event-N` and are told apart by N: a deleted event's number
    must not come back as the next event's."""
    first = index.add_event("porch", T0)
    index.delete_event(first)  # the newest event goes (the owner deleted it)
    second = index.add_event("porch", T0 + 10)
    assert second > first
    assert index.get_event(first) is None


def test_events_restored_under_their_own_numbers_are_not_numbered_again(index: Index) -> None:
    restored = EventRow(7, "porch", T0, T0 + 5, 0.3, T0 + 1, None, None)
    index.add_restored_events([restored])
    assert index.add_event("porch", T0 + 20) == 8
    assert index.get_event(7) == restored


def test_an_index_from_before_event_numbering_goes_on_after_every_number_used(
    db_path: Path,
) -> None:
    from hub.store import _MIGRATIONS

    numbering = next(i for i, m in enumerate(_MIGRATIONS) if any("event_seq" in s for s in m))
    conn = sqlite3.connect(db_path, isolation_level=None)
    for migration in _MIGRATIONS[:numbering]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("INSERT INTO events (id, camera_id, start_time) VALUES (4, 'porch', ?)", (T0,))
    # A share still names event 9, which the owner has since deleted.
    conn.execute(
        "INSERT INTO shares (id, secret_hash, label, camera_id, start_time, end_time, "
        "event_id, created, expires) VALUES ('s', x'00', 'l', 'porch', ?, ?, 9, ?, ?)",
        (T0, T0 + 5, T0, T0 + 99),
    )
    conn.close()
    with Index(db_path) as index:
        assert index.add_event("porch", T0 + 20) == 10


def test_event_listing_filters_and_pages(index: Index) -> None:
    ids = [index.add_event("porch" if i < 3 else "yard", T0 + i) for i in range(5)]
    assert [e.id for e in index.events()] == ids[::-1]
    assert [e.id for e in index.events(camera_id="yard")] == [ids[4], ids[3]]
    assert [e.id for e in index.events(start=T0 + 1, end=T0 + 3)] == [ids[2], ids[1]]
    assert [e.id for e in index.events(limit=2, offset=2)] == [ids[2], ids[1]]


def test_event_pages_by_cursor_do_not_shift_when_an_event_begins(index: Index) -> None:
    ids = [index.add_event("porch", T0 + i // 2) for i in range(6)]  # pairs share a start
    first = index.events(limit=3)
    assert [e.id for e in first] == [ids[5], ids[4], ids[3]]
    index.add_event("porch", T0 + 10)  # begins while the owner reads the first page
    second = index.events(limit=3, before=first[-1])
    assert [e.id for e in second] == [ids[2], ids[1], ids[0]]
    assert index.events(camera_id="yard", before=first[-1]) == []


def test_events_left_open_are_closed_at_their_last_known_moment(index: Index) -> None:
    peaked = index.add_event("porch", T0)
    index.update_event(peaked, peak_score=0.3, peak_time=T0 + 3, bbox=None)
    bare = index.add_event("yard", T0 + 10)
    done = index.add_event("yard", T0 + 20)
    index.end_event(done, end_time=T0 + 25, peak_score=0.1, peak_time=T0 + 21, bbox=None)
    closed = index.close_open_events()
    assert [e.id for e in closed] == [peaked, bare]
    ends = {e.id: e.end_time for e in index.events()}
    assert ends == {peaked: T0 + 3, bare: T0 + 10, done: T0 + 25}
    assert index.close_open_events() == []


def test_deleting_a_snapshot_unlinks_it_from_its_event(index: Index) -> None:
    event_id = index.add_event("porch", T0)
    index.add_snapshot("5" * 32, "porch", event_id, T0, "f/s.snap", 900)
    index.end_event(
        event_id, end_time=T0 + 1, peak_score=0.5, peak_time=T0, bbox=None, snapshot_id="5" * 32
    )
    assert index.delete_snapshot("5" * 32)
    event = index.get_event(event_id)
    assert event is not None and event.snapshot_id is None


def test_an_event_cannot_name_a_snapshot_that_does_not_exist(index: Index) -> None:
    event_id = index.add_event("porch", T0)
    with pytest.raises(sqlite3.IntegrityError):
        index.end_event(
            event_id, end_time=T0 + 1, peak_score=0.5, peak_time=T0, bbox=None, snapshot_id="x"
        )


def test_old_events_are_deleted_only_once_ended_before_the_cutoff(index: Index) -> None:
    old = index.add_event("porch", T0)
    index.end_event(old, end_time=T0 + 5, peak_score=0.1, peak_time=T0, bbox=None)
    straddling = index.add_event("porch", T0 + 8)
    index.end_event(straddling, end_time=T0 + 12, peak_score=0.1, peak_time=T0 + 9, bbox=None)
    ongoing = index.add_event("porch", T0 + 1)
    assert index.delete_events_ended_before(T0 + 10) == 1
    assert {e.id for e in index.events()} == {straddling, ongoing}


def test_oldest_snapshots_page_in_recording_order_not_by_stamp(index: Index) -> None:
    for i in range(4):  # a clock going back between each
        index.add_snapshot(f"{i:032x}", "porch", None, T0 + 3 - i, f"f/{i}.snap", 10)
    first = index.oldest_snapshots(2)
    assert [s.time - T0 for s in first] == [3, 2]
    rest = index.oldest_snapshots(5, after=first[-1].seq)
    assert [s.time - T0 for s in rest] == [1, 0]


# -- threads ---------------------------------------------------------------------------


def test_camera_threads_write_while_a_reader_reads(index: Index) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def camera(name: str) -> None:
        try:
            for i in range(150):
                seg_id = f"{name}{i:028x}"
                index.add_segment_open(seg_id, name, T0 + i, f"footage/{name}/{i}.seg")
                event_id = index.add_event(name, T0 + i)
                index.complete_segment(seg_id, T0 + i + 1, 10, 1)
                index.end_event(event_id, end_time=T0 + i, peak_score=0, peak_time=T0, bbox=None)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                index.segments(limit=50)
                index.total_size()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(n,)) for n in ("cam1", "cam2", "cam3")]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    rows = index.segments(limit=1000)
    assert len(rows) == 450
    assert all(r.state is SegmentState.COMPLETE for r in rows)
    assert len(index.events(limit=1000)) == 450
    assert index.total_size() == 4500
    assert index.check_integrity() == "ok"


# -- footage sequence ------------------------------------------------------------------


def test_an_index_from_before_the_sequence_is_numbered_in_time_order(db_path: Path) -> None:
    from hub.store import _MIGRATIONS

    sequence = next(i for i, m in enumerate(_MIGRATIONS) if any("footage_seq" in s for s in m))
    conn = sqlite3.connect(db_path, isolation_level=None)
    for migration in _MIGRATIONS[:sequence]:  # the schema as it was before the sequence
        for statement in migration:
            conn.execute(statement)
    stamps = {"b" * 32: T0 + 20, "a" * 32: T0, "c" * 32: T0 + 40}
    for seg_id, start in stamps.items():
        conn.execute(
            "INSERT INTO segments VALUES (?, 'porch', ?, ?, ?, 10, 1, 'complete', ?)",
            (seg_id, start, start + 4, f"footage/{seg_id}.seg", start),
        )
    conn.execute(
        "INSERT INTO snapshots VALUES (?, 'porch', NULL, ?, 'f/s.snap', 5)", ("s" * 32, T0 + 30)
    )
    conn.close()
    with Index(db_path) as index:
        order = [r.id[0] for r in index.oldest_segments(10)]
        assert order == ["a", "b", "c"]
        assert [r.seq for r in index.oldest_segments(10)] == [1, 2, 4]
        assert [s.seq for s in index.oldest_snapshots(10)] == [3]
        assert index.last_seq() == 4
        fresh = index.add_segment_open("d" * 32, "porch", T0 - 999, "footage/d.seg")
        assert fresh.seq == 5  # recorded last, whatever its stamp
        assert index.newest_footage() == (5, T0 - 999)


def test_sequence_numbers_are_never_given_twice(index: Index) -> None:
    first = index.add_segment_open("1" * 32, "porch", T0, "footage/1.seg")
    index.delete_segment(first.id)  # the newest row goes (an aborted segment)
    second = index.add_segment_open("2" * 32, "porch", T0, "footage/2.seg")
    snap = index.add_snapshot("3" * 32, "porch", None, T0, "footage/3.snap", 5)
    assert (first.seq, second.seq, snap.seq) == (1, 2, 3)
    assert index.get_segment(second.id) == second


def test_rebuilt_rows_are_numbered_in_the_order_given(index: Index) -> None:
    live = index.add_segment_open("a" * 32, "porch", T0 + 100, "footage/a.seg")
    rebuilt = [
        SegmentRow(
            "b" * 32, "porch", T0, T0 + 4, "footage/b.seg", 9, None, SegmentState.RECOVERED, 0
        ),
        SnapshotRow("c" * 32, "porch", None, T0 + 5, "footage/c.snap", 9),
        SegmentRow(
            "d" * 32, "porch", T0 + 8, T0 + 12, "footage/d.seg", 9, None, SegmentState.RECOVERED, 0
        ),
    ]
    index.add_rebuilt(rebuilt)
    assert [r.seq for r in index.oldest_segments(10)] == [2, 4]
    assert [s.seq for s in index.oldest_snapshots(10)] == [3]
    assert live.seq == 1 and index.last_seq() == 4
