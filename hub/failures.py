"""A failure that repeats, logged once per interval with a count, never per occurrence."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

REPEAT_INTERVAL = 300.0  # a failure that goes on is logged again, with a count, this often


class RepeatedFailure:
    """Logs a failure that repeats once per interval with a count, never per occurrence:
    a damaged index fails every round, and a log that grows by a traceback a round
    buries the one line that says what is wrong."""

    def __init__(self, what: str, interval: float = REPEAT_INTERVAL) -> None:
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
