"""The MQTT publisher against a real Mosquitto broker, checked by a real subscriber.

The publisher runs in-process here (fed through the real AlertBus); tests/test_mqtt_hub.py
runs the whole `camhub run` against the broker and a real camera.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from mosquitto import PASSWORD, USER, Broker, Subscriber
from paho.mqtt.enums import CallbackAPIVersion

from hub.alerts.bus import AlertBus
from hub.alerts.happenings import (
    CameraChanged,
    EventChanged,
    HealthChanged,
    MotionChanged,
    OffsiteChanged,
    Phase,
)
from hub.alerts.mqtt import MqttPublisher, MqttState
from hub.alerts.service import Alerts
from hub.alerts.topics import CameraInfo
from hub.config import MqttSettings
from hub.health import CameraHealth
from hub.offsite.state import OFF, OffsiteHealth, OffsiteState

DOOR = CameraInfo("door", "Front door")
YARD = CameraInfo("yard", "Back yard")
PAGE = "https://cams.home.arpa/"
ONLINE = CameraHealth(True, True, None, 9.96, 811.6, 768, 432, 1, 1.7e9)


def settings(broker: Broker, **overrides: object) -> MqttSettings:
    values: dict[str, object] = {
        "enabled": True,
        "url": broker.url,
        "username": USER,
        "password": PASSWORD,
        "ca_file": broker.ca_file if broker.tls else None,
    }
    values.update(overrides)
    return MqttSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "tls-broker", tls=True)
    b.start()
    try:
        yield b
    finally:
        b.kill()


class Running:
    """Publishers and subscribers started by a test, all stopped at its end."""

    def __init__(self) -> None:
        self.publishers: list[MqttPublisher] = []
        self.subscribers: list[Subscriber] = []

    def publisher(
        self, mqtt: MqttSettings, bus: AlertBus, cameras: list[CameraInfo], offsite: bool = False
    ) -> MqttPublisher:
        publisher = MqttPublisher(mqtt, bus, cameras, version="9.9.9", offsite=offsite)
        self.publishers.append(publisher)
        publisher.start(PAGE)
        return publisher

    def subscriber(self, broker: Broker, *topics: str) -> Subscriber:
        subscriber = Subscriber(broker, topics or ("#",))
        self.subscribers.append(subscriber)
        return subscriber


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        for publisher in r.publishers:
            publisher.stop()
        for subscriber in r.subscribers:
            subscriber.close()


def retained_now(broker: Broker, running: Running, pattern: str = "#") -> dict[str, bytes]:
    """What the broker holds retained under `pattern`, as a new subscriber gets it.

    The subscriber then publishes a marker to itself: the broker sends the retained
    messages of a subscription before anything published after it, so once the marker
    is in, every retained message is too (no waiting for an absence)."""
    subscriber = running.subscriber(broker, pattern, "test/marker")
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.username_pw_set(USER, PASSWORD)
    if broker.tls:
        client.tls_set(ca_certs=str(broker.ca_file))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish("test/marker", b"end", qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    subscriber.wait_for("test/marker", "end")
    return {m.topic: m.payload for m in subscriber.messages if m.retain}


def entity_topics(camera_id: str) -> dict[str, str]:
    """Each Home Assistant entity of a camera: its discovery topic."""
    sensors = {key: f"homeassistant/sensor/camhub/{camera_id}_{key}/config" for key in SENSORS}
    return {"motion": f"homeassistant/binary_sensor/camhub/{camera_id}_motion/config"} | sensors


SENSORS = ("fps", "kbit_s", "status")


def assert_under_the_hubs_device(config: dict, camera_id: str, *, needs_camera: bool) -> None:
    """Available while the hub is (and the camera, if `needs_camera`); one device."""
    topics = [a["topic"] for a in config["availability"]]
    camera = [f"camhub/{camera_id}/status"] if needs_camera else []
    assert topics == ["camhub/availability", *camera]
    for availability in config["availability"]:
        assert availability["payload_available"] == "online"
        assert availability["payload_not_available"] == "offline"
    assert config.get("availability_mode", "latest") == ("all" if needs_camera else "latest")
    device = config["device"]
    assert device["identifiers"] == ["camhub_camhub"]
    assert device["name"] and device["manufacturer"] and device["model"]
    assert device["sw_version"] == "9.9.9"
    assert device["configuration_url"] == PAGE


def assert_home_assistant_binary_sensor(config: dict, camera: CameraInfo) -> None:
    """The fields Home Assistant's MQTT binary_sensor needs, grouped under one device."""
    assert config["name"] == f"{camera.name} motion"
    assert config["unique_id"] == f"camhub_camhub_{camera.id}_motion"
    assert config["state_topic"] == f"camhub/{camera.id}/motion"
    assert config["device_class"] == "motion"
    assert (config["payload_on"], config["payload_off"]) == ("ON", "OFF")
    assert_under_the_hubs_device(config, camera.id, needs_camera=True)


