"""No alert storms, through the real hub: a Hub in this process whose file camera plays
the real person clip (decoded as fast as it goes: two motion events within a second),
its alerts going to a real webhook receiver on 127.0.0.1. And the page's alert routes,
over real HTTP against a running hub.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from alert_receivers import BrowserKeys, Receiver, b64url, serve, webhook_verifies
from hubkit import base, logged_in, make_hub, running
from mosquitto import USER, Broker

from hub.alerts.happenings import EventChanged, Phase
from hub.daemon import Hub
from hub.store import Index

SECRET = "storm-secret-0123456789"

TABLES = """
[alerts]
{alerts}

[webhook]
enabled = true
url = "{hook}/camhub"
secret = "{secret}"

[[camera]]
id = "door"
name = "Front door"
url = "{camera}"
record = "off"
"""


def alerts_hub(root: Path, camera: str, hook: str, alerts: str = "", extra: str = "") -> Hub:
    tables = TABLES.format(camera=camera, hook=hook, secret=SECRET, alerts=alerts)
    return make_hub(root, tables + extra)


def quiet_now() -> str:
    """Quiet hours (in UTC) from an hour ago to an hour from now."""
    minute = datetime.now(UTC).hour * 60 + datetime.now(UTC).minute

    def hhmm(m: int) -> str:
        return f"{m % 1440 // 60:02d}:{m % 60:02d}"

    return f'quiet_hours = ["{hhmm(minute - 60)}-{hhmm(minute + 60)}"]\ntime_zone = "UTC"'


SCENARIOS = {
    # name: (the [alerts] table, what the owner set on the page, motion alerts expected)
    "cooldown": ("", None, "one"),
    "no cooldown": ("cooldown_seconds = 0", None, "every"),
    "snoozed": ("cooldown_seconds = 0", "snooze", "none"),
    "camera off": ("cooldown_seconds = 0", "mute", "none"),
    "quiet hours": ("cooldown_seconds = 0\n" + quiet_now(), None, "none"),
}


def set_choice(index: Index, choice: str | None) -> None:
    """As the page's routes set them (tests below check that they do)."""
    if choice == "snooze":
        index.set_snooze(time.time() + 3600)
    elif choice == "mute":
        index.set_camera_alerts("door", False)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_alerts_per_burst_through_the_real_hub(
    scenario: str, tmp_path: Path, person_clip: Path
) -> None:
    alerts_table, choice, expected = SCENARIOS[scenario]
    with serve() as receiver:
        hub = alerts_hub(tmp_path, f"file://{person_clip}", receiver.url, alerts_table)
        set_choice(hub.index, choice)
        watching = hub.alerts.bus.subscribe()
        with running(hub):
            starts = event_starts(hub, watching)
            assert hub.alerts.test()  # queued after the events: it arrives once they are done
            got = wait_for_test(receiver)
    assert len(starts) >= 2, "the clip should give at least two motion events"
    motion = [json.loads(r.body) for r in got if json.loads(r.body)["type"] == "motion"]
    assert all(webhook_verifies(r, SECRET) for r in got)
    wanted = {"one": starts[:1], "every": starts, "none": []}[expected]
    assert [m["event_id"] for m in motion] == wanted
    assert all(m["camera_name"] == "Front door" for m in motion)


def event_starts(hub: Hub, watching) -> list[int]:  # type: ignore[no-untyped-def]
    """The ids of the events the camera started, once it has played the whole clip."""
    starts: list[int] = []
    deadline = time.monotonic() + 120
    while not hub.cameras[0].status[0].finished:
        assert time.monotonic() < deadline, "the file camera did not finish within 120 s"
        time.sleep(0.1)
    hub.cameras[0].stop()  # ends the open event; every start is on the bus now
    for happening in watching.drain():
        if isinstance(happening, EventChanged) and happening.phase is Phase.START:
            starts.append(happening.event_id)
    return starts


def wait_for_test(receiver: Receiver) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while not any(json.loads(r.body)["type"] == "test" for r in list(receiver.got)):
        assert time.monotonic() < deadline, "the test alert never came"
        time.sleep(0.05)
    return list(receiver.got)


# -- the page's routes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("alerts-hub")
    with serve() as receiver, running(alerts_hub(root, "synthetic:porch", receiver.url)) as hub:
        yield hub


def subscription(endpoint: str) -> dict[str, object]:
    keys = BrowserKeys.new()
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": keys.p256dh, "auth": b64url(keys.auth)},
    }


async def test_the_alert_routes_need_the_owner(hub: Hub) -> None:
    async with aiohttp.ClientSession() as anonymous:
        for method, path in (
            ("GET", "/api/alerts"),
            ("POST", "/api/alerts/push"),
            ("POST", "/api/alerts/push/remove"),
            ("PUT", "/api/alerts/cameras/door"),
            ("POST", "/api/alerts/snooze"),
            ("POST", "/api/alerts/test"),
        ):
            async with anonymous.request(method, base(hub) + path, json={}) as resp:
                assert resp.status == 401, (method, path)


