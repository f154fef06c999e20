"""Sealed footage on disk: segment and snapshot files, crash recovery and retention.

Layout: `<data_dir>/footage/<camera_id>/<YYYY-MM-DD>/<file id>.seg` (and `.snap`),
the date being the UTC day the footage starts. Files are mode 0600 in directories of
mode 0700, and sealed as they are written (hub.vault): no plaintext reaches the disk.
Recording needs only the owner's public key; reading needs the private key.

Invariants, in the order the code keeps them:

1. open_segment() creates `<id>.seg` with O_EXCL, mode 0600.
2. It inserts the index row, state 'open', before the first byte is written, so a
   crash from here on leaves a row that recover() finds. If the index cannot take the
   row (damaged, full), the segment is recorded all the same, without a row: nothing
   at runtime deletes a sealed file for lacking one; `camhub repair` indexes it.
3. Bytes are sealed as the recorder writes them; each whole sealed chunk is handed to
   the kernel as soon as it is sealed. At most one chunk (64 KiB of plaintext) lives
   only in memory, and dies with the process.
4. finish() writes the final chunk, flushes, fsyncs the file, fsyncs its directory.
5. Only then is the row updated to 'complete' with end time, size and frame count:
   a 'complete' row always names a whole, durable file.
6. abort() and recover() cut a file back to its header plus whole chunks, fsync it
   and its directory, then mark the row 'recovered'. With no whole chunk, the file is
   deleted, then the row. When a full disk or a failing index refuses that update (or
   finish()'s), the segment is unsettled: settle() retries it at each open and each
   retention pass, and retention counts its file meanwhile.
7. Deleting (retention, or the owner's deletion) overwrites the file's header (its
   wrapped data key) and fsyncs it, unlinks the file, fsyncs the directory, then
   deletes the row: a crash in between leaves a row whose file is gone or unreadable
   (the next pass deletes it), never a readable file without a row, which retention
   would never reach.
8. A snapshot is sealed in memory, written to `<id>.snap.tmp`, fsynced, renamed to
   `<id>.snap`, its directory fsynced, then its row inserted.
9. recover() deletes only the leftovers of those crash windows that hold no footage:
   temporary files, and `.seg` files no longer than a header (a crash between steps 1
   and 2). Any other sealed file without a row is kept and reported, never deleted:
   the index may be the one at fault (lost, restored from a backup), and
   `camhub repair` (hub/repair.py) adopts such files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import heapq
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from hub.clock import (
    AgeWalk,
    ClockStep,
    Reading,
    behind,
    describe,
    jump,
    newest_kept,
    shift_for,
    system_reading,
)
from hub.store import EventRow, Index, SegmentRow, SegmentState, SnapshotRow
from hub.vault import (
    CHUNK_SIZE,
    FILE_ID_SIZE,
    HEADER_SIZE,
    SEALED_CHUNK_SIZE,
    CorruptFile,
    FileKind,
    Header,
    SealWriter,
    open_bytes,
    open_sealed,
    parse_header,
    seal_bytes,
    sealed_prefix_length,
)

log = logging.getLogger(__name__)

FOOTAGE_DIR = "footage"
SEGMENT_SUFFIX = ".seg"
SNAPSHOT_SUFFIX = ".snap"
TEMP_SUFFIX = ".tmp"
DAY = 86400.0
RETENTION_PAGE = 256  # rows fetched at a time while walking footage oldest first

# A camera id becomes a directory name: no separators, no dot files, bounded length.
CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def disk_free(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    return shutil.disk_usage(path).free


class LowDiskSpace(OSError):
    """Free space stays below the floor even after retention deleted what it could."""


class FootageUnavailable(LookupError):
    """No such segment or snapshot, its file is gone, or it is still being recorded."""


class NotIndexed(OSError):
    """The sealed file is safe on disk, but the index could not record it."""


def _index_fault(exc: BaseException) -> bool:
    """An index that cannot take a write (damaged, full, failing), as opposed to a bug."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError
    )


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_age_days: int  # 0: keep footage whatever its age
    max_footage_bytes: int  # 0: no budget for sealed footage
    min_free_bytes: int  # delete oldest footage while the disk has less free than this
    keep_newest_seconds: int = 1800  # the newest footage, by recording order, never ages

    def __post_init__(self) -> None:
        for name in ("max_age_days", "max_footage_bytes", "min_free_bytes", "keep_newest_seconds"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"retention {name}: must be a whole number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What recover() found after an unclean stop; empty after a clean one."""

    recovered: tuple[SegmentRow, ...]  # cut back to whole chunks, now 'recovered'
    dropped: tuple[SegmentRow, ...]  # nothing of them reached the disk: row (and file) gone
    removed: tuple[str, ...]  # crash leftovers holding no footage, deleted (paths in data dir)
    unknown: tuple[str, ...]  # sealed files without a row, kept for `camhub repair`
    events_closed: tuple[EventRow, ...]  # events still open, ended at their last known time

    def lines(self) -> list[str]:
        out = [
            f"{row.camera_id}: segment {_short(row.id)} recovered after an unclean stop: "
            f"{_count(_chunks(row.size), 'whole chunk')} "
            f"({_chunks(row.size) * CHUNK_SIZE // 1024} KiB) kept"
            for row in self.recovered
        ]
        out += [
            f"{row.camera_id}: segment {_short(row.id)} dropped after an unclean stop: "
            "no whole chunk of it reached the disk"
            for row in self.dropped
        ]
        out += [
            f"removed {path}, left unfinished by an unclean stop before it held footage"
            for path in self.removed
        ]
        if self.unknown:
            out.append(
                f"kept {_count(len(self.unknown), 'sealed file')} the index does not list "
                f"(the first: {self.unknown[0]}): not shown and not reached by retention "
                "until `camhub repair` adopts them"
            )
        out += [
            f"{event.camera_id}: event {event.id} was still open after an unclean stop; "
            "ended at its last known moment"
            for event in self.events_closed
        ]
        return out


@dataclass(frozen=True, slots=True)
class RetentionReport:
    segments: int  # files deleted, by kind
    snapshots: int
    bytes_freed: int
    by_age: int  # files deleted, by reason
    by_budget: int
    by_free_space: int
    events: int  # event rows past the age limit
    free_bytes: int | None  # free space afterwards, when there is a floor to keep
    policy: RetentionPolicy
    not_offsite: int = 0  # of the files deleted for free space, those not yet copied off-site

    def lines(self) -> list[str]:
        out = []
        if self.segments or self.snapshots:
            reasons = [
                f"{count} {why}"
                for count, why in (
                    (self.by_age, f"older than {self.policy.max_age_days} days"),
                    (self.by_budget, "over the footage budget"),
                    (self.by_free_space, "to keep disk space free"),
                )
                if count
            ]
            out.append(
                f"retention: deleted {self.segments} segment(s) and {self.snapshots} "
                f"snapshot(s), {_mib(self.bytes_freed)} ({', '.join(reasons)})"
            )
        if self.not_offsite:
            out.append(
                f"retention: {self.not_offsite} of them were not yet copied off-site; "
                "deleted anyway, as the disk would otherwise fill"
            )
        if self.events:
            out.append(f"retention: forgot {self.events} event(s) older than the age limit")
        if self.free_bytes is not None and self.free_bytes < self.policy.min_free_bytes:
            out.append(
                f"retention: only {_mib(self.free_bytes)} free on the data disk, below the "
                f"{_mib(self.policy.min_free_bytes)} floor, and no finished footage is left "
                "to delete"
            )
        return out


@dataclass(frozen=True, slots=True)
class Deletion:
    """What the owner's deletion removed, for the answer and the access log."""

    segments: int
    snapshots: int
    bytes_freed: int
    events: int
    recording: int  # segments being written in the range, left alone
    offsite: int = 0  # of the files deleted, those whose off-site copy goes too
    # When the last of those copies' object locks ends (they go then); None: none locked.
    offsite_locked_until: float | None = None

    def detail(self) -> dict[str, int | float | None]:
        return dataclasses.asdict(self)


class Archive:
    """Owns the footage directory; a SegmentSink for the recorder. Thread-safe."""

    def __init__(
        self,
        data_dir: Path,
        index: Index,
        public_key: X25519PublicKey,
        policy: RetentionPolicy,
        *,
        free_space: Callable[[Path], int] = disk_free,
        on_sealed: Callable[[FileKind, str], None] | None = None,
        keep: Callable[[SegmentRow | SnapshotRow], bool] | None = None,
        on_owner_delete: Callable[[str], float | None] | None = None,
        clock: Callable[[], Reading] = system_reading,
    ) -> None:
        self.data_dir = data_dir
        # Off-site copy hooks (hub/offsite): told of every file once it is durable; asked
        # before an age or budget delete whether a file must stay (not yet copied); told
        # before the owner deletes a file, so its copy goes too (retention's never do),
        # answering None (no copy) or when the copy's object lock ends (it goes then).
        self._on_sealed = on_sealed
        self._keep = keep
        self._on_owner_delete = on_owner_delete
        self.index = index
        self.policy = policy
        self._public_key = public_key
        self._free_space = free_space
        self._clock = clock
        self._clock_lock = threading.Lock()
        self._last_reading: Reading | None = None
        self._clock_doubt = False  # age deletes paused: `now` is behind the newest footage
        # Guards the set of open segments and directory creation/removal, so pruning
        # an empty day directory never races a camera creating a file in it.
        self._lock = threading.Lock()
        self._open: set[str] = set()
        # Segments whose ending a full disk or a failing index interrupted: the work
        # left (closing the row) is retried by settle() until it goes through.
        self._unsettled: dict[str, tuple[SegmentRow, Callable[[], object]]] = {}
        self._retention_lock = threading.Lock()

    # -- recording --------------------------------------------------------------------

    def open_segment(self, camera_id: str, start_time: float) -> SegmentOutput:
        """A new segment file, indexed as 'open'. If the index cannot take the row, the
        footage is recorded all the same, without one (`camhub repair` adds it later):
        losing the index's view of it is better than losing it."""
        _check_camera_id(camera_id)
        if self._unsettled:
            self.settle()
        self._ensure_free_space()
        file_id = os.urandom(FILE_ID_SIZE).hex()
        rel = _footage_path(camera_id, start_time, file_id + SEGMENT_SUFFIX)
        path = self.data_dir / rel
        self._watch_clock(self._clock())
        indexed = True
        with self._lock:
            self._make_dirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                row = self.index.add_segment_open(file_id, camera_id, start_time, rel)
            except BaseException as exc:
                if not _index_fault(exc):
                    os.close(fd)
                    path.unlink()
                    raise
                indexed = False  # the index's health now says what failed
                row = SegmentRow(
                    id=file_id,
                    camera_id=camera_id,
                    start_time=start_time,
                    end_time=None,
                    path=rel,
                    size=None,
                    frames=None,
                    state=SegmentState.OPEN,
                    created=time.time(),
                )
            self._open.add(file_id)
        return SegmentOutput(self, row, os.fdopen(fd, "wb"), indexed=indexed)

    def save_snapshot(self, camera_id: str, event_id: int | None, taken: float, jpeg: bytes) -> str:
        """Seal and store one event snapshot; returns its id."""
        _check_camera_id(camera_id)
        sealed = seal_bytes(jpeg, self._public_key, FileKind.SNAPSHOT)
        snapshot_id = parse_header(sealed).file_id.hex()
        rel = _footage_path(camera_id, taken, snapshot_id + SNAPSHOT_SUFFIX)
        path = self.data_dir / rel
        temp = path.with_name(path.name + TEMP_SUFFIX)
        with self._lock:
            self._make_dirs(path.parent)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(sealed)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
            _fsync_dir(path.parent)
        except BaseException:
            for leftover in (temp, path):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            raise
        self._watch_clock(self._clock())
        try:
            self.index.add_snapshot(snapshot_id, camera_id, event_id, taken, rel, len(sealed))
        except BaseException as exc:
            if _index_fault(exc):  # the sealed file stays for `camhub repair`
                raise NotIndexed(errno.EIO, f"kept {rel}, but the index failed: {exc}") from exc
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._sealed(FileKind.SNAPSHOT, snapshot_id)
        return snapshot_id

    def _sealed(self, kind: FileKind, file_id: str) -> None:
        """Tell the off-site copy a file is durable; its failure never stops recording."""
        if self._on_sealed is None:
            return
        try:
            self._on_sealed(kind, file_id)
        except Exception:
            log.exception("could not queue %s %s for the off-site copy", kind.name, file_id)

    def _ensure_free_space(self) -> None:
        floor = self.policy.min_free_bytes
        if not floor or self._free_space(self.data_dir) >= floor:
            return
        report = self.enforce_retention(time.time())
        if report.segments or report.snapshots:  # the recorder retries every keyframe: no spam
            for line in report.lines():
                log.warning("%s", line)
        if report.free_bytes is not None and report.free_bytes < floor:
            raise LowDiskSpace(
                errno.ENOSPC,
                f"not recording: {_mib(report.free_bytes)} free under {self.data_dir}, "
                f"below the {_mib(floor)} floor (storage.min_free_gb)",
            )

    def _make_dirs(self, directory: Path) -> None:
        """Create the missing levels under the data dir, mode 0700, each made durable."""
        missing = []
        while directory != self.data_dir and not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for level in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(level, 0o700)
                _fsync_dir(level.parent)

    # -- reading ----------------------------------------------------------------------

    def read_segment(
        self,
        segment_id: str,
        private_key: X25519PrivateKey | None = None,
        *,
        data_key: bytes | None = None,
    ) -> Iterator[bytes]:
        """The segment's plaintext, chunk by chunk, each verified before it is yielded.

        Opened with the owner's private key, or with its own data key (a share link's).
        A 'recovered' segment ends without its final chunk; that is accepted for it
        alone, so a complete segment cut short by anyone else still fails loudly.
        """
        row = self.index.get_segment(segment_id)
        if row is None:
            raise FootageUnavailable(f"no segment {segment_id}")
        if row.state is SegmentState.OPEN:
            raise FootageUnavailable(f"segment {segment_id} is still being recorded")
        src = self._open_sealed_file(row.path, segment_id, FileKind.SEGMENT)
        try:
            chunks = open_sealed(
                src,
                private_key,
                data_key=data_key,
                allow_partial=row.state is SegmentState.RECOVERED,
            )
        except BaseException:
            src.close()
            raise
        return _closing(src, chunks)

    def segment_header(self, segment_id: str) -> Header:
        """The header of a finished segment, to re-wrap its data key for a share."""
        row = self.index.get_segment(segment_id)
        if row is None:
            raise FootageUnavailable(f"no segment {segment_id}")
        with self._open_sealed_file(row.path, segment_id, FileKind.SEGMENT) as src:
            return parse_header(src.read(HEADER_SIZE))

    def read_snapshot(self, snapshot_id: str, private_key: X25519PrivateKey) -> bytes:
        row = self.index.get_snapshot(snapshot_id)
        if row is None:
            raise FootageUnavailable(f"no snapshot {snapshot_id}")
        with self._open_sealed_file(row.path, snapshot_id, FileKind.SNAPSHOT) as src:
            return open_bytes(src.read(), private_key)

    def _open_sealed_file(self, rel: str, file_id: str, kind: FileKind) -> BinaryIO:
        """Open a sealed file, checking its header names the file the index expects.

        Without this check, someone with the disk could swap two of the owner's files
        and have one shown under the other's camera and time.
        """
        try:
            src = open(self.data_dir / rel, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise FootageUnavailable(f"{rel} is missing from the data directory") from None
        try:
            _check_header(parse_header(src.read(HEADER_SIZE)), rel, file_id, kind)
            src.seek(0)
        except BaseException:
            src.close()
            raise
        return src

    # -- recovery ---------------------------------------------------------------------

    def recover(self) -> RecoveryReport:
        """Make the footage directory and the index agree again after an unclean stop.

        Run at start-up, before any camera records. A recovered segment's end time is
        the file's last modification time (when its last whole chunk was written),
        read before the file is cut.
        """
        with self._lock:
            if self._open:
                raise RuntimeError("recover() must run before any segment is opened")
        recovered: list[SegmentRow] = []
        dropped: list[SegmentRow] = []
        for row in self.index.open_segments():
            salvaged = self._salvage(row)
            if salvaged is None:
                dropped.append(row)
            else:
                recovered.append(salvaged)
        removed, unknown = self._sort_orphans()
        return RecoveryReport(
            recovered=tuple(recovered),
            dropped=tuple(dropped),
            removed=tuple(removed),
            unknown=tuple(unknown),
            events_closed=tuple(self.index.close_open_events()),
        )

    def _salvage(self, row: SegmentRow) -> SegmentRow | None:
        """Cut an unfinished segment back to whole chunks (invariant 6)."""
        cut = self._cut_back(row.path)
        if cut is None:
            self.index.delete_segment(row.id)
            return None
        keep, mtime = cut
        end_time = max(row.start_time, mtime)
        self.index.mark_recovered(row.id, end_time, keep)
        return dataclasses.replace(
            row, end_time=end_time, size=keep, frames=None, state=SegmentState.RECOVERED
        )

    def _cut_back(self, rel: str) -> tuple[int, float] | None:
        """Cut a file back to its header plus whole chunks, durably: (size kept, mtime
        before the cut). None, and no file, when not one whole chunk reached the disk."""
        path = self.data_dir / rel
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        keep = sealed_prefix_length(stat.st_size)
        if keep <= HEADER_SIZE:
            self._delete_file(rel)
            return None
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, keep)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
        return keep, stat.st_mtime

    def _sort_orphans(self) -> tuple[list[str], list[str]]:
        """Files without a row: (deleted, kept). Invariant 9: only what holds no footage
        goes, so an index that lost its rows can never take the footage with it."""
        root = self.data_dir / FOOTAGE_DIR
        if not root.is_dir():
            return [], []
        removed: list[str] = []
        unknown: list[str] = []
        for day_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
            where = day_dir.relative_to(self.data_dir).as_posix()
            entries = {e.name: e for e in os.scandir(day_dir) if e.is_file(follow_symlinks=False)}
            sealed = {
                name.partition(".")[0]: name
                for name in entries
                if name.endswith((SEGMENT_SUFFIX, SNAPSHOT_SUFFIX))
            }
            known = self.index.known_ids(sealed)
            leftovers = [name for name in entries if name.endswith(TEMP_SUFFIX)]
            for file_id, name in sealed.items():
                if file_id in known:
                    continue
                size = entries[name].stat(follow_symlinks=False).st_size
                if name.endswith(SEGMENT_SUFFIX) and size <= HEADER_SIZE:
                    leftovers.append(name)
                else:
                    unknown.append(f"{where}/{name}")
            for name in sorted(leftovers):
                self._delete_file(f"{where}/{name}")
                removed.append(f"{where}/{name}")
        return removed, sorted(unknown)

    # -- retention --------------------------------------------------------------------

    def enforce_retention(self, now: float) -> RetentionReport:
        """Delete footage past the age limit, then oldest first while over budget or
        short of free disk space, all in recording order (hub/clock.py says what is
        old). Segments being written are never touched; events (small, and no footage)
        go only with age.
        """
        policy = self.policy
        with self._retention_lock:
            self._watch_clock(self._clock())
            self.settle()
            ages = self._age_walk(now) if policy.max_age_days else None
            total = self.index.total_size() + self._unsettled_bytes()
            counts = {"age": 0, "budget": 0, "free": 0, "segments": 0, "snapshots": 0}
            not_offsite = 0  # hub/offsite: deleted before their off-site copy
            freed = 0
            for row in self._oldest_first():
                if ages is not None and ages.old(row.seq, _when(row)):
                    reason = "age"
                elif policy.max_footage_bytes and total > policy.max_footage_bytes:
                    reason = "budget"
                elif policy.min_free_bytes and self._free_space(self.data_dir) < (
                    policy.min_free_bytes
                ):
                    reason = "free"
                else:
                    break
                if self._keep is not None and self._keep(row):
                    # Not yet off-site: kept unless the disk would otherwise fill.
                    if reason != "free" and not self._short_of_space():
                        continue
                    reason, not_offsite = "free", not_offsite + 1
                self._delete(row)
                size = row.size or 0
                total -= size
                freed += size
                counts[reason] += 1
                counts["segments" if isinstance(row, SegmentRow) else "snapshots"] += 1
            events = self.index.delete_events_ended_before(ages.event_cutoff) if ages else 0
            if freed:
                self.settle()  # what a full disk left open may close now
            free = self._free_space(self.data_dir) if policy.min_free_bytes else None
        return RetentionReport(
            segments=counts["segments"],
            snapshots=counts["snapshots"],
            bytes_freed=freed,
            by_age=counts["age"],
            by_budget=counts["budget"],
            by_free_space=counts["free"],
            events=events,
            free_bytes=free,
            policy=policy,
            not_offsite=not_offsite,
        )

    def _short_of_space(self) -> bool:
        floor = self.policy.min_free_bytes
        return bool(floor) and self._free_space(self.data_dir) < floor

    def delete_footage(
        self, camera_id: str, start: float, end: float, event: EventRow | None = None
    ) -> Deletion:
        """The owner's deletion, beside retention and by the same steps (invariant 7):
        every finished segment of the camera that covers any of [start, end), whole.
        With `event`, that event and its snapshot go too; without, every snapshot taken
        and every ended event begun in the range. A segment being written is never
        touched (it is counted in `recording`; delete again once it is finished). The
        index is checkpointed after, so the share keys the deleted segments' rows took
        with them (ON DELETE CASCADE) leave the WAL as well.
        """
        _check_camera_id(camera_id)
        if not end > start:
            raise ValueError("the end of a deletion must be after its start")
        counts = {"segments": 0, "snapshots": 0, "bytes": 0, "recording": 0, "offsite": 0}
        locked_until = 0.0

        def delete(row: SegmentRow | SnapshotRow) -> None:
            nonlocal locked_until
            # One file at a time under the retention lock: a retention pass (or a camera
            # short of space) waits for one file, not for the whole deletion.
            copy_goes = self._on_owner_delete(row.id) if self._on_owner_delete else None
            if copy_goes is not None:
                counts["offsite"] += 1
                locked_until = max(locked_until, copy_goes)
            with self._retention_lock:
                self._delete(row)
            counts["bytes"] += row.size or 0
            counts["segments" if isinstance(row, SegmentRow) else "snapshots"] += 1

        for row in _paged(
            lambda limit, after: self.index.segments_to_delete(camera_id, start, end, limit, after)
        ):
            if row.state is SegmentState.OPEN:
                counts["recording"] += 1
            else:
                delete(row)
        if event is not None:
            snapshot = self.index.get_snapshot(event.snapshot_id or "")
            if snapshot is not None:
                delete(snapshot)
            events = int(self.index.delete_event(event.id))
        else:
            for row in _paged(
                lambda limit, after: self.index.snapshots_to_delete(
                    camera_id, start, end, limit, after
                )
            ):
                delete(row)
            events = self.index.delete_events(camera_id, start, end)
        if counts["segments"] or counts["snapshots"]:
            self.index.checkpoint()
        return Deletion(
            segments=counts["segments"],
            snapshots=counts["snapshots"],
            bytes_freed=counts["bytes"],
            events=events,
            recording=counts["recording"],
            offsite=counts["offsite"],
            offsite_locked_until=locked_until if locked_until > time.time() else None,
        )

    def _oldest_first(self) -> Iterator[SegmentRow | SnapshotRow]:
        """Finished segments and snapshots merged in recording order (their sequence
        numbers, not their stamps), fetched a page at a time. Pages continue from the
        last number seen, so deleting rows while walking skips nothing.
        """
        segments = _paged(self.index.oldest_segments)
        snapshots = _paged(self.index.oldest_snapshots)
        return heapq.merge(segments, snapshots, key=lambda row: row.seq)

    def _age_walk(self, now: float) -> AgeWalk | None:
        """What is past the age limit; None while the clock is behind the newest footage,
        so a clock set back (or footage stamped by a fast one) deletes nothing by age."""
        steps = [ClockStep(seq, shift) for seq, shift in self.index.clock_steps()]
        newest = self.index.newest_footage()
        lag = behind(now, newest[1] + shift_for(newest[0], steps)) if newest else 0.0
        if lag and not self._clock_doubt:
            log.warning(
                "retention: the clock (%s UTC) is %s behind the newest footage; nothing is "
                "deleted for its age until the clock is right",
                _utc(now),
                describe(lag),
            )
        elif self._clock_doubt and not lag:
            log.warning("retention: the clock is past the newest footage again; ageing resumes")
        self._clock_doubt = bool(lag)
        if lag:
            return None
        keep_from = newest_kept(self._newest_spans(), self.policy.keep_newest_seconds)
        return AgeWalk(now - self.policy.max_age_days * DAY, steps, keep_from)

    def _newest_spans(self) -> Iterator[tuple[int, float]]:
        before = None
        while spans := self.index.newest_spans(RETENTION_PAGE, before):
            yield from spans
            before = spans[-1][0]

    def _watch_clock(self, reading: Reading) -> None:
        """Remember a wall-clock jump as a step, before any footage is stamped after it."""
        with self._clock_lock:
            shift = jump(self._last_reading, reading)
            self._last_reading = reading
            if not shift:
                return
            try:
                self.index.add_clock_step(self.index.last_seq(), shift, reading.wall)
            except sqlite3.DatabaseError as exc:  # recording matters more than the step
                if not _index_fault(exc):
                    raise
        log.warning(
            "the wall clock jumped %s %s (now %s UTC); footage recorded before the jump is "
            "aged by the corrected clock",
            describe(shift),
            "forward" if shift > 0 else "back",
            _utc(reading.wall),
        )

    def _delete(self, row: SegmentRow | SnapshotRow) -> None:
        """Invariant 7: the file first, the row after."""
        self._delete_file(row.path)
        if isinstance(row, SegmentRow):
            self.index.delete_segment(row.id)
        else:
            self.index.delete_snapshot(row.id)

    def _delete_file(self, rel: str) -> None:
        path = self.data_dir / rel
        try:
            _shred_header(path)
            path.unlink()
        except FileNotFoundError:  # already gone: a crash came between unlink and row
            return
        _fsync_dir(path.parent)
        with self._lock, contextlib.suppress(OSError):
            path.parent.rmdir()  # only succeeds once the day directory is empty

    def _segment_done(self, segment_id: str) -> None:
        with self._lock:
            self._open.discard(segment_id)

    # -- unfinished endings -----------------------------------------------------------

    def settle(self) -> int:
        """Retry closing the rows of segments a full disk or a failing index left
        'open'; returns how many are still unsettled (the next start recovers them)."""
        with self._lock:
            pending = list(self._unsettled.items())
        for segment_id, (_row, retry) in pending:
            try:
                retry()
            except LookupError:  # already closed (the last try went through after all)
                pass
            except (OSError, sqlite3.DatabaseError):
                continue
            with self._lock:
                self._unsettled.pop(segment_id, None)
            self._sealed(FileKind.SEGMENT, segment_id)  # now it may be copied off-site
        with self._lock:
            return len(self._unsettled)

    def _settle_later(self, row: SegmentRow, retry: Callable[[], object]) -> None:
        with self._lock:
            self._unsettled[row.id] = (row, retry)

    def _unsettled_bytes(self) -> int:
        """Disk used by unsettled segments, whose rows do not give a size yet."""
        with self._lock:
            paths = [self.data_dir / row.path for row, _retry in self._unsettled.values()]
        total = 0
        for path in paths:
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total


class SegmentOutput:
    """One segment being recorded; the recorder's SegmentOutput. Not thread-safe.

    The file is buffered, but flushed each time a whole chunk is sealed, so a crash
    of the process loses at most the chunk still in memory (invariant 3).
    """

    def __init__(
        self, archive: Archive, row: SegmentRow, out: BinaryIO, *, indexed: bool = True
    ) -> None:
        self.row = row
        self.indexed = indexed  # False: the index refused the row; the file is kept anyway
        self._archive = archive
        self._out = out
        self._done = False
        try:
            self._seal = SealWriter(
                out, archive._public_key, FileKind.SEGMENT, bytes.fromhex(row.id)
            )
        except BaseException:
            self.abort()
            raise

    def write(self, data: bytes) -> int:
        if self._done:
            raise ValueError(f"segment {self.row.id} is already finished")
        sealed = self._seal.sealed_chunks
        written = self._seal.write(data)
        if self._seal.sealed_chunks != sealed:
            self._out.flush()
        return written

    def finish(self, end_time: float, frames: int) -> None:
        """Invariants 4 and 5. On failure the segment is cut back as by abort()."""
        if self._done:
            raise ValueError(f"segment {self.row.id} is already finished")
        try:
            self._seal.close()
            self._out.flush()
            os.fsync(self._out.fileno())
            size = os.fstat(self._out.fileno()).st_size
            self._out.close()
            _fsync_dir((self._archive.data_dir / self.row.path).parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        archive = self._archive
        try:
            if self.indexed:
                archive.index.complete_segment(self.row.id, end_time, size, frames)
        except BaseException as exc:
            if not _index_fault(exc):
                raise
            # The file is whole and durable; only its row waits for the index.
            archive._settle_later(
                self.row,
                lambda: archive.index.complete_segment(self.row.id, end_time, size, frames),
            )
        finally:
            archive._segment_done(self.row.id)
        archive._sealed(FileKind.SEGMENT, self.row.id)

    def abort(self) -> None:
        """Keep the verified whole chunks and end the segment (invariant 6); never raises.

        For write errors (a full disk) and recorder failures. If even this fails, the
        row stays 'open' and the next start's recover() does the same work.
        """
        if self._done:
            return
        self._done = True
        row = self.row
        archive = self._archive
        try:
            with contextlib.suppress(OSError):
                self._out.close()  # flushing a partial chunk may fail; it is cut anyway
            if self.indexed:
                salvaged = archive._salvage(row)
                kept = salvaged.size if salvaged is not None else None
            else:
                cut = archive._cut_back(row.path)
                kept = cut[0] if cut is not None else None
            if kept is None:
                log.warning(
                    "%s: segment %s aborted before its first whole chunk; dropped",
                    row.camera_id,
                    _short(row.id),
                )
            else:
                log.warning(
                    "%s: segment %s aborted; kept %d whole chunks",
                    row.camera_id,
                    _short(row.id),
                    _chunks(kept),
                )
                archive._sealed(FileKind.SEGMENT, row.id)
        except Exception as exc:
            # A full disk can refuse even the index update: retried as space comes back.
            if self.indexed:
                archive._settle_later(row, lambda: archive._salvage(row))
            log.warning(
                "%s: aborted segment %s stays open until the disk or index takes the update "
                "(%s: %s)",
                row.camera_id,
                _short(row.id),
                type(exc).__name__,
                exc,
            )
        finally:
            archive._segment_done(row.id)


def _paged(
    fetch: Callable[[int, int], list[SegmentRow] | list[SnapshotRow]],
) -> Iterator[SegmentRow | SnapshotRow]:
    after = 0
    while rows := fetch(RETENTION_PAGE, after):
        yield from rows
        after = rows[-1].seq


def _when(row: SegmentRow | SnapshotRow) -> float:
    return row.start_time if isinstance(row, SegmentRow) else row.time


def _closing(src: BinaryIO, chunks: Iterator[bytes]) -> Iterator[bytes]:
    with src:
        yield from chunks


def _check_header(header: Header, rel: str, file_id: str, kind: FileKind) -> None:
    if header.file_id.hex() != file_id or header.kind is not kind:
        raise CorruptFile(
            f"{rel} holds {header.kind.name.lower()} {header.file_id.hex()}, not "
            f"{kind.name.lower()} {file_id}: files were swapped or renamed"
        )


def _check_camera_id(camera_id: str) -> None:
    if not CAMERA_ID.fullmatch(camera_id):
        raise ValueError(
            f"camera id {camera_id!r}: must be 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )


def _footage_path(camera_id: str, start_time: float, name: str) -> str:
    day = datetime.fromtimestamp(start_time, tz=UTC).strftime("%Y-%m-%d")
    return f"{FOOTAGE_DIR}/{camera_id}/{day}/{name}"


def _shred_header(path: Path) -> None:
    """Overwrite the wrapped data key before unlinking, so deleting footage destroys its key.

    Unlinking alone leaves the blocks, key included, readable with forensic tools by
    anyone who later learns the password. Effective on filesystems that overwrite in
    place (ext4, the Pi's default); copy-on-write ones and flash wear levelling may
    keep old copies, so this is a best effort, not a guarantee.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink is not ours to write through
            return
        raise
    try:
        # Only what is there: growing a file cut short by a full disk would need space.
        os.pwrite(fd, bytes(min(HEADER_SIZE, os.fstat(fd).st_size)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(size: int | None) -> int:
    return max(0, (size or 0) - HEADER_SIZE) // SEALED_CHUNK_SIZE


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _short(file_id: str) -> str:
    return file_id[:8] + "…"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%d %H:%M")
