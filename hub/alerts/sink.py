"""Motion events told to the bus as the camera reports them, beside being recorded.

Wraps the sink that records (the index and the sealed snapshots), so recording stays
the same with or without listeners. The motion state is told from the capture thread
at the tracker's decision, before any disk work, which is what an alert waits for; the
event records follow from the writer thread, once the index has given the event its id.
"""

from __future__ import annotations

from hub.alerts.bus import AlertBus
from hub.alerts.happenings import EventChanged, MotionChanged, Phase
from hub.camera import EventSink
from hub.motion import MotionEvent


class AnnouncingEvents(EventSink):
    """Records through `recording`, then publishes to `bus` (which never blocks)."""

    def __init__(self, recording: EventSink, bus: AlertBus) -> None:
        self._recording = recording
        self._bus = bus

    def motion_changed(self, camera_id: str, moving: bool, time: float) -> None:
        self._recording.motion_changed(camera_id, moving, time)
        self._bus.publish(MotionChanged(camera_id, moving, time))

    def event_started(self, camera_id: str, event: MotionEvent) -> int:
        event_id = self._recording.event_started(camera_id, event)
        self._tell(Phase.START, camera_id, event_id, event)
        return event_id

    def event_updated(self, camera_id: str, event_id: int, event: MotionEvent) -> None:
        self._recording.event_updated(camera_id, event_id, event)
        self._tell(Phase.UPDATE, camera_id, event_id, event)

    def event_ended(
        self, camera_id: str, event_id: int, event: MotionEvent, jpeg: bytes | None
    ) -> None:
        self._recording.event_ended(camera_id, event_id, event, jpeg)
        self._tell(Phase.END, camera_id, event_id, event)

    def _tell(self, phase: Phase, camera_id: str, event_id: int, event: MotionEvent) -> None:
        end = None
        if phase is Phase.END:  # as the index records it
            end = event.end if event.end is not None else event.peak_time
        self._bus.publish(
            EventChanged(phase, camera_id, event_id, event.start, end, event.peak_score, event.bbox)
        )
