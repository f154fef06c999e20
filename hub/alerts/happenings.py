"""What the hub tells its listeners: motion on a camera, a camera going on- or offline,
its health and the off-site copy's state now and then, and the records of motion
events. Metadata only: no picture ever travels with them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from hub.health import CameraHealth
from hub.offsite.state import OffsiteState

BBox = tuple[float, float, float, float]  # x, y, width, height as fractions of the frame


class Phase(StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True, slots=True)
class MotionChanged:
    """A camera started or stopped seeing motion (at the tracker's decision)."""

    camera_id: str
    moving: bool
    time: float  # the frame time of the change (Unix seconds)

    is_state: ClassVar[bool] = True

    @property
    def key(self) -> tuple[str, ...]:
        return ("motion", self.camera_id)


@dataclass(frozen=True, slots=True)
class CameraChanged:
    """A camera's capture connected (all its streams) or lost a stream."""

    camera_id: str
    online: bool
    time: float

    is_state: ClassVar[bool] = True

    @property
    def key(self) -> tuple[str, ...]:
        return ("status", self.camera_id)


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """A camera's health, sampled (hub/alerts/watch.py): on a change of its state or
    reason, else at most every `watch.HEALTH_EVERY` seconds."""

    camera_id: str
    health: CameraHealth
    time: float

    is_state: ClassVar[bool] = True

    @property
    def key(self) -> tuple[str, ...]:
        return ("health", self.camera_id)


@dataclass(frozen=True, slots=True)
class OffsiteChanged:
    """The off-site copy's state, sampled (hub/alerts/watch.py): on a change of its
    state or reason, else at most every `watch.OFFSITE_EVERY` seconds."""

    state: OffsiteState
    time: float

    is_state: ClassVar[bool] = True

    @property
    def key(self) -> tuple[str, ...]:
        return ("offsite",)


@dataclass(frozen=True, slots=True)
class EventChanged:
    """A motion event as the index records it: started, grown, or ended."""

    phase: Phase
    camera_id: str
    event_id: int
    start: float
    end: float | None  # None until it ends
    peak_score: float  # fraction of the frame that changed at the peak, 0..1
    bbox: BBox  # where the motion was, all of it so far

    is_state: ClassVar[bool] = False

    @property
    def key(self) -> tuple[str, ...]:
        """Updates of one event replace each other while pending; start and end stay."""
        return ("event", self.camera_id, str(self.event_id), self.phase.value)


Happening = MotionChanged | CameraChanged | HealthChanged | OffsiteChanged | EventChanged
