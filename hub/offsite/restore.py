"""Rebuilding a data directory from the bucket: `camhub restore`.

1. Read every journal of the hub (small sealed files), open them with the owner's
   key, and merge what they say: the files, each with its SHA-256, and the events
   (a later journal's record of an event wins; one that has ended wins over one that
   had not).
2. Download each file into its place under `footage/`, through a temporary file:
   its size and SHA-256 must be the journal's, and its header must name the kind and
   file id the journal does, else it is skipped and counted (altered or swapped in
   the bucket). Then fsync it, rename it, fsync the directory.

Every object is read through what someone with the bucket's keys could have done to
it: on a versioned bucket a DELETE leaves a delete marker on top and a PUT a newer
version, so each name's versions are listed and the newest version that passes the
checks is taken (every journal version that opens is merged). Those read from behind
a marker or a newer version are counted: with object lock on, nothing written by the
hub could be deleted for its lock's length.
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
from hub.offsite.bucket import Bucket, BucketError, Version
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
    recovered: list[str] = field(default_factory=list)  # read from behind a newer version

    def between(self, start: float | None, end: float | None) -> Holdings:
        """Only the footage and events that overlap [start, end)."""
        lo, hi = start if start is not None else float("-inf"), end or float("inf")
        files = {k: f for k, f in self.files.items() if _start(f.row) < hi and _end(f.row) >= lo}
        events = {
            k: e
            for k, e in self.events.items()
            if e.start_time < hi and (e.end_time if e.end_time is not None else e.start_time) >= lo
        }
        return Holdings(
            files, events, dict(self.journals), list(self.unreadable), list(self.recovered)
        )

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
        if self.recovered:
            lines.append(f"{len(self.recovered)} journal(s) {BEHIND}")
        return lines or ["the bucket holds no footage of this hub"]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    segments: int
    snapshots: int
    events: int
    bytes: int
    missing: tuple[str, ...]  # named by a journal, gone from the bucket (expired?)
    rejected: tuple[str, ...]  # present but not what the journal says
    recovered: tuple[str, ...] = ()  # read from behind a delete marker or a newer version

    def lines(self) -> list[str]:
        out = [
            f"restored {self.segments} segment(s), {self.snapshots} snapshot(s) and "
            f"{self.events} event(s), {self.bytes / 2**20:.1f} MiB"
        ]
        if self.recovered:
            out.append(f"{len(self.recovered)} file(s) {BEHIND}")
        if self.missing:
            out.append(f"{len(self.missing)} file(s) named in journals are gone from the bucket")
        out += [f"rejected {why}" for why in self.rejected]
        return out


BEHIND = (
    "read from behind a delete marker or a newer version: someone deleted or overwrote "
    "them in the bucket"
)


def hub_tags(bucket: Bucket, prefix: str) -> list[str]:
    """The hubs that left objects under `prefix` (deleted ones too: versions remain)."""
    tags = {naming.tag_of(prefix, name) for name in bucket.versions(prefix, recursive=False)}
    return sorted(t for t in tags if t is not None)


def key_copy(bucket: Bucket, prefix: str, tag: str) -> vault.KeyFile:
    """The bucket's copy of the hub's key file: the newest version that is one, of
    this hub's key (a newer version put by someone else is passed over)."""
    name = naming.keys_object(prefix, tag)
    problem: vault.VaultError | None = None
    for version in _live(bucket.versions(name).get(name, [])):
        try:
            data = bucket.get_bytes(name, vault.MAX_KEYFILE_SIZE, version.version_id)
            keyfile = vault.KeyFile.from_json(data)
        except vault.VaultError as exc:
            problem = problem or exc
            continue
        if naming.hub_tag(keyfile.public_bytes) == tag:
            return keyfile
        problem = problem or vault.CorruptFile("it is the key file of another hub")
    if problem is not None:
        raise problem
    raise BucketError(f"{bucket.where}: {name}: there is no copy of the key file", missing=True)


