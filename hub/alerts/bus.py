"""The in-process bus: camera threads publish happenings, listeners take them when ready.

A camera thread must never wait for a listener (the MQTT broker may be away for hours,
a page's stream may stall), so `publish` only touches memory under short locks. Each
subscription is its own bounded queue: a state (a camera's motion, its status) keeps
one slot, the newest replacing what is still pending; event records are kept up to
`max_records`, the oldest dropped and counted when a listener falls that far behind.
A new subscription starts with the current states, so a late listener knows them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hub.alerts.happenings import Happening

log = logging.getLogger(__name__)

MAX_RECORDS = 64  # pending event records per subscription


class Subscription:
    """One listener's pending happenings, in the order they first came."""

    def __init__(self, notify: Callable[[], None] | None, max_records: int) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        self._notify = notify
        self._max_records = max_records
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, ...], Happening] = {}
        self._records = 0  # pending items that are event records, not states
        self.dropped = 0  # event records dropped because this listener fell behind

    def drain(self) -> list[Happening]:
        """Everything pending, oldest first; never waits."""
        with self._lock:
            taken = list(self._pending.values())
            self._pending.clear()
            self._records = 0
        return taken

    def _offer(self, happening: Happening) -> None:
        key = happening.key
        with self._lock:
            if key in self._pending:
                self._pending[key] = happening  # the newest wins, in the first one's place
                return
            if not happening.is_state:
                if self._records == self._max_records:
                    oldest = next(k for k, h in self._pending.items() if not h.is_state)
                    del self._pending[oldest]
                    self._records -= 1
                    self.dropped += 1
                self._records += 1
            self._pending[key] = happening

    def _wake(self) -> None:
        """Tell the listener there is something to drain. `notify` must neither block nor
        raise (threading.Event.set, loop.call_soon_threadsafe); if it raises anyway, the
        publishing camera thread goes on."""
        if self._notify is None:
            return
        try:
            self._notify()
        except Exception as exc:  # a broken listener must not stop a camera
            log.warning("an alert listener could not be woken: %s", exc)


class AlertBus:
    """Happenings from any thread to every subscription; the current states kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._states: dict[tuple[str, ...], Happening] = {}

    def publish(self, happening: Happening) -> None:
        """Hand a happening to every listener; costs a few dictionary operations."""
        with self._lock:
            if happening.is_state:
                self._states[happening.key] = happening
            subscriptions = tuple(self._subscriptions)
            for subscription in subscriptions:
                subscription._offer(happening)
        for subscription in subscriptions:
            subscription._wake()

    def subscribe(
        self, notify: Callable[[], None] | None = None, max_records: int = MAX_RECORDS
    ) -> Subscription:
        """A new listener, with the current states already pending."""
        subscription = Subscription(notify, max_records)
        with self._lock:
            for state in self._states.values():
                subscription._offer(state)
            self._subscriptions.append(subscription)
        subscription._wake()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.remove(subscription)

    def states(self) -> list[Happening]:
        """The newest state of everything, e.g. to tell a broker again after it restarted."""
        with self._lock:
            return list(self._states.values())
