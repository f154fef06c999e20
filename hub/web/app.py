"""The aiohttp application: deny-by-default routing, CSRF and error handling, headers.

Every route needs the owner's session unless its handler is marked `@public` (the
page shells, static files, login, health, and share pages, which check their own
link). The check runs in one middleware on the matched route, so a new route is
protected without anyone remembering to protect it, and there is no list of exempt
paths to get out of step with the routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.alerts.service import Alerts
from hub.archive import Archive
from hub.audit import AuditKind, AuditLog, RepeatFilter, SnapshotBursts
from hub.config import MqttSettings
from hub.logs import printable
from hub.store import Index
from hub.web.auth import LoginThrottle, Session, Sessions
from hub.web.clips import ClipCache
from hub.web.hdlive import StreamFeed
from hub.web.hosts import HostCheck
from hub.web.live import LiveFeed

if TYPE_CHECKING:
    from hub.web.settings_routes import SettingsAccess

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_REQUEST_BYTES = 64 * 1024  # JSON bodies only; nothing large is ever uploaded
BODY_SECONDS = 10.0  # to send that body: a client trickling it is cut off
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; "
    "form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}


@dataclass(slots=True)
class CameraView:
    """What the web side knows of one camera."""

    id: str
    name: str
    record: str
    pre_roll: float
    post_roll: float
    live: LiveFeed
    status: Callable[[], dict[str, Any]]
    streams: dict[str, StreamFeed] = field(default_factory=dict)  # HD live: "main", "sub"


@dataclass(slots=True)
class WebContext:
    """Everything the routes need; built by the daemon (or a test) and kept on the app."""

    index: Index
    archive: Archive
    audit: AuditLog
    keys_path: Path  # keys.json, read at each login so `camhub passwd` takes effect
    cameras: dict[str, CameraView]
    sessions: Sessions
    throttle: LoginThrottle
    clips: ClipCache
    secure_cookies: bool
    repeats: RepeatFilter = field(default_factory=RepeatFilter)
    bursts: SnapshotBursts = field(default_factory=SnapshotBursts)
    origins: frozenset[str] = frozenset()  # besides the hub's own, e.g. a reverse proxy's
    listen_host: str = "127.0.0.1"  # web.listen's host: a name here is a known Host
    login_slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    clip_slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    # The owner's alerts: their bus (what the page's stream tells), MQTT's status, push
    # and webhook. By default all off (the bus still runs), as in tests of the routes.
    alerts: Alerts = field(default_factory=lambda: Alerts(MqttSettings()))
    settings: SettingsAccess | None = None  # the page's settings; None in some tests


CONTEXT = web.AppKey("context", WebContext)
HOSTS = web.AppKey("hosts", HostCheck)
SESSION = web.RequestKey("session", Session)
SESSION_COOKIE = "camhub_session"


def public(handler: Handler) -> Handler:
    """Declare a route reachable without the owner's session."""
    handler.camhub_public = True  # type: ignore[attr-defined]
    return handler


def not_use(handler: Handler) -> Handler:
    """Declare a route that needs the owner's session but does not reset its idle
    clock: the page opens it on its own (its event stream, reconnecting after a drop),
    so it says nothing about whether the owner is still there (§8.2)."""
    handler.camhub_not_use = True  # type: ignore[attr-defined]
    return handler


