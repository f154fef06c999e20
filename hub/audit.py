"""The access log: one record per look at footage or security event, hash-chained.

Each record's hash covers the previous record's hash and all of its own fields, so
editing, deleting or reordering a record breaks the chain at that record, and `verify`
names it, unless every later hash is recomputed, which anyone who can write the
database can do. The owner's seal closes that: see `AuditLog` and docs/DESIGN.md §7.

Records never carry secrets: no password, no session token, no share secret. Share
links are named by their public id only.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.store import AuditRow, AuditSeal, Index

log = logging.getLogger(__name__)

GENESIS = ""  # the "previous hash" of the first record
SEAL_INFO = b"camhub access-log seal v1"
VERIFY_PAGE = 1000
REPEAT_WINDOW = 60.0  # seconds over which repeated refusals from one client are summed
REPEAT_KEYS = 256  # runs tracked at once; past that, the rest are summed together
# A page view's snapshots: the first is recorded as it is served; the ones that follow
# within BURST_QUIET s of the one before (for at most BURST_LONGEST s, BURST_MOST of
# them) go in one record listing them, written when the burst ends.
BURST_QUIET = 5.0
BURST_LONGEST = 60.0
BURST_MOST = 200
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
    SNAPSHOTS = "snapshots served"
    CLIP = "clip served"
    CLIP_DOWNLOADED = "clip downloaded"
    FOOTAGE_DELETED = "footage deleted by the owner"
    SHARE_CREATED = "share created"
    SHARE_USED = "share used"
    SHARE_REFUSED = "share refused"
    SHARE_REVOKED = "share revoked"
    SHARE_EXPIRED = "share expired"
    PASSWORD_CHANGED = "password changed"
    PASSWORD_REFUSED = "password change refused"
    SETTINGS_CHANGED = "settings changed"
    CONFIG_CHANGED = "config changed"
    RETENTION = "retention deleted footage"
    HUB_STARTED = "hub started"
    ALERT_TARGET_ADDED = "alert target added"
    ALERT_TARGET_REMOVED = "alert target removed"
    ALERTS_CHANGED = "alert settings changed"
    ALERT_TEST = "test alert sent"
    OFFSITE_ALERT = "off-site alert sent"
    WEBHOOK_SET = "webhook target set"
    RESTORED = "footage restored"


def chain_hash(prev: str, seq: int, when: float, kind: str, actor: str, detail: str) -> str:
    """SHA-256 over the previous hash and this record, as canonical JSON (no ambiguity
    between fields, whatever they contain)."""
    body = json.dumps([prev, seq, repr(when), kind, actor, detail], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `verify` found: how many records hold together, the first that does not,
    and how far the owner's seal reaches."""

    records: int
    first_broken: int | None  # seq of the first record whose link, hash or seal fails
    reason: str | None
    sealed_through: int | None = None  # the newest record the owner's key vouched for
    sealed_at: float | None = None
    seal_checked: bool = False  # whether the seal's MAC was checked (needs the key)

    @property
    def ok(self) -> bool:
        return self.first_broken is None


@dataclass(frozen=True, slots=True)
class _Walk:
    count: int  # records that hold together, from the start of the walk
    last: AuditRow | None  # the last of them
    broken: tuple[int, str] | None  # (seq, why) of the first that does not
    watched: str | None = None  # the hash of the record the walk was asked to watch


def seal_key(private_key: X25519PrivateKey) -> bytes:
    """The key of the seal's MAC: derived from the owner's private key, so only an
    unlocked session can make a seal, and nothing on the disk can."""
    return HKDF(hashes.SHA256(), 32, salt=None, info=SEAL_INFO).derive(
        private_key.private_bytes_raw()
    )


def _seal_mac(key: bytes, seq: int, digest: str, when: float) -> str:
    body = json.dumps([seq, digest, repr(when)], separators=(",", ":")).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _seal_holds(key: bytes, seal: AuditSeal) -> bool:
    return hmac.compare_digest(_seal_mac(key, seal.seq, seal.hash, seal.time), seal.mac)


