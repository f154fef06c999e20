"""A real Camera tells the bus about motion without waiting for the disk, and its
event records follow once the index has given the event its id."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hub.alerts.bus import AlertBus, Subscription
from hub.alerts.happenings import (
    CameraChanged,
    EventChanged,
    Happening,
    HealthChanged,
    MotionChanged,
    Phase,
)
from hub.alerts.sink import AnnouncingEvents
from hub.alerts.watch import HEALTH_EVERY, StatusWatch
from hub.camera import Camera, EventSink
from hub.config import CameraSettings
from hub.health import DISABLED, CameraHealth
from hub.motion import MotionEvent


class StuckDisk(EventSink):
    """Records events as the index would, except that the first write hangs until
    released: a disk that stopped answering."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.ids = iter(range(41, 100))

    def event_started(self, camera_id: str, event: MotionEvent) -> int:
        self.release.wait(60)
        return next(self.ids)

    def event_ended(
        self, camera_id: str, event_id: int, event: MotionEvent, jpeg: bytes | None
    ) -> None:
        """Nothing to store here."""


def collect(sub: Subscription, until, timeout: float = 60.0) -> list[Happening]:
    """Drain `sub` until `until(everything so far)` holds; fails after `timeout`."""
    seen: list[Happening] = []
    deadline = time.monotonic() + timeout
    while not until(seen):
        if time.monotonic() > deadline:
            pytest.fail(f"not seen within {timeout} s; got {seen}")
        seen += sub.drain()
        time.sleep(0.02)
    return seen


def test_motion_is_told_while_the_disk_hangs(person_clip: Path) -> None:
    bus = AlertBus()
    sub = bus.subscribe()
    disk = StuckDisk()
    settings = CameraSettings(
        id="door", name="Front door", url=f"file://{person_clip}", record="off", realtime=True
    )
    camera = Camera(settings, 4.0, None, AnnouncingEvents(disk, bus))  # type: ignore[arg-type]
    camera.start()
    try:
        seen = collect(sub, lambda s: MotionChanged in map(type, s))
        assert not disk.release.is_set()  # the event's index row is still being written
        assert not any(isinstance(h, EventChanged) for h in seen)
        disk.release.set()
        # The visitor keeps walking in: the event grows, and says so (at most every 2 s).
        seen += collect(sub, lambda s: any(getattr(h, "phase", None) is Phase.UPDATE for h in s))
    finally:
        disk.release.set()
        camera.stop()  # ends the open event
    seen += sub.drain()

    records = [h for h in seen if isinstance(h, EventChanged)]
    assert records[0].phase is Phase.START and records[0].event_id == 41
    assert records[-1].phase is Phase.END and records[-1].event_id == 41
    assert records[-1].end is not None and records[-1].end >= records[0].start
    assert {r.event_id for r in records} == {41}
    updates = [r for r in records if r.phase is Phase.UPDATE]
    assert all(a.peak_score < b.peak_score for a, b in itertools.pairwise(updates))
    assert updates[0].peak_score > records[0].peak_score and updates[0].end is None
    motion = [h for h in seen if isinstance(h, MotionChanged)]
    assert [m.moving for m in motion][-1] is False
    assert motion[0].time == records[0].start  # the first moving frame's time


def test_the_watch_tells_each_change_of_a_camera_once() -> None:
    bus = AlertBus()
    sub = bus.subscribe()
    online = {"door": False}
    up = replace(DISABLED, enabled=True)
    watch = StatusWatch(bus, {"door": lambda: replace(up, online=online["door"])}, interval=0.01)
    watch.start()
    try:
        collect(sub, lambda s: s, timeout=10)
        online["door"] = True
        seen = collect(sub, lambda s: s, timeout=10)
    finally:
        watch.stop()
    assert [(h.camera_id, h.online) for h in seen if isinstance(h, CameraChanged)] == [
        ("door", True)
    ]


class Looked:
    """A camera's health as the watch reads it, set by the test; counts the looks."""

    def __init__(self, health: CameraHealth) -> None:
        self.health = health
        self.looks = 0

    def __call__(self) -> CameraHealth:
        self.looks += 1
        return self.health

    def wait_looks(self, more: int) -> None:
        until = self.looks + more
        deadline = time.monotonic() + 10
        while self.looks < until:
            assert time.monotonic() < deadline, "the watch stopped looking"
            time.sleep(0.01)


def test_health_is_told_on_a_change_else_every_ten_seconds() -> None:
    bus = AlertBus()
    sub = bus.subscribe()
    now = [0.0]
    door = Looked(CameraHealth(True, True, None, None, None, 768, 432, 0, None))
    watch = StatusWatch(bus, {"door": door}, interval=0.01, clock=lambda: now[0])

    def told() -> list[CameraHealth]:
        return [h.health for h in sub.drain() if isinstance(h, HealthChanged)]

    watch.start()
    try:
        first = collect(sub, lambda seen: any(isinstance(h, HealthChanged) for h in seen))
        assert first[-1] == HealthChanged("door", door.health, first[-1].time)  # the first look
        door.health = replace(door.health, fps=10.0, kbit_s=800.0)
        door.wait_looks(2)
        assert told() == [door.health]  # figures at last: told at once
        for fps in (9.9, 10.1, 10.0):  # figures that move a little: not told
            door.health = replace(door.health, fps=fps)
            door.wait_looks(10)
        assert told() == []
        now[0] += HEALTH_EVERY  # ten seconds on: the newest figures
        door.wait_looks(2)
        assert told() == [door.health]
        door.health = replace(door.health, online=False, reason="connection refused", fps=None)
        door.wait_looks(2)
        assert told() == [door.health]  # a camera that went offline: at once, with why
        door.health = replace(door.health, reason="the camera refused the login")
        door.wait_looks(2)
        assert told() == [door.health]
    finally:
        watch.stop()