def assert_home_assistant_health_sensors(configs: dict[str, dict], camera: CameraInfo) -> None:
    """Home Assistant's MQTT sensors of the camera's health, by key: each reads the
    health topic with a template, is diagnostic, and has a unique id of the camera's id;
    the figures are measurements with units HA knows."""
    for key, config in configs.items():
        assert config["state_topic"] == f"camhub/{camera.id}/health"
        assert config["unique_id"] == f"camhub_camhub_{camera.id}_{key}"
        assert config["entity_category"] == "diagnostic"  # the only one HA allows a sensor
        assert config["value_template"].startswith("{{ value_json.")
        assert_under_the_hubs_device(config, camera.id, needs_camera=key != "status")
    fps, kbit_s, status = configs["fps"], configs["kbit_s"], configs["status"]
    assert fps["name"] == f"{camera.name} frame rate" and fps["unit_of_measurement"] == "fps"
    assert fps["state_class"] == kbit_s["state_class"] == "measurement"
    assert kbit_s["name"] == f"{camera.name} bit rate"
    assert (kbit_s["device_class"], kbit_s["unit_of_measurement"]) == ("data_rate", "kbit/s")
    assert status["name"] == f"{camera.name} status"
    assert "state_class" not in status and "unit_of_measurement" not in status  # words


def assert_home_assistant_entities(retained: dict[str, bytes], camera: CameraInfo) -> None:
    """All of the camera's entities, as Home Assistant would read them off the broker."""
    topics = entity_topics(camera.id)
    assert_home_assistant_binary_sensor(json.loads(retained[topics["motion"]]), camera)
    sensors = {key: json.loads(retained[topics[key]]) for key in SENSORS}
    assert_home_assistant_health_sensors(sensors, camera)


# -- states, events, discovery ------------------------------------------------------------


