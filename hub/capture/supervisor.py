"""Keeping one camera connected: reconnect with backoff, survive handler errors, stop on request."""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from hub.capture.base import UNEXPLAINED, Source, SourceError, redact
from hub.media import Frame, Packet, StreamInfo

log = logging.getLogger(__name__)

STOP_DRAIN = 1.0  # seconds a stopping loop still hands on what its closed source yields
ENDED = "stream ended"


@dataclass(frozen=True, slots=True)
class CaptureStatus:
    """A snapshot for the UI and health checks; replaced whole, so reading it is safe."""

    connected: bool
    reconnects: int  # reconnection attempts since start
    last_error: str | None  # the latest failure, kept after recovery; free of secrets
    reason: str | None  # the same in the owner's words, without the URL (SourceError.reason)
    since: float  # Unix time `connected` last changed
    finished: bool = False  # a file reached its end; the loop has stopped for good


def backoff_delay(failures: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait after `failures` failures in a row (>= 1): doubling from `initial`
    up to `maximum`, each wait shortened by up to half at random so that cameras that
    dropped together (a router restart) do not all come knocking at the same moment."""
    ceiling = min(maximum, initial * 2 ** min(failures - 1, 32))
    return ceiling * rng.uniform(0.5, 1.0)


class CaptureLoop:
    """Runs one camera in its own daemon thread, so one camera failing touches no other.

    Each connection calls `on_stream` with the source's StreamInfo (None for raw
    sources; it may differ after a reconnect), then `on_item` for every packet and frame.
    A connection that fails or ends is closed and reopened after a backoff, which starts
    over once a connection has delivered for `healthy_after` seconds. An exception in a
    handler is logged and treated like a dropped connection. A finite source (a file
    without loop) that ends stops the loop, with `status.finished` set.
    """

    def __init__(
        self,
        camera_id: str,
        make_source: Callable[[], Source],
        on_stream: Callable[[StreamInfo | None], None],
        on_item: Callable[[Packet | Frame], None],
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        healthy_after: float = 30.0,
    ) -> None:
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(
                f"need 0 < backoff_initial <= backoff_max, got {backoff_initial}, {backoff_max}"
            )
        self.camera_id = camera_id
        self.status = CaptureStatus(
            connected=False, reconnects=0, last_error=None, reason=None, since=time.time()
        )
        self._make_source = make_source
        self._on_stream = on_stream
        self._on_item = on_item
        self._backoff = (backoff_initial, backoff_max)
        self._healthy_after = healthy_after
        self._rng = random.Random()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._source: Source | None = None
        self._thread: threading.Thread | None = None
        self._flowing_since: float | None = None  # when the current connection's items began

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: capture already started")
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{self.camera_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the source to unblock the thread, and wait up to `timeout` for it."""
        self._stop.set()
        with self._lock:
            source = self._source
        if source is not None:
            source.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "camera %s: capture still winding down after %.1f s", self.camera_id, timeout
                )

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._flowing_since = None
            try:
                finished = self._session()
                error, reason = (None, None) if finished else (ENDED, "the camera ended its stream")
            except SourceError as err:
                finished, error, reason = False, str(err), err.reason
            except Exception as err:
                finished, error = False, f"{type(err).__name__} in capture: {redact(str(err))}"
                reason = UNEXPLAINED
                trace = redact("".join(traceback.format_exception(err))).rstrip()
                log.warning("camera %s: %s", self.camera_id, trace)
            if self._stop.is_set():
                break
            if finished:
                self._update(connected=False, finished=True)
                log.info("camera %s: reached the end of its stream", self.camera_id)
                return
            flowed = time.monotonic() - (self._flowing_since or time.monotonic())
            failures = 1 if flowed >= self._healthy_after else failures + 1
            self._report_failure(error, reason)
            self._stop.wait(backoff_delay(failures, *self._backoff, self._rng))
        self._update(connected=False)

    def _session(self) -> bool:
        """One connection, start to end; True if it ended as a finite source does."""
        source = self._make_source()
        with self._lock:
            self._source = source
        try:
            if self._stop.is_set():
                return False
            info = source.open()
            self._update(connected=True)
            log.info("camera %s: connected to %s", self.camera_id, source.name)
            self._on_stream(info)
            items = source.read()
            for item in items:
                if self._flowing_since is None:
                    self._flowing_since = time.monotonic()
                self._on_item(item)
                if self._stop.is_set():
                    self._take_rest(items)
                    return False
            return source.finite
        finally:
            with self._lock:
                self._source = None
            source.close()

    def _take_rest(self, items: Iterator[Packet | Frame]) -> None:
        """Stopping: what the closed source still yields (an encoder's last sound) is
        handed on, for at most STOP_DRAIN seconds."""
        deadline = time.monotonic() + STOP_DRAIN
        for item in items:
            self._on_item(item)
            if time.monotonic() > deadline:
                return

    def _report_failure(self, error: str | None, reason: str | None) -> None:
        was = self.status
        self._update(
            connected=False, last_error=error, reason=reason, reconnects=was.reconnects + 1
        )
        if was.connected:
            log.info("camera %s: disconnected: %s", self.camera_id, error)
        elif error != was.last_error:  # a camera that stays down is reported once
            log.info("camera %s: cannot connect: %s", self.camera_id, error)

    def _update(self, *, connected: bool, **changes: Any) -> None:
        status = self.status
        since = time.time() if connected != status.connected else status.since
        self.status = replace(status, connected=connected, since=since, **changes)
