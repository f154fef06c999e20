"""Owner sessions and the login throttle.

A session holds the owner's unlocked private key in memory, and nowhere else: logout,
idle expiry or a restart drops it, and the vault is locked again. Tokens are random
and kept only as SHA-256 hashes, so nothing in memory dumps of the session table (or
logs) opens a session.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

MAX_SESSIONS = 16  # the oldest is dropped past this: a phone, a laptop, a few tabs

# Throttle: each client may fail FREE_FAILURES times, then waits 2^(n - FREE) seconds
# (at most MAX_CLIENT_DELAY) after each further failure. Across all clients, once
# GLOBAL_FAILURES failures fall inside GLOBAL_WINDOW seconds, every attempt waits for a
# shared slot every GLOBAL_SPACING seconds: guessing from many addresses is slowed to
# about one try in 3 s, while the owner, from any address, waits seconds, not hours.
FREE_FAILURES = 3
MAX_CLIENT_DELAY = 300.0
GLOBAL_FAILURES = 20
GLOBAL_WINDOW = 60.0
GLOBAL_SPACING = 3.0
FORGET_AFTER = 3600.0  # a client's failures are forgotten after an hour of quiet


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(slots=True)
class Session:
    private_key: X25519PrivateKey = field(repr=False)
    client: str
    created: float
    last_seen: float


class Sessions:
    """The owner's open sessions, by token hash; safe to use from any thread."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._sessions: dict[bytes, Session] = {}
        self._ended: list[tuple[Session, str]] = []  # dropped by get/create, not yet logged
        self._lock = threading.Lock()

    def create(self, private_key: X25519PrivateKey, client: str, now: float) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
                self._ended.append((self._sessions.pop(oldest), "too many sessions"))
            self._sessions[hash_token(token)] = Session(private_key, client, now, now)
        return token

    def get(self, token: str | None, now: float) -> Session | None:
        """The live session for a token, its idle clock reset; None if unknown or idle."""
        if not token:
            return None
        key = hash_token(token)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.last_seen > self.idle_seconds:
                self._ended.append((self._sessions.pop(key), "idle"))
                return None
            session.last_seen = now
            return session

    def alive(self, token: str | None, now: float) -> bool:
        """Whether the token's session is still open, without counting this as use: a
        live stream asks every second, and must not keep an unattended session open."""
        if not token:
            return False
        with self._lock:
            session = self._sessions.get(hash_token(token))
            return session is not None and now - session.last_seen <= self.idle_seconds

    def end(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            return self._sessions.pop(hash_token(token), None)

    def expire(self, now: float) -> list[tuple[Session, str]]:
        """Drop idle sessions (and their keys); return them, with those a request found
        idle or a new login pushed out since the last call, and why, for the access log."""
        with self._lock:
            idle = [k for k, s in self._sessions.items() if now - s.last_seen > self.idle_seconds]
            ended = self._ended + [(self._sessions.pop(k), "idle") for k in idle]
            self._ended = []
            return ended

    def any_key(self) -> X25519PrivateKey | None:
        """The owner's private key if any session holds it (each holds the same key)."""
        with self._lock:
            return next((s.private_key for s in self._sessions.values()), None)

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._ended.clear()

    def __len__(self) -> int:
        return len(self._sessions)


def client_key(remote: str | None) -> str:
    """Who a failure counts against: the IPv4 address, or the IPv6 /64 (one host can
    hold a whole /64, so counting single IPv6 addresses would let it rotate freely)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Client:
    failures: int = 0
    last_failure: float = 0.0


class LoginThrottle:
    """Decides how long a client must wait before its next password attempt."""

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._recent: deque[float] = deque()
        self._next_global_slot = 0.0
        self._lock = threading.Lock()

    def wait_time(self, client: str, now: float) -> float:
        """Seconds to wait; 0 means try now (and, under global load, takes the slot)."""
        with self._lock:
            self._forget(now)
            state = self._clients.get(client)
            wait = 0.0
            if state is not None and state.failures >= FREE_FAILURES:
                delay = min(2.0 ** (state.failures - FREE_FAILURES), MAX_CLIENT_DELAY)
                wait = max(wait, state.last_failure + delay - now)
            if len(self._recent) >= GLOBAL_FAILURES:
                wait = max(wait, self._next_global_slot - now)
                if wait <= 0:
                    self._next_global_slot = now + GLOBAL_SPACING
            return max(wait, 0.0)

    def failed(self, client: str, now: float) -> None:
        with self._lock:
            state = self._clients.setdefault(client, _Client())
            state.failures += 1
            state.last_failure = now
            self._recent.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - GLOBAL_WINDOW:
            self._recent.popleft()
        stale = [k for k, c in self._clients.items() if now - c.last_failure > FORGET_AFTER]
        for key in stale:
            del self._clients[key]
