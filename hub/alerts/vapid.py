"""The hub's VAPID key pair (RFC 8292): made once, kept in the data directory.

Browsers subscribe to Web Push with the public key, and push services then accept a
push for that subscription only with a token signed by the private key. It opens no
footage: someone with a copy of it (and of the index's subscriptions) could send pushes
to the owner's browsers, nothing more. Still, only the hub's user may read it (0600).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from hub.fsutil import write_private

TOKEN_SECONDS = 12 * 3600  # a token's life; RFC 8292 allows at most 24 h


def load_or_create(path: Path) -> Vapid02:
    """The key pair from `path`, made (P-256, PEM, mode 0600) the first time."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
    return Vapid02.from_pem(path.read_bytes())


def application_server_key(vapid: Vapid02) -> str:
    """The public key as the page hands it to pushManager.subscribe: the uncompressed
    P-256 point, base64url without padding."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def authorization(vapid: Vapid02, endpoint: str, contact: str, now: float | None = None) -> str:
    """The `Authorization: vapid t=<JWT>,k=<key>` header for a push to `endpoint`: the
    JWT names the push service's origin (aud), when it expires and whom to contact."""
    parts = urlsplit(endpoint)
    claims = {
        "aud": f"{parts.scheme}://{parts.netloc}",
        "exp": int((now if now is not None else time.time()) + TOKEN_SECONDS),
        "sub": contact,
    }
    return str(vapid.sign(claims)["Authorization"])
