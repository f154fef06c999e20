"""Runs the web app on its own thread and event loop, beside the camera threads."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger(__name__)
START_TIMEOUT = 15.0


class PathOnlyAccessLog(AbstractAccessLogger):
    """Method, path and status: never the query string, cookies or other headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %s %d %.3fs",
            request.remote,
            request.method,
            request.path,
            response.status,
            time,
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

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve; raises OSError (address in use, ...) if it cannot."""
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
        runner = web.AppRunner(self._app, access_log_class=PathOnlyAccessLog, shutdown_timeout=2.0)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl)
            await site.start()
            sockets = runner.addresses
            if sockets:
                self.port = sockets[0][1]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()