class AuditLog:
    """Appends records to the index's audit table; safe to use from any thread.

    The chain alone can be recomputed by anyone who can write the database. So while
    the owner is logged in, the hub *seals* the newest record: a MAC under a key only
    the owner's unlocked private key yields (`seal_key`). Records up to the seal can
    then be neither edited (even with every later hash recomputed) nor cut off without
    `verify` saying so; a seal cannot be forged, only deleted or rolled back to an
    older one, which the owner sees as a seal older than their last visit.
    """

    def __init__(self, index: Index) -> None:
        self._index = index
        self._seal_lock = threading.Lock()

    def record(
        self, kind: AuditKind, actor: str, detail: Mapping[str, object] | None = None
    ) -> AuditRow:
        text = json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"))
        return self._index.append_audit(time.time(), kind.value, actor, text, chain_hash)

    def record_repeats(self, runs: list[Repeats]) -> None:
        """The summaries of refusals that a RepeatFilter held back."""
        for run in runs:
            self.record(run.kind, run.actor, {"repeats": run.repeats, "seconds": run.seconds})

    def record_bursts(self, bursts: list[Burst]) -> None:
        """The records of snapshot bursts that a SnapshotBursts has ended."""
        for burst in bursts:
            self.record(AuditKind.SNAPSHOTS, burst.actor, burst.detail())

    def recent(self, before: int = 0, limit: int = 100) -> list[AuditRow]:
        """Newest first, from just before seq `before` (0: the newest)."""
        return self._index.audit_records(before, limit, newest_first=True)

    def seal(self, private_key: X25519PrivateKey) -> bool:
        """Seal the newest record, if everything since the last seal holds together;
        else leave the old seal where it is, so `verify` keeps showing the break.
        Walks only the records after the last seal."""
        key = seal_key(private_key)
        with self._seal_lock:
            seal = self._index.audit_seal()
            if seal is None:
                walk = self._walk(0, GENESIS)
            else:
                if not _seal_holds(key, seal):
                    return False
                sealed = self._index.audit_records(seal.seq - 1, 1)
                if not sealed or sealed[0].seq != seal.seq or sealed[0].hash != seal.hash:
                    return False
                walk = self._walk(seal.seq, seal.hash)
            if walk.broken is not None:
                return False
            head = walk.last
            if head is None or (seal is not None and head.seq <= seal.seq):
                return True  # nothing new to seal
            now = time.time()
            self._index.set_audit_seal(
                AuditSeal(head.seq, head.hash, now, _seal_mac(key, head.seq, head.hash, now))
            )
            return True

    def verify(self, private_key: X25519PrivateKey | None = None) -> Verdict:
        """Walk the whole chain, a page at a time, and name the first broken record;
        then hold the chain against the seal (its MAC too, given the owner's key)."""
        seal = self._index.audit_seal()
        walk = self._walk(0, GENESIS, watch=seal.seq if seal else None)
        if seal is None:
            broken = walk.broken
            return Verdict(walk.count, *(broken or (None, None)))
        sealed: dict[str, Any] = {
            "sealed_through": seal.seq,
            "sealed_at": seal.time,
            "seal_checked": private_key is not None,
        }
        if private_key is not None and not _seal_holds(seal_key(private_key), seal):
            return Verdict(
                walk.count,
                seal.seq,
                "the seal was not made with the owner's key: it was forged or replaced",
                **sealed,
            )
        if walk.broken is not None and walk.broken[0] <= seal.seq:
            return Verdict(
                walk.count, walk.broken[0], walk.broken[1] + " (a sealed record)", **sealed
            )
        if walk.count < seal.seq:
            return Verdict(
                walk.count,
                walk.count + 1,
                f"records {walk.count + 1} to {seal.seq} were cut off: the log was sealed "
                f"through record {seal.seq}",
                **sealed,
            )
        if walk.watched != seal.hash:
            return Verdict(
                walk.count,
                seal.seq,
                f"records up to {seal.seq} were rewritten after they were sealed "
                "(every hash recomputed)",
                **sealed,
            )
        broken = walk.broken
        return Verdict(walk.count, *(broken or (None, None)), **sealed)

    def _walk(self, after: int, prev: str, watch: int | None = None) -> _Walk:
        """Check the records after seq `after`, whose predecessor's hash is `prev`,
        noting the hash of record `watch` on the way (for the seal check)."""
        expected_seq, count, last, watched = after + 1, 0, None, None
        while rows := self._index.audit_records(after, VERIFY_PAGE):
            for row in rows:
                if row.seq != expected_seq:
                    why = f"record {expected_seq} is missing before {row.seq}"
                    return _Walk(count, last, (row.seq, why), watched)
                digest = chain_hash(prev, row.seq, row.time, row.kind, row.actor, row.detail)
                if digest != row.hash:
                    why = f"record {row.seq} was altered, or a record before it was"
                    return _Walk(count, last, (row.seq, why), watched)
                if row.seq == watch:
                    watched = row.hash
                prev, expected_seq, count, last = row.hash, expected_seq + 1, count + 1, row
            after = rows[-1].seq
        return _Walk(count, last, None, watched)


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