def test_states_events_and_discovery_reach_a_real_subscriber(
    broker: Broker, running: Running
) -> None:
    bus = AlertBus()
    bus.publish(CameraChanged("door", True, time.time()))  # known before MQTT starts
    watcher = running.subscriber(broker)
    publisher = running.publisher(settings(broker), bus, [DOOR, YARD])

    watcher.wait_for("camhub/availability", "online")
    watcher.wait_for("camhub/door/status", "online")
    watcher.wait_for("camhub/yard/motion", "OFF")  # never moved in this run: off
    start, mark = time.time(), watcher.mark()
    bus.publish(MotionChanged("door", True, start))
    bus.publish(EventChanged(Phase.START, "door", 7, start, None, 0.05, (0.1, 0.2, 0.3, 0.4)))
    on = watcher.wait_for("camhub/door/motion", "ON", after=mark)
    assert not on.retain  # live delivery; the broker keeps it retained (below)
    bus.publish(EventChanged(Phase.END, "door", 7, start, start + 9, 0.2, (0.1, 0.2, 0.5, 0.6)))
    bus.publish(MotionChanged("door", False, start + 9))
    bus.publish(HealthChanged("door", ONLINE, start + 9))
    watcher.wait_for("camhub/door/motion", "OFF", after=mark)
    health = watcher.wait_for("camhub/door/health", after=mark).json()
    assert health == {
        "status": "online", "reason": None, "fps": 10.0, "kbit_s": 812, "width": 768,
        "height": 432, "reconnects": 1, "last_frame": 1.7e9,
    }  # fmt: skip

    events = [m.json() for m in watcher.on("camhub/events")]
    assert [e["type"] for e in events] == ["start", "end"]
    assert events[0] == {
        "type": "start", "event_id": 7, "camera": "door", "camera_name": "Front door",
        "start": round(start, 3), "end": None, "peak_score": 0.05, "box": [0.1, 0.2, 0.3, 0.4],
    }  # fmt: skip
    assert events[1]["end"] == round(start + 9, 3) and events[1]["box"] == [0.1, 0.2, 0.5, 0.6]

    retained = retained_now(broker, running)
    assert retained["camhub/availability"] == b"online"
    assert retained["camhub/door/motion"] == b"OFF"
    assert retained["camhub/door/status"] == b"online"
    assert json.loads(retained["camhub/door/health"]) == health
    assert "camhub/events" not in retained  # records are not states
    for camera in (DOOR, YARD):
        assert_home_assistant_entities(retained, camera)
    assert publisher.status.state is MqttState.CONNECTED

    publisher.stop()
    after = retained_now(broker, running)
    assert after["camhub/availability"] == b"offline"  # said by the hub, not the will
    assert after["camhub/door/status"] == after["camhub/yard/status"] == b"offline"
    assert "Client camhub-camhub disconnected." in broker.log  # cleanly, no will


def test_discovery_off_removes_every_entity_the_hub_announced(
    broker: Broker, running: Running
) -> None:
    door, yard = set(entity_topics("door").values()), set(entity_topics("yard").values())
    first = running.publisher(settings(broker), AlertBus(), [DOOR, YARD])
    watcher = running.subscriber(broker)
    watcher.wait_for(entity_topics("yard")["status"])  # announced last
    first.stop()
    assert set(retained_now(broker, running, "homeassistant/#")) == door | yard

    # The yard camera left the config, discovery stays on: only its entities go.
    mark = watcher.mark()
    second = running.publisher(settings(broker), AlertBus(), [DOOR])
    for topic in yard:
        watcher.wait_for(topic, "", after=mark)
    second.stop()
    assert set(retained_now(broker, running, "homeassistant/#")) == door

    # Discovery turned off: the remaining entities go too, the health sensors with the
    # motion sensor, and nothing is announced.
    mark = watcher.mark()
    running.publisher(settings(broker, discovery=False), AlertBus(), [DOOR])
    for topic in door:
        watcher.wait_for(topic, "", after=mark)
    assert retained_now(broker, running, "homeassistant/#") == {}
    assert retained_now(broker, running, "camhub/availability") == {
        "camhub/availability": b"online"
    }


OFFSITE_ENTITIES = {
    "homeassistant/binary_sensor/camhub/offsite_problem/config",
    "homeassistant/sensor/camhub/offsite_pending/config",
    "homeassistant/sensor/camhub/offsite_lag/config",
}
FAILING = OffsiteState(OffsiteHealth.FAILING, "bucket cams: timed out", 7, 912.4, 1.7e9)


