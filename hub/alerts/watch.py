"""Camera online/offline and health for the bus, read from the capture loops' status.

The capture loops keep only a status snapshot and a meter and call nobody, which keeps
the capture code free of listeners; reading every camera's health once a second costs
a few attribute reads and tells a listener within a second that a camera dropped or
came back. The health itself (frame rate, bit rate...) changes a little at every look,
so it is told only when the camera's state or reason changes or its figures come or
go (the first window measured, or the stream stalled), else at most every
`HEALTH_EVERY` seconds: Home Assistant records every state it gets. The off-site
copy's state (hub/offsite/state.py) is sampled at the same look, told on a change of its
state or reason, else every `OFFSITE_EVERY` seconds (its pending count and age move).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hub.alerts.bus import AlertBus
from hub.alerts.happenings import CameraChanged, HealthChanged, OffsiteChanged
from hub.health import CameraHealth
from hub.offsite.state import OffsiteState

INTERVAL = 1.0  # seconds between looks
HEALTH_EVERY = 10.0  # seconds between health states of one camera whose state holds
OFFSITE_EVERY = 30.0  # seconds between off-site states whose state and reason hold


class StatusWatch:
    """Publishes a CameraChanged whenever a camera's `online` changes, and its
    HealthChanged on a change (`_shape`), else every `HEALTH_EVERY` s; with `offsite`
    (how to read the copy's state now), an OffsiteChanged likewise."""

    def __init__(
        self,
        bus: AlertBus,
        cameras: dict[str, Callable[[], CameraHealth]],
        interval: float = INTERVAL,
        *,
        offsite: Callable[[], OffsiteState] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._cameras = cameras
        self._offsite = offsite
        self._offsite_told: tuple[float, OffsiteState] | None = None
        self._interval = interval
        self._clock = clock
        self._known: dict[str, bool] = {}
        self._told: dict[str, tuple[float, CameraHealth]] = {}  # when, what: per camera
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
        for camera_id, look in self._cameras.items():
            health = look()
            if self._known.get(camera_id) is not health.online:
                self._known[camera_id] = health.online
                self._bus.publish(CameraChanged(camera_id, health.online, time.time()))
            if self._health_due(camera_id, health):
                self._told[camera_id] = (self._clock(), health)
                self._bus.publish(HealthChanged(camera_id, health, time.time()))
        if self._offsite is not None:
            self._look_offsite(self._offsite())

    def _look_offsite(self, state: OffsiteState) -> None:
        told = self._offsite_told
        now = self._clock()
        if told is not None:
            at, last = told
            same = (last.health, last.reason) == (state.health, state.reason)
            if same and now - at < OFFSITE_EVERY:
                return
        self._offsite_told = (now, state)
        self._bus.publish(OffsiteChanged(state, time.time()))

    def _health_due(self, camera_id: str, health: CameraHealth) -> bool:
        told = self._told.get(camera_id)
        if told is None:
            return True
        at, last = told
        return _shape(last) != _shape(health) or self._clock() - at >= HEALTH_EVERY

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._look()


def _shape(health: CameraHealth) -> tuple[str, str | None, bool]:
    """What is told at once when it changes: the state, the reason, and whether there
    are figures at all (not the figures, which move a little at every look)."""
    return health.state, health.reason, health.fps is None
