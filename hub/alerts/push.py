"""Web Push to the owner's subscribed browsers (RFC 8030 delivery, RFC 8291 payload
encryption by pywebpush, RFC 8292 VAPID tokens): the push service relays ciphertext only.

The payload is the camera's name, the time and the page's path to the event: the
browser's service worker (static/sw.js) shows it as a notification that opens the page.
A push service that answers 404 or 410 says the browser dropped the subscription: it
is removed from the index and the access log says so.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import requests
from py_vapid import Vapid02
from pywebpush import WebPusher

from hub.alerts import vapid
from hub.alerts.delivery import (
    TIMEOUT,
    Alert,
    Delivery,
    DeliveryFailed,
    http_failure,
    network_failure,
)
from hub.audit import AuditKind, AuditLog
from hub.store import Index, PushSubscriptionRow

log = logging.getLogger(__name__)

TTL = 3600  # seconds a push service keeps an alert for a phone that is offline
GONE = (404, 410)


def push_service(endpoint: str) -> str:
    """The push service's host (fcm.googleapis.com, web.push.apple.com...): what the
    log and the access log name; the endpoint's path identifies the browser."""
    return urlsplit(endpoint).hostname or "?"


def payload_of(alert: Alert, *, test: bool) -> bytes:
    doc: dict[str, object] = {
        "camera": alert.camera_name,
        "time": round(alert.time, 3),
        "url": alert.path,
        "test": test,
    }
    if alert.offsite is not None:  # static/sw.js words the notification
        doc |= {"offsite": alert.offsite.value, "reason": alert.reason}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class WebPush:
    """Pushes to every subscription in the index, signing with the hub's VAPID key."""

    def __init__(self, key: Vapid02, contact: str, index: Index, audit: AuditLog) -> None:
        self._key = key
        self._contact = contact
        self._index = index
        self._audit = audit

    def deliveries(self, alert: Alert, *, test: bool = False) -> list[Delivery]:
        payload = payload_of(alert, test=test)
        return [
            Delivery("push", push_service(sub.endpoint), lambda s=sub: self._push(s, payload))
            for sub in self._index.push_subscriptions()
        ]

    def _push(self, sub: PushSubscriptionRow, payload: bytes) -> None:
        info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        headers = {
            "Authorization": vapid.authorization(self._key, sub.endpoint, self._contact),
            "Urgency": "high",
        }
        try:
            pusher = WebPusher(info)
            response = pusher.send(payload, headers=headers, ttl=TTL, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise network_failure(exc) from None
        except ValueError:  # keys the browser sent that do not decode
            raise DeliveryFailed("the subscription's keys are unusable", retry=False) from None
        assert not isinstance(response, str)
        response.close()
        if response.status_code in GONE:
            self._forget(sub, response.status_code)
            return
        if not 200 <= response.status_code < 300:
            raise http_failure(response.status_code)

    def _forget(self, sub: PushSubscriptionRow, status: int) -> None:
        if self._index.remove_push_subscription(sub.endpoint) is not None:
            service = push_service(sub.endpoint)
            log.info("Web Push: %s says subscription %d is gone; removed it", service, sub.id)
            self._audit.record(
                AuditKind.ALERT_TARGET_REMOVED,
                "system",
                {
                    "target": "push",
                    "subscription": sub.id,
                    "service": service,
                    "reason": f"the push service answered {status}",
                },
            )