def context(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


def owner(request: web.Request) -> Session:
    """The owner's session, which the auth middleware has already checked."""
    session = request.get(SESSION)
    if session is None:  # only reachable if a public handler asks for the owner
        raise json_error(web.HTTPUnauthorized, "log in first")
    return session


def json_error(kind: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    body = {"text": json.dumps({"error": message}), "content_type": "application/json"}
    if issubclass(kind, web.HTTPRequestEntityTooLarge):  # its constructor wants the sizes
        return kind(MAX_REQUEST_BYTES, 0, headers=headers or None, **body)
    return kind(headers=headers or None, **body)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; 400/413/415 with a clear message otherwise.
    JSON is UTF-8 (RFC 8259): another charset is 415, whatever it names, and a body
    nested past the parser's depth is 400 like any other bad JSON."""
    if request.content_type != "application/json":
        raise json_error(web.HTTPUnsupportedMediaType, "send a JSON body (application/json)")
    if not _is_utf8(request.charset):
        raise json_error(web.HTTPUnsupportedMediaType, "send the JSON body as UTF-8")
    raw = await request.read()  # already read, within its size, by body_middleware
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


def _is_utf8(charset: str | None) -> bool:
    return charset is None or charset.lower() in ("utf-8", "utf8")


# -- middlewares -----------------------------------------------------------------------


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Clients get a short JSON error, never a traceback; the server log gets the detail."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            exc.text = json.dumps({"error": exc.reason})
            exc.content_type = "application/json"
        raise
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        log.exception("error serving %s %s", request.method, printable(request.path))
        raise json_error(
            web.HTTPInternalServerError, "internal error (see the hub's log)"
        ) from None


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure_headers(request, exc)
        raise
    _secure_headers(request, response)
    return response


def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # a stream (live view) set its own before starting
        return
    set_security_headers(request, response)


def set_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h["X-Frame-Options"] = "DENY"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        h["Cache-Control"] = "no-store"


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """DNS rebinding: answer only Host names the hub is reached by (hub/web/hosts.py)."""
    if not request.app[HOSTS].allows(request.headers.get("Host")):
        raise json_error(
            web.HTTPMisdirectedRequest,
            "this hub does not answer to that host name; to reach it by a name, "
            "list https://name[:port] in web.origins",
        )
    return await handler(request)


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request's (small) body within BODY_SECONDS and MAX_REQUEST_BYTES, so a
    client that trickles it cannot hold a connection and a handler open; handlers then
    read it from memory."""
    if request.body_exists:
        try:
            async with asyncio.timeout(BODY_SECONDS):
                await request.read()
        except TimeoutError:
            raise json_error(web.HTTPRequestTimeout, "the request body came too slowly") from None
        except web.HTTPRequestEntityTooLarge:
            raise json_error(
                web.HTTPRequestEntityTooLarge,
                f"request body too large (at most {MAX_REQUEST_BYTES // 1024} KiB)",
            ) from None
    return await handler(request)


async def drop_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No `Server: Python/... aiohttp/...`: versions help only an attacker. Runs after
    aiohttp adds the header and before it is sent, for every response the app makes
    (hub/web/server.py does the same for the protocol's own errors)."""
    response.headers.popall("Server", None)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Deny by default: only handlers marked @public run without the owner's session."""
    route_handler = request.match_info.route.handler
    ctx = context(request)
    touch = not getattr(route_handler, "camhub_not_use", False)
    session = ctx.sessions.get(request.cookies.get(SESSION_COOKIE), time.time(), touch=touch)
    if session is not None:
        request[SESSION] = session
    elif not getattr(route_handler, "camhub_public", False) and not _unmatched(request):
        raise json_error(web.HTTPUnauthorized, "log in first")
    # A WebSocket is opened by a GET that browsers send cross-site with its Origin.
    if request.method not in SAFE_METHODS or _is_websocket(request):
        _check_origin(request)
    return await handler(request)


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _unmatched(request: web.Request) -> bool:
    """No route matched: the 404/405 is the answer either way, and tells nothing."""
    return request.match_info.http_exception is not None


def _check_origin(request: web.Request) -> None:
    """CSRF: a state change must come from our own page (SameSite=Strict is the first
    line; this is the second, for browsers and proxies that get SameSite wrong)."""
    origin = request.headers.get("Origin")
    if origin is None:
        if request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none"):
            return
        raise json_error(web.HTTPForbidden, "cross-site request refused")
    if origin != f"{request.scheme}://{request.host}" and origin not in context(request).origins:
        raise json_error(web.HTTPForbidden, "cross-site request refused")


# -- static files ------------------------------------------------------------------------


class StaticFiles:
    """The page's files, read once from the package: a fixed set, no path from a request
    ever reaches the filesystem."""

    def __init__(self) -> None:
        root = resources.files("hub.web") / "static"
        self.files: dict[str, tuple[bytes, str]] = {}
        for entry in root.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in STATIC_TYPES:
                self.files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])

    def response(self, name: str) -> web.Response:
        found = self.files.get(name)
        if found is None:
            raise json_error(web.HTTPNotFound, "no such file")
        body, content_type = found
        return web.Response(body=body, headers={"Content-Type": content_type})


STATIC = web.AppKey("static", StaticFiles)


@public
async def static_file(request: web.Request) -> web.Response:
    response = request.app[STATIC].response(request.match_info["name"])
    response.headers["Cache-Control"] = "no-cache"
    return response


@public
async def service_worker(request: web.Request) -> web.Response:
    """The push service worker, served from the root so that its scope covers the page
    (a worker under /static/ could only control /static/). `no-store` like every route
    outside /static/: the browser fetches it anew each time it checks for an update."""
    return request.app[STATIC].response("sw.js")


@public
async def index_page(request: web.Request) -> web.Response:
    return request.app[STATIC].response("index.html")


@public
async def health(request: web.Request) -> web.Response:
    """503 while the index fails, so a monitor sees it; the details are on the owner's
    page (it is public, and the error text is none of a stranger's business)."""
    if context(request).index.health.problem is not None:
        return json_response({"ok": False, "reason": "the index is failing"}, status=503)
    return json_response({"ok": True})


# -- the application -------------------------------------------------------------------


def make_app(ctx: WebContext) -> web.Application:
    from hub.web import (  # these import this one
        alert_routes,
        api,
        footage,
        settings_routes,
        share_pages,
    )

    app = web.Application(
        middlewares=[
            headers_middleware,
            errors_middleware,
            host_middleware,
            auth_middleware,
            body_middleware,
        ],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app[CONTEXT] = ctx
    app[HOSTS] = HostCheck.for_hub(ctx.listen_host, socket.gethostname(), ctx.origins)
    app[STATIC] = StaticFiles()
    app.router.add_get("/", index_page)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/sw.js", service_worker)
    app.router.add_get("/healthz", health)
    api.add_routes(app)
    alert_routes.add_routes(app)
    footage.add_routes(app)
    settings_routes.add_routes(app)
    share_pages.add_routes(app)
    app.on_response_prepare.append(drop_server_header)
    app.on_shutdown.append(_lock_all)
    return app


async def _lock_all(app: web.Application) -> None:
    """Shutdown drops every session, and with them the unlocked key."""
    app[CONTEXT].sessions.clear()


async def audit(ctx: WebContext, kind: AuditKind, actor: str, **detail: object) -> None:
    """Append to the access log before answering (a look at footage is on record before
    the footage leaves), off the event loop: the write waits for an fsync."""
    await asyncio.to_thread(ctx.audit.record, kind, actor, detail)


async def audit_refusal(
    ctx: WebContext, kind: AuditKind, client: str, actor: str, reason: str = "", **detail: object
) -> None:
    """An unauthenticated refusal: recorded unless the same client had one of this kind
    and reason within the minute; then it is counted into a summary (RepeatFilter)."""
    if ctx.repeats.admit(kind, client, actor, time.time(), reason):
        if reason:
            detail["reason"] = reason
        await audit(ctx, kind, actor, **detail)
