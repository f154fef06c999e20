"""What a share link opens: one page that plays one clip, and nothing else.

The link is `/share/<id>/#<secret>`. The page's script reads the secret from the
fragment (which browsers never send) and posts it to `open`. That counts a view for
this browser and sets two cookies scoped to this share's path alone: the secret (the
clip's keys are wrapped under it) and a random open token (hub/shares.py), which is
what tells this browser from any other holder of the link. The <video> element then
fetches `clip.mp4` with both. Opening the link again in the same browser soon after
(it still holds the token) uses no second view; the secret alone never passes for a
reload, and without a token the clip is refused. So the secret never stands in a
request line, an access log, a Referer or the browser's history of requests, and a
share's cookies are not even sent to any other path of the hub.

Every use of a link (a view, a reload, a clip request) goes to the access log, summed
per client and share over a minute (RepeatFilter): anyone holding a link could
otherwise flood the log, and with it the disk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from aiohttp import web

from hub.audit import AuditKind
from hub.shares import PLAY_WINDOW, ShareRefused, open_share, use_share
from hub.store import SegmentRow
from hub.web.api import serve_clip
from hub.web.app import (
    STATIC,
    audit,
    audit_refusal,
    context,
    json_error,
    json_response,
    public,
    read_json,
)
from hub.web.auth import client_key
from hub.web.clips import is_first_request, ranged

SHARE_COOKIE = "camhub_share"
OPEN_COOKIE = "camhub_share_open"


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/share/{share}/", share_page)
    r.add_post("/share/{share}/open", open_link)
    r.add_get("/share/{share}/clip.mp4", shared_clip, allow_head=False)


def _who(request: web.Request, share_id: str) -> str:
    return f"share {share_id[:16]} from {request.remote or 'unknown'}"


async def _refused(
    request: web.Request, share_id: str, exc: ShareRefused, *, logged: bool = True
) -> web.HTTPException:
    """403 with no hint of which check failed; the access log gets the reason."""
    if logged:
        await audit_refusal(
            context(request),
            AuditKind.SHARE_REFUSED,
            client_key(request.remote),
            _who(request, share_id),
            reason=exc.reason,
        )
    return json_error(web.HTTPForbidden, "this link is not valid (expired, revoked or wrong)")


@public
async def share_page(request: web.Request) -> web.Response:
    return request.app[STATIC].response("share.html")


async def _audit_use(
    request: web.Request, kind: AuditKind, share_id: str, **detail: object
) -> None:
    """A use of a link: recorded, or counted into this client's summary for the share."""
    ctx = context(request)
    who = _who(request, share_id)
    if ctx.repeats.admit(kind, client_key(request.remote), who, time.time(), share_id):
        await audit(ctx, kind, who, **detail)


@public
async def open_link(request: web.Request) -> web.Response:
    ctx = context(request)
    share_id = request.match_info["share"]
    body = await read_json(request)
    token = body.get("secret")
    if not isinstance(token, str):
        raise json_error(web.HTTPBadRequest, "secret: a string is required")
    now = time.time()
    try:
        use = await asyncio.to_thread(
            use_share, ctx.index, share_id, token, request.cookies.get(OPEN_COOKIE, ""), now
        )
    except ShareRefused as exc:
        raise await _refused(request, share_id, exc) from None
    share = use.share
    await _audit_use(
        request,
        AuditKind.SHARE_USED,
        share_id,
        label=share.label,
        views=share.views,
        reload=use.reload,
    )
    cam = ctx.cameras.get(share.camera_id)
    # What the clip really plays, as the owner's page shows it (whole segments).
    span = await asyncio.to_thread(
        ctx.index.clip_span, share.camera_id, share.start_time, share.end_time
    )
    start, end = span if span is not None else (share.start_time, share.end_time)
    # No label: it is the owner's note ("only you see it"), never the recipient's.
    response = json_response(
        {
            "camera": cam.name if cam else share.camera_id,
            "start": start,
            "end": end,
            "expires": share.expires,
            "views": share.views,
            "max_views": share.max_views,
            "clip_url": f"/share/{share.id}/clip.mp4",
        }
    )
    if use.open_token is not None:
        max_age = max(int(min(share.expires - now, PLAY_WINDOW)), 1)
        for name, value in ((SHARE_COOKIE, token), (OPEN_COOKIE, use.open_token)):
            response.set_cookie(
                name,
                value,
                httponly=True,
                samesite="Strict",
                secure=ctx.secure_cookies,
                path=f"/share/{share.id}/",
                max_age=max_age,
            )
    return response


@public
async def shared_clip(request: web.Request) -> web.Response:
    ctx = context(request)
    share_id = request.match_info["share"]
    token = request.cookies.get(SHARE_COOKIE, "")
    open_token = request.cookies.get(OPEN_COOKIE, "")
    try:
        opened = await asyncio.to_thread(
            open_share, ctx.index, share_id, token, open_token, time.time()
        )
    except ShareRefused as exc:
        raise await _refused(request, share_id, exc, logged=is_first_request(request)) from None
    await _audit_use(
        request, AuditKind.CLIP, share_id, label=opened.share.label, camera=opened.share.camera_id
    )
    keys = {row.id: key for row, key in opened.segments}

    def open_segment(row: SegmentRow) -> Iterator[bytes]:
        return ctx.archive.read_segment(row.id, data_key=keys[row.id])

    segments = [row for row, _ in opened.segments]
    body = await serve_clip(ctx, ("share", share_id), segments, open_segment)
    return ranged(request, body, "video/mp4")
