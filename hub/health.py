"""A camera's health in one snapshot: connected or not and why not, the stream's
figures, reconnects, the newest picture's time.

Read from a running camera's capture status and meter (a few attribute reads, no lock),
for the page (`/api/cameras`, its event stream) and for Home Assistant (the watch
samples it, MQTT publishes it). A camera disabled in the settings has no pipeline to
read: `DISABLED` stands for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: the pure happenings and topics import
    # this module, and need none of the camera's pipeline (OpenCV, PyAV) with it.
    from hub.camera import Camera


@dataclass(frozen=True, slots=True)
class CameraHealth:
    enabled: bool  # False: disabled in the settings, nothing runs
    online: bool  # every stream of the camera is connected
    reason: str | None  # why not online, in the owner's words; None when online
    fps: float | None  # None before the first measured window, or once it is stale
    kbit_s: float | None  # None too for a stream of pictures only (MJPEG, USB)
    width: int | None
    height: int | None
    reconnects: int  # since the camera (re)started
    last_frame: float | None  # Unix time of the newest picture; None before the first

    @property
    def state(self) -> str:
        """One of "online", "offline" and "disabled", as Home Assistant shows it."""
        if not self.enabled:
            return "disabled"
        return "online" if self.online else "offline"


DISABLED = CameraHealth(False, False, None, None, None, None, None, 0, None)


def camera_health(camera: Camera) -> CameraHealth:
    streams = camera.status
    reasons = [st.reason for st in streams if st.reason and not st.connected]
    rates = camera.meter.rates()
    size = camera.meter.size
    return CameraHealth(
        enabled=True,
        online=all(st.connected for st in streams),
        reason=reasons[0] if reasons else None,
        fps=None if rates is None else rates.fps,
        kbit_s=None if rates is None else rates.kbit_s,
        width=None if size is None else size[0],
        height=None if size is None else size[1],
        reconnects=sum(st.reconnects for st in streams),
        last_frame=camera.last_frame_time,
    )
