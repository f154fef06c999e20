"""The alert thread: event starts from the bus, through the policy, to every target;
and the off-site copy's notices (hub/alerts/offsite_notice.py), through the snooze and
quiet hours.

It is a bus listener like the MQTT publisher: the camera threads never wait for it, and
it may take its time. Each delivery gets at most `ATTEMPTS` tries with waits between
them and a timeout on each request, so a receiver that is away costs a few requests per
alert, never a loop. A target that keeps failing logs one line, then one per interval
with a count (RepeatedFailure), and shows its state on the page.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hub.alerts.bus import AlertBus
from hub.alerts.delivery import Alert, Delivery, DeliveryFailed
from hub.alerts.happenings import EventChanged, OffsiteChanged, Phase
from hub.alerts.offsite_notice import OffsiteNotices
from hub.alerts.policy import AlertPolicy, Choices, Verdict
from hub.logs import RepeatedFailure

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_WAITS = (2.0, 10.0)  # seconds before the second and the third attempt
MAX_TESTS = 4  # test alerts waiting at most; more presses of the button are dropped


class Target(Protocol):
    def deliveries(self, alert: Alert, *, test: bool = False) -> list[Delivery]: ...


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """For the page; replaced whole, so reading it from any thread is safe."""

    target: str  # "push" or "webhook"
    state: str  # "idle" (nothing sent yet), "ok" or "failing"
    detail: str  # what failed last, with the receiver's host; "" when nothing did
    since: float  # when the state last changed
    sent: int = 0
    failed: int = 0


class AlertSender:
    """Turns event starts into alerts on its own thread, from `start` to `stop`."""

    def __init__(
        self,
        bus: AlertBus,
        policy: AlertPolicy,
        choices: Callable[[], Choices],
        targets: dict[str, Target],
        names: dict[str, str],
        *,
        waits: tuple[float, ...] = RETRY_WAITS,
        clock: Callable[[], float] = time.time,
        offsite: OffsiteNotices | None = None,
        told: Callable[[Alert, list[str]], None] | None = None,
    ) -> None:
        """`offsite`: when the owner hears of the off-site copy; `told`: called with
        each off-site notice that went out and the targets it reached (the access log)."""
        self._bus = bus
        self._policy = policy
        self._choices = choices
        self._targets = targets
        self._names = names
        self._waits = waits
        self._clock = clock
        self._offsite = offsite if offsite is not None else OffsiteNotices()
        self._told = told
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._subscription = bus.subscribe(notify=self._wake.set)
        self._tests: deque[Alert] = deque(maxlen=MAX_TESTS)
        self._failures: dict[tuple[str, str], RepeatedFailure] = {}
        self._dropped = 0  # event records the bus dropped for this thread, as told
        now = clock()
        self._status = {name: TargetStatus(name, "idle", "", now) for name in targets}
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends after the delivery in flight (bounded by its timeout, not waited for)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._bus.unsubscribe(self._subscription)

    def test(self) -> None:
        """Send a test alert to every target, past the policy (the owner asked for it)."""
        self._tests.append(Alert("", "camhub test alert", None, self._clock()))
        self._wake.set()

    def statuses(self) -> list[TargetStatus]:
        return list(self._status.values())

    def rename(self, names: dict[str, str]) -> None:
        """The cameras' names after a change on the page; replaced whole, so the alert
        thread reads either the old names or the new ones."""
        self._names = dict(names)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            for happening in self._subscription.drain():
                if isinstance(happening, EventChanged) and happening.phase is Phase.START:
                    self._consider(happening)
                elif isinstance(happening, OffsiteChanged):
                    self._consider_offsite(happening)
            self._tell_dropped()
            while self._tests and not self._stopping.is_set():
                self._deliver(self._tests.popleft(), test=True)

    def _tell_dropped(self) -> None:
        """Event records the bus dropped while slow deliveries held this thread: their
        starts were never considered, which the log must say (the index has them)."""
        dropped = self._subscription.dropped
        if dropped > self._dropped:
            log.warning(
                "alerts: %d event record(s) dropped while deliveries were slow; "
                "those events were not alerted",
                dropped - self._dropped,
            )
            self._dropped = dropped

    def _consider(self, event: EventChanged) -> None:
        choices = self._read_choices()
        verdict = self._policy.decide(event.camera_id, event.start, choices, self._clock())
        if verdict is not Verdict.SEND:
            log.debug(
                "alerts: event %d on %s not alerted: %s",
                event.event_id,
                event.camera_id,
                verdict.value,
            )
            return
        name = self._names.get(event.camera_id, event.camera_id)
        self._deliver(Alert(event.camera_id, name, event.event_id, event.start), test=False)

    def _consider_offsite(self, happening: OffsiteChanged) -> None:
        notice = self._offsite.due(happening.state, happening.time)
        if notice is None:
            return
        verdict = self._policy.decide_hub(self._read_choices(), self._clock())
        if verdict is not Verdict.SEND:
            log.debug("alerts: off-site notice %s held back: %s", notice.value, verdict.value)
            return  # still due at the next sample
        self._offsite.told(notice)
        alert = Alert.of_offsite(notice, happening.state.reason, self._clock())
        reached = self._deliver(alert, test=False)
        if self._told is not None:
            self._told(alert, reached)

    def _read_choices(self) -> Choices:
        try:
            return self._choices()
        except sqlite3.Error as exc:  # better an alert too many than a missed one
            log.warning("alerts: the owner's choices cannot be read (%s); alerting anyway", exc)
            return Choices()

    def _deliver(self, alert: Alert, *, test: bool) -> list[str]:
        """Every target's deliveries; the receivers (`where`) that got it."""
        reached: list[str] = []
        for name, target in self._targets.items():
            try:
                deliveries = target.deliveries(alert, test=test)
            except sqlite3.Error as exc:  # the subscriptions cannot be read
                self._failed(name, "the index", str(exc))
                continue
            for delivery in deliveries:
                if self._stopping.is_set():
                    return reached
                if self._attempt(delivery):
                    reached.append(delivery.where)
        return reached

    def _attempt(self, delivery: Delivery) -> bool:
        for attempt in range(ATTEMPTS):
            try:
                delivery.send()
            except DeliveryFailed as exc:
                last = attempt + 1 == ATTEMPTS or not exc.retry
                if last or self._stopping.wait(self._waits[min(attempt, len(self._waits) - 1)]):
                    self._failed(delivery.target, delivery.where, str(exc))
                    return False
            except Exception as exc:  # a bug must not end the alert thread
                if not self._failure(delivery.target, delivery.where).failing:
                    log.exception("alerts: sending to %s failed", delivery.where)
                self._failed(delivery.target, delivery.where, type(exc).__name__)
                return False
            else:
                self._sent(delivery)
                return True
        return False

    def _failure(self, target: str, where: str) -> RepeatedFailure:
        """One per receiver: its failures are logged once, then once per interval."""
        key = (target, where)
        if key not in self._failures:
            what = "Web Push" if target == "push" else "the webhook"
            self._failures[key] = RepeatedFailure(f"{what} to {where}")
        return self._failures[key]

    def _failed(self, target: str, where: str, detail: str) -> None:
        self._failure(target, where).failed(detail, time.monotonic())
        old = self._status[target]
        since = old.since if old.state == "failing" else self._clock()
        self._status[target] = TargetStatus(
            target, "failing", f"{where}: {detail}", since, old.sent, old.failed + 1
        )

    def _sent(self, delivery: Delivery) -> None:
        self._failure(delivery.target, delivery.where).succeeded()
        old = self._status[delivery.target]
        since = old.since if old.state == "ok" else self._clock()
        self._status[delivery.target] = TargetStatus(
            delivery.target, "ok", "", since, old.sent + 1, old.failed
        )
