"""Camera online/offline for the bus, read from the capture loops' status.

The capture loops keep only a status snapshot and call nobody, which keeps the capture
code free of listeners; reading every camera's snapshot once a second costs nothing
and tells a listener within a second that a camera dropped or came back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hub.alerts.bus import AlertBus
from hub.alerts.happenings import CameraChanged

INTERVAL = 1.0  # seconds between looks


class StatusWatch:
    """Publishes a CameraChanged whenever a camera's `online()` answer changes."""

    def __init__(
        self, bus: AlertBus, cameras: dict[str, Callable[[], bool]], interval: float = INTERVAL
    ) -> None:
        self._bus = bus
        self._cameras = cameras
        self._interval = interval
        self._known: dict[str, bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _look(self) -> None:
        """One look at every camera, publishing what changed since the last one."""
        for camera_id, online in self._cameras.items():
            now = online()
            if self._known.get(camera_id) is not now:
                self._known[camera_id] = now
                self._bus.publish(CameraChanged(camera_id, now, time.time()))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._look()
