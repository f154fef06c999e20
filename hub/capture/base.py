"""What every camera source promises, and how its errors stay free of secrets."""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from hub.media import Frame, Packet, StreamInfo

T = TypeVar("T")

# user:password@ in any URL, and credential-looking query parameters (cheap cameras
# often take `?user=admin&pwd=...`).
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*):[^/\s]*@")
_SECRET_PARAM = re.compile(
    r"(?P<head>[?&;](?:pass|passwd|password|pwd|token|key|auth|secret|sig|signature)=)[^&;#\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Mask passwords and tokens in every URL inside `text`, so it can be logged or shown."""
    text = _USERINFO.sub(r"\g<head>:***@", text)
    return _SECRET_PARAM.sub(r"\g<head>***", text)


#: The owner's words for a failure no source explained (details are in the hub's log).
UNEXPLAINED = "the hub could not read the camera (see the hub's log)"


class SourceError(Exception):
    """A camera could not be reached, or its stream broke. The message (for the log)
    names the source; `reason` says what happened in the owner's words, without the
    URL, as the page shows it: "cannot connect: connection refused"."""

    def __init__(self, message: str, reason: str = UNEXPLAINED) -> None:
        super().__init__(redact(message))
        self.reason = reason


class Source(ABC):
    """One camera connection: open it, read until it ends or fails, close it.

    Sources are single-use: after `close()` (or a failure) make a new one to reconnect.
    Whether a source's stream can be recorded as it is shows only once it is open (an
    AVSource on MJPEG cannot be): so whatever is recorded is wrapped in an EncodingSource,
    which encodes raw pictures and passes an encoded stream through untouched.
    """

    name: str
    #: True when reaching the end of the stream is normal (a file), not a dropped camera.
    finite: bool = False

    @abstractmethod
    def open(self) -> StreamInfo | None:
        """Connect; return the encoded stream's description, or None for raw pictures."""

    @abstractmethod
    def read(self) -> Iterator[Packet | Frame]:
        """Yield packets and/or frames until the stream ends; raise SourceError on failure."""

    @abstractmethod
    def close(self) -> None:
        """Release the camera; idempotent and callable from another thread."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Guarded(Generic[T]):
    """Holds what a source reads from (a container, a device) across threads.

    `close()` may come from any thread, but freeing the resource under a read blocked in
    C would crash; so if a read is in progress on another thread, that thread frees it
    when it wakes up (next picture, or the source's read timeout).
    """

    def __init__(self, free: Callable[[T], object]) -> None:
        self.closed = threading.Event()
        self._free = free
        self._lock = threading.Lock()
        self._item: T | None = None
        self._reader: int | None = None

    @property
    def item(self) -> T | None:
        return self._item

    def hold(self, item: T) -> bool:
        """Keep `item`; False, with `item` freed, if the source was closed meanwhile."""
        with self._lock:
            self._drop()
            self._item = item
        if self.closed.is_set():
            self.close()
            return False
        return True

    def drop(self) -> None:
        """Free the held item now (from the reading thread, or when nobody reads)."""
        with self._lock:
            self._drop()

    def close(self) -> None:
        self.closed.set()
        with self._lock:
            if self._reader in (None, threading.get_ident()):
                self._drop()

    @contextmanager
    def reading(self) -> Iterator[T | None]:
        """Mark the calling thread as the reader while it reads the held item (None if
        there is none: never opened, or closed already)."""
        with self._lock:
            self._reader = threading.get_ident()
            item = self._item
        try:
            yield item
        finally:
            with self._lock:
                self._reader = None
                if self.closed.is_set():
                    self._drop()

    def _drop(self) -> None:
        item, self._item = self._item, None
        if item is not None:
            self._free(item)
