"""What an alert is, and how one delivery of it can end: the vocabulary of the targets.

An alert says which camera saw motion and when, and where the page shows the event,
or that the off-site copy fails (in the store's words) or works again: nothing else, so
a push service or a webhook receiver learns no more than that.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass

import requests

from hub.alerts.offsite_notice import OffsiteNotice

TIMEOUT = (5.0, 10.0)  # seconds to connect, and to wait for each read of the answer

# urllib3 logs each request's URL at debug level, and a webhook's or a subscription's
# path is a token: even `log_level = "debug"` must not write it.
logging.getLogger("urllib3").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class Alert:
    camera_id: str
    camera_name: str
    event_id: int | None  # None for the owner's test alert
    time: float  # the event's start, or when the notice was decided (Unix seconds)
    offsite: OffsiteNotice | None = None  # a notice about the off-site copy, not motion
    reason: str | None = None  # why the copy fails, in the store's words

    @property
    def path(self) -> str:
        """Where the page opens the event (after login): relative to the hub's origin."""
        if self.offsite is not None:
            return "/"
        return f"/#event-{self.event_id}" if self.event_id is not None else "/#events"

    @classmethod
    def of_offsite(cls, notice: OffsiteNotice, reason: str | None, time: float) -> Alert:
        return cls("", "", None, time, notice, reason)


class DeliveryFailed(Exception):
    """One delivery did not arrive; `retry` when trying again may help (a timeout, a
    5xx, 429), not when the receiver refused it (another 4xx). The message carries no
    secret and no URL path."""

    def __init__(self, detail: str, *, retry: bool) -> None:
        super().__init__(detail)
        self.retry = retry


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one receiver: `send` returns when it arrived, or raises
    DeliveryFailed. `where` names the receiver for the log and the page (a host)."""

    target: str  # "push" or "webhook": whose status it counts in
    where: str
    send: Callable[[], None]


def http_failure(status: int) -> DeliveryFailed:
    return DeliveryFailed(f"HTTP {status}", retry=status >= 500 or status in (408, 429))


def network_failure(exc: requests.RequestException) -> DeliveryFailed:
    """A failed request in words of our own: requests' messages quote the whole URL,
    whose path may be a token (an ntfy topic, a push subscription)."""
    if isinstance(exc, requests.Timeout):
        return DeliveryFailed("timed out", retry=True)
    if isinstance(exc, requests.exceptions.SSLError):
        return DeliveryFailed("TLS handshake failed (certificate not trusted?)", retry=True)
    if isinstance(exc, requests.ConnectionError):
        return DeliveryFailed(f"cannot connect ({_os_reason(exc)})", retry=True)
    return DeliveryFailed(f"request failed ({type(exc).__name__})", retry=True)


def _os_reason(exc: BaseException) -> str:
    """The innermost OS error's words (connection refused, name not known...)."""
    seen: BaseException | None = exc
    reason = "network error"
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            reason = errno.errorcode.get(seen.errno, str(seen.errno))
            reason = seen.strerror or reason
        elif "NameResolution" in type(seen).__name__:
            reason = "host name not found"
        seen = seen.__cause__ or seen.__context__
    return reason