def test_the_offsite_entities_come_with_the_offsite_table_and_go_with_it_or_discovery(
    broker: Broker, running: Running
) -> None:
    door = set(entity_topics("door").values())
    bus = AlertBus()
    bus.publish(OffsiteChanged(FAILING, time.time()))
    first = running.publisher(settings(broker), bus, [DOOR], offsite=True)
    watcher = running.subscriber(broker)
    watcher.wait_for("camhub/offsite/problem", "ON")
    first.stop()
    retained = retained_now(broker, running)
    assert set(retained) >= door | OFFSITE_ENTITIES
    assert json.loads(retained["camhub/offsite"]) == {
        "state": "failing",
        "reason": "bucket cams: timed out",
        "pending": 7,
        "oldest_pending_s": 912,
        "last_success": 1.7e9,
    }
    lag = json.loads(retained["homeassistant/sensor/camhub/offsite_lag/config"])
    assert (lag["device_class"], lag["unit_of_measurement"]) == ("duration", "s")
    assert lag["state_topic"] == "camhub/offsite" and lag["entity_category"] == "diagnostic"
    for topic in OFFSITE_ENTITIES:
        assert_under_the_hubs_device(json.loads(retained[topic]), "", needs_camera=False)

    # [offsite] left the config: its entities go, the camera's stay, and the state says off.
    mark = watcher.mark()
    off = AlertBus()
    off.publish(OffsiteChanged(OFF, time.time()))
    second = running.publisher(settings(broker), off, [DOOR])
    for topic in OFFSITE_ENTITIES | {"camhub/offsite/problem"}:
        watcher.wait_for(topic, "", after=mark)
    second.stop()
    retained = retained_now(broker, running)
    assert set(retained_now(broker, running, "homeassistant/#")) == door
    assert json.loads(retained["camhub/offsite"])["state"] == "off"
    assert "camhub/offsite/problem" not in retained

    # [offsite] back, discovery off: nothing of it is announced.
    mark = watcher.mark()
    third = running.publisher(settings(broker, discovery=False), bus, [DOOR], offsite=True)
    for topic in door:
        watcher.wait_for(topic, "", after=mark)
    watcher.wait_for("camhub/offsite/problem", "ON", after=mark)
    third.stop()
    announced = [m for m in watcher.messages[mark:] if m.topic in OFFSITE_ENTITIES and m.payload]
    assert announced == []
    assert retained_now(broker, running, "homeassistant/#") == {}


def test_a_renamed_camera_is_announced_again_under_the_same_ids(
    broker: Broker, running: Running
) -> None:
    bus = AlertBus()
    publisher = running.publisher(settings(broker), bus, [DOOR, YARD])
    watcher = running.subscriber(broker)
    watcher.wait_for(entity_topics("yard")["status"])
    mark = watcher.mark()

    renamed = CameraInfo("door", "Porch door")
    publisher.cameras_changed([renamed])  # the yard camera is gone as well
    for topic in entity_topics("yard").values():
        watcher.wait_for(topic, "", after=mark)  # its entities removed
    for topic in entity_topics("door").values():
        watcher.wait_for(topic, after=mark)
    retained = retained_now(broker, running, "homeassistant/#")
    assert set(retained) == set(entity_topics("door").values())
    assert_home_assistant_entities(retained, renamed)  # the new name, the same unique ids

    # Event records carry the new name too.
    bus.publish(EventChanged(Phase.START, "door", 3, time.time(), None, 0.1, (0, 0, 1, 1)))
    assert watcher.wait_for("camhub/events", after=mark).json()["camera_name"] == "Porch door"


