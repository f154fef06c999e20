"""The off-site copy's state for the hub's listeners (MQTT, the owner's alerts): one word
and a reason, made from the uploader's status. Pure logic; the `camera-watch` thread
samples it (hub/alerts/watch.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

BEHIND_AFTER = 600.0  # seconds the oldest pending file may wait before the copy is "behind"


class OffsiteHealth(StrEnum):
    OK = "ok"  # working, nothing old waiting
    BEHIND = "behind"  # working, but the oldest pending file waits longer than BEHIND_AFTER
    FAILING = "failing"  # the last attempts failed (the store, the network, the keys)
    OFF = "off"  # no [offsite] in the config


@dataclass(frozen=True, slots=True)
class CopyStatus:
    """What the uploader knows, read from its memory (never the queue's lock)."""

    working: bool | None  # None: nothing tried yet in this run
    error: str | None  # the last failure in words (never a key or a secret)
    pending: int  # files waiting for their copy
    oldest_queued: float | None  # when the oldest of them was queued (Unix seconds)
    last_success: float | None  # when the store last confirmed a copy (Unix seconds)


@dataclass(frozen=True, slots=True)
class OffsiteState:
    health: OffsiteHealth
    reason: str | None  # why failing or behind, in words; None when ok
    pending: int
    oldest_age: float | None  # seconds the oldest pending file has waited
    last_success: float | None


OFF = OffsiteState(OffsiteHealth.OFF, None, 0, None, None)


def offsite_state(
    status: CopyStatus, now: float, behind_after: float = BEHIND_AFTER
) -> OffsiteState:
    """Failing wins over behind: a copy that cannot reach its store is behind anyway.
    The reason words stay the same while the state holds, so that they are told once."""
    age = None if status.oldest_queued is None else max(0.0, now - status.oldest_queued)
    health, reason = OffsiteHealth.OK, None
    if status.working is False:
        health, reason = OffsiteHealth.FAILING, status.error or "unknown failure"
    elif age is not None and age > behind_after:
        health = OffsiteHealth.BEHIND
        reason = f"the oldest pending file waits more than {behind_after / 60:g} min"
    return OffsiteState(health, reason, status.pending, age, status.last_success)
