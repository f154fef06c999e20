"""The owner hears when the off-site copy stops working (DESIGN.md §16, known gap 5).

The rules are pure and tested as such; then the alert thread with a real webhook
receiver and the owner's snooze; then a real hub in this process copying to the real
SeaweedFS store (tests/s3_server.py), publishing to a real Mosquitto broker and alerting
a real webhook receiver, while the store goes away and comes back.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from alert_receivers import Receiver, serve, webhook_verifies
from hubkit import make_hub, running, wait_until
from mosquitto import PASSWORD, USER, Broker, Subscriber
from s3_server import S3Server
from test_offsite import copy_for

from hub.alerts.bus import AlertBus
from hub.alerts.happenings import OffsiteChanged
from hub.alerts.notify import AlertSender
from hub.alerts.offsite_notice import OffsiteNotice, OffsiteNotices
from hub.alerts.policy import AlertPolicy, Choices, Verdict
from hub.alerts.service import local_zone
from hub.alerts.webhook import Webhook
from hub.config import AlertSettings, WebhookSettings
from hub.offsite.state import BEHIND_AFTER, CopyStatus, OffsiteHealth, OffsiteState, offsite_state
from hub.store import AuditRow

SECRET = "offsite-hook-secret-5521"
NOW = 1_800_000_000.0
REFUSED = "bucket cams at http://127.0.0.1:9: uploading x: Connection refused"


def status(
    working: bool | None = True, error: str | None = None, oldest: float | None = None
) -> CopyStatus:
    return CopyStatus(working, error, 0 if oldest is None else 3, oldest, NOW - 5)


def state(health: OffsiteHealth, reason: str | None = None) -> OffsiteState:
    return OffsiteState(health, reason, 3, 12.0, NOW - 5)


# -- the rules -----------------------------------------------------------------------------


def test_the_copys_state_in_one_word() -> None:
    assert offsite_state(status(), NOW).health is OffsiteHealth.OK
    assert offsite_state(status(None), NOW).health is OffsiteHealth.OK  # not tried yet
    fresh = offsite_state(status(oldest=NOW - 30), NOW)
    assert (fresh.health, fresh.pending, fresh.oldest_age) == (OffsiteHealth.OK, 3, 30.0)
    behind = offsite_state(status(oldest=NOW - BEHIND_AFTER - 60), NOW)
    assert behind.health is OffsiteHealth.BEHIND and "10 min" in (behind.reason or "")
    later = offsite_state(status(oldest=NOW - BEHIND_AFTER - 600), NOW)
    assert later.reason == behind.reason  # the same words while it holds: told once
    failing = offsite_state(status(False, REFUSED, oldest=NOW - 5000), NOW)
    assert (failing.health, failing.reason) == (OffsiteHealth.FAILING, REFUSED)
    assert failing.last_success == NOW - 5


def test_the_owner_is_told_once_after_a_while_and_once_when_it_works_again() -> None:
    notices = OffsiteNotices(failing_for=600)
    failing, ok = state(OffsiteHealth.FAILING, REFUSED), state(OffsiteHealth.OK)
    # A blip shorter than the bound says nothing, before or after.
    assert notices.due(failing, NOW) is None
    assert notices.due(failing, NOW + 599) is None
    assert notices.due(ok, NOW + 600) is None
    # A long failure: told once, however many samples (retries) follow.
    assert notices.due(failing, NOW + 1000) is None  # the clock starts again
    assert notices.due(failing, NOW + 1600) is OffsiteNotice.FAILING
    notices.told(OffsiteNotice.FAILING)
    assert [notices.due(failing, NOW + 1600 + 30 * i) for i in range(1, 50)] == [None] * 49
    # Behind is not failing: the copy works again.
    assert notices.due(state(OffsiteHealth.BEHIND, "slow"), NOW + 4000) is OffsiteNotice.WORKING
    notices.told(OffsiteNotice.WORKING)
    assert notices.due(ok, NOW + 4030) is None


def test_a_held_back_notice_stays_due_and_one_whose_cause_ended_is_dropped() -> None:
    notices = OffsiteNotices(failing_for=0)
    failing, ok = state(OffsiteHealth.FAILING, REFUSED), state(OffsiteHealth.OK)
    assert notices.due(failing, NOW) is OffsiteNotice.FAILING  # not marked told: held back
    assert notices.due(failing, NOW + 30) is OffsiteNotice.FAILING  # still due
    assert notices.due(ok, NOW + 60) is None  # it works again before the owner heard: nothing


def test_snooze_and_quiet_hours_hold_back_a_hub_notice_but_cooldown_does_not() -> None:
    quiet = AlertSettings(cooldown_seconds=3600, quiet_hours=((0, 1439),), time_zone="UTC")
    policy = AlertPolicy(quiet, local_zone("UTC"))
    assert policy.decide_hub(Choices(), NOW) is Verdict.QUIET_HOURS
    assert policy.decide_hub(Choices(snoozed_until=NOW + 1), NOW) is Verdict.SNOOZED
    awake = AlertPolicy(AlertSettings(cooldown_seconds=3600), local_zone("UTC"))
    assert [awake.decide_hub(Choices(), NOW + i) for i in range(3)] == [Verdict.SEND] * 3
    assert awake.decide_hub(Choices(muted=frozenset({"door"})), NOW) is Verdict.SEND


def test_a_store_back_while_nothing_waits_is_ok_at_once(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Working again is the first round whose requests all went through (the bucket
    check), not the next upload: an idle hub would otherwise say failing for hours."""
    s3.kill()
    try:
        index, copy, _, _ = copy_for(s3, bucket, tmp_path)
        copy.start()
        wait_until(lambda: copy.status().working is False, 30, "the failure seen")
        failing = offsite_state(copy.status(), time.time())
    finally:
        s3.start()
    try:
        wait_until(lambda: copy.status().working is True, 60, "the store seen back")
        back = offsite_state(copy.status(), time.time())
    finally:
        copy.stop()
        index.close()
    assert failing.health is OffsiteHealth.FAILING and failing.pending == 0
    assert "Connection refused" in (failing.reason or "")
    assert (back.health, back.reason, back.pending, back.last_success) == (
        OffsiteHealth.OK,
        None,
        0,
        None,  # nothing was ever uploaded
    )


