"""Home Assistant follows the cameras as the owner changes them on the page.

A real hub in this process (tests/hubkit.py) with its config in a file, two synthetic
porch cameras recording (the yard one disabled at start), a real Mosquitto broker and a
real subscriber. A camera enabled, disabled or renamed through the page's settings API
reaches the broker without a restart of the hub; each camera's health arrives with the
figures its stream really has (640x360 at 10 fps).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from hubkit import base, logged_in, make_hub, origin, running
from mosquitto import PASSWORD, USER, Broker, Received, Subscriber
from test_mqtt import PAGE, entity_topics

from hub.daemon import Hub

CAMERAS = """
[[camera]]
id = "porch"
name = "Porch"
url = "synthetic:porch"
record = "continuous"

[[camera]]
id = "yard"
name = "Yard"
url = "synthetic:porch"
record = "continuous"
enabled = false

[mqtt]
enabled = true
url = "{url}"
username = "{user}"
password = "{password}"
"""
WAIT = 30.0  # seconds: a camera's first measured window comes within a few


@pytest.fixture
def hub(tmp_path: Path, broker: Broker) -> Iterator[Hub]:
    tables = CAMERAS.format(url=broker.url, user=USER, password=PASSWORD)
    # The page's origin makes the device link, as the other MQTT tests expect it.
    web = f'origins = ["{PAGE.rstrip("/")}"]'
    with running(make_hub(tmp_path, tables, web=web, in_file=True)) as started:
        yield started


@pytest.fixture
def watcher(broker: Broker) -> Iterator[Subscriber]:
    with closing(Subscriber(broker)) as subscriber:
        yield subscriber


@pytest.fixture
async def owner(hub: Hub) -> AsyncIterator[aiohttp.ClientSession]:
    async with await logged_in(hub) as client:
        yield client


async def change(client: aiohttp.ClientSession, hub: Hub, camera: str, **body: object) -> None:
    url = f"{base(hub)}/api/settings/cameras/{camera}"
    async with client.put(url, json=body, headers=origin(hub)) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["restarted"]


def measured(msg: Received) -> bool:
    health = msg.json()
    return health["status"] == "online" and health["fps"] is not None


def assert_plausible(msg: Received, size: tuple[int, int] = (640, 360)) -> None:
    """A health state as a camera at 10 fps really sends (the synthetic porch: 640x360,
    encoded for recording), its newest picture at most a few seconds old on arrival."""
    health = msg.json()
    assert health["status"] == "online" and health["reason"] is None
    assert 7.0 <= health["fps"] <= 13.0, health
    assert 10 <= health["kbit_s"] <= 20000, health
    assert (health["width"], health["height"]) == size
    assert health["reconnects"] == 0
    assert msg.at - 5.0 <= health["last_frame"] <= msg.at + 1.0, health


async def test_a_camera_enabled_then_disabled_on_the_page_follows_in_home_assistant(
    hub: Hub, broker: Broker, watcher: Subscriber, owner: aiohttp.ClientSession
) -> None:
    yard = entity_topics("yard")
    # Disabled at start: announced all the same, and shown unavailable with its reason.
    for topic in yard.values():
        assert watcher.wait_for(topic, timeout=WAIT).payload
    watcher.wait_for("camhub/yard/status", "offline")
    watcher.wait_for("camhub/yard/motion", "OFF")
    health = watcher.wait_for("camhub/yard/health").json()
    assert health["status"] == "disabled" and health["fps"] is None

    mark = watcher.mark()
    await change(owner, hub, "yard", enabled=True)
    watcher.wait_for("camhub/yard/status", "online", after=mark, timeout=WAIT)
    assert_plausible(watcher.wait_until("camhub/yard/health", measured, after=mark, timeout=WAIT))

    mark = watcher.mark()
    await change(owner, hub, "yard", enabled=False)
    watcher.wait_for("camhub/yard/status", "offline", after=mark, timeout=WAIT)
    disabled = watcher.wait_until(
        "camhub/yard/health", lambda m: m.json()["status"] == "disabled", after=mark
    ).json()
    assert disabled["fps"] is None and disabled["kbit_s"] is None
    watcher.wait_for("camhub/yard/motion", "OFF")
    # Its entities stay, unavailable by their availability (the camera's status), so
    # that Home Assistant keeps what the owner set on them; nothing removed them.
    assert all(m.topic not in yard.values() for m in watcher.messages[mark:])
    with closing(Subscriber(broker, tuple(yard.values()))) as late:
        for key, topic in yard.items():
            kept = late.wait_for(topic)
            assert kept.retain and kept.json()["unique_id"] == f"camhub_camhub_yard_{key}"


async def test_a_camera_renamed_on_the_page_keeps_its_entities_under_the_new_name(
    hub: Hub, watcher: Subscriber, owner: aiohttp.ClientSession
) -> None:
    porch = entity_topics("porch")
    before = {key: watcher.wait_for(topic, timeout=WAIT).json() for key, topic in porch.items()}
    assert before["motion"]["name"] == "Porch motion"
    assert_plausible(watcher.wait_until("camhub/porch/health", measured, timeout=WAIT))

    mark = watcher.mark()
    await change(owner, hub, "porch", name="Front porch")
    after = {key: watcher.wait_for(topic, after=mark).json() for key, topic in porch.items()}
    assert after["motion"]["name"] == "Front porch motion"
    assert after["fps"]["name"] == "Front porch frame rate"
    for key in porch:
        assert after[key]["unique_id"] == before[key]["unique_id"]  # HA keeps its history
