"""The pure parts of alerting: the bus's bounded queues, the MQTT topics and payloads."""

from __future__ import annotations

import ipaddress
import json
import threading
from dataclasses import replace

import pytest

from hub.alerts.bus import AlertBus
from hub.alerts.happenings import (
    CameraChanged,
    EventChanged,
    HealthChanged,
    MotionChanged,
    Phase,
)
from hub.alerts.topics import (
    CameraInfo,
    HubInfo,
    Topics,
    discovery_messages,
    event_json,
    health_json,
    messages_for,
    page_url,
)
from hub.health import DISABLED, CameraHealth

BOX = (0.1, 0.2, 0.3, 0.4)


def event(phase: Phase, event_id: int = 1, peak: float = 0.1) -> EventChanged:
    end = 20.0 if phase is Phase.END else None
    return EventChanged(phase, "door", event_id, 10.0, end, peak, BOX)


# -- the bus -------------------------------------------------------------------------------


def test_the_newest_state_wins_in_the_first_ones_place() -> None:
    bus = AlertBus()
    sub = bus.subscribe()
    bus.publish(MotionChanged("door", True, 1.0))
    bus.publish(CameraChanged("door", True, 1.5))
    bus.publish(MotionChanged("door", False, 2.0))
    bus.publish(MotionChanged("yard", True, 3.0))

    assert sub.drain() == [
        MotionChanged("door", False, 2.0),
        CameraChanged("door", True, 1.5),
        MotionChanged("yard", True, 3.0),
    ]
    assert sub.drain() == []


def test_updates_of_one_event_coalesce_but_start_and_end_stay() -> None:
    bus = AlertBus()
    sub = bus.subscribe()
    for happening in [
        event(Phase.START),
        event(Phase.UPDATE, peak=0.2),
        event(Phase.UPDATE, peak=0.3),
        event(Phase.END, peak=0.3),
    ]:
        bus.publish(happening)
    assert [(h.phase, h.peak_score) for h in sub.drain()] == [
        (Phase.START, 0.1),
        (Phase.UPDATE, 0.3),
        (Phase.END, 0.3),
    ]


def test_a_listener_that_falls_behind_loses_old_records_never_states() -> None:
    bus = AlertBus()
    sub = bus.subscribe(max_records=3)
    bus.publish(MotionChanged("door", True, 0.0))
    for event_id in range(1, 11):
        bus.publish(event(Phase.START, event_id))
    bus.publish(CameraChanged("door", False, 1.0))

    drained = sub.drain()
    assert drained[0] == MotionChanged("door", True, 0.0)
    assert [h.event_id for h in drained if isinstance(h, EventChanged)] == [8, 9, 10]
    assert drained[-1] == CameraChanged("door", False, 1.0)
    assert sub.dropped == 7


def test_a_late_listener_starts_with_the_current_states() -> None:
    bus = AlertBus()
    bus.publish(MotionChanged("door", True, 1.0))
    bus.publish(event(Phase.START))
    bus.publish(MotionChanged("door", False, 2.0))
    woken = threading.Event()

    late = bus.subscribe(notify=woken.set)

    assert woken.is_set()
    assert late.drain() == [MotionChanged("door", False, 2.0)]  # records are not states
    assert bus.states() == [MotionChanged("door", False, 2.0)]


def test_each_listener_has_its_own_queue_and_a_broken_one_stops_nobody() -> None:
    bus = AlertBus()

    def broken() -> None:
        raise RuntimeError("the page's loop is closed")

    bad = bus.subscribe(notify=broken)
    good = bus.subscribe()
    bus.publish(MotionChanged("door", True, 1.0))  # does not raise
    assert good.drain() == [MotionChanged("door", True, 1.0)]
    assert bad.drain() == [MotionChanged("door", True, 1.0)]
    bus.unsubscribe(bad)
    bus.publish(MotionChanged("door", False, 2.0))
    assert bad.drain() == [] and len(good.drain()) == 1


