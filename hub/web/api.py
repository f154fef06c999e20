"""The owner's API: login, cameras and live view, events, clips, shares, access log.

Every route here but login needs the owner's session (app.py denies by default).
Footage is decrypted with the private key that the session unlocked, in memory, and
every look at it is written to the access log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from hub import vault
from hub.archive import FootageUnavailable
from hub.audit import AuditKind
from hub.clip import ClipError, ClipTooLarge
from hub.shares import USED_UP_GRACE, ShareError, ShareRequest, create_share
from hub.store import EventRow, SegmentRow, ShareEnd, ShareRow
from hub.web.app import (
    CONTEXT,
    SESSION_COOKIE,
    WebContext,
    audit,
    audit_refusal,
    context,
    json_error,
    json_response,
    not_use,
    owner,
    public,
    read_json,
    set_security_headers,
)
from hub.web.auth import DEVICE_COOKIE, DEVICE_COOKIE_SECONDS, client_key
from hub.web.clips import (
    OWNER,
    ClipBusy,
    attachment,
    clip_of,
    is_first_request,
    is_owner_clip,
    ranged,
)
from hub.web.events_stream import PAGE_STREAMS, PageStreams, StreamsFull
from hub.web.hdlive import StreamFeed, websocket_response
from hub.web.live import mjpeg_response

log = logging.getLogger(__name__)

MAX_PAGE = 500
MAX_CLIP_SPAN = 6 * 3600.0
MAX_ROW_ID = 2**63 - 1  # SQLite's largest INTEGER; a bigger one cannot even be looked up


def add_routes(app: web.Application) -> None:
    ctx = app[CONTEXT]
    app[PAGE_STREAMS] = PageStreams(
        ctx.alerts.bus,
        ctx.cameras,
        lambda: _hub_status(ctx),
        lambda event_id: _event_doc(ctx, event_id),
    )
    r = app.router
    r.add_post("/api/login", login)
    r.add_post("/api/logout", logout)
    r.add_get("/api/session", session_info)
    r.add_get("/api/stream", stream, allow_head=False)
    r.add_get("/api/cameras", cameras)
    # Footage routes answer GET only: a HEAD would decrypt (and log a look) for nothing.
    r.add_get("/api/cameras/{camera}/live.mjpeg", live, allow_head=False)
    r.add_get("/api/cameras/{camera}/live.ws", live_ws, allow_head=False)
    r.add_get("/api/cameras/{camera}/snapshot.jpg", live_snapshot, allow_head=False)
    r.add_get("/api/cameras/{camera}/clip.mp4", range_clip, allow_head=False)
    r.add_get("/api/events", events)
    r.add_get("/api/events/{event}", event)
    r.add_get("/api/events/{event}/snapshot.jpg", event_snapshot, allow_head=False)
    r.add_get("/api/events/{event}/clip.mp4", event_clip, allow_head=False)
    r.add_get("/api/shares", shares)
    r.add_post("/api/shares", new_share)
    r.add_delete("/api/shares/{share}", revoke_share)
    r.add_get("/api/audit", audit_records)
    r.add_get("/api/audit/verify", audit_verify)


def actor(request: web.Request) -> str:
    return f"owner from {request.remote or 'unknown'}"


# -- login ---------------------------------------------------------------------------


@public
async def login(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_json(request)
    password = body.get("password")
    if not isinstance(password, str) or not password or len(password) > 1024:
        raise json_error(web.HTTPBadRequest, "password: a non-empty string is required")
    client = client_key(request.remote)
    device = request.cookies.get(DEVICE_COOKIE)
    attempt = ctx.throttle.attempt(client, device)
    # One Argon2 run at a time (64 MiB each); the throttle is asked inside the slot, so
    # a burst of parallel guesses is counted one by one, not all let through at once.
    async with ctx.login_slot:
        wait = ctx.throttle.wait_time(attempt, time.time())
        if wait > 0:
            await audit_refusal(
                ctx,
                AuditKind.LOGIN_THROTTLED,
                client,
                f"client {client}",
                retry_after=math.ceil(wait),
            )
            raise json_error(
                web.HTTPTooManyRequests,
                f"too many failed logins; try again in {math.ceil(wait)} s",
                **{"Retry-After": str(math.ceil(wait))},
            )
        try:
            private_key = await asyncio.to_thread(_unlock, ctx, password)
        except vault.WrongPassword:
            private_key = None
            ctx.throttle.failed(attempt, time.time())
        except (OSError, vault.VaultError) as exc:  # keys.json damaged since the start
            log.error("login refused: %s: %s", ctx.keys_path, getattr(exc, "strerror", exc))
            raise json_error(
                web.HTTPServiceUnavailable, "the owner key file cannot be used; see the hub's log"
            ) from None
    if private_key is None:
        await audit(ctx, AuditKind.LOGIN_FAILED, f"client {client}")
        raise json_error(web.HTTPUnauthorized, "wrong password")
    device = ctx.throttle.succeeded(attempt, client, device)
    token = ctx.sessions.create(private_key, client, time.time())
    await audit(ctx, AuditKind.LOGIN_OK, actor(request))
    await audit(ctx, AuditKind.VAULT_UNLOCKED, actor(request), for_minutes=_idle_minutes(ctx))
    await asyncio.to_thread(ctx.audit.seal, private_key)
    response = json_response({"ok": True, "idle_minutes": _idle_minutes(ctx)})
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=ctx.secure_cookies,
        path="/",
    )
    # The throttle's "known device": sent only to the login route, kept for a year.
    response.set_cookie(
        DEVICE_COOKIE,
        device,
        httponly=True,
        samesite="Strict",
        secure=ctx.secure_cookies,
        path="/api/login",
        max_age=DEVICE_COOKIE_SECONDS,
    )
    return response


def _unlock(ctx: WebContext, password: str) -> Any:
    return vault.unlock(vault.KeyFile.from_json(ctx.keys_path.read_bytes()), password)


def _idle_minutes(ctx: WebContext) -> int:
    return round(ctx.sessions.idle_seconds / 60)


async def logout(request: web.Request) -> web.Response:
    ctx = context(request)
    session = owner(request)
    ctx.sessions.end(request.cookies.get(SESSION_COOKIE))
    if not len(ctx.sessions):
        ctx.clips.drop(is_owner_clip)
    await audit(ctx, AuditKind.LOGOUT, actor(request))
    await asyncio.to_thread(ctx.audit.seal, session.private_key)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def session_info(request: web.Request) -> web.Response:
    session = owner(request)
    ctx = context(request)
    return json_response(
        {
            "ok": True,
            "since": session.created,
            "idle_minutes": _idle_minutes(ctx),
            "cameras": len(ctx.cameras),
            "index_problem": ctx.index.health.problem,
        }
    )


# -- the page's event stream ---------------------------------------------------------


@not_use
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events for one open page (hub/web/events_stream.py): opened by the
    page on its own, so it does not reset the session's idle clock, and it ends with
    the session."""
    ctx = context(request)
    token = request.cookies.get(SESSION_COOKIE) or ""
    try:
        return await request.app[PAGE_STREAMS].serve(
            request,
            token,
            still_allowed=lambda: ctx.sessions.alive(token, time.time()),
            set_headers=set_security_headers,
        )
    except StreamsFull as exc:
        raise json_error(web.HTTPTooManyRequests, str(exc), **{"Retry-After": "10"}) from None


