"""Alerts leave the hub: a signed webhook and Web Push, to real receivers on 127.0.0.1.

The hub's alert service runs in this process on the real bus, with a real index and
access log; a motion event's start is published as the camera's sink publishes it. The
receivers check what came with code of their own (tests/alert_receivers.py): the HMAC
as the README specifies it, the VAPID token's ES256 signature, and the RFC 8291 payload
decrypted by the independent `http_ece` package.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from alert_receivers import BrowserKeys, Receiver, b64url, serve, vapid_claims, webhook_verifies
from cryptography.hazmat.primitives import serialization

from hub.alerts.bus import MAX_RECORDS, AlertBus
from hub.alerts.delivery import Alert
from hub.alerts.happenings import EventChanged, Phase
from hub.alerts.notify import ATTEMPTS, AlertSender
from hub.alerts.policy import AlertPolicy, Choices
from hub.alerts.service import Alerts, OwnerAlerts, local_zone
from hub.alerts.topics import CameraInfo
from hub.alerts.webhook import Webhook
from hub.audit import AuditLog
from hub.config import AlertSettings, MqttSettings, WebhookSettings
from hub.health import DISABLED
from hub.store import Index

SECRET = "hook-secret-4f1c9a2b7d"
TOKEN_PATH = "/hooks/porch-7f3a9c"  # as an ntfy topic: part of the secret
PAGE = "https://hub.home.arpa/"
CONTACT = "mailto:owner@example.org"


def started(
    tmp_path: Path,
    index: Index,
    *,
    webhook: WebhookSettings | None = None,
    settings: AlertSettings | None = None,
) -> Alerts:
    owner = OwnerAlerts(
        settings or AlertSettings(push_contact=CONTACT),
        webhook or WebhookSettings(),
        index,
        AuditLog(index),
        tmp_path / "vapid.pem",
    )
    alerts = Alerts(MqttSettings(), owner)
    online = replace(DISABLED, enabled=True, online=True)
    alerts.start([(CameraInfo("door", "Front door"), lambda: online)], PAGE)
    return alerts


def event_start(event_id: int, camera_id: str = "door", when: float | None = None) -> EventChanged:
    start = when if when is not None else time.time()
    return EventChanged(Phase.START, camera_id, event_id, start, None, 0.05, (0.1, 0.2, 0.3, 0.4))


def audit_of(index: Index, kind: str) -> list[tuple[str, dict[str, object]]]:
    rows = index.audit_records(0, 1000)
    return [(r.actor, json.loads(r.detail)) for r in rows if r.kind == kind]


# -- the webhook -----------------------------------------------------------------------------


def test_a_webhook_alert_is_signed_and_carries_metadata_only(
    tmp_path: Path, index: Index, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with serve() as receiver:
        hook = WebhookSettings(enabled=True, url=receiver.url + TOKEN_PATH, secret=SECRET)
        alerts = started(tmp_path, index, webhook=hook)
        try:
            when = time.time()
            alerts.bus.publish(event_start(7, when=when))
            (request,) = receiver.wait_for(1)
        finally:
            alerts.stop()
    assert request.path == TOKEN_PATH
    assert webhook_verifies(request, SECRET)
    assert not webhook_verifies(request, SECRET + "x")
    tampered = type(request)(request.path, request.headers, request.body.replace(b"7", b"8"))
    assert not webhook_verifies(tampered, SECRET)
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "type": "motion",
        "camera": "door",
        "camera_name": "Front door",
        "event_id": 7,
        "time": round(when, 3),
        "url": "https://hub.home.arpa/#event-7",
    }
    # The access log has the target (its host), the log neither the secret nor the path.
    ((who, detail),) = audit_of(index, "webhook target set")
    assert who == "config file" and detail["url"] == receiver.url and detail["enabled"]
    assert SECRET not in json.dumps(detail) and "porch-7f3a9c" not in json.dumps(detail)
    assert SECRET not in caplog.text and "porch-7f3a9c" not in caplog.text


def test_a_camera_renamed_on_the_page_is_alerted_under_its_new_name(
    tmp_path: Path, index: Index
) -> None:
    with serve() as receiver:
        hook = WebhookSettings(enabled=True, url=receiver.url + TOKEN_PATH, secret=SECRET)
        alerts = started(tmp_path, index, webhook=hook)
        try:
            alerts.cameras_changed([CameraInfo("door", "Porch door")])
            alerts.bus.publish(event_start(8))
            (request,) = receiver.wait_for(1)
        finally:
            alerts.stop()
    assert json.loads(request.body)["camera_name"] == "Porch door"


def test_the_webhook_target_is_logged_when_it_changes_only(tmp_path: Path, index: Index) -> None:
    hook = WebhookSettings(enabled=True, url="http://127.0.0.1:9/x", secret=SECRET)
    for settings in (hook, hook, WebhookSettings(), WebhookSettings(), hook):
        started(tmp_path, index, webhook=settings).stop()
    said = [detail["enabled"] for _, detail in audit_of(index, "webhook target set")]
    assert said == [True, False, True]


def sender(receiver_url: str, policy: AlertPolicy | None = None) -> tuple[AlertBus, AlertSender]:
    bus = AlertBus()
    hook = WebhookSettings(enabled=True, url=receiver_url + TOKEN_PATH, secret=SECRET)
    policy = policy or AlertPolicy(AlertSettings(cooldown_seconds=0), local_zone(""))
    send = AlertSender(
        bus, policy, Choices, {"webhook": Webhook(hook, PAGE)}, {"door": "Door"}, waits=(0.05,)
    )
    send.start()
    return bus, send


def error_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_failing_webhook_is_retried_a_bounded_number_of_times_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Four alerts meet a 503 (each tried ATTEMPTS times), one a 400 (refused: not tried
    again), then the receiver works: one error line, and one when it works again."""
    failing = 4 * ATTEMPTS
    with serve() as receiver:
        # Asked before the request is counted: len(got) is the number of earlier ones.
        receiver.status = lambda _path: (
            503 if len(receiver.got) < failing else 400 if len(receiver.got) == failing else 204
        )
        bus, send = sender(receiver.url)
        try:
            for n in range(6):
                bus.publish(event_start(n + 1))
            send.test()  # queued behind the six; delivered once they are done
            got = receiver.wait_for(failing + 3)
        finally:
            send.stop()  # waits for the thread: its statuses are final
    assert len(got) == failing + 3
    assert [json.loads(r.body)["event_id"] for r in got] == [
        *(n for n in range(1, 5) for _ in range(ATTEMPTS)),
        5,
        6,
        None,
    ]
    assert json.loads(got[-1].body)["type"] == "test"
    lines = [r.getMessage() for r in error_lines(caplog)]
    assert lines == [
        f"the webhook to {receiver.url} failed: HTTP 503; retrying",
        f"the webhook to {receiver.url} works again",
    ]
    assert all(r.exc_info is None for r in caplog.records)
    (status,) = send.statuses()
    assert (status.state, status.sent, status.failed, status.detail) == ("ok", 2, 5, "")


