"""The generic webhook: each alert POSTed as JSON, signed so the receiver knows it is ours.

    X-Camhub-Timestamp: <Unix seconds, decimal>
    X-Camhub-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

The receiver recomputes the HMAC over the timestamp header's exact text, a ".", and the
raw body bytes, compares in constant time, and refuses a timestamp more than a few
minutes from its clock (a replayed request). Signing the timestamp with the body keeps
an old, validly signed body from being sent again under a new timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

from hub.alerts.delivery import TIMEOUT, Alert, Delivery, http_failure, network_failure
from hub.config import WebhookSettings

TIMESTAMP_HEADER = "X-Camhub-Timestamp"
SIGNATURE_HEADER = "X-Camhub-Signature"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(alert: Alert, page_url: str | None, *, test: bool) -> bytes:
    """Metadata only: the camera, the time, the event and a link to it on the page; or
    the off-site copy's notice, its reason and a link to the page."""
    url = page_url.rstrip("/") + alert.path if page_url else None
    if alert.offsite is not None and not test:
        doc: dict[str, object] = {
            "type": alert.offsite.value,
            "reason": alert.reason,
            "time": round(alert.time, 3),
            "url": url,
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    doc = {
        "type": "test" if test else "motion",
        "camera": alert.camera_id,
        "camera_name": alert.camera_name,
        "event_id": alert.event_id,
        "time": round(alert.time, 3),
        "url": url,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class Webhook:
    """POSTs alerts to one URL; the URL's path and the secret never reach the log."""

    def __init__(self, settings: WebhookSettings, page_url: str | None) -> None:
        self._settings = settings
        self._page_url = page_url

    @property
    def where(self) -> str:
        return self._settings.where

    def deliveries(self, alert: Alert, *, test: bool = False) -> list[Delivery]:
        body = body_of(alert, self._page_url, test=test)
        return [Delivery("webhook", self.where, lambda: self._post(body))]

    def _post(self, body: bytes) -> None:
        timestamp = str(int(time.time()))  # each attempt signed at its own time
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(self._settings.secret, timestamp, body),
        }
        try:
            response = requests.post(
                self._settings.url,
                data=body,
                headers=headers,
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise network_failure(exc) from None
        response.close()
        if not 200 <= response.status_code < 300:
            raise http_failure(response.status_code)
