"""The owner's settings from the page: per-camera settings and motion masks, the
session idle time, and the password.

A change is made on the config file (hub/config_file.py: checked as `check-config`
checks, written atomically with a backup), written to the access log (key, old and new
value; never a URL or a secret), then applied: the changed camera alone is restarted.
Camera URLs may carry passwords: they are written from here, never sent back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from hub import vault
from hub.audit import AuditKind
from hub.config import CameraSettings, Config, warnings
from hub.config_file import ConfigFile, ConfigFileBroken, Edit
from hub.fsutil import write_private
from hub.settings import (
    Edited,
    SettingsRefused,
    camera_view,
    edit_camera,
    edit_session_idle,
    levels_view,
)
from hub.web.api import actor
from hub.web.app import (
    CameraView,
    WebContext,
    audit,
    context,
    json_error,
    json_response,
    read_json,
)
from hub.web.auth import client_key

NO_FILE = (
    "this hub was started without a config file (the demo makes its settings in memory); "
    "run `camhub run --config FILE` to change them from the page"
)
MAX_PASSWORD = 1024


class HubStopping(Exception):
    """`restart_camera` asked of a hub that is stopping (the file is written already:
    the new settings apply at the next start)."""


@dataclass(frozen=True, slots=True)
class SettingsAccess:
    """What the routes need of the running hub (hub/daemon.py builds it)."""

    file: ConfigFile | None  # None: no config file (the demo)
    current: Callable[[], Config]  # the settings in force
    restart_camera: Callable[[CameraSettings], CameraView | None]  # None: disabled; HubStopping
    set_session_idle: Callable[[int], None]


CHANGES = web.AppKey("settings_changes", asyncio.Lock)  # one change at a time


def add_routes(app: web.Application) -> None:
    app[CHANGES] = asyncio.Lock()
    r = app.router
    r.add_get("/api/settings", settings)
    r.add_put("/api/settings/cameras/{camera}", change_camera)
    r.add_put("/api/settings/session", change_session)
    r.add_post("/api/settings/password", change_password)


def _access(ctx: WebContext) -> SettingsAccess:
    if ctx.settings is None:
        raise json_error(web.HTTPServiceUnavailable, "settings are not available on this hub")
    return ctx.settings


def _read_only(access: SettingsAccess) -> str | None:
    """Why the page cannot change settings here, or None."""
    if access.file is None:
        return NO_FILE
    return access.file.not_writable()


async def settings(request: web.Request) -> web.Response:
    access = _access(context(request))
    config = access.current()
    return json_response(
        {
            "read_only": await asyncio.to_thread(_read_only, access),
            "file": str(access.file.path) if access.file is not None else None,
            "session_idle_minutes": config.web.session_idle_minutes,
            "cameras": [camera_view(cam) for cam in config.cameras],
            "sensitivity_levels": levels_view(),
            "min_password_length": vault.MIN_PASSWORD_LENGTH,
        }
    )


async def _edit(request: web.Request, edit: Edit) -> Edited:
    """Apply `edit` to the config file (400 naming the key if check-config would refuse
    the result, 409 if the file cannot be changed), and log what it changed."""
    ctx = context(request)
    access = _access(ctx)
    reason = await asyncio.to_thread(_read_only, access)
    if reason is not None or access.file is None:
        raise json_error(web.HTTPConflict, reason or NO_FILE)
    try:
        edited = await asyncio.to_thread(access.file.update, edit)
    except SettingsRefused as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    except ConfigFileBroken as exc:
        raise json_error(web.HTTPConflict, str(exc)) from None
    except OSError as exc:
        raise json_error(
            web.HTTPConflict, f"cannot write {access.file.path}: {exc.strerror or exc}"
        ) from None
    if edited.changes:
        await audit(
            ctx,
            AuditKind.SETTINGS_CHANGED,
            actor(request),
            **{change.key: change.as_text() for change in edited.changes},
        )
    return edited


async def change_camera(request: web.Request) -> web.Response:
    ctx = context(request)
    access = _access(ctx)
    camera_id = request.match_info["camera"]
    if all(cam.id != camera_id for cam in access.current().cameras):
        raise json_error(web.HTTPNotFound, "no such camera")
    body = await read_json(request)
    async with request.app[CHANGES]:
        edited = await _edit(request, lambda text, base: edit_camera(text, base, camera_id, body))
        index, camera = next(
            (n, cam) for n, cam in enumerate(edited.config.cameras) if cam.id == camera_id
        )
        if edited.changes:
            try:
                view = await asyncio.to_thread(access.restart_camera, camera)
            except HubStopping as exc:
                raise json_error(web.HTTPServiceUnavailable, str(exc)) from None
            _show_camera(ctx, access.current(), camera_id, view)
    return json_response(
        {
            "camera": camera_view(camera),
            "changes": [change.as_json() for change in edited.changes],
            "restarted": bool(edited.changes),
            # What check-config would point out without refusing it (a placeholder
            # password, a missing /dev/video*), for this camera.
            "warnings": [w for w in warnings(edited.config) if w.startswith(f"camera[{index}].")],
        }
    )


def _show_camera(ctx: WebContext, config: Config, camera_id: str, view: CameraView | None) -> None:
    """The restarted camera in the page's list (in config order), or gone if disabled.
    On the event loop, where everything else reads the list: changed in place, as the
    page's event stream holds this very dict."""
    views = dict(ctx.cameras)
    views.pop(camera_id, None)
    if view is not None:
        views[camera_id] = view
    ctx.cameras.clear()
    ctx.cameras.update({cam.id: views[cam.id] for cam in config.cameras if cam.id in views})


