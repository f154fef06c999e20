"""`camhub run` against a real Mosquitto broker: what Home Assistant would see.

The hub runs as a subprocess with a real RTSP camera (tests/rtsp_camera.py serving the
person clip, whose first visitor walks in 6 s after the stream starts); a real MQTT
client subscribes. `kill -9` of the hub must leave the broker saying it is offline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mosquitto import PASSWORD, USER, Broker, Subscriber
from rtsp_camera import serving
from test_daemon import HubProcess, Site, camhub, new_site, read_index
from test_mqtt_settings import assert_plausible, measured

DISCOVERY = "homeassistant/binary_sensor/camhub/door_motion/config"


@pytest.fixture
def subscribers() -> Iterator[Callable[[Broker], Subscriber]]:
    made: list[Subscriber] = []

    def make(broker: Broker) -> Subscriber:
        made.append(Subscriber(broker))
        return made[-1]

    try:
        yield make
    finally:
        for subscriber in made:
            subscriber.close()


def mqtt_site(root: Path, camera_url: str, broker: Broker, *, password: str = PASSWORD) -> Site:
    site = new_site(
        root,
        camera_url,
        record="motion",
        segment_seconds=3,
        camera_extra='name = "Front door"\n[camera.motion]\nquiet_seconds = 1.0\n',
    )
    with site.config.open("a") as config:
        config.write(
            f'\n[mqtt]\nenabled = true\nurl = "{broker.url}"\n'
            f'username = "{USER}"\npassword = "{password}"\n'
        )
    return site


@pytest.mark.slow
def test_motion_reaches_the_broker_which_restarts_and_kill_9_leaves_the_last_will(
    tmp_path: Path,
    person_clip: Path,
    broker: Broker,
    hubs: Callable[[Path], HubProcess],
    subscribers: Callable[[Broker], Subscriber],
) -> None:
    with serving(person_clip) as camera:
        site = mqtt_site(tmp_path / "site", camera.url, broker)
        watcher = subscribers(broker)
        hub = hubs(site.config)

        watcher.wait_for("camhub/availability", "online", timeout=30)
        watcher.wait_for("camhub/door/status", "online", timeout=30)
        watcher.wait_for("camhub/door/motion", "OFF")
        watcher.wait_for("camhub/door/motion", "ON", timeout=45)
        health = watcher.wait_until("camhub/door/health", measured)
        assert_plausible(health, (768, 432))  # the person clip over RTSP
        started = json.loads(watcher.wait_for("camhub/events").payload)
        config = json.loads(watcher.wait_for(DISCOVERY).payload)

        # The broker restarts with nothing retained: the hub tells it everything again.
        broker.kill()
        broker.start()
        after = subscribers(broker)
        assert after.wait_for("camhub/availability", timeout=30).payload == b"online"
        after.wait_for("camhub/door/status", "online")
        after.wait_for("camhub/door/motion")
        after.wait_for(DISCOVERY)

        hub.kill9()
        after.wait_for("camhub/availability", "offline", timeout=30)

    assert started["type"] == "start" and started["camera"] == "door"
    assert started["camera_name"] == "Front door" and started["end"] is None
    _, events = read_index(site)
    assert started["event_id"] in {e.id for e in events}
    assert config["state_topic"] == "camhub/door/motion" and config["device_class"] == "motion"
    assert "configuration_url" not in config["device"]  # a page on loopback only
    # A subscriber arriving now is told by the broker (retained) that the hub is gone.
    late = subscribers(broker)
    assert late.wait_for("camhub/availability").payload == b"offline"
    assert late.wait_for("camhub/availability").retain
    assert "Traceback" not in hub.log and PASSWORD not in hub.log


def test_run_with_refused_credentials_logs_one_line_and_keeps_recording(
    tmp_path: Path, broker: Broker, hubs: Callable[[Path], HubProcess]
) -> None:
    wrong = "wrong-broker-pw-4411"
    # A camera nobody serves: the hub runs on, retrying it, as it does the broker.
    site = mqtt_site(tmp_path / "site", "rtsp://127.0.0.1:9/cam", broker, password=wrong)
    hub = hubs(site.config)

    deadline = time.monotonic() + 30
    while broker.log.count("not authorised") < 3:
        assert time.monotonic() < deadline and hub.running, hub.log
        time.sleep(0.1)

    assert hub.terminate() == 0, hub.log
    log = hub.log
    refused = [line for line in log.splitlines() if "refused the connection" in line]
    assert len(refused) == 1, log
    assert "Not authorized" in refused[0] and "mqtt.password" in refused[0]
    assert "Traceback" not in log and wrong not in log
    assert "stopped cleanly" in log


def test_check_config_names_the_bad_mqtt_keys(tmp_path: Path) -> None:
    config = tmp_path / "camhub.toml"
    config.write_text(
        '[mqtt]\nenabled = true\nurl = "mqtt://broker.lan:99999"\n'
        'password = "hunter2-secret"\ntopic_prefix = "home/#"\ndiscovery = "yes"\n'
    )
    done = camhub("check-config", config, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[1:] == [
        "mqtt.url: has a bad port (must be 1..65535)",
        'mqtt.topic_prefix: must not contain the MQTT wildcards "+" or "#", got "home/#"',
        'mqtt.discovery: must be true or false, got "yes"',
        "mqtt.password: is set but mqtt.username is not",
    ]
    assert "hunter2" not in done.stdout + done.stderr
