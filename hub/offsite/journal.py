"""The sealed journal: what a restore needs to know about the files it finds.

The bucket holds sealed files under random names; which camera, which times, which
events is written here, as UTF-8 JSON sealed to the owner's public key (a sealed file
of kind 3, FORMAT.md §6.2). One journal is written per batch of files uploaded, after
them; a file counts as off-site only once a journal naming it is there.

Sealing is encryption to the owner, not a signature: anyone who has the public key
could seal a journal, so `parse` trusts nothing in it (ids, names and numbers are
checked as strictly as any input).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from hub.archive import CAMERA_ID
from hub.store import BBox, EventRow, SegmentRow, SegmentState, SnapshotRow

FORMAT = "camhub-offsite-journal"
VERSION = 1
MAX_SIZE = 4 * 2**20  # a journal of a 16-file batch is a few kB
_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class JournalError(ValueError):
    """A journal that does not parse or does not follow the format."""


@dataclass(frozen=True, slots=True)
class JournalFile:
    """A file the journal vouches for: its index row, and what was uploaded."""

    row: SegmentRow | SnapshotRow
    sha256: str  # of the object, the sealed file byte for byte

    @property
    def size(self) -> int:
        return self.row.size or 0


@dataclass(frozen=True, slots=True)
class Journal:
    hub: str
    written: float
    files: tuple[JournalFile, ...]
    events: tuple[EventRow, ...]


def build(journal: Journal) -> bytes:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "hub": journal.hub,
        "written": journal.written,
        "files": [_file_doc(f) for f in journal.files],
        "events": [_event_doc(e) for e in journal.events],
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def parse(data: bytes) -> Journal:
    if len(data) > MAX_SIZE:
        raise JournalError(f"journal of {len(data)} bytes is over {MAX_SIZE}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise JournalError(f"journal is not UTF-8 JSON: {exc}") from None
    doc = _fields(doc, {"format", "version", "hub", "written", "files", "events"}, "journal")
    if doc["format"] != FORMAT or doc["version"] != VERSION:
        raise JournalError(f"not a version {VERSION} {FORMAT}")
    return Journal(
        hub=_str(doc["hub"], "hub"),
        written=_time(doc["written"], "written"),
        files=tuple(_parse_file(f) for f in _list(doc["files"], "files")),
        events=tuple(_parse_event(e) for e in _list(doc["events"], "events")),
    )


# -- writing ------------------------------------------------------------------------------


def _file_doc(f: JournalFile) -> dict[str, object]:
    row = f.row
    if isinstance(row, SegmentRow):
        return {
            "kind": "segment",
            "id": row.id,
            "camera": row.camera_id,
            "start": row.start_time,
            "end": row.end_time,
            "state": row.state.value,
            "frames": row.frames,
            "size": row.size,
            "sha256": f.sha256,
        }
    return {
        "kind": "snapshot",
        "id": row.id,
        "camera": row.camera_id,
        "time": row.time,
        "event": row.event_id,
        "size": row.size,
        "sha256": f.sha256,
    }


def _event_doc(e: EventRow) -> dict[str, object]:
    return {
        "id": e.id,
        "camera": e.camera_id,
        "start": e.start_time,
        "end": e.end_time,
        "peak_score": e.peak_score,
        "peak_time": e.peak_time,
        "bbox": list(e.bbox) if e.bbox is not None else None,
        "snapshot": e.snapshot_id,
    }


# -- reading ------------------------------------------------------------------------------

_SEGMENT_FIELDS = {"kind", "id", "camera", "start", "end", "state", "frames", "size", "sha256"}
_SNAPSHOT_FIELDS = {"kind", "id", "camera", "time", "event", "size", "sha256"}
_EVENT_FIELDS = {"id", "camera", "start", "end", "peak_score", "peak_time", "bbox", "snapshot"}


def _parse_file(raw: object) -> JournalFile:
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind == "segment":
        d = _fields(raw, _SEGMENT_FIELDS, "segment")
        state = d["state"]
        if state not in (SegmentState.COMPLETE.value, SegmentState.RECOVERED.value):
            raise JournalError(f"segment state {state!r} is not complete or recovered")
        start, end = _time(d["start"], "start"), _time(d["end"], "end")
        if end < start:
            raise JournalError("segment ends before it starts")
        row: SegmentRow | SnapshotRow = SegmentRow(
            id=_match(d["id"], _ID, "id"),
            camera_id=_match(d["camera"], CAMERA_ID, "camera"),
            start_time=start,
            end_time=end,
            path="",
            size=_count(d["size"], "size"),
            frames=None if d["frames"] is None else _count(d["frames"], "frames"),
            state=SegmentState(state),
            created=end,
        )
    elif kind == "snapshot":
        d = _fields(raw, _SNAPSHOT_FIELDS, "snapshot")
        row = SnapshotRow(
            id=_match(d["id"], _ID, "id"),
            camera_id=_match(d["camera"], CAMERA_ID, "camera"),
            event_id=None if d["event"] is None else _count(d["event"], "event"),
            time=_time(d["time"], "time"),
            path="",
            size=_count(d["size"], "size"),
        )
    else:
        raise JournalError(f"file kind {kind!r} is not segment or snapshot")
    return JournalFile(row, _match(d["sha256"], _SHA256, "sha256"))


def _parse_event(raw: object) -> EventRow:
    d = _fields(raw, _EVENT_FIELDS, "event")
    bbox: BBox | None = None
    if d["bbox"] is not None:
        values = _list(d["bbox"], "bbox")
        if len(values) != 4:
            raise JournalError("event bbox must have 4 numbers")
        x, y, w, h = (_number(v, "bbox") for v in values)
        bbox = (x, y, w, h)
    return EventRow(
        id=_count(d["id"], "event id"),
        camera_id=_match(d["camera"], CAMERA_ID, "camera"),
        start_time=_time(d["start"], "start"),
        end_time=None if d["end"] is None else _time(d["end"], "end"),
        peak_score=None if d["peak_score"] is None else _number(d["peak_score"], "peak_score"),
        peak_time=None if d["peak_time"] is None else _time(d["peak_time"], "peak_time"),
        bbox=bbox,
        snapshot_id=None if d["snapshot"] is None else _match(d["snapshot"], _ID, "snapshot"),
    )


def _fields(raw: object, expected: set[str], what: str) -> dict[str, object]:
    if not isinstance(raw, dict) or set(raw) != expected:
        raise JournalError(f"{what}: must be an object with exactly {sorted(expected)}")
    return raw


def _list(raw: object, what: str) -> list[object]:
    if not isinstance(raw, list):
        raise JournalError(f"{what}: must be a list")
    return raw


def _str(raw: object, what: str) -> str:
    if not isinstance(raw, str):
        raise JournalError(f"{what}: must be a string")
    return raw


def _match(raw: object, pattern: re.Pattern[str], what: str) -> str:
    text = _str(raw, what)
    if not pattern.fullmatch(text):
        raise JournalError(f"{what}: {text[:40]!r} is not valid")
    return text


def _number(raw: object, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise JournalError(f"{what}: must be a finite number")
    return float(raw)


def _time(raw: object, what: str) -> float:
    value = _number(raw, what)
    if not 0 <= value < 2**34:  # 1970 .. 2514
        raise JournalError(f"{what}: {value} is not a plausible time")
    return value


def _count(raw: object, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 2**63:
        raise JournalError(f"{what}: must be a whole number 0..2^63-1")
    return raw
