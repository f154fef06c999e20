"""The hub's own TLS: the certificate `init` makes, and a real hub serving HTTPS on 127.0.0.1."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from hubkit import PASSWORD, make_hub, running

from hub import tls
from hub.daemon import Hub


def test_certificate_names_the_box_on_loopback_and_the_lan() -> None:
    lan = [ipaddress.ip_address("192.168.1.20"), ipaddress.ip_address("fd00::20")]
    cert_pem, key_pem = tls.make_certificate(addresses=[*lan, ipaddress.ip_address("::1")])
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = names.get_values_for_type(x509.IPAddress)
    assert addresses == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"), *lan]
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert b"PRIVATE KEY" in key_pem
    assert tls.fingerprint(cert_pem).count(":") == 31


def test_lan_addresses_are_never_loopback_or_link_local() -> None:
    for address in tls.lan_addresses():
        assert not (address.is_loopback or address.is_link_local or address.is_unspecified)


@pytest.fixture(scope="module")
def https_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running(make_hub(tmp_path_factory.mktemp("tls-hub"), tls=True)) as started:
        yield started


def test_the_hub_serves_https_with_its_pinned_certificate(https_hub: Hub) -> None:
    assert https_hub.web is not None and https_hub.web.url.startswith("https://127.0.0.1:")
    cert_pem = https_hub.paths.tls_cert.read_bytes()
    # A browser that was told to trust this certificate accepts it for 127.0.0.1 ...
    trusting = ssl.create_default_context(cadata=cert_pem.decode())
    with trusting.wrap_socket(
        socket.create_connection(("127.0.0.1", https_hub.web.port), timeout=5),
        server_hostname="127.0.0.1",
    ) as conn:
        served = conn.getpeercert(binary_form=True)
    assert served is not None
    shown = ":".join(f"{b:02X}" for b in hashlib.sha256(served).digest())
    assert shown == tls.fingerprint(cert_pem)  # ... and it is the one `init` printed


async def _login(url: str, cafile: Path) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(cafile))
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            url + "api/login",
            json={"password": PASSWORD},
            headers={"Origin": url.rstrip("/")},
            ssl=context,
        ) as resp,
    ):
        return resp.status, resp.headers.get("Set-Cookie", "")


async def test_session_cookie_is_secure_under_tls(https_hub: Hub) -> None:
    assert https_hub.web is not None
    status, cookie = await _login(https_hub.web.url, https_hub.paths.tls_cert)
    assert status == 200
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite"} <= attributes


async def test_plain_http_gets_no_page(https_hub: Hub) -> None:
    assert https_hub.web is not None
    url = f"http://127.0.0.1:{https_hub.web.port}/healthz"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
        with pytest.raises(aiohttp.ClientError):  # the handshake fails: no answer at all
            async with client.get(url):
                pass
