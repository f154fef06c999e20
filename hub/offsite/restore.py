"""Rebuilding a data directory from the bucket: `camhub restore`.

1. Read every journal of the hub (small sealed files), open them with the owner's
   key, and merge what they say: the files, each with its SHA-256, and the events
   (a later journal's record of an event wins; one that has ended wins over one that
   had not).
2. Download each file into its place under `footage/`, through a temporary file:
   its size and SHA-256 must be the journal's, and its header must name the kind and
   file id the journal does, else it is skipped and counted (altered or swapped in
   the bucket). Then fsync it, rename it, fsync the directory.
3. Then the index: events under their own ids, the rows of every file that arrived,
   the snapshots linked to their events, and every restored file recorded as already
   off-site (so the restored hub does not upload it again).

The journals are sealed *to* the owner, not signed by the hub, so everything in them
is checked as input (hub/offsite/journal.py); footage forged by someone holding the
public key would still have to match the checksums of a journal they forged too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub import vault
from hub.archive import (
    FOOTAGE_DIR,
    SEGMENT_SUFFIX,
    SNAPSHOT_SUFFIX,
    TEMP_SUFFIX,
    _footage_path,
    _fsync_dir,
)
from hub.offsite import journal, naming
from hub.offsite.bucket import Bucket, BucketError
from hub.offsite.queue import Item, OffsiteQueue, Sent
from hub.store import EventRow, Index, SegmentRow, SnapshotRow
from hub.vault import FileKind

log = logging.getLogger(__name__)


@dataclass
class Holdings:
    """What the bucket holds for one hub, according to its journals."""

    files: dict[str, journal.JournalFile] = field(default_factory=dict)
    events: dict[int, EventRow] = field(default_factory=dict)
    journals: dict[str, float] = field(default_factory=dict)  # journal id -> newest file
    unreadable: list[str] = field(default_factory=list)  # journals that did not open

    def between(self, start: float | None, end: float | None) -> Holdings:
        """Only the footage and events that overlap [start, end)."""
        lo, hi = start if start is not None else float("-inf"), end or float("inf")
        files = {k: f for k, f in self.files.items() if _start(f.row) < hi and _end(f.row) >= lo}
        events = {
            k: e
            for k, e in self.events.items()
            if e.start_time < hi and (e.end_time if e.end_time is not None else e.start_time) >= lo
        }
        return Holdings(files, events, dict(self.journals), list(self.unreadable))

    def summary(self) -> list[str]:
        cameras = sorted({f.row.camera_id for f in self.files.values()})
        lines = []
        for camera in cameras:
            rows = [f.row for f in self.files.values() if f.row.camera_id == camera]
            segments = [r for r in rows if isinstance(r, SegmentRow)]
            events = [e for e in self.events.values() if e.camera_id == camera]
            size = sum(r.size or 0 for r in rows)
            lines.append(
                f"{camera}: {len(segments)} segment(s), {len(rows) - len(segments)} "
                f"snapshot(s), {len(events)} event(s), {size / 2**20:.1f} MiB, "
                f"{_iso(min(map(_start, rows)))} .. {_iso(max(map(_end, rows)))}"
            )
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} journal(s) did not open and were skipped")
        return lines or ["the bucket holds no footage of this hub"]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    segments: int
    snapshots: int
    events: int
    bytes: int
    missing: tuple[str, ...]  # named by a journal, gone from the bucket (expired?)
    rejected: tuple[str, ...]  # present but not what the journal says

    def lines(self) -> list[str]:
        out = [
            f"restored {self.segments} segment(s), {self.snapshots} snapshot(s) and "
            f"{self.events} event(s), {self.bytes / 2**20:.1f} MiB"
        ]
        if self.missing:
            out.append(f"{len(self.missing)} file(s) named in journals are gone from the bucket")
        out += [f"rejected {why}" for why in self.rejected]
        return out


def hub_tags(bucket: Bucket, prefix: str) -> list[str]:
    """The hubs that left objects under `prefix`."""
    tags = {naming.tag_of(prefix, name) for name in bucket.names(prefix, recursive=False)}
    return sorted(t for t in tags if t is not None)


def read_holdings(bucket: Bucket, prefix: str, tag: str, private_key: X25519PrivateKey) -> Holdings:
    held = Holdings()
    entries: list[journal.Journal] = []
    for name in bucket.names(naming.journal_prefix(prefix, tag)):
        try:
            sealed = bucket.get_bytes(name, journal.MAX_SIZE + 4096)
            header = vault.parse_header(sealed)
            if header.kind is not FileKind.JOURNAL:
                raise vault.CorruptFile(f"a {header.kind.name.lower()}, not a journal")
            entry = journal.parse(vault.open_bytes(sealed, private_key))
        except (vault.VaultError, journal.JournalError) as exc:
            log.warning("skipped %s: %s", name, exc)
            held.unreadable.append(name)
            continue
        entries.append(entry)
        newest = max((_start(f.row) for f in entry.files), default=entry.written)
        held.journals[header.file_id.hex()] = newest
    for entry in sorted(entries, key=lambda j: j.written):
        for f in entry.files:
            held.files[f.row.id] = f
        for event in entry.events:
            known = held.events.get(event.id)
            if known is None or event.end_time is not None or known.end_time is None:
                held.events[event.id] = event
    return held


def rebuild(
    data_dir: Path,
    index: Index,
    queue: OffsiteQueue,
    bucket: Bucket,
    prefix: str,
    tag: str,
    held: Holdings,
    now: float,
) -> RestoreReport:
    """Download the files and fill the (new, empty) index; see the module's steps."""
    rows: list[SegmentRow | SnapshotRow] = []
    sent: list[Sent] = []
    missing: list[str] = []
    rejected: list[str] = []
    for f in sorted(held.files.values(), key=lambda f: (_start(f.row), f.row.id)):
        row = _placed(f.row)
        try:
            problem = _download(bucket, naming.file_object(prefix, tag, row.id), data_dir, row, f)
        except BucketError as exc:
            if not exc.missing:
                raise
            missing.append(row.id)
            continue
        if problem:
            rejected.append(f"{row.id}: {problem}")
            continue
        rows.append(row)
        kind = "segment" if isinstance(row, SegmentRow) else "snapshot"
        sent.append(Sent(Item(row.id, kind, row.camera_id, _start(row), True), f.size, f.sha256))
    arrived = {r.id for r in rows}
    events = [
        replace(e, snapshot_id=e.snapshot_id if e.snapshot_id in arrived else None)
        for e in held.events.values()
    ]
    index.add_restored_events(events)
    event_ids = {e.id for e in events}
    index.add_rebuilt(
        replace(r, event_id=r.event_id if r.event_id in event_ids else None)
        if isinstance(r, SnapshotRow)
        else r
        for r in rows
    )
    for e in events:
        if e.snapshot_id is not None:
            index.end_event(
                e.id,
                end_time=e.end_time if e.end_time is not None else e.start_time,
                peak_score=e.peak_score or 0.0,
                peak_time=e.peak_time if e.peak_time is not None else e.start_time,
                bbox=e.bbox,
                snapshot_id=e.snapshot_id,
            )
    index.close_open_events()  # an event no journal saw end: ended at its last known moment
    journals = [
        Sent(Item(jid, "journal", None, newest, False), 0, "")
        for jid, newest in held.journals.items()
    ]
    queue.confirm(sent + journals, now)
    return RestoreReport(
        segments=sum(isinstance(r, SegmentRow) for r in rows),
        snapshots=sum(isinstance(r, SnapshotRow) for r in rows),
        events=len(events),
        bytes=sum(r.size or 0 for r in rows),
        missing=tuple(missing),
        rejected=tuple(rejected),
    )


