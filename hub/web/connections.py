"""A cap on open web connections, applied where they are accepted.

Every connection holds a file descriptor, and recording needs descriptors too (segment
files, the index and its journal, camera sockets). So the web side may hold only a part
of the process's RLIMIT_NOFILE, and a connection past the cap is closed the moment it is
accepted, before a byte of it is read (before a TLS handshake, too): a flood of slow
clients then costs the hub a few hundred descriptors, never the ones recording needs.
The cap is counted on the listening socket's accept(), so it holds for plain HTTP and
TLS alike, and a connection is counted until its socket is closed (or collected).
"""

from __future__ import annotations

import logging
import resource
import socket
import threading
import weakref
from collections import Counter

from hub.web.auth import client_key

log = logging.getLogger(__name__)

RESERVED_FDS = 512  # kept for recording, the index, cameras and the interpreter
MIN_SHARE = 4  # with a small file limit, the web side still gets a quarter of it
MAX_CONNECTIONS = 512  # a home hub serves a few browsers; more is an attack
PER_CLIENT = 64  # from one address (or IPv6 /64): a household's browsers, or a proxy
REFUSALS_PER_ACCEPT = 64  # refused in one accept() call before the loop gets a turn


def connection_cap(nofile: int) -> int:
    """How many connections the web side may hold with `nofile` descriptors: all but
    RESERVED_FDS, at least a quarter of them, at most MAX_CONNECTIONS."""
    return max(1, min(MAX_CONNECTIONS, max(nofile - RESERVED_FDS, nofile // MIN_SHARE)))


def current_cap() -> int:
    """The cap for this process's soft RLIMIT_NOFILE (systemd's LimitNOFILE sets it)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return connection_cap(soft)


class ConnectionBudget:
    """Open connections, in total and per client; admits one only below both caps.
    Pure bookkeeping; safe from any thread (a collected socket releases from the GC)."""

    def __init__(self, total: int, per_client: int = PER_CLIENT) -> None:
        self.total = total
        self.per_client = min(per_client, total)
        self._open: Counter[str] = Counter()
        self._count = 0
        self._lock = threading.Lock()

    def admit(self, client: str) -> bool:
        with self._lock:
            if self._count >= self.total or self._open[client] >= self.per_client:
                return False
            self._open[client] += 1
            self._count += 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self._count -= 1
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def __len__(self) -> int:
        return self._count


class _CountedSocket(socket.socket):
    """An accepted connection that gives its place back when it is closed."""

    _release: weakref.finalize

    def close(self) -> None:
        super().close()
        self._release()  # a finalize runs at most once: close, or collection


class CappedListener(socket.socket):
    """A listening socket whose accept() closes connections past the budget at once.

    asyncio's accept loop calls accept() on the socket it was given, so serving this
    socket (loop.create_server(sock=...)) applies the cap before any protocol, TLS
    handshake or read exists for the connection."""

    budget: ConnectionBudget

    def accept(self) -> tuple[socket.socket, object]:
        refused = 0
        while True:
            fd, address = self._accept()  # type: ignore[attr-defined]  # BlockingIOError: none left
            client = client_key(address[0] if isinstance(address, tuple) else None)
            if self.budget.admit(client):
                conn = _CountedSocket(self.family, self.type, self.proto, fileno=fd)
                conn._release = weakref.finalize(conn, self.budget.release, client)
                return conn, address
            socket.close(fd)  # nothing read, nothing answered: the cheapest refusal there is
            refused += 1
            log.warning(
                "web connections at their cap (%d open, at most %d per client): "
                "closing new ones unread",
                len(self.budget),
                self.budget.per_client,
            )
            if refused >= REFUSALS_PER_ACCEPT:
                raise BlockingIOError  # asyncio stops this round and waits for readiness


def listeners(host: str, port: int, budget: ConnectionBudget) -> list[CappedListener]:
    """Bound, listening sockets for host:port (every address a name resolves to, as
    asyncio's create_server would bind), all sharing one budget."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    made: list[CappedListener] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = CappedListener(family, kind, proto)
            made.append(sock)
            sock.budget = budget
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = sock.getsockname()[1]  # port 0: every address shares the first free one
    except OSError:
        for sock in made:
            sock.close()
        raise
    return made