def test_a_webhook_that_is_not_there_fails_in_words_without_its_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve() as receiver:
        url = receiver.url
    bus, send = sender(url)  # nothing listens there now
    try:
        alert = Alert("door", "Door", 1, time.time())
        (delivery,) = Webhook(
            WebhookSettings(enabled=True, url=url + TOKEN_PATH, secret=SECRET), PAGE
        ).deliveries(alert)
        with pytest.raises(Exception) as caught:
            delivery.send()
        assert str(caught.value) == "cannot connect (Connection refused)"
        bus.publish(event_start(1))
        deadline = time.monotonic() + 30
        while send.statuses()[0].state != "failing":
            assert time.monotonic() < deadline, "the failure was never reported"
            time.sleep(0.05)
    finally:
        send.stop()
    assert send.statuses()[0].detail == f"{url}: cannot connect (Connection refused)"
    assert "porch-7f3a9c" not in caplog.text and SECRET not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


# -- Web Push ----------------------------------------------------------------------------------


@pytest.fixture
def push_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A push service on https://127.0.0.1, whose certificate the hub is told to trust
    (as it trusts the real ones through the system's CAs)."""
    tls = tmp_path / "push-tls"
    tls.mkdir()
    with serve(tls) as receiver:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls / "cert.pem"))
        receiver.status = lambda _path: 201
        yield receiver


def subscribe(index: Index, push_service: Receiver, path: str) -> BrowserKeys:
    keys = BrowserKeys.new()
    index.add_push_subscription(
        push_service.url + path, keys.p256dh, b64url(keys.auth), time.time(), "owner from test"
    )
    return keys