def test_publishing_from_many_threads_keeps_every_subscription_bounded() -> None:
    bus = AlertBus()
    sub = bus.subscribe(max_records=8)

    def camera(name: str) -> None:
        for i in range(2000):
            bus.publish(MotionChanged(name, i % 2 == 0, float(i)))
            bus.publish(EventChanged(Phase.START, name, i, 0.0, None, 0.1, BOX))

    threads = [threading.Thread(target=camera, args=(f"cam{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    drained = sub.drain()
    assert len(drained) == 4 + 8
    assert {h.camera_id: h.moving for h in drained if isinstance(h, MotionChanged)} == {
        f"cam{n}": False for n in range(4)
    }
    assert sub.dropped == 4 * 2000 - 8


# -- topics and payloads -------------------------------------------------------------------


def test_topics_under_a_nested_prefix() -> None:
    topics = Topics("home/cams", "homeassistant")
    assert topics.availability == "home/cams/availability"
    assert topics.motion("door") == "home/cams/door/motion"
    assert topics.status("door") == "home/cams/door/status"
    assert topics.events == "home/cams/events"
    assert topics.node == "home_cams"
    assert topics.discovery("door") == "homeassistant/binary_sensor/home_cams/door_motion/config"
    assert topics.health("door") == "home/cams/door/health"
    assert (
        topics.sensor_discovery("door", "fps") == "homeassistant/sensor/home_cams/door_fps/config"
    )
    assert topics.discovery_filters == (
        "homeassistant/binary_sensor/home_cams/+/config",
        "homeassistant/sensor/home_cams/+/config",
    )


def test_what_each_happening_becomes() -> None:
    topics = Topics("camhub", "homeassistant")
    cameras = {"door": CameraInfo("door", "Front door")}
    [on] = messages_for(topics, MotionChanged("door", True, 1.0), cameras)
    [offline] = messages_for(topics, CameraChanged("door", False, 1.0), cameras)
    [record] = messages_for(topics, event(Phase.END), cameras)

    assert (on.topic, on.payload, on.retain) == ("camhub/door/motion", b"ON", True)
    assert (offline.topic, offline.payload, offline.retain) == (
        "camhub/door/status",
        b"offline",
        True,
    )
    assert (record.topic, record.retain) == ("camhub/events", False)
    assert json.loads(record.payload) == {
        "type": "end", "event_id": 1, "camera": "door", "camera_name": "Front door",
        "start": 10.0, "end": 20.0, "peak_score": 0.1, "box": [0.1, 0.2, 0.3, 0.4],
    }  # fmt: skip


def test_an_event_record_is_metadata_only_and_small() -> None:
    payload = event_json(
        EventChanged(Phase.UPDATE, "door", 123456, 1.7e9, None, 0.123456789, BOX), "Ünïcode door"
    )
    doc = json.loads(payload)
    assert set(doc) == {
        "type",
        "event_id",
        "camera",
        "camera_name",
        "start",
        "end",
        "peak_score",
        "box",
    }
    assert doc["peak_score"] == 0.1235 and doc["camera_name"] == "Ünïcode door"
    assert len(payload) < 300


def test_discovery_announces_or_removes_each_camera() -> None:
    topics = Topics("camhub", "ha")
    cameras = [CameraInfo("door", "Front door"), CameraInfo("yard", "Yard")]
    hub = HubInfo("1.2.3", None)

    announced = discovery_messages(topics, cameras, hub, announce=True)
    removed = discovery_messages(topics, cameras, hub, announce=False)

    entities = [
        f"ha/{component}/camhub/{camera}_{entity}/config"
        for camera in ("door", "yard")
        for component, entity in (
            ("binary_sensor", "motion"),
            ("sensor", "fps"),
            ("sensor", "kbit_s"),
            ("sensor", "status"),
        )
    ]
    assert [m.topic for m in announced] == [m.topic for m in removed] == entities
    assert all(m.retain for m in announced + removed)
    assert all(m.payload == b"" for m in removed)
    configs = [json.loads(m.payload) for m in announced]
    door = configs[0]
    assert door["unique_id"] == "camhub_camhub_door_motion"
    assert door["device"]["identifiers"] == ["camhub_camhub"]
    assert "configuration_url" not in door["device"]  # no page link known
    assert all(config["device"] == door["device"] for config in configs)  # one device
    assert len({config["unique_id"] for config in configs}) == len(configs)


def test_health_is_figures_and_words_for_home_assistant() -> None:
    topics = Topics("camhub", "homeassistant")
    measured = CameraHealth(True, True, None, 9.96, 811.6, 768, 432, 2, 1.7e9 + 0.123)
    [message] = messages_for(topics, HealthChanged("door", measured, 1.0), {})
    assert (message.topic, message.retain) == ("camhub/door/health", True)
    assert json.loads(message.payload) == {
        "status": "online", "reason": None, "fps": 10.0, "kbit_s": 812, "width": 768,
        "height": 432, "reconnects": 2, "last_frame": 1700000000.1,
    }  # fmt: skip

    refused = replace(measured, online=False, reason="x" * 1000, fps=None, kbit_s=None)
    doc = json.loads(health_json(refused))
    assert doc["status"] == "offline" and doc["fps"] is None and doc["kbit_s"] is None
    assert doc["reason"] == "x" * 255  # the longest state Home Assistant takes
    assert json.loads(health_json(DISABLED))["status"] == "disabled"


@pytest.mark.parametrize(
    ("origins", "served", "lan", "expected"),
    [
        (("https://cams.home.arpa",), "https://127.0.0.1:8443/", [], "https://cams.home.arpa/"),
        ((), "https://192.168.1.9:8443/", [], "https://192.168.1.9:8443/"),
        ((), "https://0.0.0.0:8443/", ["192.168.1.5"], "https://192.168.1.5:8443/"),
        ((), "https://[::]:8443/", ["fd00::5"], "https://[fd00::5]:8443/"),
        ((), "https://0.0.0.0:8443/", [], None),
        ((), "https://127.0.0.1:8443/", ["192.168.1.5"], None),
        ((), "https://localhost:8443/", [], None),
        ((), "https://camhub.lan:8443/", [], "https://camhub.lan:8443/"),
        ((), None, [], None),
    ],
)
def test_the_page_link_home_assistant_gets(
    origins: tuple[str, ...], served: str | None, lan: list[str], expected: str | None
) -> None:
    addresses = [ipaddress.ip_address(a) for a in lan]
    assert page_url(origins, served, addresses) == expected