def _placed(row: SegmentRow | SnapshotRow) -> SegmentRow | SnapshotRow:
    """The row with its path in the data directory, as the hub would have named it."""
    suffix = SEGMENT_SUFFIX if isinstance(row, SegmentRow) else SNAPSHOT_SUFFIX
    return replace(row, path=_footage_path(row.camera_id, _start(row), row.id + suffix))


def _download(
    bucket: Bucket, name: str, data_dir: Path, row: SegmentRow | SnapshotRow, f: journal.JournalFile
) -> str | None:
    """Fetch one file into place; what is wrong with it, or None once it is durable."""
    path = data_dir / row.path
    assert path.is_relative_to(data_dir / FOOTAGE_DIR)
    _make_dirs(path.parent, data_dir)
    temp = path.with_name(path.name + TEMP_SUFFIX)
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w+b") as out:
            size, digest = bucket.get_into(name, out)
            problem = _check(out, size, digest, row, f)
            if problem is None:
                out.flush()
                os.fsync(out.fileno())
        if problem is None:
            os.replace(temp, path)
            _fsync_dir(path.parent)
            return None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    temp.unlink(missing_ok=True)
    return problem


def _check(
    out: BinaryIO, size: int, digest: str, row: SegmentRow | SnapshotRow, f: journal.JournalFile
) -> str | None:
    if size != f.size or digest != f.sha256:
        return f"its checksum is not the journal's ({size} bytes)"
    out.seek(0)
    try:
        header = vault.parse_header(out.read(vault.HEADER_SIZE))
    except vault.CorruptFile as exc:
        return str(exc)
    kind = FileKind.SEGMENT if isinstance(row, SegmentRow) else FileKind.SNAPSHOT
    if header.kind is not kind or header.file_id.hex() != row.id:
        return "its header names another file"
    return None


def _make_dirs(directory: Path, root: Path) -> None:
    missing = []
    while directory != root and not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for level in reversed(missing):
        os.mkdir(level, 0o700)
        _fsync_dir(level.parent)


def _start(row: SegmentRow | SnapshotRow) -> float:
    return row.start_time if isinstance(row, SegmentRow) else row.time


def _end(row: SegmentRow | SnapshotRow) -> float:
    if isinstance(row, SegmentRow):
        return row.end_time if row.end_time is not None else row.start_time
    return row.time


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
