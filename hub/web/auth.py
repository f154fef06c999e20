"""Owner sessions and the login throttle.

A session holds the owner's unlocked private key in memory, and nowhere else: logout,
idle expiry or a restart drops it, and the vault is locked again. Tokens are random
and kept only as SHA-256 hashes, so nothing in memory dumps of the session table (or
logs) opens a session.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

MAX_SESSIONS = 16  # the oldest is dropped past this: a phone, a laptop, a few tabs

# Throttle: each client may fail FREE_FAILURES times, then waits 2^(n - FREE) seconds
# (at most MAX_CLIENT_DELAY) after each further failure. Across all clients, once
# GLOBAL_FAILURES failures fall inside GLOBAL_WINDOW seconds, an attempt from a stranger
# waits for a shared slot every GLOBAL_SPACING seconds, and no address gets more than
# its share of those slots: guessing from many addresses is slowed to about one try in
# 3 s. The owner is no stranger: a browser that has logged in carries a device cookie
# and an address that has logged in is remembered (KNOWN_CLIENTS of each, in memory);
# they count their own failures and never queue for the shared slot, so an attacker
# without the password cannot lock the owner out.
FREE_FAILURES = 3
MAX_CLIENT_DELAY = 300.0
GLOBAL_FAILURES = 20
GLOBAL_WINDOW = 60.0
GLOBAL_SPACING = 3.0
FORGET_AFTER = 3600.0  # a client's failures are forgotten after an hour of quiet
ASKING_STALE = 2 * GLOBAL_SPACING + 1  # a client asking for the slot less often lost its turn
KNOWN_CLIENTS = 32
DEVICE_COOKIE = "camhub_device"  # the known-device token; it opens nothing by itself
DEVICE_COOKIE_SECONDS = 365 * 86400


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

    def get(self, token: str | None, now: float, *, touch: bool = True) -> Session | None:
        """The live session for a token, its idle clock reset (unless `touch` is false:
        a request the page makes on its own, not the owner); None if unknown or idle."""
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
            if touch:
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


@dataclass(frozen=True, slots=True)
class Attempt:
    """Whose budget a login attempt spends."""

    key: str  # what failures count against: a known device, else the client address
    known: bool  # a device or address that has logged in before: no shared slot


def _device_key(token: str) -> str:
    """A device's budget key: its token's hash, never the token."""
    return "device " + hash_token(token).hex()


class _Remembered:
    """The most recent KNOWN_CLIENTS keys, oldest forgotten first."""

    def __init__(self) -> None:
        self._keys: dict[str, None] = {}

    def add(self, key: str) -> None:
        self._keys.pop(key, None)
        self._keys[key] = None
        while len(self._keys) > KNOWN_CLIENTS:
            del self._keys[next(iter(self._keys))]

    def __contains__(self, key: str) -> bool:
        return key in self._keys


class LoginThrottle:
    """Decides how long a client must wait before its next password attempt."""

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._recent: deque[tuple[float, str]] = deque()  # failures: time, client
        self._next_global_slot = 0.0
        self._granted: dict[str, float] = {}  # client: when it last had the shared slot
        self._asking: dict[str, tuple[float, float]] = {}  # client: first, last ask since
        self._devices = _Remembered()  # hashes of device tokens
        self._addresses = _Remembered()
        self._lock = threading.Lock()

    def attempt(self, client: str, device: str | None) -> Attempt:
        """The budget for a login from `client` presenting device token `device`."""
        with self._lock:
            if device and (key := _device_key(device)) in self._devices:
                return Attempt(key, known=True)
            return Attempt(client, known=client in self._addresses)

    def wait_time(self, attempt: Attempt, now: float) -> float:
        """Seconds to wait; 0 means try now (and, under global load, takes the slot)."""
        with self._lock:
            self._forget(now)
            state = self._clients.get(attempt.key)
            wait = 0.0
            if state is not None and state.failures >= FREE_FAILURES:
                delay = min(2.0 ** (state.failures - FREE_FAILURES), MAX_CLIENT_DELAY)
                wait = state.last_failure + delay - now
            if not attempt.known and len(self._recent) >= GLOBAL_FAILURES:
                wait = max(wait, self._shared_slot_wait(attempt.key, now))
            return max(wait, 0.0)

    def _shared_slot_wait(self, client: str, now: float) -> float:
        """The wait for the shared slot, taking it if free and this client's turn. The
        turn is fair between addresses: of those asking lately, the one that had the
        slot longest ago (or never; then the first to ask) goes next, so a newcomer is
        not outrun by addresses that ask all the time."""
        first, _last = self._asking.get(client, (now, now))
        self._asking[client] = (first, now)
        for stale in [c for c, (_, last) in self._asking.items() if now - last > ASKING_STALE]:
            del self._asking[stale]
        wait = self._next_global_slot - now
        if wait > 0:
            return wait
        turn = min(
            self._asking, key=lambda c: (self._granted.get(c, -math.inf), self._asking[c][0], c)
        )
        if turn != client:
            return GLOBAL_SPACING  # kept for the client whose turn it is, if it comes back
        self._next_global_slot = now + GLOBAL_SPACING
        self._granted[client] = now
        del self._asking[client]
        return 0.0

    def failed(self, attempt: Attempt, now: float) -> None:
        with self._lock:
            state = self._clients.setdefault(attempt.key, _Client())
            state.failures += 1
            state.last_failure = now
            self._recent.append((now, attempt.key))

    def succeeded(self, attempt: Attempt, client: str, device: str | None) -> str:
        """Clear the attempt's failures and remember the client and its device; the
        device token to give the browser (its own if it was known, else a new one)."""
        with self._lock:
            self._clients.pop(attempt.key, None)
            self._addresses.add(client)
            if not (device and attempt.key == _device_key(device)):
                device = secrets.token_urlsafe(32)
            self._devices.add(_device_key(device))
            return device

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] <= now - GLOBAL_WINDOW:
            self._recent.popleft()
        stale = [k for k, c in self._clients.items() if now - c.last_failure > FORGET_AFTER]
        for key in stale:
            del self._clients[key]
        old = [k for k, t in self._granted.items() if now - t > FORGET_AFTER]
        for key in old:
            del self._granted[key]