# -- the alert thread, to a real webhook receiver ------------------------------------------


def offsite_alerts(receiver: Receiver, count: int) -> list[dict]:
    got = receiver.wait_for(count)
    assert all(webhook_verifies(r, SECRET) for r in got)
    return [json.loads(r.body) for r in got]


def test_a_snoozed_owner_hears_of_the_failure_once_the_snooze_ends() -> None:
    snoozed_until = [time.time() + 3600]
    asked = threading.Event()  # the thread read the owner's choices: it decided

    def choices() -> Choices:
        asked.set()
        return Choices(snoozed_until=snoozed_until[0])

    bus = AlertBus()
    with serve() as receiver:
        hook = WebhookSettings(enabled=True, url=receiver.url + "/hook", secret=SECRET)
        sender = AlertSender(
            bus,
            AlertPolicy(AlertSettings(), local_zone("UTC")),
            choices,
            {"webhook": Webhook(hook, "https://cams.home.arpa/")},
            {},
            offsite=OffsiteNotices(failing_for=0),
        )
        sender.start()
        try:
            bus.publish(OffsiteChanged(state(OffsiteHealth.FAILING, REFUSED), time.time()))
            assert asked.wait(10), "the alert thread never considered the failure"
            ended = snoozed_until[0] = time.time()  # the snooze ends; the next sample tells
            bus.publish(OffsiteChanged(state(OffsiteHealth.FAILING, REFUSED), time.time()))
            offsite_alerts(receiver, 1)  # (a state's slot keeps the newest: one at a time)
            bus.publish(OffsiteChanged(state(OffsiteHealth.OK), time.time()))
            first, second = offsite_alerts(receiver, 2)
        finally:
            sender.stop()
    assert first == {
        "type": "offsite_failing",
        "reason": REFUSED,
        "time": first["time"],
        "url": "https://cams.home.arpa/",
    }
    assert first["time"] >= round(ended, 3)  # decided after the snooze, not during it
    assert second["type"] == "offsite_working" and second["reason"] is None
    assert len(receiver.got) == 2


# -- a real hub, store, broker and receiver ------------------------------------------------

TABLES = """
[mqtt]
enabled = true
url = "{broker}"
username = "{user}"
password = "{password}"

[webhook]
enabled = true
url = "{hook}/camhub"
secret = "{secret}"

[[camera]]
id = "porch"
url = "synthetic:porch"
record = "continuous"
"""

OFFSITE = """
[offsite]
endpoint = "{endpoint}"
bucket = "{bucket}"
prefix = "alerts/"
what = "all"
access_key = "{access_key}"
secret_key = "{secret_key}"
"""

PROBLEM_CONFIG = "homeassistant/binary_sensor/camhub/offsite_problem/config"
PENDING_CONFIG = "homeassistant/sensor/camhub/offsite_pending/config"


def hub_tables(broker: Broker, hook: str, s3: S3Server | None = None, bucket: str = "") -> str:
    tables = TABLES.format(
        broker=broker.url, user=USER, password=PASSWORD, hook=hook, secret=SECRET
    )
    if s3 is not None:
        tables += OFFSITE.format(
            endpoint=s3.url,
            bucket=bucket,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
        )
    return tables