def _hub_status(ctx: WebContext) -> dict[str, Any]:
    mqtt = ctx.alerts.mqtt_status
    return {
        "mqtt": None
        if mqtt is None
        else {"state": mqtt.state.value, "detail": mqtt.detail, "since": mqtt.since},
        "index_problem": ctx.index.health.problem,
    }


def _event_doc(ctx: WebContext, event_id: int) -> dict[str, Any] | None:
    """The event as listed, or None if it is gone (or the index fails: the page is told
    that through the hub's status, and the event is in the list once it works again)."""
    try:
        row = ctx.index.get_event(event_id)
    except sqlite3.Error:
        return None
    return None if row is None else event_json(ctx, row, time.time())


# -- cameras and live view -----------------------------------------------------------


def _camera(request: web.Request) -> Any:
    found = context(request).cameras.get(request.match_info["camera"])
    if found is None:
        raise json_error(web.HTTPNotFound, "no such camera")
    return found


async def cameras(request: web.Request) -> web.Response:
    ctx = context(request)
    return json_response(
        [
            {
                "id": cam.id,
                "name": cam.name,
                "record": cam.record,
                "status": cam.status(),
                "viewers": cam.live.viewers + sum(f.viewers for f in cam.streams.values()),
                "live_url": f"/api/cameras/{cam.id}/live.mjpeg",
                "streams": _streams_json(cam.id, cam.streams),
                "snapshot_url": f"/api/cameras/{cam.id}/snapshot.jpg",
            }
            for cam in ctx.cameras.values()
        ]
    )


