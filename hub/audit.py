"""The access log: one record per look at footage or security event, hash-chained.

Each record's hash covers the previous record's hash and all of its own fields, so
editing, deleting or reordering a record anywhere before the newest breaks the chain
at that record, and `verify` names it. The chain proves the log was not *altered*;
someone with the disk can still cut records off its end, which `verify` reports only
as a count lower than the owner remembers (docs/DESIGN.md says why that is accepted).

Records never carry secrets: no password, no session token, no share secret. Share
links are named by their public id only.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from hub.store import AuditRow, Index

log = logging.getLogger(__name__)

GENESIS = ""  # the "previous hash" of the first record
VERIFY_PAGE = 1000
REPEAT_WINDOW = 60.0  # seconds over which repeated refusals from one client are summed
REPEAT_KEYS = 256  # runs tracked at once; past that, the rest are summed together
OTHER_CLIENTS = "other clients"


class AuditKind(enum.StrEnum):
    LOGIN_OK = "login ok"
    LOGIN_FAILED = "login failed"
    LOGIN_THROTTLED = "login throttled"
    LOGOUT = "logout"
    SESSION_EXPIRED = "session expired"
    VAULT_UNLOCKED = "vault unlocked"
    LIVE_START = "live view started"
    LIVE_STOP = "live view stopped"
    SNAPSHOT = "snapshot served"
    CLIP = "clip served"
    SHARE_CREATED = "share created"
    SHARE_USED = "share used"
    SHARE_REFUSED = "share refused"
    SHARE_REVOKED = "share revoked"
    SHARE_EXPIRED = "share expired"
    PASSWORD_CHANGED = "password changed"
    CONFIG_CHANGED = "config changed"
    RETENTION = "retention deleted footage"
    HUB_STARTED = "hub started"


def chain_hash(prev: str, seq: int, when: float, kind: str, actor: str, detail: str) -> str:
    """SHA-256 over the previous hash and this record, as canonical JSON (no ambiguity
    between fields, whatever they contain)."""
    body = json.dumps([prev, seq, repr(when), kind, actor, detail], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `verify` found: how many records hold together, and the first that does not."""

    records: int
    first_broken: int | None  # seq of the first record whose link or hash fails
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


class AuditLog:
    """Appends records to the index's audit table; safe to use from any thread."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def record(
        self, kind: AuditKind, actor: str, detail: Mapping[str, object] | None = None
    ) -> AuditRow:
        text = json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"))
        return self._index.append_audit(time.time(), kind.value, actor, text, chain_hash)

    def record_repeats(self, runs: list[Repeats]) -> None:
        """The summaries of refusals that a RepeatFilter held back."""
        for run in runs:
            self.record(run.kind, run.actor, {"repeats": run.repeats, "seconds": run.seconds})

    def recent(self, before: int = 0, limit: int = 100) -> list[AuditRow]:
        """Newest first, from just before seq `before` (0: the newest)."""
        return self._index.audit_records(before, limit, newest_first=True)

    def verify(self) -> Verdict:
        """Walk the whole chain, a page at a time, and name the first broken record."""
        prev, expected_seq, count = GENESIS, 1, 0
        after = 0
        while rows := self._index.audit_records(after, VERIFY_PAGE):
            for row in rows:
                if row.seq != expected_seq:
                    return Verdict(
                        count, row.seq, f"record {expected_seq} is missing before {row.seq}"
                    )
                digest = chain_hash(prev, row.seq, row.time, row.kind, row.actor, row.detail)
                if digest != row.hash:
                    return Verdict(
                        count,
                        row.seq,
                        f"record {row.seq} was altered, or a record before it was",
                    )
                prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
            after = rows[-1].seq
        return Verdict(count, None, None)


@dataclass(slots=True)
class _Run:
    actor: str
    since: float
    repeats: int = 0


@dataclass(frozen=True, slots=True)
class Repeats:
    """A run of the same refusal from one client: the refusals after the first."""

    kind: AuditKind
    actor: str
    repeats: int
    seconds: float


@dataclass
class RepeatFilter:
    """Keeps anyone on the network from filling the access log (and the disk, whose
    free-space floor would then delete footage) with refusals that cost them nothing:
    a refused share link, a login turned away by the throttle. The first refusal per
    kind, client and reason in a window is recorded as it happens; the rest are counted
    and recorded as one summary when the window ends. Thread-safe."""

    window: float = REPEAT_WINDOW
    max_clients: int = REPEAT_KEYS
    _runs: dict[tuple[AuditKind, str, str], _Run] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, kind: AuditKind, client: str, actor: str, now: float, reason: str = "") -> bool:
        """Whether to record this refusal now (else it is counted for the summary)."""
        with self._lock:
            key = (kind, client, reason)
            if key not in self._runs and len(self._runs) >= self.max_clients:
                key = (kind, OTHER_CLIENTS, "")
            run = self._runs.get(key)
            if run is None:
                self._runs[key] = _Run(actor if key[1] == client else OTHER_CLIENTS, now)
                return True
            run.repeats += 1
            return False

    def due(self, now: float, *, everything: bool = False) -> list[Repeats]:
        """End the runs whose window is over (all of them at shutdown); the ones with
        repeats are returned to be written as summaries."""
        with self._lock:
            ended = [
                key
                for key, run in self._runs.items()
                if everything or now - run.since >= self.window
            ]
            runs = [(key, self._runs.pop(key)) for key in ended]
        return [
            Repeats(kind, run.actor, run.repeats, round(now - run.since, 1))
            for (kind, _, _), run in runs
            if run.repeats
        ]
