"""The owner's alert settings: Web Push subscriptions, per-camera switches, the snooze,
and a test alert. Owner-only like every route (app.py denies by default); each change is
written to the access log, naming the push service but never a subscription's URL or keys.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from hub.alerts.push import push_service
from hub.alerts.service import Alerts
from hub.audit import AuditKind
from hub.web.api import actor
from hub.web.app import audit, context, json_error, json_response, read_json

MAX_SUBSCRIPTIONS = 20  # the owner's browsers and phones; more is a mistake or an attack
MAX_ENDPOINT = 2048
MAX_SNOOZE = 7 * 24 * 3600.0


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/alerts", alert_settings)
    r.add_post("/api/alerts/push", subscribe)
    r.add_post("/api/alerts/push/remove", unsubscribe)
    r.add_put("/api/alerts/cameras/{camera}", camera_alerts)
    r.add_post("/api/alerts/snooze", snooze)
    r.add_post("/api/alerts/test", test_alert)


def _alerts(request: web.Request) -> Alerts:
    alerts = context(request).alerts
    if alerts.settings is None:
        raise json_error(web.HTTPServiceUnavailable, "alerts are not running on this hub")
    return alerts


def _quiet(minutes: tuple[int, int]) -> str:
    (h0, m0), (h1, m1) = divmod(minutes[0], 60), divmod(minutes[1], 60)
    return f"{h0:02d}:{m0:02d}-{h1:02d}:{m1:02d}"


async def alert_settings(request: web.Request) -> web.Response:
    ctx = context(request)
    alerts = _alerts(request)
    settings = alerts.settings
    assert settings is not None
    index = ctx.index
    subscriptions, muted, snoozed = await asyncio.to_thread(
        lambda: (index.push_subscriptions(), index.muted_cameras(), index.snoozed_until())
    )
    now = time.time()
    return json_response(
        {
            "push": {
                "public_key": alerts.push_key,
                "subscriptions": [
                    {
                        "id": s.id,
                        "service": push_service(s.endpoint),
                        "created": s.created,
                        "client": s.client,
                    }
                    for s in subscriptions
                ],
            },
            "webhook": alerts.webhook_where,
            "mqtt": _mqtt(alerts),
            "targets": [
                {
                    "target": s.target,
                    "state": s.state,
                    "detail": s.detail,
                    "since": s.since,
                    "sent": s.sent,
                    "failed": s.failed,
                }
                for s in alerts.statuses()
            ],
            "cooldown_seconds": settings.cooldown_seconds,
            "quiet_hours": [_quiet(r) for r in settings.quiet_hours],
            "time_zone": settings.time_zone,
            "snoozed_until": snoozed if snoozed is not None and snoozed > now else None,
            "cameras": [
                {"id": cam.id, "name": cam.name, "enabled": cam.id not in muted}
                for cam in ctx.cameras.values()
            ],
        }
    )


def _mqtt(alerts: Alerts) -> dict[str, Any] | None:
    """The MQTT publisher's state for the page (connected, refused...), or None when off."""
    status = alerts.mqtt_status
    if status is None:
        return None
    return {
        "broker": alerts.mqtt_broker,
        "state": status.state.value,
        "detail": status.detail,
        "since": status.since,
    }


def _b64url(value: object, name: str, size: int) -> bytes:
    """A base64url key of exactly `size` bytes, padded or not, as browsers send them."""
    if not isinstance(value, str) or len(value) > 256:
        raise json_error(web.HTTPBadRequest, f"keys.{name}: a base64url string is required")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise json_error(web.HTTPBadRequest, f"keys.{name}: not base64url") from None
    if len(raw) != size:
        raise json_error(web.HTTPBadRequest, f"keys.{name}: must be {size} bytes, got {len(raw)}")
    return raw


