"""The hub's alerting, as one piece for the daemon: the bus, the camera status watch
(and the off-site copy's state), the MQTT publisher when `[mqtt]` is enabled, and the
owner's alerts (Web Push, webhook) when given the index. Started after the cameras and
the page (so discovery and the webhook can link to it), stopped after the cameras (so
their last events are told)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from py_vapid import Vapid02

from hub import __version__
from hub.alerts import vapid
from hub.alerts.bus import AlertBus
from hub.alerts.delivery import Alert
from hub.alerts.happenings import OffsiteChanged
from hub.alerts.mqtt import MqttPublisher, MqttStatus
from hub.alerts.notify import AlertSender, Target, TargetStatus
from hub.alerts.offsite_notice import FAILING_FOR, OffsiteNotices
from hub.alerts.policy import AlertPolicy, Choices
from hub.alerts.push import WebPush
from hub.alerts.topics import CameraInfo
from hub.alerts.watch import StatusWatch
from hub.alerts.webhook import Webhook
from hub.audit import AuditKind, AuditLog
from hub.config import AlertSettings, MqttSettings, WebhookSettings
from hub.health import CameraHealth
from hub.offsite.state import OFF, OffsiteState
from hub.store import Index

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OwnerAlerts:
    """What the owner's alerts need: their settings, and where the page's choices, the
    subscriptions and the access log live."""

    settings: AlertSettings
    webhook: WebhookSettings
    index: Index
    audit: AuditLog
    vapid_path: Path  # the VAPID key pair, made on first use


class Alerts:
    """The bus from construction (the cameras' event sink needs it); its listeners
    from `start` to `stop`."""

    def __init__(
        self,
        mqtt: MqttSettings,
        owner: OwnerAlerts | None = None,
        *,
        offsite_failing_for: float = FAILING_FOR,
    ) -> None:
        """`offsite_failing_for`: seconds the off-site copy fails before the owner hears."""
        self.bus = AlertBus()
        self._mqtt_settings = mqtt
        self._owner = owner
        self._offsite_failing_for = offsite_failing_for
        self._watch: StatusWatch | None = None
        self._mqtt: MqttPublisher | None = None
        self._sender: AlertSender | None = None
        self._vapid: Vapid02 | None = None
        if owner is not None and owner.settings.push:
            self._vapid = _load_vapid(owner.vapid_path)

    def start(
        self,
        cameras: list[tuple[CameraInfo, Callable[[], CameraHealth]]],
        page_url: str | None,
        offsite: Callable[[], OffsiteState] | None = None,
    ) -> None:
        """`cameras`: each camera and how to read its health now; `offsite`: how to read
        the off-site copy's state, None when there is no `[offsite]` (told "off" once)."""
        if offsite is None:
            self.bus.publish(OffsiteChanged(OFF, time.time()))
        health = {info.id: look for info, look in cameras}
        self._watch = StatusWatch(self.bus, health, offsite=offsite)
        self._watch.start()
        if self._mqtt_settings.enabled:
            infos = [info for info, _ in cameras]
            self._mqtt = MqttPublisher(
                self._mqtt_settings,
                self.bus,
                infos,
                version=__version__,
                offsite=offsite is not None,
            )
            self._mqtt.start(page_url)
        if self._owner is not None:
            self._start_sender({info.id: info.name for info, _ in cameras}, page_url)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        if self._mqtt is not None:
            self._mqtt.stop()
        if self._sender is not None:
            self._sender.stop()

    def cameras_changed(self, cameras: list[CameraInfo]) -> None:
        """The cameras' names after a change from the page, for the alerts from now on;
        Home Assistant is told in the background (this never waits for the broker)."""
        if self._mqtt is not None:
            self._mqtt.cameras_changed(cameras)
        if self._sender is not None:
            self._sender.rename({camera.id: camera.name for camera in cameras})

    @property
    def mqtt_status(self) -> MqttStatus | None:
        """For the page: connected, refused, unreachable...; None when MQTT is off."""
        return self._mqtt.status if self._mqtt is not None else None

    @property
    def mqtt_broker(self) -> str | None:
        """The broker's scheme://host:port (never the credentials); None when MQTT is off."""
        return self._mqtt.where if self._mqtt is not None else None

    @property
    def settings(self) -> AlertSettings | None:
        return self._owner.settings if self._owner is not None else None

    @property
    def push_key(self) -> str | None:
        """The VAPID public key browsers subscribe with; None when push is off."""
        return vapid.application_server_key(self._vapid) if self._vapid is not None else None

    @property
    def webhook_where(self) -> str | None:
        """The webhook's scheme://host[:port] (never its path); None when it is off."""
        owner = self._owner
        return owner.webhook.where if owner is not None and owner.webhook.enabled else None

    def statuses(self) -> list[TargetStatus]:
        return self._sender.statuses() if self._sender is not None else []

    def test(self) -> bool:
        """Queue a test alert to every target; False when alerts are not running."""
        if self._sender is None:
            return False
        self._sender.test()
        return True

    def _start_sender(self, names: dict[str, str], page_url: str | None) -> None:
        owner = self._owner
        assert owner is not None
        targets: dict[str, Target] = {}
        if self._vapid is not None:
            targets["push"] = WebPush(
                self._vapid, owner.settings.push_contact, owner.index, owner.audit
            )
        if owner.webhook.enabled:
            targets["webhook"] = Webhook(owner.webhook, page_url)
        _record_webhook(owner)
        index = owner.index
        self._sender = AlertSender(
            self.bus,
            AlertPolicy(owner.settings, local_zone(owner.settings.time_zone)),
            lambda: Choices(index.muted_cameras(), index.snoozed_until()),
            targets,
            names,
            offsite=OffsiteNotices(self._offsite_failing_for),
            told=partial(_record_offsite_alert, owner.audit),
        )
        self._sender.start()
        if targets:
            log.info("alerts: sending to %s", ", ".join(_target_names(owner, targets)))


SYSTEM_ZONE = Path("/etc/localtime")


def local_zone(name: str) -> tzinfo:
    """The configured zone, or the system's ("" in the config) with its own DST rules:
    $TZ if it names a zone, else /etc/localtime. The offset of the moment would be wrong
    half the year; it is the last resort, with a warning."""
    if name:
        return ZoneInfo(name)
    tz = os.environ.get("TZ", "").removeprefix(":")
    if tz:
        with contextlib.suppress(ValueError, ZoneInfoNotFoundError):
            return ZoneInfo(tz)
    try:
        with SYSTEM_ZONE.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError) as exc:
        log.warning(
            "alerts: the system's time zone is unknown (%s): quiet hours use today's UTC "
            "offset; set alerts.time_zone",
            exc,
        )
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def _target_names(owner: OwnerAlerts, targets: dict[str, Target]) -> list[str]:
    named = {"push": "Web Push (browsers subscribed on the page)"}
    named["webhook"] = f"the webhook at {owner.webhook.where}"
    return [named[name] for name in targets]


