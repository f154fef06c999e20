"""Which Host headers the hub answers: a guard against DNS rebinding.

A page on attacker.example can make its name resolve to the hub's LAN address; the
browser then sends the page's requests to the hub as same-origin, with
`Host: attacker.example`. Such a request never carries a name the hub knows, so it is
refused. Known are: any IP address literal (a browser's origin is then the address
itself, which no rebinding can produce), `localhost` and `*.localhost` (browsers
resolve those to loopback themselves), the name the hub listens on, the box's host name
and `<host name>.local` (mDNS), and the host of each `web.origins` entry (a reverse
proxy's name, or any other name the owner reaches the hub by).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


def host_name(header: str) -> str:
    """The host of a Host header, without port or brackets, lower-case, no final dot."""
    text = header.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text.lower().rstrip(".")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class HostCheck:
    names: frozenset[str]

    @classmethod
    def for_hub(cls, listen_host: str, hostname: str, origins: frozenset[str]) -> HostCheck:
        """The names this hub answers to; see the module's docstring."""
        names = {"localhost", listen_host}
        short = hostname.partition(".")[0]
        names |= {hostname, short, f"{short}.local"}
        names |= {urlsplit(origin).hostname or "" for origin in origins}
        return cls(frozenset(host_name(name) for name in names if name))

    def allows(self, header: str | None) -> bool:
        """Whether a request with this Host header may be answered. No header at all
        (HTTP/1.0, a script) cannot come from a browser, and is answered."""
        if header is None:
            return True
        host = host_name(header)
        return host in self.names or host.endswith(".localhost") or _is_address(host)
