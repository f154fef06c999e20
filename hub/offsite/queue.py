"""The durable upload queue, kept in the hub's index (tables `offsite`, `offsite_status`).

A sealed file is queued when it closes, in the same index the footage is listed in, so
a crash, a restart or a day without network loses nothing: the uploader takes up the
pending rows again, the event footage first and the oldest first within it. A row is
`confirmed` only after the bucket holds the file *and* a journal describing it; the
size and SHA-256 of what was sent are kept with it. Confirmed rows stay (they are the
record of what is off-site, for status and expiry) until the copy is expired.

When the owner deletes footage, each of its files with a row here moves, in one
transaction, to `offsite_delete`: a pending one is never sent, a confirmed one's object
is deleted from the bucket by the uploader thread (retried until the bucket does it),
once its object lock (if any) has ended. A file being uploaded at that moment is not
confirmed afterwards: its object is deleted like the others. Local retention never
moves a row (§16: the copy must outlive the box).

The queue has its own connection, behind its own lock: the uploader thread must never
wait behind a camera's commit for its reads, and the cameras' writer threads add rows.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hub.store import BUSY_TIMEOUT, _transaction

Kind = Literal["segment", "snapshot", "journal"]


@dataclass(frozen=True, slots=True)
class Item:
    """One file to copy; `time` is when its footage starts (a journal: its newest file)."""

    id: str
    kind: Kind
    camera_id: str | None
    time: float
    urgent: bool


@dataclass(frozen=True, slots=True)
class Sent:
    """A file the bucket confirmed: what was sent, to compare with a later download."""

    item: Item
    size: int
    sha256: str
    locked_until: float | None = None  # the bucket refuses to delete it before then


@dataclass(frozen=True, slots=True)
class Summary:
    pending: int
    urgent_pending: int
    oldest_pending: float | None  # when the oldest pending row was queued
    confirmed: int
    bytes_offsite: int
    last_success: float | None
    last_error: str | None
    last_error_time: float | None
    deletions_pending: int = 0  # objects of footage the owner deleted, still in the bucket
    owner_deleted: int = 0  # such objects the bucket has deleted, in all
    last_owner_delete: float | None = None
    deletions_locked_until: float | None = None  # when the last lock among them ends


_ITEM_COLUMNS = "id, kind, camera_id, time, urgent"


class OffsiteQueue:
    """Rows of the `offsite` table; safe to share between threads."""

    def __init__(self, index_path: Path) -> None:
        self._conn = sqlite3.connect(
            index_path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA synchronous = FULL")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(self, items: Iterable[Item], now: float) -> int:
        """Queue files not seen before; a queued one that turns out to be an event's is
        promoted to urgent. Returns how many rows were added or promoted."""
        rows = [(i.id, i.kind, i.camera_id, i.time, int(i.urgent), now) for i in items]
        with self._lock, _transaction(self._conn):
            before = self._conn.total_changes
            self._conn.executemany(
                f"INSERT INTO offsite ({_ITEM_COLUMNS}, state, queued) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?) "
                "ON CONFLICT (id) DO UPDATE SET urgent = 1 "
                "WHERE excluded.urgent = 1 AND urgent = 0 AND state = 'pending'",
                rows,
            )
            return self._conn.total_changes - before

    def next_pending(self, limit: int) -> list[Item]:
        """Urgent (event) files first, oldest first within each class."""
        return [
            _item(row)
            for row in self._read(
                f"SELECT {_ITEM_COLUMNS} FROM offsite WHERE state = 'pending' "
                "ORDER BY urgent DESC, time, id LIMIT ?",
                (limit,),
            )
        ]

    def is_pending(self, file_id: str) -> bool:
        """Whether a file still waits for its off-site copy (local retention keeps it)."""
        return bool(
            self._read("SELECT 1 FROM offsite WHERE id = ? AND state = 'pending'", (file_id,))
        )

    def confirm(self, sent: Iterable[Sent], now: float) -> None:
        """Mark files (and the journal naming them) confirmed, all in one transaction."""
        with self._lock, _transaction(self._conn):
            for s in sent:
                i = s.item
                row = (i.id, i.kind, i.camera_id, i.time, int(i.urgent), now, s.size, s.sha256)
                # A file the owner deleted during its upload stays deleted: its row is
                # gone and its object waits in `offsite_delete`, for its lock to end.
                self._conn.execute(
                    f"INSERT INTO offsite ({_ITEM_COLUMNS}, state, queued, size, sha256, "
                    "confirmed, locked_until) SELECT ?, ?, ?, ?, ?, 'confirmed', ?, ?, ?, ?, ? "
                    "WHERE NOT EXISTS (SELECT 1 FROM offsite_delete WHERE id = ?) "
                    "ON CONFLICT (id) DO UPDATE SET state = 'confirmed', size = excluded.size, "
                    "sha256 = excluded.sha256, confirmed = excluded.confirmed, "
                    "locked_until = excluded.locked_until",
                    (*row, now, s.locked_until, i.id),
                )
                self._conn.execute(
                    "UPDATE offsite_delete SET locked_until = ? WHERE id = ?",
                    (s.locked_until, i.id),
                )
            self._set_status("last_success = ?", (now,))

    def drop(self, file_id: str) -> bool:
        """Forget a pending file that is gone locally (deleted to keep the disk free);
        False if it was not pending (the owner deleted it)."""
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM offsite WHERE id = ? AND state = 'pending'", (file_id,)
            )
            return cursor.rowcount > 0

    def owner_deleted(self, file_id: str, now: float) -> float | None:
        """The owner deleted this file: never send it, and delete its copy if it has one.
        None if the off-site copy has nothing to do for it, else when its copy's lock
        ends (0.0: not locked, or not sent yet)."""
        with self._lock, _transaction(self._conn):
            found = self._conn.execute(
                "SELECT coalesce(locked_until, 0.0) FROM offsite "
                "WHERE id = ? AND kind != 'journal'",
                (file_id,),
            ).fetchone()
            self._conn.execute(
                "INSERT OR IGNORE INTO offsite_delete (id, kind, queued, locked_until) "
                "SELECT id, kind, ?, locked_until FROM offsite WHERE id = ? AND kind != 'journal'",
                (now, file_id),
            )
            self._conn.execute("DELETE FROM offsite WHERE id = ?", (file_id,))
            return None if found is None else float(found[0])

    def deletions(self, limit: int, unlocked_at: float) -> list[str]:
        """Ids of files whose copies are to be deleted and no longer locked at
        `unlocked_at`, the oldest request first."""
        rows = self._read(
            "SELECT id FROM offsite_delete WHERE coalesce(locked_until, 0) <= ? "
            "ORDER BY queued, id LIMIT ?",
            (unlocked_at, limit),
        )
        return [str(file_id) for (file_id,) in rows]

    def still_locked(self, file_id: str, until: float) -> None:
        """The bucket refused to delete this copy: a version of it is locked until
        `until`; its expiry or deletion waits for that."""
        with self._lock, _transaction(self._conn):
            for table in ("offsite", "offsite_delete"):
                self._conn.execute(
                    f"UPDATE {table} SET locked_until = ? WHERE id = ?", (until, file_id)
                )

    def deleted(self, file_id: str, now: float) -> None:
        """The bucket no longer holds this copy of the owner's deleted footage."""
        with self._lock, _transaction(self._conn):
            cursor = self._conn.execute("DELETE FROM offsite_delete WHERE id = ?", (file_id,))
            if cursor.rowcount:
                self._set_status("owner_deleted = owner_deleted + 1, last_owner_delete = ?", (now,))

    def confirmed_before(self, cutoff: float, unlocked_at: float, limit: int) -> list[Item]:
        """Confirmed copies of footage older than `cutoff` and no longer locked at
        `unlocked_at`, oldest first (for expiry)."""
        return [
            _item(row)
            for row in self._read(
                f"SELECT {_ITEM_COLUMNS} FROM offsite WHERE state = 'confirmed' AND time < ? "
                "AND coalesce(locked_until, 0) <= ? ORDER BY time, id LIMIT ?",
                (cutoff, unlocked_at, limit),
            )
        ]

    def forget(self, file_id: str) -> None:
        """The off-site copy was deleted: the row goes."""
        self._write("DELETE FROM offsite WHERE id = ?", (file_id,))

    def record_error(self, message: str, now: float) -> None:
        with self._lock, _transaction(self._conn):
            self._set_status("last_error = ?, last_error_time = ?", (message, now))

    def clear_error(self) -> None:
        with self._lock, _transaction(self._conn):
            self._set_status("last_error = NULL", ())

    def summary(self) -> Summary:
        with self._lock:
            pending, urgent, oldest = self._conn.execute(
                "SELECT count(*), coalesce(sum(urgent), 0), min(queued) FROM offsite "
                "WHERE state = 'pending' AND kind != 'journal'"
            ).fetchone()
            confirmed, size = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM offsite WHERE state = 'confirmed'"
            ).fetchone()
            status = self._conn.execute(
                "SELECT last_success, last_error, last_error_time FROM offsite_status"
            ).fetchone() or (None, None, None)
            deleting, locked = self._conn.execute(
                "SELECT count(*), max(locked_until) FROM offsite_delete"
            ).fetchone()
            done = self._conn.execute(
                "SELECT owner_deleted, last_owner_delete FROM offsite_status"
            ).fetchone() or (0, None)
        return Summary(pending, urgent, oldest, confirmed, size, *status, deleting, *done, locked)

    def pending_by_camera(self) -> dict[str, tuple[int, float]]:
        """camera id -> (files pending, when the oldest of them was queued)."""
        rows = self._read(
            "SELECT camera_id, count(*), min(queued) FROM offsite "
            "WHERE state = 'pending' AND kind != 'journal' GROUP BY camera_id",
            (),
        )
        return {str(c): (int(n), float(t)) for c, n, t in rows}  # type: ignore[arg-type]

    def _set_status(self, assignments: str, params: tuple[object, ...]) -> None:
        """Inside a transaction: update the one status row, creating it first."""
        self._conn.execute("INSERT OR IGNORE INTO offsite_status (one) VALUES (1)")
        self._conn.execute(f"UPDATE offsite_status SET {assignments} WHERE one = 1", params)

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            self._conn.execute(sql, params)


def _item(row: tuple[object, ...]) -> Item:
    file_id, kind, camera_id, when, urgent = row
    return Item(str(file_id), kind, camera_id, float(when), bool(urgent))  # type: ignore[arg-type]