def _load_vapid(path: Path) -> Vapid02 | None:
    try:
        return vapid.load_or_create(path)
    except (OSError, ValueError) as exc:  # unreadable, or not a P-256 PEM key
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        log.error("Web Push is off: cannot use the VAPID key %s: %s", path, reason)
        return None


def _record_offsite_alert(audit: AuditLog, alert: Alert, reached: list[str]) -> None:
    """An off-site notice is rare (two per outage at most), so each is on the record:
    what was told and which receivers (hosts) got it."""
    assert alert.offsite is not None
    detail = {"notice": alert.offsite.value, "reason": alert.reason, "reached": reached}
    try:
        audit.record(AuditKind.OFFSITE_ALERT, "system", detail)
    except sqlite3.Error as exc:  # the alert went out; a failing index must not end the thread
        log.warning("alerts: the off-site notice is not in the access log: %s", exc)


def _record_webhook(owner: OwnerAlerts) -> None:
    """The access log says when the webhook target changed (its host, and a fingerprint
    of its URL and secret, never either), as set in the config file."""
    hook = owner.webhook
    detail: dict[str, object] = {"enabled": hook.enabled}
    if hook.enabled:
        digest = hashlib.sha256(f"{hook.url}\n{hook.secret}".encode()).hexdigest()[:16]
        detail |= {"url": hook.where, "fingerprint": digest}
    last = owner.index.last_audit(AuditKind.WEBHOOK_SET.value)
    said = json.loads(last.detail) if last is not None else {"enabled": False}
    if said != detail:
        owner.audit.record(AuditKind.WEBHOOK_SET, "config file", detail)
