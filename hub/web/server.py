"""Runs the web app on its own thread and event loop, beside the camera threads.

The edge a flood meets is here: connections past the cap (hub/web/connections.py) are
closed as they are accepted; a TLS handshake and a request's headers each get
HEADER_SECONDS, an idle keep-alive connection KEEPALIVE_SECONDS (a body's time limit is
a middleware in app.py); errors the HTTP parser answers itself carry our JSON shape and
no Server header; and repeated errors are logged once a minute (hub/logs.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from hub.logs import limit_repeats, printable
from hub.web.connections import CappedListener, ConnectionBudget, current_cap, listeners

log = logging.getLogger(__name__)
START_TIMEOUT = 15.0
HEADER_SECONDS = 10.0  # from connect (or TLS handshake) to a complete request head
KEEPALIVE_SECONDS = 15.0  # idle between requests; also bounds a later request's head


class PathOnlyAccessLog(AbstractAccessLogger):
    """Method, path and status: never the query string, cookies or other headers. The
    path is escaped: a request's %0d%0a or %00 must not forge or break a log line."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %s %d %.3fs",
            request.remote,
            request.method,
            printable(request.path),
            response.status,
            time,
        )


HANDLER_OPTIONS: dict[str, Any] = {
    "access_log_class": PathOnlyAccessLog,
    "keepalive_timeout": KEEPALIVE_SECONDS,
    "lingering_time": 2.0,  # reading what is left of a refused request's body
}


class _BareResponse(web.Response):
    """A response without aiohttp's Server header, for errors answered below the app
    (whose own responses lose it in app.py's on_response_prepare). aiohttp adds the
    header in _prepare_headers, so it is taken out right after."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Server", None)


class _Handler(web.RequestHandler):
    """aiohttp's protocol with a deadline for the first request's head, and its own
    error answers in our JSON shape, without a traceback per bad request."""

    __slots__ = ("_head_deadline",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_deadline = self._loop.call_later(HEADER_SECONDS, self._head_overdue)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._head_deadline.cancel()
        super().connection_lost(exc)

    def _head_overdue(self) -> None:
        """No complete request head in time: a slow client, or an idle one. Later
        requests are bounded by the keep-alive timer, which aiohttp rearms after each."""
        if self._request_count == 0:  # aiohttp's count of request heads parsed here
            self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("error handling a request from %s", request.remote, exc_info=exc)
        else:
            self.logger.debug("bad request from %s (%d)", request.remote, status)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; no error can follow it")
        response = _BareResponse(
            status=status,
            text=json.dumps({"error": HTTPStatus(status).phrase}),
            content_type="application/json",
        )
        response.force_close()
        return response


class _CappedSite(web.BaseSite):
    """Serves one capped listening socket with our protocol."""

    __slots__ = ("_sock",)

    def __init__(
        self, runner: web.AppRunner, sock: CappedListener, ssl_context: ssl.SSLContext | None
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._sock = sock

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{'https' if self._ssl_context else 'http'}://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None

        def protocol() -> _Handler:
            return _Handler(server, loop=loop, **HANDLER_OPTIONS)

        tls = {"ssl_handshake_timeout": HEADER_SECONDS} if self._ssl_context else {}
        self._server = await loop.create_server(
            protocol, sock=self._sock, ssl=self._ssl_context, **tls
        )


class WebServer:
    """The owner's page and API, served until `stop()`."""

    def __init__(
        self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._stopped = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self.port = port
        self.budget = ConnectionBudget(current_cap())

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve; raises OSError (address in use, ...) if it cannot."""
        limit_repeats()
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise OSError(f"the web server did not start within {START_TIMEOUT:.0f} s")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        runner = web.AppRunner(self._app, shutdown_timeout=2.0, **HANDLER_OPTIONS)
        try:
            await runner.setup()
            socks = listeners(self._host, self._port, self.budget)
            for sock in socks:
                await _CappedSite(runner, sock, self._ssl).start()
            self.port = socks[0].getsockname()[1]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            return
        log.info(
            "web connections capped at %d (%d per client)",
            self.budget.total,
            self.budget.per_client,
        )
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()
