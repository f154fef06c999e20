"""The SQLite index: which sealed segments and snapshots exist, and the motion events.

The index holds no key and no footage, only times, sizes and paths; it is still
private (when someone was at the door), so the database file is created mode 0600.

Choices, and why:

- WAL journal, so the web server's reads never wait for a camera's write to finish
  its fsync, and a crash never leaves a half-applied transaction.
- `synchronous=FULL`: every commit is on disk when it returns. Archive orders its
  fsyncs around index commits (the 'open' row before the first byte, 'complete' only
  after the file and its directory are synced). With NORMAL a power cut may roll back
  the last commits, turning a synced segment into an orphan the next start deletes.
  The cost is one WAL fsync per commit, a handful per segment of a few seconds.
- Two connections, each behind its own lock and shared by every thread: one writes,
  one only reads (`query_only`). Under WAL a read never waits for a write's fsync,
  so the web page's lookups do not queue behind a camera's segment commit on a slow
  SD card. Each statement is a short indexed lookup, so serialising the reads (or
  the writes) among themselves costs nothing we can measure at a few cameras, while a
  connection per thread would tie connection lifetimes to threads that aiohttp's
  executor and the camera loops create and end on their own. Every write commits
  before it returns, so a read that follows it sees it.
- Schema changes are numbered migrations; `PRAGMA user_version` says how many ran.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

log = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]  # x, y, width, height


class SchemaError(Exception):
    """The database was written by a newer camhub, or is not a camhub index."""


class DamagedIndex(SchemaError):
    """SQLite cannot read the file as a database: `camhub repair` moves it aside."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not a usable camhub index ({reason})")
        self.reason = reason


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is bad, not that it is busy or unreachable."""
    return getattr(exc, "sqlite_errorname", None) in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class IndexHealth:
    """The index's latest failure, for /healthz and the owner's page. Thread-safe.

    A damaged file stays reported until restart (`camhub repair` is the way out); other
    failures (a full disk, an I/O error, a lock held too long) clear at the next
    statement that succeeds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problem: str | None = None
        self._damaged = False
        self.failures = 0  # since start

    def failed(self, exc: sqlite3.DatabaseError) -> None:
        with self._lock:
            self.failures += 1
            if self._damaged:
                return
            self._damaged = is_damage(exc)
            self._problem = str(exc)
            if self._damaged:
                self._problem += " (footage is still recorded; stop the hub and run camhub repair)"

    def succeeded(self) -> None:
        if self._problem is not None and not self._damaged:
            with self._lock:
                if not self._damaged:
                    self._problem = None

    @property
    def problem(self) -> str | None:
        """None while the index works; else what failed, fit to show the owner."""
        return self._problem