def test_state_is_told_again_after_the_broker_restarts(
    broker: Broker, running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    bus = AlertBus()
    publisher = running.publisher(settings(broker), bus, [DOOR])
    watcher = running.subscriber(broker)
    mark = watcher.mark()
    bus.publish(MotionChanged("door", True, time.time()))
    watcher.wait_for("camhub/door/motion", "ON", after=mark)
    watcher.close()

    caplog.set_level(logging.INFO)
    broker.kill()  # it keeps nothing: no persistence
    deadline = time.monotonic() + 30
    while publisher.status.state is MqttState.CONNECTED:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # While the broker is away, the camera goes offline and the motion ends.
    bus.publish(CameraChanged("door", False, time.time()))
    bus.publish(MotionChanged("door", False, time.time()))
    bus.publish(EventChanged(Phase.END, "door", 1, 0.0, 1.0, 0.1, (0.0, 0.0, 1.0, 1.0)))
    broker.start()

    watcher = running.subscriber(broker)
    watcher.wait_for("camhub/availability", "online", timeout=30)
    watcher.wait_for("homeassistant/binary_sensor/camhub/door_motion/config")
    watcher.wait_for("camhub/door/status")
    watcher.wait_for("camhub/door/motion")  # told last: everything else is in by now
    retained = retained_now(broker, running)
    assert retained["camhub/door/motion"] == b"OFF"  # the newest state, not the last sent
    assert retained["camhub/door/status"] == b"offline"
    assert publisher.status.state is MqttState.CONNECTED
    assert "camhub/events" not in {m.topic for m in watcher.messages}
    # One line for the outage; the event record it could not send is counted, not lost
    # silently.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "lost the connection" in warnings[0], warnings
    assert "1 event message(s) were not sent while the broker was away" in caplog.text


def test_refused_credentials_give_one_clear_line_and_a_status(
    broker: Broker, running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-9d2c"
    publisher = running.publisher(settings(broker, password=wrong), AlertBus(), [DOOR])

    deadline = time.monotonic() + 30
    while broker.log.count("not authorised") < 3:  # refused three times: 0 s, 1 s, 3 s
        assert time.monotonic() < deadline, broker.log
        time.sleep(0.1)

    assert publisher.status.state is MqttState.REFUSED
    assert publisher.status.detail == "Not authorized"
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert "refused" in line and broker.url in line and "mqtt.password" in line
    assert all(r.exc_info is None for r in caplog.records)
    assert wrong not in caplog.text and PASSWORD not in caplog.text


def test_the_hubs_alerts_show_the_mqtt_status(broker: Broker) -> None:
    off = Alerts(MqttSettings())
    off.start([(DOOR, lambda: ONLINE)], None)
    off.stop()
    assert off.mqtt_status is None

    alerts = Alerts(settings(broker, password="wrong-pw-for-status"))
    alerts.start([(DOOR, lambda: ONLINE)], None)
    try:
        deadline = time.monotonic() + 30
        while (status := alerts.mqtt_status) is None or status.state is not MqttState.REFUSED:
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
    finally:
        alerts.stop()
    assert alerts.mqtt_status is not None and alerts.mqtt_status.state is MqttState.STOPPED


def test_tls_with_the_configured_ca(tls_broker: Broker, running: Running) -> None:
    bus = AlertBus()
    publisher = running.publisher(settings(tls_broker), bus, [DOOR])
    watcher = running.subscriber(tls_broker)
    watcher.wait_for("camhub/availability", "online")
    mark = watcher.mark()
    bus.publish(MotionChanged("door", True, time.time()))
    watcher.wait_for("camhub/door/motion", "ON", after=mark)
    assert publisher.status.state is MqttState.CONNECTED


def test_tls_refuses_a_broker_its_ca_did_not_sign(
    tls_broker: Broker, running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = running.publisher(settings(tls_broker, ca_file=None), AlertBus(), [DOOR])
    deadline = time.monotonic() + 30
    while publisher.status.state is not MqttState.UNREACHABLE:
        assert time.monotonic() < deadline, publisher.status
        time.sleep(0.05)
    assert "certificate verify failed" in publisher.status.detail
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot reach the broker" in warnings[0], warnings


def test_an_unreadable_ca_file_turns_mqtt_off_with_one_line(
    tls_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    publisher = MqttPublisher(
        settings(tls_broker, ca_file=missing), AlertBus(), [DOOR], version="1"
    )
    publisher.start(None)
    publisher.stop()
    assert publisher.status.state is MqttState.FAILED
    assert str(missing) in publisher.status.detail
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"MQTT is off: {publisher.status.detail}"
    ]