@dataclass(slots=True)
class Burst:
    """The snapshots one session fetched in a quick run (one Events page view), in
    order; the first was also recorded on its own, as it was served."""

    actor: str
    first: float
    last: float
    shown: list[tuple[str, int]] = field(default_factory=list)  # (camera, event)

    def detail(self) -> dict[str, object]:
        return {
            "count": len(self.shown),
            "cameras": sorted({camera for camera, _ in self.shown}),
            "events": [event for _, event in self.shown],
            "seconds": round(self.last - self.first, 1),
        }


@dataclass
class SnapshotBursts:
    """Keeps a page view of event thumbnails from adding a record per picture, and
    keeps every picture on record. The first snapshot a session fetches is recorded
    before it leaves (AuditKind.SNAPSHOT, as any look is); those that follow within
    BURST_QUIET s of the one before make it a burst, and one `snapshots served` record
    lists every camera and event of it (the first too), written when it ends (housekeeping calls
    `due`, and shutdown with everything=True). A kill -9 loses at most the list of one
    burst; its first look is on record already. Thread-safe."""

    quiet: float = BURST_QUIET
    longest: float = BURST_LONGEST
    most: int = BURST_MOST
    _bursts: dict[str, Burst] = field(default_factory=dict)
    _ended: list[Burst] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, session: str, actor: str, camera: str, event: int, now: float) -> bool:
        """Whether to record this snapshot now (the first of a burst); else it is
        listed in the burst's record."""
        with self._lock:
            burst = self._bursts.get(session)
            if burst is not None and self._over(burst, now):
                self._ended.append(self._bursts.pop(session))
                burst = None
            if burst is None:
                self._bursts[session] = Burst(actor, now, now, [(camera, event)])
                return True
            burst.shown.append((camera, event))
            burst.last = now
            return False

    def due(self, now: float, *, everything: bool = False) -> list[Burst]:
        """The bursts that have ended (all of them at shutdown) with more than their
        first snapshot to list."""
        with self._lock:
            for session, burst in list(self._bursts.items()):
                if everything or self._over(burst, now):
                    self._ended.append(self._bursts.pop(session))
            ended, self._ended = self._ended, []
        return [burst for burst in ended if len(burst.shown) > 1]

    def _over(self, burst: Burst, now: float) -> bool:
        return (
            now - burst.last > self.quiet
            or now - burst.first > self.longest
            or len(burst.shown) >= self.most
        )
