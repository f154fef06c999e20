"""The owner's footage management: what was recorded when, downloads, deletion, storage.

Owner-only like every route not marked public (hub/web/app.py). Deleting is the
archive's crypto-shredding (hub/archive.py, invariant 7), the same steps retention
takes; every deletion and download goes in the access log.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import shutil
import sqlite3
import time

from aiohttp import web

from hub.archive import DAY
from hub.audit import AuditKind
from hub.store import EventRow
from hub.web.api import (
    MAX_CLIP_SPAN,
    _camera,
    _event,
    _number,
    actor,
    event_window,
    events_json,
)
from hub.web.app import audit, context, json_error, json_response

log = logging.getLogger(__name__)

MAX_SPAN = 31 * DAY  # longest stretch one recordings query may cover
MAX_RANGES = 2000  # recorded stretches per answer; past that, `more` is set
MAX_EVENTS = 2000  # event markers per answer
DEFAULT_GAP = 2.0  # seconds: segments closer than this are one recorded stretch
MAX_GAP = 3600.0
MAX_DELETE_SPAN = DAY  # a deletion covers at most a day: each file costs a few fsyncs


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/cameras/{camera}/recordings", recordings)
    r.add_get("/api/cameras/{camera}/clip-span", clip_span)
    r.add_delete("/api/cameras/{camera}/footage", delete_range)
    r.add_delete("/api/events/{event}", delete_event)
    r.add_get("/api/storage", storage)


# -- what exists between two times ---------------------------------------------------


def merge_motion(events: list[EventRow], now: float) -> list[tuple[float, float]]:
    """Event spans (motion) merged where they overlap, oldest first."""
    spans = sorted((e.start_time, e.end_time if e.end_time is not None else now) for e in events)
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlaps(
    start: float, end: float, spans: list[tuple[float, float]], ends: list[float]
) -> bool:
    """Whether [start, end) meets any of `spans` (merged, so sorted and disjoint, their
    ends in `ends`): the first span ending after `start` is the only candidate."""
    i = bisect.bisect_right(ends, start)
    return i < len(spans) and spans[i][0] < end


async def recordings(request: web.Request) -> web.Response:
    """The recorded stretches of one camera in [start, end), each marked by whether
    motion happened in it, with the motion spans and event markers: the timeline's data."""
    ctx = context(request)
    cam = _camera(request)
    start, end = _number(request, "start"), _number(request, "end")
    if start is None or end is None:
        raise json_error(web.HTTPBadRequest, "start and end (Unix seconds) are required")
    if not 0 < end - start <= MAX_SPAN:
        raise json_error(
            web.HTTPBadRequest, f"end must be after start, by at most {MAX_SPAN / DAY:.0f} days"
        )
    gap = _number(request, "gap", DEFAULT_GAP) or 0.0
    if not 0 <= gap <= MAX_GAP:
        raise json_error(web.HTTPBadRequest, f"gap: must be 0..{MAX_GAP:.0f} seconds")
    now = time.time()
    spans, events = await asyncio.gather(
        asyncio.to_thread(ctx.index.recorded_spans, cam.id, start, end, gap, MAX_RANGES + 1, now),
        asyncio.to_thread(ctx.index.events, cam.id, start, end, MAX_EVENTS + 1),
    )
    motion = merge_motion(events[:MAX_EVENTS], now)
    ends = [b for _a, b in motion]
    return json_response(
        {
            "camera": cam.id,
            "record": cam.record,
            "start": start,
            "end": end,
            "gap": gap,
            "ranges": [
                {
                    "start": a,
                    "end": b,
                    "segments": n,
                    "bytes": size,
                    "motion": _overlaps(a, b, motion, ends),
                }
                for a, b, n, size in spans[:MAX_RANGES]
            ],
            "motion": [{"start": a, "end": b} for a, b in motion],
            "events": await events_json(ctx, events[:MAX_EVENTS][::-1], now),
            "more": len(spans) > MAX_RANGES or len(events) > MAX_EVENTS,
        }
    )


async def clip_span(request: web.Request) -> web.Response:
    """Where the clip of [start, end) (GET .../clip.mp4 with the same range) really
    begins and ends: it plays whole segments, so its first picture is the first one's
    start. The timeline maps a clip's playing time to the time of day by it."""
    ctx = context(request)
    cam = _camera(request)
    start, end = _range(request, MAX_CLIP_SPAN)
    span = await asyncio.to_thread(ctx.index.clip_span, cam.id, start, end)
    if span is None:
        raise json_error(web.HTTPNotFound, "no recorded footage in that range")
    return json_response({"camera": cam.id, "start": span[0], "end": span[1]})


