"""Real receivers for the hub's alerts, on 127.0.0.1: a webhook endpoint and a Web Push
service. Each keeps what it was sent and answers with the status it is told to.

The checks here are written from the specs, not from the hub's code: the webhook's
HMAC as the README tells a receiver to compute it, the VAPID token as RFC 8292 and
RFC 7515 (ES256) define it, and the payload decrypted by `http_ece`, an RFC 8188/8291
implementation the hub does not use to encrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from hub.tls import make_certificate


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Receiver:
    """An HTTP(S) server that records each POST and answers `status(path)`."""

    url: str
    got: list[Received] = field(default_factory=list)
    status: Callable[[str], int] = lambda _path: 200
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The first `count` requests, once they have come; fails after `timeout`."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.got) >= count, timeout):
                raise AssertionError(f"{len(self.got)} request(s) came, wanted {count}")
            return list(self.got)


@contextmanager
def serve(tls_dir: Path | None = None) -> Iterator[Receiver]:
    """A receiver on a free port; with `tls_dir`, HTTPS with a self-signed certificate
    for 127.0.0.1 (written there as cert.pem, for the client to trust)."""
    receiver = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.status(self.path)
            with receiver.arrived:
                receiver.got.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                receiver.arrived.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls_dir is not None:
        cert, key = make_certificate(addresses=[])
        (tls_dir / "cert.pem").write_bytes(cert)
        (tls_dir / "key.pem").write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    receiver.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# -- the webhook, as a receiver checks it (README: "Webhook signature") -------------------

MAX_SKEW = 300  # seconds a receiver accepts between the timestamp and its clock


def webhook_verifies(request: Received, secret: str, now: float | None = None) -> bool:
    timestamp = request.headers.get("x-camhub-timestamp", "")
    signature = request.headers.get("x-camhub-signature", "")
    if not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > MAX_SKEW:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    return hmac.compare_digest(signature, "sha256=" + expected.hexdigest())


# -- Web Push, as a browser and a push service see it ---------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class BrowserKeys:
    """What a browser makes when it subscribes: a P-256 key pair and an auth secret."""

    private: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> BrowserKeys:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    def decrypt(self, request: Received) -> bytes:
        """The payload of an aes128gcm push (RFC 8291), by the independent http_ece."""
        return http_ece.decrypt(
            request.body, private_key=self.private, auth_secret=self.auth, version="aes128gcm"
        )


def vapid_claims(request: Received) -> tuple[dict[str, object], str]:
    """The claims of the request's VAPID token (RFC 8292 §3) and the key it names, once
    its ES256 signature verifies with that key; AssertionError otherwise."""
    scheme, _, params = request.headers["authorization"].partition(" ")
    assert scheme == "vapid", scheme
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    token, key = fields["t"], fields["k"]
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(unb64url(header_b64))
    assert header == header | {"alg": "ES256", "typ": "JWT"}, header
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    raw = unb64url(signature_b64)
    assert len(raw) == 64, "an ES256 signature is r and s, 32 bytes each (RFC 7518 §3.4)"
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the VAPID token's signature does not verify") from None
    return json.loads(unb64url(claims_b64)), key