def read_holdings(bucket: Bucket, prefix: str, tag: str, private_key: X25519PrivateKey) -> Holdings:
    held = Holdings()
    entries: list[journal.Journal] = []
    for name, versions in sorted(bucket.versions(naming.journal_prefix(prefix, tag)).items()):
        opened = []
        for version in _live(versions):
            try:
                entry = _open_journal(bucket, name, version, private_key)
            except (vault.VaultError, journal.JournalError) as exc:
                log.warning("skipped %s (version %s): %s", name, version.version_id, exc)
                continue
            opened.append(version)
            entries.append(entry)
            newest = max((_start(f.row) for f in entry.files), default=entry.written)
            held.journals[name.rsplit("/", 1)[1]] = newest
        if not opened:
            held.unreadable.append(name)
        elif not any(v.latest for v in opened):
            held.recovered.append(name)
    for entry in sorted(entries, key=lambda j: j.written):
        for f in entry.files:
            held.files[f.row.id] = f
        for event in entry.events:
            known = held.events.get(event.id)
            if known is None or event.end_time is not None or known.end_time is None:
                held.events[event.id] = event
    return held


def _open_journal(
    bucket: Bucket, name: str, version: Version, private_key: X25519PrivateKey
) -> journal.Journal:
    sealed = bucket.get_bytes(name, journal.MAX_SIZE + 4096, version.version_id)
    header = vault.parse_header(sealed)
    if header.kind is not FileKind.JOURNAL:
        raise vault.CorruptFile(f"a {header.kind.name.lower()}, not a journal")
    if header.file_id.hex() != name.rsplit("/", 1)[1]:
        raise vault.CorruptFile("its header names another file")
    return journal.parse(vault.open_bytes(sealed, private_key))


def _live(versions: list[Version]) -> list[Version]:
    """The versions that hold data, newest first: not delete markers."""
    return [v for v in versions if not v.deleted]


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
    recovered: list[str] = []
    stored = bucket.versions(naming.file_prefix(prefix, tag))
    for f in sorted(held.files.values(), key=lambda f: (_start(f.row), f.row.id)):
        row = _placed(f.row)
        name = naming.file_object(prefix, tag, row.id)
        found = _fetch(bucket, name, _live(stored.get(name, [])), data_dir, row, f)
        if found is None:
            missing.append(row.id)
            continue
        if isinstance(found, str):
            rejected.append(f"{row.id}: {found}")
            continue
        if not found.latest:
            recovered.append(row.id)
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
        recovered=tuple(recovered),
    )


def _placed(row: SegmentRow | SnapshotRow) -> SegmentRow | SnapshotRow:
    """The row with its path in the data directory, as the hub would have named it."""
    suffix = SEGMENT_SUFFIX if isinstance(row, SegmentRow) else SNAPSHOT_SUFFIX
    return replace(row, path=_footage_path(row.camera_id, _start(row), row.id + suffix))


def _fetch(
    bucket: Bucket,
    name: str,
    versions: list[Version],
    data_dir: Path,
    row: SegmentRow | SnapshotRow,
    f: journal.JournalFile,
) -> Version | str | None:
    """Fetch the newest version of a file that passes the checks into place: that
    version; else what was wrong with the newest; None if the bucket has none."""
    problems = []
    for version in versions:
        try:
            problem = _download(bucket, name, version, data_dir, row, f)
        except BucketError as exc:
            if not exc.missing:
                raise
            continue  # deleted meanwhile
        if problem is None:
            return version
        problems.append(problem)
    return problems[0] if problems else None


def _download(
    bucket: Bucket,
    name: str,
    version: Version,
    data_dir: Path,
    row: SegmentRow | SnapshotRow,
    f: journal.JournalFile,
) -> str | None:
    """Fetch one version of a file into place; what is wrong with it, or None once
    it is durable."""
    path = data_dir / row.path
    assert path.is_relative_to(data_dir / FOOTAGE_DIR)
    _make_dirs(path.parent, data_dir)
    temp = path.with_name(path.name + TEMP_SUFFIX)
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w+b") as out:
            size, digest = bucket.get_into(name, out, version.version_id)
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