def _subscription(body: dict[str, Any]) -> tuple[str, str, str]:
    """A PushSubscription as the browser's toJSON() gives it: endpoint and keys."""
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not 0 < len(endpoint) <= MAX_ENDPOINT:
        raise json_error(web.HTTPBadRequest, "endpoint: the push service URL is required")
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "endpoint: not a URL") from None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise json_error(web.HTTPBadRequest, "endpoint: must be an https:// URL")
    keys = body.get("keys")
    if not isinstance(keys, dict):
        raise json_error(web.HTTPBadRequest, "keys: an object with p256dh and auth is required")
    p256dh = _b64url(keys.get("p256dh"), "p256dh", 65)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "keys.p256dh: not a P-256 public key") from None
    _b64url(keys.get("auth"), "auth", 16)
    return endpoint, keys["p256dh"].rstrip("="), keys["auth"].rstrip("=")


async def subscribe(request: web.Request) -> web.Response:
    ctx = context(request)
    if _alerts(request).push_key is None:
        raise json_error(web.HTTPConflict, "Web Push is off on this hub (alerts.push)")
    endpoint, p256dh, auth = _subscription(await read_json(request))
    who = actor(request)

    def keep() -> tuple[int, bool] | None:
        known = {s.endpoint for s in ctx.index.push_subscriptions()}
        if endpoint not in known and len(known) >= MAX_SUBSCRIPTIONS:
            return None
        return ctx.index.add_push_subscription(endpoint, p256dh, auth, time.time(), who)

    kept = await asyncio.to_thread(keep)
    if kept is None:
        raise json_error(
            web.HTTPConflict,
            f"{MAX_SUBSCRIPTIONS} browsers already get alerts; remove one first",
        )
    subscription_id, new = kept
    if new:
        await audit(
            ctx,
            AuditKind.ALERT_TARGET_ADDED,
            who,
            target="push",
            subscription=subscription_id,
            service=push_service(endpoint),
        )
    return json_response({"id": subscription_id}, status=201 if new else 200)


async def unsubscribe(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_json(request)
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not 0 < len(endpoint) <= MAX_ENDPOINT:
        raise json_error(web.HTTPBadRequest, "endpoint: the push service URL is required")
    removed = await asyncio.to_thread(ctx.index.remove_push_subscription, endpoint)
    if removed is None:
        raise json_error(web.HTTPNotFound, "no such subscription")
    await audit(
        ctx,
        AuditKind.ALERT_TARGET_REMOVED,
        actor(request),
        target="push",
        subscription=removed,
        service=push_service(endpoint),
    )
    return web.Response(status=204)


async def camera_alerts(request: web.Request) -> web.Response:
    ctx = context(request)
    _alerts(request)
    camera_id = request.match_info["camera"]
    if camera_id not in ctx.cameras:
        raise json_error(web.HTTPNotFound, "no such camera")
    body = await read_json(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool) or set(body) != {"enabled"}:
        raise json_error(web.HTTPBadRequest, 'send {"enabled": true} or {"enabled": false}')
    await asyncio.to_thread(ctx.index.set_camera_alerts, camera_id, enabled)
    await audit(
        ctx,
        AuditKind.ALERTS_CHANGED,
        actor(request),
        camera=camera_id,
        alerts="on" if enabled else "off",
    )
    return json_response({"id": camera_id, "enabled": enabled})


async def snooze(request: web.Request) -> web.Response:
    ctx = context(request)
    _alerts(request)
    body = await read_json(request)
    seconds = body.get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_SNOOZE
        or set(body) != {"seconds"}
    ):
        raise json_error(
            web.HTTPBadRequest,
            f'send {{"seconds": N}} with N 0..{MAX_SNOOZE:.0f} (0 ends the snooze)',
        )
    until = time.time() + seconds if seconds else None
    await asyncio.to_thread(ctx.index.set_snooze, until)
    await audit(
        ctx, AuditKind.ALERTS_CHANGED, actor(request), snoozed_until=round(until) if until else None
    )
    return json_response({"snoozed_until": until})


async def test_alert(request: web.Request) -> web.Response:
    ctx = context(request)
    if not _alerts(request).test():
        raise json_error(web.HTTPServiceUnavailable, "alerts are not running on this hub")
    await audit(ctx, AuditKind.ALERT_TEST, actor(request))
    return json_response({"queued": True}, status=202)