async def test_subscribe_toggle_snooze_and_unsubscribe(hub: Hub) -> None:
    client = await logged_in(hub)
    here = {"Origin": base(hub)}
    endpoint = "https://fcm.googleapis.com/fcm/send/device-token-abc123"
    first_seq = hub.index.audit_records(0, 10000)[-1].seq
    try:
        async with client.get(f"{base(hub)}/api/alerts") as resp:
            settings = await resp.json()
        assert settings["push"]["public_key"] == hub.alerts.push_key
        assert settings["cameras"] == [{"id": "door", "name": "Front door", "enabled": True}]
        assert settings["webhook"].startswith("http://127.0.0.1:")
        assert "/camhub" not in json.dumps(settings) and SECRET not in json.dumps(settings)
        assert settings["cooldown_seconds"] == 60 and settings["snoozed_until"] is None
        assert settings["mqtt"] is None  # [mqtt] is off

        body = subscription(endpoint)
        for status in (201, 200):  # the same browser again: kept once
            async with client.post(f"{base(hub)}/api/alerts/push", json=body, headers=here) as r:
                assert r.status == status, await r.text()
        assert len(hub.index.push_subscriptions()) == 1
        async with client.post(
            f"{base(hub)}/api/alerts/push", json=body, headers={"Origin": "https://evil.example"}
        ) as resp:
            assert resp.status == 403
        bad = [
            {**body, "endpoint": "http://push.example/x"},
            {**body, "keys": {"p256dh": b64url(b"\x04" + bytes(64)), "auth": b64url(bytes(16))}},
            {**body, "keys": {"p256dh": body["keys"]["p256dh"], "auth": b64url(bytes(15))}},  # type: ignore[index]
            {**body, "keys": "none"},
            {"endpoint": endpoint},
        ]
        for wrong in bad:
            async with client.post(f"{base(hub)}/api/alerts/push", json=wrong, headers=here) as r:
                assert r.status == 400, wrong
        async with client.get(f"{base(hub)}/api/alerts") as resp:
            (listed,) = (await resp.json())["push"]["subscriptions"]
        assert listed["service"] == "fcm.googleapis.com" and "device-token" not in str(listed)

        url = f"{base(hub)}/api/alerts/cameras/door"
        async with client.put(url, json={"enabled": False}, headers=here) as resp:
            assert resp.status == 200
        assert hub.index.muted_cameras() == {"door"}
        for wrong_body in ({"enabled": "no"}, {"enabled": False, "x": 1}, {}):
            async with client.put(url, json=wrong_body, headers=here) as resp:
                assert resp.status == 400
        async with client.put(
            f"{base(hub)}/api/alerts/cameras/nope", json={"enabled": True}, headers=here
        ) as resp:
            assert resp.status == 404
        async with client.put(url, json={"enabled": True}, headers=here) as resp:
            assert resp.status == 200
        assert hub.index.muted_cameras() == set()

        snooze = f"{base(hub)}/api/alerts/snooze"
        async with client.post(snooze, json={"seconds": 3600}, headers=here) as resp:
            until = (await resp.json())["snoozed_until"]
        assert until == hub.index.snoozed_until() and 3500 < until - time.time() <= 3600
        for wrong_body in ({"seconds": -1}, {"seconds": "1h"}, {"seconds": True}, {}):
            async with client.post(snooze, json=wrong_body, headers=here) as resp:
                assert resp.status == 400
        async with client.post(snooze, json={"seconds": 0}, headers=here) as resp:
            assert (await resp.json())["snoozed_until"] is None
        assert hub.index.snoozed_until() is None

        remove = f"{base(hub)}/api/alerts/push/remove"
        for status in (204, 404):
            async with client.post(remove, json={"endpoint": endpoint}, headers=here) as resp:
                assert resp.status == status
        # After the removal: a test alert must not go looking for fcm.googleapis.com.
        async with client.post(f"{base(hub)}/api/alerts/test", headers=here) as resp:
            assert resp.status == 202
    finally:
        await client.close()
    records = hub.index.audit_records(first_seq, 10000)
    kinds = [(r.kind, json.loads(r.detail)) for r in records if "alert" in r.kind]
    assert [k for k, _ in kinds] == [
        "alert target added",
        "alert settings changed",
        "alert settings changed",
        "alert settings changed",
        "alert settings changed",
        "alert target removed",
        "test alert sent",
    ]
    assert kinds[0][1] == {"target": "push", "subscription": listed["id"],
                           "service": "fcm.googleapis.com"}  # fmt: skip
    assert kinds[1][1] == {"camera": "door", "alerts": "off"}
    assert all(r.actor.startswith("owner from 127.0.0.1") for r in records if "alert" in r.kind)
    assert "device-token" not in json.dumps([d for _, d in kinds])


async def test_the_panel_shows_a_broker_that_refuses_the_password(tmp_path: Path) -> None:
    """A real Mosquitto that refuses the hub's password: the panel's data says
    "refused" with the broker's reason, and never the password."""
    wrong = "wrong-mqtt-pw-7731"
    broker = Broker(tmp_path / "broker")
    broker.start()
    mqtt = (
        f'[mqtt]\nenabled = true\nurl = "{broker.url}"\nusername = "{USER}"\npassword = "{wrong}"\n'
    )
    try:
        with (
            serve() as receiver,
            running(alerts_hub(tmp_path, "synthetic:porch", receiver.url, extra=mqtt)) as hub,
        ):
            client = await logged_in(hub)
            try:
                deadline = time.monotonic() + 30
                while True:
                    async with client.get(f"{base(hub)}/api/alerts") as resp:
                        text = await resp.text()
                    shown = json.loads(text)["mqtt"]
                    if shown["state"] == "refused":
                        break
                    assert time.monotonic() < deadline, shown
                    await asyncio.sleep(0.1)
            finally:
                await client.close()
    finally:
        broker.kill()
    assert shown["broker"] == broker.url and "authori" in shown["detail"].lower()
    assert wrong not in text
