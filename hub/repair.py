"""Rebuilding the index from the sealed files themselves: `camhub repair`.

The index is the only list of the sealed files. Lose it (deleted, truncated, damaged)
and the footage is still on disk, whole, but the hub can neither show it nor age it
out. Each file says enough about itself to be listed again, with no key: its header
gives its kind and file id (`hub.vault.parse_header`), and the layout
`footage/<camera>/<YYYY-MM-DD>/<id>.seg|.snap` gives the camera and the UTC day its
footage starts.

What the files do not hold, repair does not invent:

- Times are estimates. A segment ends at its file's mtime, its last write (finish()
  fsyncs it just after the last frame). It starts `segment_seconds` earlier, but not
  before the previous segment of its camera ended, nor before its day began. A
  snapshot's time is its file's mtime: the end of its event rather than its peak.
- Motion events live only in the index. None are rebuilt; snapshots have no event.
- Every segment is marked 'recovered'. Without the key nobody can tell a complete file
  from one a crash cut short, and the reader accepts either for a recovered segment.

Repair never deletes, moves or changes a sealed file. An index that SQLite cannot read
is renamed aside with the time (never deleted) before a new one is made. A readable
index keeps its rows, events, shares and access log, and gains rows only for the files
it lacks. Rows are inserted oldest first, by start time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hub.archive import (
    CAMERA_ID,
    DAY,
    FOOTAGE_DIR,
    SEGMENT_SUFFIX,
    SNAPSHOT_SUFFIX,
    TEMP_SUFFIX,
    _fsync_dir,
)
from hub.store import DamagedIndex, Index, SegmentRow, SegmentState, SnapshotRow
from hub.vault import FILE_ID_SIZE, HEADER_SIZE, CorruptFile, FileKind, parse_header

SEALED_NAME = re.compile(
    rf"([0-9a-f]{{{2 * FILE_ID_SIZE}}})({re.escape(SEGMENT_SUFFIX)}|{re.escape(SNAPSHOT_SUFFIX)})"
)
_KINDS = {SEGMENT_SUFFIX: FileKind.SEGMENT, SNAPSHOT_SUFFIX: FileKind.SNAPSHOT}
_INDEX_FILES = ("-wal", "-shm", "")  # the WAL first: a stale one must never meet a new index

Row = SegmentRow | SnapshotRow


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A regular file in a day directory, as its path and stat describe it."""

    rel: str  # relative to the data directory, '/' separators
    camera_id: str
    day: str  # the day directory's name
    name: str
    size: int
    mtime: float

    @property
    def file_id(self) -> str | None:
        """The id its name gives, if it is named as a sealed file."""
        match = SEALED_NAME.fullmatch(self.name)
        return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class Skipped:
    rel: str
    why: str


@dataclass(frozen=True, slots=True)
class RepairReport:
    index: Path
    set_aside: tuple[Path, ...]  # the unusable index and its -wal/-shm, renamed
    why_set_aside: str | None
    already_indexed: int
    adopted: tuple[Row, ...]  # oldest first
    skipped: tuple[Skipped, ...]

    def lines(self) -> list[str]:
        out = []
        if self.set_aside:
            out.append(
                f"{self.index} {self.why_set_aside}: moved aside to "
                + ", ".join(p.name for p in self.set_aside)
            )
        segments = sum(isinstance(row, SegmentRow) for row in self.adopted)
        out.append(
            f"index {self.index}: {segments} segment(s) and "
            f"{len(self.adopted) - segments} snapshot(s) adopted, "
            f"{self.already_indexed} file(s) already indexed, "
            f"{len(self.skipped)} file(s) skipped"
        )
        out += [f"skipped {s.rel}: {s.why}" for s in self.skipped]
        if self.adopted:
            out.append(
                "adopted footage has estimated times (from the files' modification times) "
                "and no motion events; nothing was deleted"
            )
        return out


# -- what a file says about itself (pure) ------------------------------------------------


def check_file(found: FoundFile, head: bytes) -> Skipped | None:
    """Why `found` cannot be adopted, from its path, size and first bytes; None if it can."""
    why = None
    if found.name.endswith(TEMP_SUFFIX):
        why = "a temporary file of a snapshot save an unclean stop interrupted"
    elif found.file_id is None:
        why = f"not named as a sealed file (<{2 * FILE_ID_SIZE} hex>.seg or .snap)"
    elif not CAMERA_ID.fullmatch(found.camera_id):
        why = f"{found.camera_id!r} is not a camera id"
    elif day_start(found.day) is None:
        why = f"{found.day!r} is not a YYYY-MM-DD day directory"
    elif found.name.endswith(SEGMENT_SUFFIX) and found.size <= HEADER_SIZE:
        why = "a segment with no chunk: it holds no footage"
    else:
        try:
            header = parse_header(head)
        except CorruptFile as exc:
            return Skipped(found.rel, str(exc))
        kind = _KINDS[Path(found.name).suffix]
        if header.kind is not kind or header.file_id.hex() != found.file_id:
            why = (
                f"its header names {header.kind.name.lower()} {header.file_id.hex()}: "
                "the file was renamed or swapped"
            )
    return Skipped(found.rel, why) if why is not None else None