STREAM_LABELS = {"main": "HD", "sub": "SD"}


def _streams_json(camera_id: str, feeds: dict[str, StreamFeed]) -> list[dict[str, Any]]:
    """The streams a browser can play as they are (H.264, connected): main, then sub."""
    found = []
    for name, feed in feeds.items():
        info = feed.info
        if info is not None:
            found.append(
                {
                    "name": name,
                    "label": STREAM_LABELS[name],
                    "width": info.width,
                    "height": info.height,
                    "fps": info.fps,
                    "url": f"/api/cameras/{camera_id}/live.ws?stream={name}",
                }
            )
    return found


async def live(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    cam = _camera(request)
    who = actor(request)
    await audit(ctx, AuditKind.LIVE_START, who, camera=cam.id, stream="MJPEG")

    token = request.cookies.get(SESSION_COOKIE)

    async def ended(seconds: float) -> None:
        await audit(
            ctx, AuditKind.LIVE_STOP, who, camera=cam.id, stream="MJPEG", seconds=round(seconds, 1)
        )

    return await mjpeg_response(
        request,
        cam.live,
        on_end=ended,
        set_headers=set_security_headers,
        still_allowed=lambda: ctx.sessions.alive(token, time.time()),
    )


async def live_ws(request: web.Request) -> web.StreamResponse:
    """The camera's own H.264 as fMP4 over a WebSocket (hub/web/hdlive.py); `stream`
    is main (HD, the default) or sub (SD, the detect substream)."""
    ctx = context(request)
    cam = _camera(request)
    name = request.query.get("stream", "main")
    feed = cam.streams.get(name)
    if name not in STREAM_LABELS:
        raise json_error(web.HTTPBadRequest, "stream: must be main or sub")
    if feed is None or feed.info is None:
        raise json_error(
            web.HTTPNotFound, f"this camera has no {name} stream to play as it is; use live.mjpeg"
        )
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise json_error(web.HTTPBadRequest, "open this route as a WebSocket")
    who, label = actor(request), STREAM_LABELS[name]
    await audit(ctx, AuditKind.LIVE_START, who, camera=cam.id, stream=label)

    token = request.cookies.get(SESSION_COOKIE)

    async def ended(seconds: float) -> None:
        await audit(
            ctx, AuditKind.LIVE_STOP, who, camera=cam.id, stream=label, seconds=round(seconds, 1)
        )

    return await websocket_response(
        request,
        feed,
        on_end=ended,
        set_headers=set_security_headers,
        still_allowed=lambda: ctx.sessions.alive(token, time.time()),
    )


async def live_snapshot(request: web.Request) -> web.Response:
    ctx = context(request)
    cam = _camera(request)
    still = await cam.live.snapshot_async()
    if still is None:
        raise json_error(web.HTTPServiceUnavailable, "the camera has not sent a picture yet")
    await audit(ctx, AuditKind.SNAPSHOT, actor(request), camera=cam.id, live=True)
    return web.Response(body=still.jpeg, content_type="image/jpeg")


# -- events --------------------------------------------------------------------------


def event_json(ctx: WebContext, row: EventRow, now: float) -> dict[str, Any]:
    """An event, with the span of its clip: `start`/`end` are the motion, `clip_start`/
    `clip_end` what its clip really plays (the whole segments that cover the camera's
    pre-roll, the motion and the post-roll; null when no footage is left), so every
    page shows the same times; `motion_offset` is where motion starts in the clip.
    One indexed lookup per event."""
    span = ctx.index.clip_span(row.camera_id, *event_window(ctx, row, now))
    clip_start, clip_end = span if span is not None else (None, None)
    return {
        "id": row.id,
        "camera_id": row.camera_id,
        "start": row.start_time,
        "end": row.end_time,
        "clip_start": clip_start,
        "clip_end": clip_end,
        "motion_offset": None if clip_start is None else max(0.0, row.start_time - clip_start),
        "peak_score": row.peak_score,
        "bbox": row.bbox,
        "snapshot_url": f"/api/events/{row.id}/snapshot.jpg" if row.snapshot_id else None,
        "clip_url": f"/api/events/{row.id}/clip.mp4",
    }


def _number(request: web.Request, name: str, default: float | None = None) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise json_error(web.HTTPBadRequest, f"{name}: must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise json_error(web.HTTPBadRequest, f"{name}: must be a finite number")
    return value


def _whole(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    # The length check first: int() refuses (ValueError) past 4,300 digits.
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw) > len(str(high))
        or not low <= int(raw) <= high
    ):
        raise json_error(web.HTTPBadRequest, f"{name}: must be a whole number {low}..{high}")
    return int(raw)


async def events(request: web.Request) -> web.Response:
    ctx = context(request)
    camera = request.query.get("camera") or None
    if camera is not None and camera not in ctx.cameras:
        raise json_error(web.HTTPBadRequest, f"camera: no camera {camera!r}")
    limit = _whole(request, "limit", 50, 1, MAX_PAGE)
    offset = _whole(request, "offset", 0, 0, 10**9)
    before = None
    if request.query.get("before"):
        before = ctx.index.get_event(_whole(request, "before", 0, 1, 2**62))
        if before is None:
            raise json_error(web.HTTPBadRequest, "before: no such event (it may have been deleted)")
    now = time.time()
    rows = await asyncio.to_thread(
        ctx.index.events,
        camera,
        _number(request, "start"),
        _number(request, "end"),
        limit + 1,
        offset,
        before,
    )
    return json_response(
        {
            "events": await events_json(ctx, rows[:limit], now),
            "more": len(rows) > limit,
            "offset": offset,
            "limit": limit,
        }
    )


def _event(request: web.Request) -> EventRow:
    raw = request.match_info["event"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise json_error(web.HTTPNotFound, "no such event")
    row = context(request).index.get_event(int(raw))
    if row is None:
        raise json_error(web.HTTPNotFound, "no such event")
    return row


async def event(request: web.Request) -> web.Response:
    found = await events_json(context(request), [_event(request)], time.time())
    return json_response(found[0])


async def events_json(ctx: WebContext, rows: list[EventRow], now: float) -> list[dict[str, Any]]:
    """event_json for each row, off the event loop (each looks up its clip's span)."""
    return await asyncio.to_thread(lambda: [event_json(ctx, row, now) for row in rows])


async def event_snapshot(request: web.Request) -> web.Response:
    ctx = context(request)
    session = owner(request)
    row = _event(request)
    if row.snapshot_id is None:
        raise json_error(web.HTTPNotFound, "this event has no snapshot")
    with footage_errors():
        jpeg = await asyncio.to_thread(
            ctx.archive.read_snapshot, row.snapshot_id, session.private_key
        )
    who = actor(request)
    if ctx.bursts.admit(
        f"{session.client} {session.created!r}", who, row.camera_id, row.id, time.time()
    ):
        await audit(ctx, AuditKind.SNAPSHOT, who, camera=row.camera_id, event=row.id)
    return web.Response(body=jpeg, content_type="image/jpeg")


@contextmanager
def footage_errors() -> Iterator[None]:
    """Footage gone from the disk is a 404; footage that fails its checks (altered or
    truncated on disk) a 422 that says so. Never a 500."""
    try:
        yield
    except FootageUnavailable as exc:
        raise json_error(web.HTTPNotFound, str(exc)) from None
    except vault.CorruptFile as exc:
        raise json_error(
            web.HTTPUnprocessableEntity, f"the stored footage failed verification: {exc}"
        ) from None


# -- clips ---------------------------------------------------------------------------


def event_window(ctx: WebContext, row: EventRow, now: float) -> tuple[float, float]:
    """The footage that belongs to an event: its motion with the camera's pre/post roll."""
    cam = ctx.cameras.get(row.camera_id)
    pre, post = (cam.pre_roll, cam.post_roll) if cam else (0.0, 0.0)
    end = row.end_time if row.end_time is not None else now
    return row.start_time - pre, end + post


async def event_clip(request: web.Request) -> web.Response:
    row = _event(request)
    start, end = event_window(context(request), row, time.time())
    return await _owner_clip(request, row.camera_id, start, end, event=row.id)


async def range_clip(request: web.Request) -> web.Response:
    cam = _camera(request)
    start, end = _number(request, "start"), _number(request, "end")
    if start is None or end is None:
        raise json_error(web.HTTPBadRequest, "start and end (Unix seconds) are required")
    if not 0 < end - start <= MAX_CLIP_SPAN:
        raise json_error(
            web.HTTPBadRequest, f"end must be after start, by at most {MAX_CLIP_SPAN:.0f} s"
        )
    return await _owner_clip(request, cam.id, start, end)


async def _owner_clip(
    request: web.Request, camera_id: str, start: float, end: float, **detail: object
) -> web.Response:
    ctx = context(request)
    session = owner(request)
    segments = await asyncio.to_thread(ctx.index.segments_overlapping, camera_id, start, end)
    if not segments:
        raise json_error(web.HTTPNotFound, "no recorded footage in that range")

    def open_segment(row: SegmentRow) -> Iterator[bytes]:
        return ctx.archive.read_segment(row.id, session.private_key)

    key = (OWNER, tuple(row.id for row in segments))
    body = await serve_clip(ctx, key, segments, open_segment)
    response = ranged(request, body, "video/mp4")
    download = request.query.get("download") == "1"
    if download:
        cam = ctx.cameras.get(camera_id)
        response.headers["Content-Disposition"] = attachment(cam.name if cam else camera_id, start)
    shown = response.status != web.HTTPRequestRangeNotSatisfiable.status_code
    if shown and is_first_request(request):  # logged before any of it leaves
        await audit(
            ctx,
            AuditKind.CLIP_DOWNLOADED if download else AuditKind.CLIP,
            actor(request),
            camera=camera_id,
            start=round(start, 3),
            end=round(end, 3),
            segments=len(segments),
            **detail,
        )
    return response


async def serve_clip(
    ctx: WebContext,
    key: object,
    segments: list[SegmentRow],
    open_segment: Any,
) -> memoryview:
    """Assemble (or reuse) a clip off the event loop, one build at a time (each may take
    up to the whole clip budget); footage errors become 4xx, and clip memory still
    held by responses under way a 503 to retry."""
    found = ctx.clips.get(key)
    if found is not None:
        return found
    expected = sum(row.size or 0 for row in segments)
    try:
        with footage_errors():
            async with ctx.clip_slot:
                body = await asyncio.to_thread(
                    ctx.clips.build,
                    key,
                    expected,
                    lambda max_bytes: clip_of(segments, open_segment, max_bytes),
                )
    except ClipTooLarge as exc:
        raise json_error(web.HTTPRequestEntityTooLarge, str(exc)) from None
    except ClipError as exc:
        raise json_error(web.HTTPUnprocessableEntity, f"the clip cannot be made: {exc}") from None
    except ClipBusy as exc:
        raise json_error(
            web.HTTPServiceUnavailable, f"{exc}; try again shortly", **{"Retry-After": "10"}
        ) from None
    return body


# -- shares --------------------------------------------------------------------------


def share_json(row: ShareRow, now: float) -> dict[str, Any]:
    """A share as the owner's list shows it. A used-up share whose last viewer may
    still seek (its grace time) is "used up" already, with `grace_until`; it can still
    be revoked (`revocable`), which ends that viewer's access at once."""
    state = row.end_reason.value if row.end_reason else "live"
    grace_until = None
    if row.end_reason is None and row.expires <= now:
        state = ShareEnd.EXPIRED.value
    elif row.end_reason is None and row.max_views is not None and row.views >= row.max_views:
        state = ShareEnd.USED_UP.value
        grace_until = min((row.last_used or now) + USED_UP_GRACE, row.expires)
    return {
        "id": row.id,
        "label": row.label,
        "camera_id": row.camera_id,
        "start": row.start_time,
        "end": row.end_time,
        "event_id": row.event_id,
        "created": row.created,
        "expires": row.expires,
        "max_views": row.max_views,
        "views": row.views,
        "last_used": row.last_used,
        "state": state,
        "grace_until": grace_until,
        "revocable": row.ended is None,
    }


async def shares(request: web.Request) -> web.Response:
    ctx = context(request)
    now = time.time()
    rows = await asyncio.to_thread(ctx.index.shares)
    return json_response([share_json(row, now) for row in rows])


async def new_share(request: web.Request) -> web.Response:
    ctx = context(request)
    session = owner(request)
    body = await read_json(request)
    share_request = _share_request(ctx, body)
    try:
        with footage_errors():
            row, secret = await asyncio.to_thread(
                create_share, ctx.archive, session.private_key, share_request
            )
    except ShareError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    await audit(
        ctx,
        AuditKind.SHARE_CREATED,
        actor(request),
        share=row.id,
        label=row.label,
        camera=row.camera_id,
        start=round(row.start_time, 3),
        end=round(row.end_time, 3),
        expires=round(row.expires),
        max_views=row.max_views,
    )
    data = share_json(row, time.time())
    # The only time the secret leaves the hub: to the owner, as the link's fragment.
    data["link"] = f"/share/{row.id}/#{secret}"
    return json_response(data, status=201)


def _share_request(ctx: WebContext, body: dict[str, Any]) -> ShareRequest:
    allowed = {"event_id", "camera_id", "start", "end", "expires_in", "max_views", "label"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise json_error(web.HTTPBadRequest, f"unknown field(s): {', '.join(unknown)}")
    expires_in = _json_number(body, "expires_in")
    max_views = body.get("max_views")
    if max_views is not None and (not isinstance(max_views, int) or isinstance(max_views, bool)):
        raise json_error(web.HTTPBadRequest, "max_views: must be a whole number or null")
    label = body.get("label", "")
    if not isinstance(label, str):
        raise json_error(web.HTTPBadRequest, "label: must be a string")
    event_id = body.get("event_id")
    if event_id is not None:
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            raise json_error(web.HTTPBadRequest, "event_id: must be a whole number")
        if not 1 <= event_id <= MAX_ROW_ID:
            raise json_error(web.HTTPBadRequest, f"event_id: must be 1..{MAX_ROW_ID}")
        row = ctx.index.get_event(event_id)
        if row is None:
            raise json_error(web.HTTPBadRequest, f"event_id: no event {event_id}")
        camera_id = row.camera_id
        start, end = event_window(ctx, row, time.time())
    else:
        camera_id = body.get("camera_id")
        if not isinstance(camera_id, str) or camera_id not in ctx.cameras:
            raise json_error(web.HTTPBadRequest, "camera_id: name a camera, or give event_id")
        start, end = _json_number(body, "start"), _json_number(body, "end")
    try:
        return ShareRequest(
            camera_id=camera_id,
            start=start,
            end=end,
            expires_in=expires_in,
            label=label.strip(),
            max_views=max_views,
            event_id=event_id,
        )
    except ShareError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None


def _json_number(body: dict[str, Any], name: str) -> float:
    """A finite number from a JSON body; a whole number too big for a float (JSON
    allows any length) is refused like infinity."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise json_error(web.HTTPBadRequest, f"{name}: a number is required")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise json_error(web.HTTPBadRequest, f"{name}: a finite number is required")
    return number


async def revoke_share(request: web.Request) -> web.Response:
    ctx = context(request)
    share_id = request.match_info["share"]
    ended = await asyncio.to_thread(ctx.index.end_share, share_id, time.time(), ShareEnd.REVOKED)
    if not ended:
        raise json_error(web.HTTPNotFound, "no live share with that id")
    ctx.clips.drop(lambda key: key == ("share", share_id))
    share = ctx.index.get_share(share_id)
    label = share.label if share is not None else ""
    await audit(ctx, AuditKind.SHARE_REVOKED, actor(request), share=share_id, label=label)
    return web.Response(status=204)


# -- the access log ------------------------------------------------------------------


async def audit_records(request: web.Request) -> web.Response:
    ctx = context(request)
    before = _whole(request, "before", 0, 0, 2**62)
    limit = _whole(request, "limit", 100, 1, MAX_PAGE)
    rows = await asyncio.to_thread(ctx.audit.recent, before, limit)
    return json_response(
        [
            {
                "seq": row.seq,
                "time": row.time,
                "kind": row.kind,
                "actor": row.actor,
                "detail": json.loads(row.detail),
                "hash": row.hash,
            }
            for row in rows
        ]
    )


async def audit_verify(request: web.Request) -> web.Response:
    verdict = await asyncio.to_thread(context(request).audit.verify, owner(request).private_key)
    return json_response(
        {
            "ok": verdict.ok,
            "records": verdict.records,
            "first_broken": verdict.first_broken,
            "reason": verdict.reason,
            "sealed_through": verdict.sealed_through,
            "sealed_at": verdict.sealed_at,
        }
    )
