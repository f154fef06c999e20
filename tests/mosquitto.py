"""A real MQTT broker for tests: Debian's Mosquitto on 127.0.0.1, and a real subscriber.

The broker runs with a config file of its own (never the system service), refuses
anonymous clients, and checks a password file made with `mosquitto_passwd -b`. With
`tls=True` it serves TLS only, with a certificate signed by a CA made here (the
client trusts `broker.ca_file`). Killing it is a faithful outage: it keeps nothing
between runs (no persistence), so retained messages seen after a restart were sent
again by the hub. Restarting keeps the port.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

USER = "camhub"
PASSWORD = "broker-pw-7f3a"
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """`mosquitto -c <conf>` on a free 127.0.0.1 port, with users USER/PASSWORD."""

    def __init__(self, root: Path, *, tls: bool = False) -> None:
        for tool in ("mosquitto", "mosquitto_passwd"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                pytest.fail(f"{tool} not found: apt-get install mosquitto mosquitto-clients")
        self.root = root
        self.tls = tls
        self.port = free_port()
        self.log_path = root / "mosquitto.log"
        self.ca_file = root / "ca.pem"
        self._proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        passwords = root / "passwords"
        subprocess.run(
            ["mosquitto_passwd", "-c", "-b", str(passwords), USER, PASSWORD],
            check=True,
            capture_output=True,
            timeout=30,
        )
        lines = [
            f"listener {self.port} 127.0.0.1",
            # Started as root (CI), mosquitto would switch to the user "mosquitto", who
            # cannot read this test's private temporary directory.
            "user root",
            "allow_anonymous false",
            f"password_file {passwords}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
        ]
        if tls:
            cert, key = self._make_certificates()
            lines += [f"cafile {self.ca_file}", f"certfile {cert}", f"keyfile {key}"]
        self.conf = root / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self._proc = subprocess.Popen(
            [binary, "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not start on port {self.port}:\n{self.log}")
                time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: the broker vanishes, every connection with it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def _make_certificates(self) -> tuple[Path, Path]:
        """A CA, and a server certificate it signed for 127.0.0.1."""
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camhub test CA")])
        ca = (
            _certificate(ca_name, ca_name, ca_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        cert = (
            _certificate(name, ca_name, key.public_key(), now)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        self.ca_file.write_bytes(ca.public_bytes(pem))
        cert_path, key_path = self.root / "server.pem", self.root / "server.key"
        cert_path.write_bytes(cert.public_bytes(pem))
        key_path.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return cert_path, key_path


def _certificate(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.time() on arrival

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> dict:
        return json.loads(self.payload)


class Subscriber:
    """A real MQTT client subscribed to `topics` (default: everything), recording what
    arrives. A new Subscriber sees the broker's retained messages first."""

    def __init__(self, broker: Broker, topics: tuple[str, ...] = ("#",)) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self._client.username_pw_set(USER, PASSWORD)
        if broker.tls:
            self._client.tls_set(ca_certs=str(broker.ca_file))
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(START_TIMEOUT):
            self.close()
            pytest.fail("the test subscriber could not subscribe")

    def _on_message(self, _client: object, _userdata: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), msg.retain, time.time()))
            self._cond.notify_all()

    def wait_for(
        self, topic: str, payload: str | None = None, *, timeout: float = 20.0, after: int = 0
    ) -> Received:
        """The first message on `topic` (with `payload`, if given) at index >= `after`."""
        wanted = None if payload is None else payload.encode()
        return self.wait_until(
            topic,
            lambda msg: wanted is None or msg.payload == wanted,
            timeout=timeout,
            after=after,
            what=repr(payload),
        )

    def wait_until(
        self,
        topic: str,
        check: Callable[[Received], bool],
        *,
        timeout: float = 20.0,
        after: int = 0,
        what: str = "the message awaited",
    ) -> Received:
        """The first message on `topic` that passes `check`, at index >= `after`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.messages[after:]:
                    if msg.topic == topic and check(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(f"  {m.topic} {m.payload[:80]!r}" for m in self.messages)
                    pytest.fail(f"no {what} on {topic} within {timeout} s; seen:\n{seen}")
                self._cond.wait(left)

    def mark(self) -> int:
        """How many messages came so far: pass as `after` to wait for newer ones."""
        with self._cond:
            return len(self.messages)

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