class _WatchedConnection(sqlite3.Connection):
    """Reports each statement's failure or success to the index's health."""

    health: IndexHealth

    def execute(self, sql: str, parameters: object = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        return self._watch(super().execute, sql, parameters)

    def executemany(self, sql: str, parameters: object, /) -> sqlite3.Cursor:  # type: ignore[override]
        return self._watch(super().executemany, sql, parameters)

    def _watch(self, run: Callable[..., sqlite3.Cursor], *args: object) -> sqlite3.Cursor:
        try:
            cursor = run(*args)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a caller's mistake, not the file's
        except sqlite3.DatabaseError as exc:
            self.health.failed(exc)
            raise
        self.health.succeeded()
        return cursor


class SegmentState(enum.StrEnum):
    OPEN = "open"  # being written, or left behind by a crash until recover() runs
    COMPLETE = "complete"  # final chunk written and synced
    RECOVERED = "recovered"  # cut back to its whole chunks after a crash or write error


@dataclass(frozen=True, slots=True)
class SegmentRow:
    id: str  # hex of the sealed file's id
    camera_id: str
    start_time: float
    end_time: float | None  # None while open; estimated for recovered segments
    path: str  # relative to the data directory, with '/' separators
    size: int | None  # bytes on disk; None while open
    frames: int | None  # None while open and for recovered segments
    state: SegmentState
    created: float
    seq: int = 0  # order of recording, whatever the clock said; 0 until indexed


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    camera_id: str
    start_time: float
    end_time: float | None  # None while the motion goes on
    peak_score: float | None
    peak_time: float | None
    bbox: BBox | None
    snapshot_id: str | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    time: float
    kind: str
    actor: str
    detail: str  # canonical JSON object
    hash: str  # hex SHA-256 chaining this record to the one before


@dataclass(frozen=True, slots=True)
class AuditSeal:
    seq: int  # the newest record vouched for
    hash: str  # that record's chain hash
    time: float  # when it was sealed
    mac: str  # hex HMAC-SHA256 over the above, under a key derived from the owner's


class ShareEnd(enum.StrEnum):
    REVOKED = "revoked"
    EXPIRED = "expired"
    USED_UP = "used up"


@dataclass(frozen=True, slots=True)
class ShareRow:
    id: str
    secret_hash: bytes
    label: str
    camera_id: str
    start_time: float
    end_time: float
    event_id: int | None
    created: float
    expires: float
    max_views: int | None
    views: int
    last_used: float | None
    ended: float | None
    end_reason: ShareEnd | None


@dataclass(frozen=True, slots=True)
class PushSubscriptionRow:
    """A browser the owner subscribed to Web Push (RFC 8030/8291)."""

    id: int
    endpoint: str  # the push service's URL for this browser
    p256dh: str  # the browser's P-256 public key, base64url
    auth: str  # the 16-byte auth secret, base64url
    created: float
    client: str  # who subscribed it, as the access log names them


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    id: str
    camera_id: str
    event_id: int | None
    time: float
    path: str
    size: int
    seq: int = 0  # shares one sequence with segments


FootageRow = TypeVar("FootageRow", SegmentRow, SnapshotRow)


# Migration N (0-based) takes the schema from version N to N + 1 and sets that version
# itself, so no statement is ever built from a value.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE segments (
            id TEXT PRIMARY KEY,
            camera_id TEXT NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL,
            path TEXT NOT NULL UNIQUE,
            size INTEGER CHECK (size >= 0),
            frames INTEGER CHECK (frames >= 0),
            state TEXT NOT NULL CHECK (state IN ('open', 'complete', 'recovered')),
            created REAL NOT NULL
        )
        """,
        "CREATE INDEX segments_by_camera ON segments (camera_id, start_time)",
        "CREATE INDEX segments_by_time ON segments (start_time, id)",
        "CREATE INDEX segments_open ON segments (state) WHERE state = 'open'",
        """
        CREATE TABLE snapshots (
            id TEXT PRIMARY KEY,
            camera_id TEXT NOT NULL,
            event_id INTEGER REFERENCES events (id) ON DELETE SET NULL,
            time REAL NOT NULL,
            path TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL CHECK (size >= 0)
        )
        """,
        "CREATE INDEX snapshots_by_camera ON snapshots (camera_id, time)",
        "CREATE INDEX snapshots_by_time ON snapshots (time, id)",
        "CREATE INDEX snapshots_by_event ON snapshots (event_id)",
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            camera_id TEXT NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL,
            peak_score REAL,
            peak_time REAL,
            bbox_x REAL,
            bbox_y REAL,
            bbox_w REAL,
            bbox_h REAL,
            snapshot_id TEXT REFERENCES snapshots (id) ON DELETE SET NULL
        )
        """,
        "CREATE INDEX events_by_camera ON events (camera_id, start_time)",
        "CREATE INDEX events_by_time ON events (start_time)",
        "CREATE INDEX events_by_snapshot ON events (snapshot_id)",
        "PRAGMA user_version = 1",
    ),
    (
        # The access log: `hash` chains each record to the one before (hub/audit.py).
        """
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL,
            hash TEXT NOT NULL
        )
        """,
        # A share holds only a hash of its link's secret; its data keys are wrapped
        # under that secret in share_keys, and deleted when it is revoked or expires.
        """
        CREATE TABLE shares (
            id TEXT PRIMARY KEY,
            secret_hash BLOB NOT NULL,
            label TEXT NOT NULL,
            camera_id TEXT NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL NOT NULL,
            event_id INTEGER,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            max_views INTEGER CHECK (max_views > 0),
            views INTEGER NOT NULL DEFAULT 0,
            last_used REAL,
            ended REAL,
            end_reason TEXT CHECK (end_reason IN ('revoked', 'expired', 'used up'))
        )
        """,
        "CREATE INDEX shares_live ON shares (expires) WHERE ended IS NULL",
        """
        CREATE TABLE share_keys (
            share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
            segment_id TEXT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
            wrapped BLOB NOT NULL,
            PRIMARY KEY (share_id, segment_id)
        )
        """,
        "CREATE INDEX share_keys_by_segment ON share_keys (segment_id)",
        "PRAGMA user_version = 2",
    ),
    (
        # The access log's seal: the newest record the owner's key vouched for, with
        # a MAC only that key can make (hub/audit.py). One row, replaced as it moves on.
        """
        CREATE TABLE audit_seal (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            time REAL NOT NULL,
            mac TEXT NOT NULL
        )
        """,
        "PRAGMA user_version = 3",
    ),
    (
        # Each counted view of a share link hands its browser a random open token; the
        # index keeps only its SHA-256, the share and when it was issued (hub/shares.py).
        """
        CREATE TABLE share_opens (
            token_hash BLOB PRIMARY KEY,
            share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
            opened REAL NOT NULL
        )
        """,
        "CREATE INDEX share_opens_by_share ON share_opens (share_id, opened)",
        "PRAGMA user_version = 4",
    ),
    (
        # The order footage was recorded in, one sequence for segments and snapshots,
        # assigned at insert: retention goes by it, not by the wall clock (hub/clock.py).
        # Existing rows are numbered in time order.
        "ALTER TABLE segments ADD COLUMN seq INTEGER",
        "ALTER TABLE snapshots ADD COLUMN seq INTEGER",
        """
        CREATE TEMP TABLE footage_order AS
        SELECT kind, id, row_number() OVER (ORDER BY t, kind, id) AS seq FROM (
            SELECT 0 AS kind, id, start_time AS t FROM segments
            UNION ALL SELECT 1, id, time FROM snapshots
        )
        """,
        "UPDATE segments SET seq = o.seq FROM temp.footage_order AS o "
        "WHERE o.kind = 0 AND o.id = segments.id",
        "UPDATE snapshots SET seq = o.seq FROM temp.footage_order AS o "
        "WHERE o.kind = 1 AND o.id = snapshots.id",
        "CREATE UNIQUE INDEX segments_by_seq ON segments (seq)",
        "CREATE UNIQUE INDEX snapshots_by_seq ON snapshots (seq)",
        # The last number given out; never goes back, even when the newest row is deleted.
        """
        CREATE TABLE footage_seq (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            last INTEGER NOT NULL
        )
        """,
        "INSERT INTO footage_seq SELECT 1, coalesce(max(seq), 0) FROM temp.footage_order",
        "DROP TABLE temp.footage_order",
        # Wall-clock jumps seen while recording: footage up to `seq` is aged `shift`
        # seconds later than its stamp (hub/clock.py).
        """
        CREATE TABLE clock_steps (
            seq INTEGER PRIMARY KEY,
            shift REAL NOT NULL,
            seen REAL NOT NULL
        )
        """,
        "PRAGMA user_version = 5",
    ),
    (
        # Alerts (hub/alerts/): the browsers the owner subscribed to Web Push (endpoint
        # and the RFC 8291 keys to encrypt to them), the cameras whose alerts are off,
        # and the snooze. Set from the page; no footage or secret of the owner's here.
        """
        CREATE TABLE push_subscriptions (
            id INTEGER PRIMARY KEY,
            endpoint TEXT NOT NULL UNIQUE,
            p256dh TEXT NOT NULL,
            auth TEXT NOT NULL,
            created REAL NOT NULL,
            client TEXT NOT NULL
        )
        """,
        "CREATE TABLE alert_muted (camera_id TEXT PRIMARY KEY)",
        """
        CREATE TABLE alert_snooze (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            until REAL NOT NULL
        )
        """,
        "PRAGMA user_version = 6",
    ),
    (
        # The off-site copy's durable queue (hub/offsite/queue.py): one row per sealed
        # file to copy (or journal copied), pending until the bucket confirmed it.
        """
        CREATE TABLE offsite (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('segment', 'snapshot', 'journal')),
            camera_id TEXT,
            time REAL NOT NULL,
            urgent INTEGER NOT NULL CHECK (urgent IN (0, 1)),
            state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed')),
            queued REAL NOT NULL,
            size INTEGER CHECK (size >= 0),
            sha256 TEXT,
            confirmed REAL
        )
        """,
        "CREATE INDEX offsite_pending ON offsite (urgent DESC, time, id) WHERE state = 'pending'",
        "CREATE INDEX offsite_confirmed ON offsite (time, id) WHERE state = 'confirmed'",
        """
        CREATE TABLE offsite_status (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            last_success REAL,
            last_error TEXT,
            last_error_time REAL
        )
        """,
        "PRAGMA user_version = 7",
    ),
    (
        # Off-site copies of footage the owner deleted (hub/offsite/queue.py): a row per
        # object still to delete from the bucket, taken from `offsite` in the deleting
        # transaction; and how many such deletions the bucket has done.
        """
        CREATE TABLE offsite_delete (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('segment', 'snapshot')),
            queued REAL NOT NULL
        )
        """,
        "ALTER TABLE offsite_status ADD COLUMN owner_deleted INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE offsite_status ADD COLUMN last_owner_delete REAL",
        "PRAGMA user_version = 8",
    ),
    (
        # The last event number given out. Alerts link to `/#event-N` and are told
        # apart by N, so a deleted event's number never comes back; numbers a share
        # still names count as used.
        """
        CREATE TABLE event_seq (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            last INTEGER NOT NULL
        )
        """,
        "INSERT INTO event_seq SELECT 1, max("
        "(SELECT coalesce(max(id), 0) FROM events), "
        "(SELECT coalesce(max(event_id), 0) FROM shares))",
        "PRAGMA user_version = 9",
    ),
    (
        # S3 Object Lock (hub/offsite, DESIGN.md §16): until when the bucket refuses to
        # delete each copy, so expiry and the owner's deletions wait for it.
        "ALTER TABLE offsite ADD COLUMN locked_until REAL",
        "ALTER TABLE offsite_delete ADD COLUMN locked_until REAL",
        "PRAGMA user_version = 10",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
BUSY_TIMEOUT = 10.0  # seconds another process (the CLI) may hold the write lock

_SEGMENT_COLUMNS = "id, camera_id, start_time, end_time, path, size, frames, state, created, seq"
_EVENT_COLUMNS = (
    "id, camera_id, start_time, end_time, peak_score, peak_time, "
    "bbox_x, bbox_y, bbox_w, bbox_h, snapshot_id"
)
_SNAPSHOT_COLUMNS = "id, camera_id, event_id, time, path, size, seq"
# Readable segments of a camera that cover any of [start, end): of those that start
# before `start` only the latest can reach into the range, so the query seeks to it
# instead of scanning the camera's history. Parameters: camera, end, camera, start,
# start, start.
_OVERLAPPING = (
    "WHERE camera_id = ? AND state != 'open' AND start_time < ? "
    "AND start_time >= coalesce("
    "  (SELECT max(start_time) FROM segments WHERE camera_id = ? AND start_time <= ?), ?) "
    "AND coalesce(end_time, start_time) > ?"
)
# The next footage sequence number and event number, taken inside the inserting
# transaction.
_NEXT_SEQ = "UPDATE footage_seq SET last = last + 1 WHERE one = 1 RETURNING last"
_NEXT_EVENT = "UPDATE event_seq SET last = last + 1 WHERE one = 1 RETURNING last"
_AUDIT_COLUMNS = "seq, time, kind, actor, detail, hash"
_SHARE_COLUMNS = (
    "id, secret_hash, label, camera_id, start_time, end_time, event_id, created, expires, "
    "max_views, views, last_used, ended, end_reason"
)


def merge_stretches(
    rows: Iterable[tuple[float, float, int]], gap: float, limit: int
) -> list[tuple[float, float, int, int]]:
    """Segments (start, end, bytes), by start, folded into stretches (start, end,
    segments, bytes): a segment starting at most `gap` seconds after the previous one
    ended joins its stretch. Stops reading once `limit` stretches are complete."""
    stretches: list[tuple[float, float, int, int]] = []
    previous_end = 0.0
    for a, b, size in rows:
        if stretches and a - previous_end <= gap:
            first, last, count, total = stretches[-1]
            stretches[-1] = (first, max(last, b), count + 1, total + size)
        elif len(stretches) == limit:
            break
        else:
            stretches.append((a, b, 1, size))
        previous_end = b
    return stretches


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION, one migration per transaction."""
    while True:
        with _transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"index schema version {version} is newer than this camhub "
                    f"understands ({SCHEMA_VERSION}); upgrade camhub"
                )
            if version == SCHEMA_VERSION:
                return version
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            if conn.execute("PRAGMA user_version").fetchone()[0] != version + 1:
                raise SchemaError(f"migration {version + 1} did not set its version")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a second process (the CLI) waits
    # on busy_timeout instead of failing half-way with SQLITE_BUSY.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Index:
    """Typed access to the index database; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        # Created here first so SQLite (and its -wal/-shm files, which copy the
        # database's mode) never exist world-readable, whatever the umask.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self.health = IndexHealth()
        self._conn = self._connect(path)
        self._lock = threading.Lock()
        try:
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise SchemaError(f"{path}: cannot use WAL journal mode (got {mode})")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            # Deleted rows are overwritten, so a revoked share's wrapped keys do not
            # linger in free pages of the file.
            self._conn.execute("PRAGMA secure_delete = ON")
            migrate(self._conn)
            self._reader = self._connect(path)
            self._reader.execute("PRAGMA query_only = ON")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if is_damage(exc):
                raise DamagedIndex(path, str(exc)) from None
            raise SchemaError(f"{path}: cannot open the index ({exc})") from None
        except BaseException:
            self._conn.close()
            raise
        self._read_lock = threading.Lock()

    def _connect(self, path: Path) -> _WatchedConnection:
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT,
            isolation_level=None,
            check_same_thread=False,
            factory=_WatchedConnection,
        )
        conn.health = self.health
        return conn

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- segments ---------------------------------------------------------------------

    def add_segment_open(
        self, segment_id: str, camera_id: str, start_time: float, path: str
    ) -> SegmentRow:
        row = SegmentRow(
            id=segment_id,
            camera_id=camera_id,
            start_time=start_time,
            end_time=None,
            path=path,
            size=None,
            frames=None,
            state=SegmentState.OPEN,
            created=time.time(),
        )
        with self._lock, _transaction(self._conn):
            return self._insert_footage(row)

    def complete_segment(self, segment_id: str, end_time: float, size: int, frames: int) -> None:
        self._update_open(
            "UPDATE segments SET state = 'complete', end_time = ?, size = ?, frames = ? "
            "WHERE id = ? AND state = 'open'",
            (end_time, size, frames, segment_id),
            segment_id,
        )

    def mark_recovered(self, segment_id: str, end_time: float, size: int) -> None:
        self._update_open(
            "UPDATE segments SET state = 'recovered', end_time = ?, size = ? "
            "WHERE id = ? AND state = 'open'",
            (end_time, size, segment_id),
            segment_id,
        )

    def delete_segment(self, segment_id: str) -> bool:
        return self._write("DELETE FROM segments WHERE id = ?", (segment_id,)) > 0

    def get_segment(self, segment_id: str) -> SegmentRow | None:
        rows = self._segments(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE id = ?", (segment_id,)
        )
        return rows[0] if rows else None

    def segments(
        self,
        camera_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[SegmentRow]:
        """Segments that started in [start, end), newest first."""
        where, params = _filters(camera_id, start, end)
        return self._segments(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments {where} "
            "ORDER BY start_time DESC, id DESC LIMIT ? OFFSET ?",
            (*params, *_page(limit, offset)),
        )

    def segments_overlapping(self, camera_id: str, start: float, end: float) -> list[SegmentRow]:
        """Readable segments of one camera that cover any of [start, end), oldest first.

        A camera records one segment at a time, so of those that start before
        `start` only the latest can reach into the range: the query seeks to it
        instead of scanning the camera's whole history.
        """
        return self._segments(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments {_OVERLAPPING} ORDER BY start_time",
            (camera_id, end, camera_id, start, start, start),
        )

    def clip_span(self, camera_id: str, start: float, end: float) -> tuple[float, float] | None:
        """Where a clip of [start, end) really begins and ends: it plays the whole
        segments segments_overlapping() finds. None when no footage is left."""
        rows = self._query(
            f"SELECT min(start_time), max(coalesce(end_time, start_time)) FROM segments "
            f"{_OVERLAPPING}",
            (camera_id, end, camera_id, start, start, start),
        )
        first, last = rows[0]
        return None if first is None else (float(first), float(last))  # type: ignore[arg-type]

    def segments_to_delete(
        self, camera_id: str, start: float, end: float, limit: int, after: int = 0
    ) -> list[SegmentRow]:
        """Segments of one camera that cover any of [start, end), being written or not,
        in recording order numbered after `after` (the owner's deletion walks them)."""
        return self._segments(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE camera_id = ? "
            "AND start_time < ? AND coalesce(end_time, ?) > ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (camera_id, end, end, start, after, _limit(limit)),
        )

    def recorded_spans(
        self, camera_id: str, start: float, end: float, gap: float, limit: int, now: float
    ) -> list[tuple[float, float, int, int]]:
        """(start, end, segments, bytes) of the stretches a camera recorded within
        [start, end), oldest first: segments at most `gap` seconds apart are one
        stretch. A segment being written reaches to `now`.

        The query seeks to the range through the (camera, start) index, as
        segments_overlapping() does: a day's answer costs that day's rows, however long
        the camera's history. The rows are folded into stretches as they are read (one
        pass, constant memory), which costs less than SQLite's window functions did."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT start_time, coalesce(end_time, max(start_time, ?)), coalesce(size, 0) "
                "FROM segments WHERE camera_id = ? AND start_time < ? AND start_time >= "
                "coalesce((SELECT max(start_time) FROM segments "
                "  WHERE camera_id = ? AND start_time <= ?), ?) "
                "AND coalesce(end_time, ?) > ? ORDER BY start_time",
                (now, camera_id, end, camera_id, start, start, now, start),
            )
            return merge_stretches(rows, gap, _limit(limit))

    def footage_by_camera(self) -> dict[str, tuple[int, int, float | None]]:
        """Per camera: (sealed files, bytes, start of its oldest footage)."""
        rows = self._query(
            "SELECT camera_id, sum(n), sum(bytes), min(oldest) FROM ("
            "  SELECT camera_id, count(*) AS n, coalesce(sum(size), 0) AS bytes, "
            "  min(start_time) AS oldest FROM segments GROUP BY camera_id "
            "  UNION ALL SELECT camera_id, count(*), sum(size), min(time) FROM snapshots "
            "  GROUP BY camera_id) GROUP BY camera_id ORDER BY camera_id"
        )
        return {str(c): (int(n), int(b), o) for c, n, b, o in rows}  # type: ignore[misc]

    def open_segments(self) -> list[SegmentRow]:
        return self._segments(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE state = 'open' ORDER BY start_time"
        )

    def oldest_segments(self, limit: int, after: int = 0) -> list[SegmentRow]:
        """Segments not being written, in recording order, numbered after `after`."""
        return self._segments(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments "
            "WHERE state != 'open' AND seq > ? ORDER BY seq LIMIT ?",
            (after, _limit(limit)),
        )

    def newest_spans(self, limit: int, before: int | None = None) -> list[tuple[int, float]]:
        """(seq, seconds recorded) of segments, newest first, numbered before `before`;
        a segment still being written counts 0 seconds."""
        rows = self._query(
            "SELECT seq, coalesce(end_time - start_time, 0) FROM segments "
            "WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            (before if before is not None else 2**62, _limit(limit)),
        )
        return [(int(seq), float(seconds)) for seq, seconds in rows]  # type: ignore[arg-type]

    def newest_footage(self) -> tuple[int, float] | None:
        """(seq, stamp) of the footage recorded last, being written or not."""
        rows = self._query(
            "SELECT * FROM (SELECT seq, start_time FROM segments ORDER BY seq DESC LIMIT 1) "
            "UNION ALL SELECT * FROM (SELECT seq, time FROM snapshots ORDER BY seq DESC LIMIT 1) "
            "ORDER BY 1 DESC LIMIT 1"
        )
        return (int(rows[0][0]), float(rows[0][1])) if rows else None  # type: ignore[arg-type]

    def last_seq(self) -> int:
        """The footage sequence number given out last (0: none yet)."""
        return self._one("SELECT last FROM footage_seq WHERE one = 1")

    def add_clock_step(self, seq: int, shift: float, seen: float) -> None:
        """Remember a wall-clock jump; steps that no footage needs any more are dropped."""
        with self._lock, _transaction(self._conn):
            self._conn.execute(
                "INSERT INTO clock_steps (seq, shift, seen) VALUES (?, ?, ?) "
                "ON CONFLICT (seq) DO UPDATE SET shift = shift + excluded.shift",
                (seq, shift, seen),
            )
            self._conn.execute(
                "DELETE FROM clock_steps WHERE seq < (SELECT min(seq) FROM "
                "(SELECT min(seq) AS seq FROM segments UNION ALL SELECT min(seq) FROM snapshots))"
            )

    def clock_steps(self) -> list[tuple[int, float]]:
        """(seq, shift) of the wall-clock jumps seen while recording, oldest first."""
        rows = self._query("SELECT seq, shift FROM clock_steps ORDER BY seq")
        return [(int(seq), float(shift)) for seq, shift in rows]  # type: ignore[arg-type]

    def has_footage(self) -> bool:
        """Whether any segment or snapshot is indexed: a new or emptied index has none."""
        return bool(
            self._one("SELECT EXISTS (SELECT 1 FROM segments) OR EXISTS (SELECT 1 FROM snapshots)")
        )

    def add_rebuilt(self, rows: Iterable[SegmentRow | SnapshotRow]) -> None:
        """Rows rebuilt from sealed files (hub/repair.py), all or none, numbered in the
        order given (after any footage already indexed)."""
        with self._lock, _transaction(self._conn):
            for row in rows:
                self._insert_footage(row)

    def total_size(self) -> int:
        """Bytes of sealed footage on disk: segments not being written, and snapshots."""
        return self._one(
            "SELECT (SELECT coalesce(sum(size), 0) FROM segments)"
            " + (SELECT coalesce(sum(size), 0) FROM snapshots)"
        )

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of `ids` name a segment or a snapshot."""
        found = self._query(
            "SELECT id FROM segments WHERE id IN (SELECT value FROM json_each(?1)) "
            "UNION SELECT id FROM snapshots WHERE id IN (SELECT value FROM json_each(?1))",
            (json.dumps(list(ids)),),
        )
        return {row[0] for row in found}

    # -- events -----------------------------------------------------------------------

    def add_event(self, camera_id: str, start_time: float) -> int:
        with self._lock:
            with _transaction(self._conn):
                (event_id,) = self._conn.execute(_NEXT_EVENT).fetchone()
                self._conn.execute(
                    "INSERT INTO events (id, camera_id, start_time) VALUES (?, ?, ?)",
                    (event_id, camera_id, start_time),
                )
            return int(event_id)

    def update_event(
        self, event_id: int, *, peak_score: float, peak_time: float, bbox: BBox | None
    ) -> None:
        """Record the event's strongest moment so far, while it goes on."""
        self._update_event(
            "peak_score = ?, peak_time = ?, bbox_x = ?, bbox_y = ?, bbox_w = ?, bbox_h = ?",
            (peak_score, peak_time, *_bbox_columns(bbox)),
            event_id,
        )

    def end_event(
        self,
        event_id: int,
        *,
        end_time: float,
        peak_score: float,
        peak_time: float,
        bbox: BBox | None,
        snapshot_id: str | None = None,
    ) -> None:
        self._update_event(
            "end_time = ?, peak_score = ?, peak_time = ?, "
            "bbox_x = ?, bbox_y = ?, bbox_w = ?, bbox_h = ?, snapshot_id = ?",
            (end_time, peak_score, peak_time, *_bbox_columns(bbox), snapshot_id),
            event_id,
        )

    def get_event(self, event_id: int) -> EventRow | None:
        rows = self._events(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,))
        return rows[0] if rows else None

    def events(
        self,
        camera_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        offset: int = 0,
        before: EventRow | None = None,
    ) -> list[EventRow]:
        """Events that started in [start, end), newest first; with `before`, only those
        listed after it (a cursor: a page does not shift when a new event begins)."""
        after = (before.start_time, before.id) if before is not None else None
        where, params = _filters(camera_id, start, end, after)
        return self._events(
            f"SELECT {_EVENT_COLUMNS} FROM events {where} "
            "ORDER BY start_time DESC, id DESC LIMIT ? OFFSET ?",
            (*params, *_page(limit, offset)),
        )

    def events_overlapping(self, camera_id: str, start: float, end: float) -> list[EventRow]:
        """Events of one camera that cover any of [start, end), still open ones included."""
        return self._events(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE camera_id = ? AND start_time < ? "
            "AND (end_time IS NULL OR end_time > ?) ORDER BY start_time",
            (camera_id, end, start),
        )

    def add_restored_events(self, events: Iterable[EventRow]) -> None:
        """Events read back from the off-site journals into a new index, under their own
        ids, all or none; their snapshots are linked by end_event once those are in."""
        with self._lock, _transaction(self._conn):
            self._conn.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    (e.id, e.camera_id, e.start_time, e.end_time, e.peak_score, e.peak_time,
                     *_bbox_columns(e.bbox))
                    for e in events
                ],
            )  # fmt: skip
            self._conn.execute(
                "UPDATE event_seq SET last = max(last, (SELECT coalesce(max(id), 0) FROM events))"
            )

    def close_open_events(self) -> list[EventRow]:
        """End every event a crash left open, at its last known moment (peak or start)."""
        with self._lock, _transaction(self._conn):
            rows = self._conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE end_time IS NULL ORDER BY id"
            ).fetchall()
            self._conn.execute(
                "UPDATE events SET end_time = coalesce(peak_time, start_time) "
                "WHERE end_time IS NULL"
            )
        return [_event_row(row) for row in rows]

    def delete_event(self, event_id: int) -> bool:
        return self._write("DELETE FROM events WHERE id = ?", (event_id,)) > 0

    def delete_events(self, camera_id: str, start: float, end: float) -> int:
        """Forget the ended events of one camera that started in [start, end)."""
        return self._write(
            "DELETE FROM events WHERE camera_id = ? AND start_time >= ? AND start_time < ? "
            "AND end_time IS NOT NULL",
            (camera_id, start, end),
        )

    def delete_events_ended_before(self, cutoff: float) -> int:
        # start_time <= end_time, so the first bound lets the index narrow the scan.
        return self._write(
            "DELETE FROM events WHERE start_time < ? AND end_time < ?", (cutoff, cutoff)
        )

    # -- snapshots --------------------------------------------------------------------

    def add_snapshot(
        self,
        snapshot_id: str,
        camera_id: str,
        event_id: int | None,
        taken: float,
        path: str,
        size: int,
    ) -> SnapshotRow:
        row = SnapshotRow(snapshot_id, camera_id, event_id, taken, path, size)
        with self._lock, _transaction(self._conn):
            return self._insert_footage(row)

    def get_snapshot(self, snapshot_id: str) -> SnapshotRow | None:
        rows = self._query(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?", (snapshot_id,)
        )
        return SnapshotRow(*rows[0]) if rows else None

    def oldest_snapshots(self, limit: int, after: int = 0) -> list[SnapshotRow]:
        """Snapshots in recording order, numbered after `after`."""
        rows = self._query(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, _limit(limit)),
        )
        return [SnapshotRow(*row) for row in rows]  # type: ignore[arg-type]

    def snapshots_to_delete(
        self, camera_id: str, start: float, end: float, limit: int, after: int = 0
    ) -> list[SnapshotRow]:
        """Snapshots of one camera taken in [start, end), in recording order after `after`."""
        rows = self._query(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE camera_id = ? "
            "AND time >= ? AND time < ? AND seq > ? ORDER BY seq LIMIT ?",
            (camera_id, start, end, after, _limit(limit)),
        )
        return [SnapshotRow(*row) for row in rows]  # type: ignore[arg-type]

    def delete_snapshot(self, snapshot_id: str) -> bool:
        return self._write("DELETE FROM snapshots WHERE id = ?", (snapshot_id,)) > 0

    # -- access log -------------------------------------------------------------------

    def append_audit(
        self, time_: float, kind: str, actor: str, detail: str, chain: Callable[..., str]
    ) -> AuditRow:
        """Append one record; `chain(prev_hash, seq, time, kind, actor, detail)` hashes it.

        The previous hash is read and the record written in one transaction, so two
        threads logging at once cannot fork the chain.
        """
        with self._lock, _transaction(self._conn):
            last = self._conn.execute(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, "")
            row = AuditRow(
                seq, time_, kind, actor, detail, chain(prev, seq, time_, kind, actor, detail)
            )
            self._conn.execute(
                f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (row.seq, row.time, row.kind, row.actor, row.detail, row.hash),
            )
        return row

    def audit_records(
        self, after: int = 0, limit: int = 1000, *, newest_first: bool = False
    ) -> list[AuditRow]:
        """Records with seq > `after` oldest first, or with seq < `after` newest first."""
        if newest_first:
            sql = f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?"
            bound = after if after > 0 else 2**62
        else:
            sql = f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
            bound = after
        return [AuditRow(*row) for row in self._query(sql, (bound, _limit(limit)))]  # type: ignore[arg-type]

    def audit_seal(self) -> AuditSeal | None:
        rows = self._query("SELECT seq, hash, time, mac FROM audit_seal WHERE one = 1")
        return AuditSeal(*rows[0]) if rows else None  # type: ignore[arg-type]

    def set_audit_seal(self, seal: AuditSeal) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO audit_seal (one, seq, hash, time, mac) "
                "VALUES (1, ?, ?, ?, ?)",
                (seal.seq, seal.hash, seal.time, seal.mac),
            )

    def last_audit(self, kind: str) -> AuditRow | None:
        rows = self._query(
            f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE kind = ? ORDER BY seq DESC LIMIT 1",
            (kind,),
        )
        return AuditRow(*rows[0]) if rows else None  # type: ignore[arg-type]

    # -- shares -----------------------------------------------------------------------

    def add_share(self, share: ShareRow, wrapped_keys: Iterable[tuple[str, bytes]]) -> None:
        """The share and its wrapped data keys, all or nothing."""
        with self._lock, _transaction(self._conn):
            self._conn.execute(
                f"INSERT INTO shares ({_SHARE_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    share.id,
                    share.secret_hash,
                    share.label,
                    share.camera_id,
                    share.start_time,
                    share.end_time,
                    share.event_id,
                    share.created,
                    share.expires,
                    share.max_views,
                    share.views,
                    share.last_used,
                    share.ended,
                    share.end_reason,
                ),
            )
            self._conn.executemany(
                "INSERT INTO share_keys (share_id, segment_id, wrapped) VALUES (?, ?, ?)",
                [(share.id, segment_id, wrapped) for segment_id, wrapped in wrapped_keys],
            )

    def get_share(self, share_id: str) -> ShareRow | None:
        rows = self._query(f"SELECT {_SHARE_COLUMNS} FROM shares WHERE id = ?", (share_id,))
        return _share_row(rows[0]) if rows else None

    def shares(self, limit: int = 200) -> list[ShareRow]:
        """Every share, live ones first, newest first within each."""
        rows = self._query(
            f"SELECT {_SHARE_COLUMNS} FROM shares ORDER BY ended IS NOT NULL, created DESC LIMIT ?",
            (_limit(limit),),
        )
        return [_share_row(row) for row in rows]

    def share_keys(self, share_id: str) -> list[tuple[SegmentRow, bytes]]:
        """The shared segments still on disk, oldest first, with their wrapped keys."""
        columns = ", ".join(f"s.{c.strip()}" for c in _SEGMENT_COLUMNS.split(","))
        rows = self._query(
            f"SELECT {columns}, k.wrapped FROM share_keys k JOIN segments s "
            "ON s.id = k.segment_id WHERE k.share_id = ? AND s.state != 'open' "
            "ORDER BY s.start_time, s.id",
            (share_id,),
        )
        return [(_segment_row(row[:-1]), bytes(row[-1])) for row in rows]  # type: ignore[arg-type]

    def count_share_view(
        self, share_id: str, now: float, open_hash: bytes, *, forget_before: float, keep: int
    ) -> ShareRow | None:
        """Count one view of a live share and record the open token that view handed
        out, in one transaction; None if the share is ended or used up. The share's
        opens issued before `forget_before`, and all but its newest `keep`, are dropped."""
        with self._lock, _transaction(self._conn):
            updated = self._conn.execute(
                "UPDATE shares SET views = views + 1, last_used = ? WHERE id = ? "
                "AND ended IS NULL AND expires > ? AND (max_views IS NULL OR views < max_views)",
                (now, share_id, now),
            ).rowcount
            if not updated:
                return None
            self._conn.execute(
                "INSERT INTO share_opens (token_hash, share_id, opened) VALUES (?, ?, ?)",
                (open_hash, share_id, now),
            )
            self._conn.execute(
                "DELETE FROM share_opens WHERE share_id = ? AND (opened < ? OR token_hash "
                "NOT IN (SELECT token_hash FROM share_opens WHERE share_id = ? "
                "ORDER BY opened DESC LIMIT ?))",
                (share_id, forget_before, share_id, keep),
            )
            row = self._conn.execute(
                f"SELECT {_SHARE_COLUMNS} FROM shares WHERE id = ?", (share_id,)
            ).fetchone()
        return _share_row(row)

    def share_opened(self, share_id: str, open_hash: bytes) -> float | None:
        """When this share handed out the open token with this hash, if it did."""
        rows = self._query(
            "SELECT opened FROM share_opens WHERE token_hash = ? AND share_id = ?",
            (open_hash, share_id),
        )
        return float(rows[0][0]) if rows else None  # type: ignore[arg-type]

    def end_share(self, share_id: str, now: float, reason: ShareEnd) -> bool:
        """End a live share and delete its wrapped keys: the link opens nothing after.

        `secure_delete` zeroes the keys in the database's pages, but the WAL still holds
        the frames that wrote them; a TRUNCATE checkpoint moves the zeroed pages into the
        file and empties the WAL, so the keys are gone from disk now, not at the next
        clean stop.
        """
        with self._lock:
            with _transaction(self._conn):
                ended = self._conn.execute(
                    "UPDATE shares SET ended = ?, end_reason = ? WHERE id = ? AND ended IS NULL",
                    (now, reason.value, share_id),
                ).rowcount
                self._conn.execute("DELETE FROM share_keys WHERE share_id = ?", (share_id,))
                self._conn.execute("DELETE FROM share_opens WHERE share_id = ?", (share_id,))
            busy = self._checkpoint()
        if busy:  # another process (the CLI) kept reading past the busy timeout
            log.warning(
                "share %s ended, but its keys stay in the WAL until the next checkpoint", share_id
            )
        return ended > 0

    def checkpoint(self) -> bool:
        """Move the WAL into the file and empty it, so rows just deleted (wrapped keys)
        are gone from the disk now; False if another process kept it busy."""
        with self._lock:
            return not self._checkpoint()

    def _checkpoint(self) -> int:
        with self._read_lock:  # our reader holds no snapshot that pins old frames
            return int(self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])

    def live_shares(self) -> list[ShareRow]:
        rows = self._query(f"SELECT {_SHARE_COLUMNS} FROM shares WHERE ended IS NULL")
        return [_share_row(row) for row in rows]

    # -- alerts -----------------------------------------------------------------------

    def add_push_subscription(
        self, endpoint: str, p256dh: str, auth: str, created: float, client: str
    ) -> tuple[int, bool]:
        """Keep a browser's subscription (a known endpoint gets its new keys): its id,
        and whether the endpoint is new."""
        with self._lock:
            known = self._conn.execute(
                "SELECT 1 FROM push_subscriptions WHERE endpoint = ?", (endpoint,)
            ).fetchone()
            row = self._conn.execute(
                "INSERT INTO push_subscriptions (endpoint, p256dh, auth, created, client) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE SET "
                "p256dh = excluded.p256dh, auth = excluded.auth, created = excluded.created, "
                "client = excluded.client RETURNING id",
                (endpoint, p256dh, auth, created, client),
            ).fetchone()
            return int(row[0]), known is None

    def push_subscription_count(self) -> int:
        return self._one("SELECT count(*) FROM push_subscriptions")

    def remove_push_subscription(self, endpoint: str) -> int | None:
        """Forget a subscription: its id, or None if it was not known."""
        with self._lock:
            row = self._conn.execute(
                "DELETE FROM push_subscriptions WHERE endpoint = ? RETURNING id", (endpoint,)
            ).fetchone()
        return int(row[0]) if row is not None else None

    def push_subscriptions(self) -> list[PushSubscriptionRow]:
        rows = self._query(
            "SELECT id, endpoint, p256dh, auth, created, client FROM push_subscriptions ORDER BY id"
        )
        return [PushSubscriptionRow(*row) for row in rows]  # type: ignore[arg-type]

    def set_camera_alerts(self, camera_id: str, enabled: bool) -> None:
        if enabled:
            self._write("DELETE FROM alert_muted WHERE camera_id = ?", (camera_id,))
        else:
            self._write("INSERT OR IGNORE INTO alert_muted (camera_id) VALUES (?)", (camera_id,))

    def muted_cameras(self) -> frozenset[str]:
        return frozenset(str(row[0]) for row in self._query("SELECT camera_id FROM alert_muted"))

    def set_snooze(self, until: float | None) -> None:
        """Snooze every alert until `until` (Unix time); None ends the snooze."""
        if until is None:
            self._write("DELETE FROM alert_snooze", ())
        else:
            self._write("INSERT OR REPLACE INTO alert_snooze (one, until) VALUES (1, ?)", (until,))

    def snoozed_until(self) -> float | None:
        rows = self._query("SELECT until FROM alert_snooze WHERE one = 1")
        return float(rows[0][0]) if rows else None  # type: ignore[arg-type]

    # -- plumbing ---------------------------------------------------------------------

    def check_integrity(self, *, quick: bool = False) -> str:
        """SQLite's own verdict on the file: 'ok', or what is damaged. `quick` skips
        checking that indexes match their tables, which makes it linear in file size."""
        pragma = "PRAGMA quick_check" if quick else "PRAGMA integrity_check"
        return "\n".join(row[0] for row in self._query(pragma))

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    def _one(self, sql: str, params: tuple[object, ...] = ()) -> int:
        with self._read_lock:
            return int(self._reader.execute(sql, params).fetchone()[0])

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def _insert_footage(self, row: FootageRow) -> FootageRow:
        """Insert a segment or snapshot row numbered next in recording order (whatever
        its `seq` said); in the caller's transaction, under the write lock."""
        numbered = replace(row, seq=self._conn.execute(_NEXT_SEQ).fetchall()[0][0])
        table, columns = (
            ("segments", _SEGMENT_COLUMNS)
            if isinstance(numbered, SegmentRow)
            else ("snapshots", _SNAPSHOT_COLUMNS)
        )
        values = tuple(getattr(numbered, f.name) for f in fields(numbered))
        self._conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})", values
        )
        return numbered

    def _segments(self, sql: str, params: tuple[object, ...] = ()) -> list[SegmentRow]:
        return [_segment_row(row) for row in self._query(sql, params)]

    def _events(self, sql: str, params: tuple[object, ...]) -> list[EventRow]:
        return [_event_row(row) for row in self._query(sql, params)]

    def _update_open(self, sql: str, params: tuple[object, ...], segment_id: str) -> None:
        if self._write(sql, params) == 0:
            raise LookupError(f"no open segment {segment_id} in the index")

    def _update_event(self, assignments: str, params: tuple[object, ...], event_id: int) -> None:
        if self._write(f"UPDATE events SET {assignments} WHERE id = ?", (*params, event_id)) == 0:
            raise LookupError(f"no event {event_id} in the index")


