"""What a share link opens: one page that plays one clip, and nothing else.

The link is `/share/<id>/#<secret>`. The page's script reads the secret from the
fragment (which browsers never send) and posts it once to `open`, which counts a
view and sets a cookie scoped to this share's path alone; the <video> element then
fetches `clip.mp4` with that cookie. A reload in the same browser (which still holds
the cookie) shows the page again without using up a view; the clip itself is logged
as served each time playback starts. So the secret never stands in a request line,
an access log, a Referer or the browser's history of requests, and a share's cookie
is not even sent to any other path of the hub.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterator

from aiohttp import web

from hub.audit import AuditKind
from hub.shares import ShareRefused, open_share, use_share
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


@public
async def open_link(request: web.Request) -> web.Response:
    ctx = context(request)
    share_id = request.match_info["share"]
    body = await read_json(request)
    token = body.get("secret")
    if not isinstance(token, str):
        raise json_error(web.HTTPBadRequest, "secret: a string is required")
    now = time.time()
    opened_here = hmac.compare_digest(
        request.cookies.get(SHARE_COOKIE, "").encode(), token.encode()
    )
    try:
        share = await asyncio.to_thread(
            use_share, ctx.index, share_id, token, now, new_view=not opened_here
        )
    except ShareRefused as exc:
        raise await _refused(request, share_id, exc) from None
    if not opened_here:
        await audit(ctx, AuditKind.SHARE_USED, _who(request, share_id), views=share.views)
    cam = ctx.cameras.get(share.camera_id)
    response = json_response(
        {
            "label": share.label,
            "camera": cam.name if cam else share.camera_id,
            "start": share.start_time,
            "end": share.end_time,
            "expires": share.expires,
            "views": share.views,
            "max_views": share.max_views,
            "clip_url": f"/share/{share.id}/clip.mp4",
        }
    )
    response.set_cookie(
        SHARE_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=ctx.secure_cookies,
        path=f"/share/{share.id}/",
        max_age=max(int(share.expires - now), 1),
    )
    return response


@public
async def shared_clip(request: web.Request) -> web.Response:
    ctx = context(request)
    share_id = request.match_info["share"]
    token = request.cookies.get(SHARE_COOKIE, "")
    try:
        opened = await asyncio.to_thread(open_share, ctx.index, share_id, token, time.time())
    except ShareRefused as exc:
        raise await _refused(request, share_id, exc, logged=is_first_request(request)) from None
    keys = {row.id: key for row, key in opened.segments}

    def open_segment(row: SegmentRow) -> Iterator[bytes]:
        return ctx.archive.read_segment(row.id, data_key=keys[row.id])

    segments = [row for row, _ in opened.segments]
    body = await serve_clip(ctx, ("share", share_id), segments, open_segment)
    if is_first_request(request):
        await audit(ctx, AuditKind.CLIP, _who(request, share_id), camera=opened.share.camera_id)
    return ranged(request, body, "video/mp4")