def rebuild_rows(found: Iterable[FoundFile], segment_seconds: float, now: float) -> list[Row]:
    """Rows for files that passed check_file, oldest first (see the module's note on times)."""
    rows: list[Row] = []
    previous_end: dict[str, float] = {}
    for f in sorted(found, key=lambda f: (f.camera_id, f.mtime, f.name)):
        first = day_start(f.day)
        assert first is not None and f.file_id is not None, "check_file() passed it"
        last = first + DAY - 1e-3  # the directory is the UTC day of the start
        if f.name.endswith(SNAPSHOT_SUFFIX):
            taken = min(max(f.mtime, first), last)
            rows.append(SnapshotRow(f.file_id, f.camera_id, None, taken, f.rel, f.size))
            continue
        start = max(f.mtime - segment_seconds, previous_end.get(f.camera_id, first), first)
        start = min(start, f.mtime, last)
        end = max(f.mtime, start)
        previous_end[f.camera_id] = end
        rows.append(
            SegmentRow(
                id=f.file_id,
                camera_id=f.camera_id,
                start_time=start,
                end_time=end,
                path=f.rel,
                size=f.size,
                frames=None,
                state=SegmentState.RECOVERED,
                created=now,
            )
        )
    rows.sort(key=lambda row: (row.start_time if isinstance(row, SegmentRow) else row.time, row.id))
    return rows


def day_start(name: str) -> float | None:
    """The Unix time a `YYYY-MM-DD` day directory's UTC day begins; None if not a date."""
    try:
        day = datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day.timestamp() if day.strftime("%Y-%m-%d") == name else None


# -- the footage directory (I/O) ---------------------------------------------------------


def footage_files(data_dir: Path) -> Iterator[list[FoundFile]]:
    """The regular files of each `footage/<camera>/<day>` directory, a directory at a time."""
    root = data_dir / FOOTAGE_DIR
    if not root.is_dir():
        return
    for day_dir in sorted(p for p in root.glob("*/*") if p.is_dir() and not p.is_symlink()):
        camera_id, day = day_dir.parent.name, day_dir.name
        found = []
        for entry in sorted(os.scandir(day_dir), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
            rel = f"{FOOTAGE_DIR}/{camera_id}/{day}/{entry.name}"
            found.append(FoundFile(rel, camera_id, day, entry.name, st.st_size, st.st_mtime))
        yield found


def has_sealed_files(data_dir: Path) -> bool:
    """Whether any file under footage/ is named as a sealed file that may hold footage:
    a `.seg` no longer than a header is a crash leftover recover() removes."""
    return any(
        f.file_id is not None and not (f.name.endswith(SEGMENT_SUFFIX) and f.size <= HEADER_SIZE)
        for files in footage_files(data_dir)
        for f in files
    )


def _read_head(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src:
        return src.read(HEADER_SIZE)


# -- the command -------------------------------------------------------------------------


def repair_index(
    data_dir: Path, index_path: Path, *, segment_seconds: float, now: float
) -> RepairReport:
    """Set an unusable index aside, then index every sealed file the index lacks.

    The hub must not be running (`camhub repair` is run when it refused to start).
    """
    why = _unusable(index_path)
    set_aside = _set_aside(index_path, now) if why is not None else ()
    already = 0
    candidates: list[FoundFile] = []
    skipped: list[Skipped] = []
    with Index(index_path) as index:
        for files in footage_files(data_dir):
            known = index.known_ids(f.file_id for f in files if f.file_id is not None)
            for f in files:
                if f.file_id in known:
                    already += 1
                    continue
                try:
                    problem = check_file(f, _read_head(data_dir / f.rel))
                except OSError as exc:
                    problem = Skipped(f.rel, f"cannot read it: {exc.strerror}")
                if problem is None:
                    candidates.append(f)
                else:
                    skipped.append(problem)
        rows = rebuild_rows(candidates, segment_seconds, now)
        index.add_rebuilt(rows)
    return RepairReport(
        index=index_path,
        set_aside=set_aside,
        why_set_aside=why,
        already_indexed=already,
        adopted=tuple(rows),
        skipped=tuple(skipped),
    )


def _unusable(index_path: Path) -> str | None:
    """What is wrong with an existing index that makes it unusable; None if it is fine
    or missing. A schema newer than this camhub is not damage: that SchemaError passes."""
    try:
        if index_path.stat().st_size == 0:
            return "is empty (0 bytes)"
    except FileNotFoundError:
        return None
    try:
        with Index(index_path) as index:
            verdict = index.check_integrity()
    except DamagedIndex as exc:
        return f"is not readable as an index ({exc.reason})"
    if verdict != "ok":
        return f"fails SQLite's integrity check ({verdict.splitlines()[0]})"
    return None


def _set_aside(index_path: Path, now: float) -> tuple[Path, ...]:
    """Rename the index and its -wal/-shm to `<name>.damaged-<UTC time>`; never delete."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for suffix in _INDEX_FILES:
        source = index_path.with_name(index_path.name + suffix)
        target = index_path.with_name(f"{index_path.name}.damaged-{stamp}{suffix}")
        if not source.exists():
            continue
        if target.exists():
            raise FileExistsError(f"{target} already exists; run repair again in a second")
        os.rename(source, target)
        moved.append(target)
    _fsync_dir(index_path.parent)
    return tuple(sorted(moved))