def _filters(
    camera_id: str | None,
    start: float | None,
    end: float | None,
    after: tuple[float, int] | None = None,
) -> tuple[str, tuple[object, ...]]:
    """A WHERE clause of fixed text; the values travel as parameters. `after` is a
    (start_time, id) cursor: only rows that come after it, newest first."""
    clauses: list[str] = []
    params: list[object] = []
    if camera_id is not None:
        clauses.append("camera_id = ?")
        params.append(camera_id)
    if start is not None:
        clauses.append("start_time >= ?")
        params.append(start)
    if end is not None:
        clauses.append("start_time < ?")
        params.append(end)
    if after is not None:
        clauses.append("(start_time, id) < (?, ?)")
        params.extend(after)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return limit


def _page(limit: int, offset: int) -> tuple[int, int]:
    if offset < 0:
        raise ValueError(f"offset must be at least 0, got {offset}")
    return _limit(limit), offset


def _bbox_columns(bbox: BBox | None) -> tuple[float | None, ...]:
    return tuple(bbox) if bbox is not None else (None, None, None, None)


def _segment_row(row: tuple[object, ...]) -> SegmentRow:
    values = list(row)
    values[7] = SegmentState(values[7])
    return SegmentRow(*values)  # type: ignore[arg-type]


def _share_row(row: tuple[object, ...]) -> ShareRow:
    values = list(row)
    values[1] = bytes(values[1])  # type: ignore[arg-type]
    values[13] = ShareEnd(values[13]) if values[13] is not None else None
    return ShareRow(*values)  # type: ignore[arg-type]


def _event_row(row: tuple[object, ...]) -> EventRow:
    (event_id, camera_id, start, end, score, peak, x, y, w, h, snapshot_id) = row
    bbox = None if x is None else (x, y, w, h)
    return EventRow(event_id, camera_id, start, end, score, peak, bbox, snapshot_id)  # type: ignore[arg-type]