def test_web_push_is_rfc8291_ciphertext_with_a_valid_vapid_token(
    tmp_path: Path, index: Index, push_service: Receiver
) -> None:
    phone = subscribe(index, push_service, "/wpush/v2/phone-abc")
    laptop = subscribe(index, push_service, "/wpush/v2/laptop-def")
    alerts = started(tmp_path, index)
    try:
        when = time.time()
        alerts.bus.publish(event_start(42, when=when))
        requests = push_service.wait_for(2)
    finally:
        alerts.stop()
    by_path = {r.path: r for r in requests}
    for keys, path in ((phone, "/wpush/v2/phone-abc"), (laptop, "/wpush/v2/laptop-def")):
        request = by_path[path]
        assert request.headers["content-encoding"] == "aes128gcm"
        assert int(request.headers["ttl"]) > 0 and request.headers["urgency"] == "high"
        assert b"Front door" not in request.body  # the push service sees ciphertext only
        payload = json.loads(keys.decrypt(request))
        assert payload == {
            "camera": "Front door",
            "time": round(when, 3),
            "url": "/#event-42",
            "test": False,
        }
        claims, key = vapid_claims(request)
        assert claims["aud"] == push_service.url and claims["sub"] == CONTACT
        assert time.time() < float(claims["exp"]) <= time.time() + 24 * 3600  # type: ignore[arg-type]
        assert key == alerts.push_key
    # The key pair is the one kept in the data directory, readable by the hub's user only.
    pem = tmp_path / "vapid.pem"
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    kept = serialization.load_pem_private_key(pem.read_bytes(), None).public_key()
    raw = kept.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert b64url(raw) == alerts.push_key
    # A second start keeps the same key: subscriptions made with it stay valid.
    again = started(tmp_path, index)
    again.stop()
    assert again.push_key == alerts.push_key


def test_a_subscription_the_push_service_says_is_gone_is_removed(
    tmp_path: Path, index: Index, push_service: Receiver
) -> None:
    push_service.status = lambda path: {"/gone": 410, "/unknown": 404}.get(path, 201)
    for path in ("/gone", "/unknown", "/kept"):
        subscribe(index, push_service, path)
    alerts = started(tmp_path, index)
    try:
        alerts.bus.publish(event_start(5))
        push_service.wait_for(3)
        alerts.test()  # the next alert goes only where the subscription is left
        got = push_service.wait_for(4)
    finally:
        alerts.stop()
    assert [r.path for r in got[3:]] == ["/kept"]
    assert [s.endpoint for s in index.push_subscriptions()] == [push_service.url + "/kept"]
    removed = audit_of(index, "alert target removed")
    assert sorted(d["reason"] for _, d in removed) == [  # type: ignore[type-var]
        "the push service answered 404",
        "the push service answered 410",
    ]
    assert all(who == "system" and d["service"] == "127.0.0.1" for who, d in removed)
    assert all("/gone" not in json.dumps(d) for _, d in removed)
    (status,) = [s for s in alerts.statuses() if s.target == "push"]
    assert (status.state, status.sent) == ("ok", 4)  # gone is no failure


def test_push_off_in_the_config_makes_no_key(tmp_path: Path, index: Index) -> None:
    alerts = started(tmp_path, index, settings=AlertSettings(push=False))
    alerts.stop()
    assert alerts.push_key is None and not (tmp_path / "vapid.pem").exists()


def test_records_dropped_behind_a_slow_delivery_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While one delivery hangs, the bus keeps at most 64 event records for the alert
    thread; the ones dropped are said in one line, and the cameras never waited."""
    asked, gate = threading.Event(), threading.Event()

    def hang(_path: str) -> int:
        asked.set()
        return 200 if gate.wait(60) else 500

    with serve() as receiver:
        receiver.status = hang
        bus, send = sender(receiver.url)
        try:
            bus.publish(event_start(1))
            assert asked.wait(30)  # the thread now waits for the receiver's answer
            started = time.monotonic()
            for n in range(2, 2 + MAX_RECORDS + 6):
                bus.publish(event_start(n))
            publishing = time.monotonic() - started
            send.test()  # waiting tests go before the next batch from the bus
            gate.set()
            got = receiver.wait_for(1 + 1 + MAX_RECORDS)
        finally:
            gate.set()
            send.stop()
    ids = [json.loads(r.body)["event_id"] for r in got]
    assert ids == [1, None, *range(8, 8 + MAX_RECORDS)]  # the six oldest were dropped
    lines = [r.getMessage() for r in error_lines(caplog)]
    assert lines == [
        "alerts: 6 event record(s) dropped while deliveries were slow; "
        "those events were not alerted"
    ]
    print(f"{MAX_RECORDS + 6} publishes behind a hung delivery took {publishing * 1000:.1f} ms")


def test_a_damaged_vapid_key_turns_push_off_in_one_line(
    tmp_path: Path, index: Index, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a key: push is off with one error line; the webhook still works, and the file
    is left for the owner to look at (not replaced: subscriptions depend on it)."""
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with serve() as receiver:
        hook = WebhookSettings(enabled=True, url=receiver.url + TOKEN_PATH, secret=SECRET)
        alerts = started(tmp_path, index, webhook=hook)
        try:
            alerts.bus.publish(event_start(3))
            receiver.wait_for(1)
        finally:
            alerts.stop()
    assert alerts.push_key is None
    lines = [r.getMessage() for r in error_lines(caplog)]
    assert len(lines) == 1 and lines[0].startswith(
        f"Web Push is off: cannot use the VAPID key {pem}"
    )
    assert all(r.exc_info is None for r in caplog.records)
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\nbm90")