def _range(request: web.Request, longest: float) -> tuple[float, float]:
    """The request's `start` and `end` (Unix seconds), `end` after `start` by at most
    `longest` seconds."""
    start, end = _number(request, "start"), _number(request, "end")
    if start is None or end is None:
        raise json_error(web.HTTPBadRequest, "start and end (Unix seconds) are required")
    if not 0 < end - start <= longest:
        raise json_error(web.HTTPBadRequest, f"end must be after start, by at most {longest:.0f} s")
    return start, end


# -- deletion ------------------------------------------------------------------------


async def delete_range(request: web.Request) -> web.Response:
    """Crypto-shred one camera's footage in [start, end): whole segments that cover any
    of it, the snapshots and ended events in it. A segment being recorded is kept."""
    cam = _camera(request)
    start, end = _number(request, "start"), _number(request, "end")
    if start is None or end is None:
        raise json_error(web.HTTPBadRequest, "start and end (Unix seconds) are required")
    if not 0 < end - start <= MAX_DELETE_SPAN:
        raise json_error(
            web.HTTPBadRequest,
            f"end must be after start, by at most {MAX_DELETE_SPAN:.0f} s (a day at a time)",
        )
    return await _delete(request, cam.id, start, end, None)


async def delete_event(request: web.Request) -> web.Response:
    """Crypto-shred an event's clip (its motion with pre- and post-roll), its snapshot
    and the event itself. An event still going on cannot be deleted yet."""
    row = _event(request)
    if row.end_time is None:
        raise json_error(
            web.HTTPConflict, "this event is still going on; delete it once it has ended"
        )
    start, end = event_window(context(request), row, time.time())
    return await _delete(request, row.camera_id, start, end, row)


async def _delete(
    request: web.Request, camera: str, start: float, end: float, event: EventRow | None
) -> web.Response:
    """Delete while holding the clip slot, so no clip is being assembled from the files
    meanwhile, then forget every assembled clip (one may hold the shredded footage), and
    write the access log: what went, or that the deletion stopped part-way."""
    ctx = context(request)
    detail: dict[str, object] = {
        "camera": camera,
        "start": round(start, 3),
        "end": round(end, 3),
        **({"event": event.id} if event is not None else {}),
    }
    try:
        async with ctx.clip_slot:
            deletion = await asyncio.to_thread(
                ctx.archive.delete_footage, camera, start, end, event
            )
            ctx.clips.drop(lambda key: True)
    except (OSError, sqlite3.DatabaseError) as exc:
        log.error("deleting %s footage stopped part-way: %s", camera, exc)
        await audit(ctx, AuditKind.FOOTAGE_DELETED, actor(request), failed=str(exc), **detail)
        raise json_error(
            web.HTTPServiceUnavailable,
            "the deletion stopped part-way (see the hub's log); what is left is still "
            "listed: try again",
        ) from None
    counts = deletion.detail()
    await audit(
        ctx,
        AuditKind.FOOTAGE_DELETED,
        actor(request),
        files=deletion.segments + deletion.snapshots,
        bytes=counts.pop("bytes_freed"),
        **counts,
        **detail,
    )
    return json_response({"ok": True, **deletion.detail()})


# -- storage -------------------------------------------------------------------------


async def storage(request: web.Request) -> web.Response:
    """Footage per camera, the disk's free space, the budget, and how many days of
    footage retention actually keeps now (the age of the oldest)."""
    ctx = context(request)
    per_camera = await asyncio.to_thread(ctx.index.footage_by_camera)
    disk = await asyncio.to_thread(shutil.disk_usage, ctx.archive.data_dir)
    policy = ctx.archive.policy
    now = time.time()
    oldest = min((o for _n, _b, o in per_camera.values() if o is not None), default=None)
    names = {cam.id: cam.name for cam in ctx.cameras.values()}
    return json_response(
        {
            "cameras": [
                {
                    "id": camera,
                    "name": names.get(camera, camera),
                    "files": files,
                    "bytes": size,
                    "oldest": first,
                    "days": _days(now, first),
                }
                for camera, (files, size, first) in per_camera.items()
            ],
            "footage_bytes": sum(size for _n, size, _o in per_camera.values()),
            "disk_bytes": disk.total,
            "free_bytes": disk.free,
            "budget_bytes": policy.max_footage_bytes or None,
            "min_free_bytes": policy.min_free_bytes,
            "max_age_days": policy.max_age_days or None,
            "oldest": oldest,
            "kept_days": _days(now, oldest),
        }
    )


def _days(now: float, since: float | None) -> float | None:
    return None if since is None else round(max(0.0, now - since) / DAY, 2)