def offsite_says(health: str):  # type: ignore[no-untyped-def]
    return lambda msg: msg.payload and msg.json()["state"] == health


@pytest.mark.slow
def test_the_store_going_away_is_told_over_mqtt_and_to_the_owner_once_each_way(
    tmp_path: Path, s3: S3Server, bucket: str, broker: Broker
) -> None:
    watcher = Subscriber(broker)
    try:
        with serve() as receiver:
            tables = hub_tables(broker, receiver.url, s3, bucket)
            hub = make_hub(tmp_path, tables, storage="segment_seconds = 2", offsite_failing_for=0)
            # The camera's motion alerts are off; the off-site notices are not the camera's.
            hub.index.set_camera_alerts("porch", False)
            with running(hub):
                assert hub.offsite is not None
                copy = hub.offsite
                wait_until(lambda: copy.status().last_success is not None, 60, "the first copy")
                problem = json.loads(watcher.wait_for(PROBLEM_CONFIG, timeout=30).payload)
                pending = json.loads(watcher.wait_for(PENDING_CONFIG).payload)
                watcher.wait_until("camhub/offsite", offsite_says("ok"), what="ok")
                watcher.wait_for(problem["state_topic"], "OFF")

                mark = watcher.mark()
                s3.kill()
                try:
                    failing = watcher.wait_until(
                        "camhub/offsite", offsite_says("failing"), after=mark, timeout=60
                    ).json()
                    watcher.wait_for(problem["state_topic"], "ON", after=mark)
                    told = offsite_alerts(receiver, 1)
                    # Retries go on while it is down (a new segment every 2 s, backoff):
                    # the owner is not told again.
                    wait_until(lambda: copy.status().pending >= 3, 30, "segments queued")
                finally:
                    s3.start()
                mark = watcher.mark()
                watcher.wait_until("camhub/offsite", offsite_says("ok"), after=mark, timeout=60)
                watcher.wait_for(problem["state_topic"], "OFF", after=mark)
                told = offsite_alerts(receiver, 2)

                def records() -> list[AuditRow]:  # oldest first
                    return [r for r in hub.audit.recent()[::-1] if r.kind == "off-site alert sent"]

                wait_until(lambda: len(records()) == 2, 10, "both notices on the record")
                recorded = records()
    finally:
        watcher.close()

    assert failing["reason"] and "Connection refused" in failing["reason"]
    assert set(failing) == {"state", "reason", "pending", "oldest_pending_s", "last_success"}
    assert failing["last_success"] is not None
    assert [t["type"] for t in told] == ["offsite_failing", "offsite_working"]
    assert told[0]["reason"] == failing["reason"]
    assert len(receiver.got) == 2
    # No secret and no footage in what left the box.
    for sent in [r.body for r in receiver.got] + [m.payload for m in watcher.messages]:
        assert s3.secret_key.encode() not in sent and s3.access_key.encode() not in sent
        assert SECRET.encode() not in sent
    # Home Assistant: a problem sensor and a diagnostic backlog sensor, on the hub's device.
    assert problem["device_class"] == "problem" and problem["name"] == "Off-site copy problem"
    assert problem["payload_on"] == "ON" and problem["state_topic"] == "camhub/offsite/problem"
    assert pending["state_topic"] == "camhub/offsite"
    assert pending["entity_category"] == "diagnostic"
    for config in (problem, pending):
        assert config["device"]["identifiers"] == ["camhub_camhub"]
        assert config["availability"] == [
            {
                "topic": "camhub/availability",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]
    # On the record, once each way.
    assert [json.loads(r.detail)["notice"] for r in recorded] == [
        "offsite_failing",
        "offsite_working",
    ]
    assert all(json.loads(r.detail)["reached"] == [receiver.url] for r in recorded)


def test_a_hub_without_offsite_announces_no_offsite_entity(tmp_path: Path, broker: Broker) -> None:
    watcher = Subscriber(broker)
    try:
        with (
            serve() as receiver,
            running(make_hub(tmp_path, hub_tables(broker, receiver.url, None))),
        ):
            said = watcher.wait_until("camhub/offsite", offsite_says("off"), timeout=30).json()
            watcher.wait_for("homeassistant/sensor/camhub/porch_status/config")  # announced last
            topics = {m.topic for m in watcher.messages}
    finally:
        watcher.close()
    assert said == {
        "state": "off",
        "reason": None,
        "pending": 0,
        "oldest_pending_s": None,
        "last_success": None,
    }
    assert not [t for t in topics if t.startswith("homeassistant/") and "offsite" in t]
