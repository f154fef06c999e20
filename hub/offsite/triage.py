"""Which sealed files are event footage (copied first), and which are copied at all.

A segment is event footage when its camera records only around motion ("motion"
mode), or when it lies within an event's pre-roll or post-roll. With what = "events",
only event footage is copied; with "all", continuous footage follows it. A continuous
camera's segments that closed before an event was confirmed are its pre-roll: the
first segment that meets the event queues them too, as urgent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hub.offsite.queue import Item
from hub.store import Index, SegmentRow, SnapshotRow


@dataclass(frozen=True, slots=True)
class CameraPolicy:
    record: str  # "motion", "continuous" or "off", as configured
    pre_roll: float
    post_roll: float


class Triage:
    def __init__(
        self, index: Index, cameras: Mapping[str, CameraPolicy], *, everything: bool
    ) -> None:
        self._index = index
        self._cameras = cameras
        self._everything = everything

    def segment(self, row: SegmentRow) -> list[Item]:
        """The items to queue now that `row` is closed: none, itself, or itself and the
        earlier segments that turned out to be an event's pre-roll."""
        policy = self._cameras.get(row.camera_id)
        if policy is None or policy.record == "motion":
            return [_segment_item(row, urgent=True)]
        end = row.end_time if row.end_time is not None else row.start_time
        events = self._index.events_overlapping(
            row.camera_id, row.start_time - policy.post_roll, end + policy.pre_roll
        )
        if not events:
            return [_segment_item(row, urgent=False)] if self._everything else []
        earliest = min(e.start_time for e in events) - policy.pre_roll
        earlier = self._index.segments_overlapping(row.camera_id, earliest, row.start_time)
        return [_segment_item(s, urgent=True) for s in earlier if s.id != row.id] + [
            _segment_item(row, urgent=True)
        ]

    @staticmethod
    def snapshot(row: SnapshotRow) -> Item:
        return Item(row.id, "snapshot", row.camera_id, row.time, urgent=True)


def _segment_item(row: SegmentRow, *, urgent: bool) -> Item:
    return Item(row.id, "segment", row.camera_id, row.start_time, urgent=urgent)
