"""What reaches the hub's log: one line per repeated error per minute, a failing task
said once per interval (RepeatedFailure), and request text escaped so it cannot forge
lines.

A flood (connections past the cap, a full descriptor table in asyncio's accept loop,
garbage requests) repeats the same error thousands of times a second, and a damaged
index fails every piece of a camera's disk work; logged each time, with a traceback,
it fills the disk the footage lives on. So a record whose logger,
level and message template were already logged within the interval is counted, not
written, and the next one written after the interval says how many were left out.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

REPEAT_INTERVAL = 60.0
FAILURE_INTERVAL = 300.0  # a task's failure that goes on is logged again this often
# The loggers a client or a failing disk can make repeat: asyncio's accept loop,
# aiohttp's protocol and web layers, ours, and the cameras' disk writers. The access
# log (debug, one line per request) is left alone.
NOISY_LOGGERS = (
    "asyncio",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.internal",
    "hub.web.app",
    "hub.web.connections",
    "hub.web.server",
    "hub.writer",
)


def printable(text: str) -> str:
    """Request text for a log line: control characters (CR, LF, NUL, ...), backslashes
    and non-ASCII escaped, so a path like /%0d%0aFAKE stays on its own line."""
    return text.encode("unicode_escape").decode("ascii")


class RepeatLogFilter(logging.Filter):
    """Lets a WARNING-or-worse record through once per interval per (logger, level,
    template); counts the others into the next one let through."""

    def __init__(self, interval: float = REPEAT_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last, left_out = self._seen.get(key, (-self.interval, 0))
            if now - last < self.interval:
                self._seen[key] = (last, left_out + 1)
                return False
            self._seen[key] = (now, 0)
        if left_out:
            record.msg = f"{record.msg} [{left_out} more like this in the last {now - last:.0f} s]"
        return True


_FILTER = RepeatLogFilter()


def limit_repeats() -> None:
    """Put the repeat filter on the noisy loggers (once; later calls change nothing)."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class RepeatedFailure:
    """Logs a failure that repeats once per interval with a count, never per occurrence:
    a damaged index fails every round, and a log that grows by a traceback a round
    buries the one line that says what is wrong."""

    def __init__(self, what: str, interval: float = FAILURE_INTERVAL) -> None:
        self.what = what
        self.interval = interval
        self._said: float | None = None  # when the current run of failures was last logged
        self._unsaid = 0  # failures since

    @property
    def failing(self) -> bool:
        return self._said is not None

    def failed(self, message: str, now: float, count: int = 1) -> None:
        if self._said is None:
            log.error("%s failed: %s; retrying", self.what, message)
            self._said, self._unsaid = now, 0
            return
        self._unsaid += count
        if now - self._said >= self.interval:
            log.error(
                "%s still failing: %d time(s) in the last %.0f s: %s",
                self.what,
                self._unsaid,
                now - self._said,
                message,
            )
            self._said, self._unsaid = now, 0

    def succeeded(self) -> None:
        if self._said is not None:
            log.warning("%s works again", self.what)
            self._said, self._unsaid = None, 0
