"""The hub's own TLS certificate: self-signed, made at `init`, pinned by its fingerprint.

There is no public name for a box on a home LAN, so no CA can vouch for it. The owner
checks the SHA-256 fingerprint that `init` prints against the one the browser shows
the first time, and from then on the browser remembers the exception.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.fsutil import write_private

VALID_DAYS = 3650


def ensure_certificate(cert_path: Path, key_path: Path) -> tuple[str, bool]:
    """The certificate's fingerprint, and whether it was made just now."""
    if cert_path.exists() and key_path.exists():
        return fingerprint(cert_path.read_bytes()), False
    cert_pem, key_pem = make_certificate()
    write_private(key_path, key_pem)
    write_private(cert_path, cert_pem)
    return fingerprint(cert_pem), True


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
# Documentation addresses (RFC 5737, 3849): a UDP "connect" to them sends nothing, but
# makes the kernel pick the interface, and so the address, the LAN reaches us at.
_PROBES = (("192.0.2.1", socket.AF_INET), ("2001:db8::1", socket.AF_INET6))


def make_certificate(
    now: datetime.datetime | None = None, addresses: list[IPAddress] | None = None
) -> tuple[bytes, bytes]:
    """A P-256 certificate for this host's name, `localhost`, the loopback addresses
    and the box's LAN addresses (by default, those found now), so a browser that was
    told to trust it also accepts it at https://192.168.x.y."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "camhub"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"camhub on {host}"[:64])])
    found = lan_addresses() if addresses is None else addresses
    names: list[x509.GeneralName] = [
        x509.DNSName(host),
        x509.DNSName(f"{host}.local"),
        x509.DNSName("localhost"),
        *(x509.IPAddress(a) for a in dict.fromkeys([*LOOPBACK, *found])),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def lan_addresses() -> list[IPAddress]:
    """The addresses this box is reached at from the LAN (nothing is sent to find them)."""
    found: list[IPAddress] = []
    for probe, family in _PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.connect((probe, 9))
                address = ipaddress.ip_address(udp.getsockname()[0].split("%")[0])
        except (OSError, ValueError):
            continue  # no route of that family: nothing to add
        if not (address.is_loopback or address.is_unspecified or address.is_link_local):
            found.append(address)
    return found


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate, as browsers show it: AB:CD:..."""
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