async def change_session(request: web.Request) -> web.Response:
    access = _access(context(request))
    body = await read_json(request)
    if set(body) != {"idle_minutes"}:
        raise json_error(web.HTTPBadRequest, 'send {"idle_minutes": N}')
    async with request.app[CHANGES]:
        minutes = body["idle_minutes"]
        edited = await _edit(request, lambda text, base: edit_session_idle(text, base, minutes))
        access.set_session_idle(edited.config.web.session_idle_minutes)
    return json_response(
        {
            "session_idle_minutes": edited.config.web.session_idle_minutes,
            "changes": [change.as_json() for change in edited.changes],
        }
    )


async def change_password(request: web.Request) -> web.Response:
    """As `camhub passwd`: the current password unlocks the owner key, which is wrapped
    again under the new one (no footage is re-encrypted). Wrong current passwords count
    against the same throttle as logins: a stolen session is no way to guess it."""
    ctx = context(request)
    body = await read_json(request)
    current, new = body.get("current"), body.get("new")
    for name, value in (("current", current), ("new", new)):
        if not isinstance(value, str) or not value or len(value) > MAX_PASSWORD:
            raise json_error(web.HTTPBadRequest, f"{name}: a non-empty string is required")
    assert isinstance(current, str) and isinstance(new, str)
    if problem := vault.password_problem(new):
        raise json_error(web.HTTPBadRequest, f"new: {problem}")
    client = client_key(request.remote)
    attempt = ctx.throttle.attempt(client, None)
    async with ctx.login_slot:
        wait = ctx.throttle.wait_time(attempt, time.time())
        if wait > 0:
            raise json_error(
                web.HTTPTooManyRequests,
                f"too many wrong passwords; try again in {math.ceil(wait)} s",
                **{"Retry-After": str(math.ceil(wait))},
            )
        try:
            await asyncio.to_thread(_rewrap, ctx, current, new)
        except vault.WrongPassword:
            ctx.throttle.failed(attempt, time.time())
            await audit(ctx, AuditKind.PASSWORD_REFUSED, actor(request))
            raise json_error(web.HTTPForbidden, "current: wrong password") from None
    ctx.throttle.succeeded(attempt, client, None)
    await audit(ctx, AuditKind.PASSWORD_CHANGED, actor(request))
    return json_response({"ok": True})


def _rewrap(ctx: WebContext, current: str, new: str) -> None:
    keyfile = vault.KeyFile.from_json(ctx.keys_path.read_bytes())
    private_key = vault.unlock(keyfile, current)
    write_private(ctx.keys_path, vault.rewrap(keyfile, private_key, new).to_json().encode())
