"""The S3-compatible bucket, through the `minio` client: streaming, rate-capped, checked.

Every upload reads its file in 1 MiB pieces: one request for a file up to PART_SIZE,
a multipart upload of PART_SIZE parts (one at a time) above it, so memory stays at about
three parts (the client joins pieces, signs, sends: 15 MiB measured) whatever the
file. The SHA-256 of the file goes with it as user metadata, and
after the upload a HEAD checks that the bucket holds that many bytes under that hash.
Errors become `BucketError`, which says whether retrying can help on its own
(`config` errors: a wrong key, a missing bucket, need the owner).

With `lock` on, every object is put with an S3 Object Lock retention (the client's own
`Retention`), and a delete removes every version of the name, so the owner's deletion
really deletes (on a versioned bucket a plain DELETE only hides the data).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import MinioException, S3Error
from minio.retention import Retention

from hub.config import OffsiteSettings

PIECE = 64 * 1024  # bytes downloaded at a time
SEND_PIECE = 2**20  # bytes read, hashed and paced at a time (the client joins them)
PART_SIZE = 5 * 2**20  # multipart above this, S3's smallest part; ~3 parts in memory
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# S3 error codes that mean the owner must fix something; retrying alone will not help.
CONFIG_ERRORS = {
    "AccessDenied": "access denied: check access_key and secret_key",
    "InvalidAccessKeyId": "the access key is not known to the service",
    "SignatureDoesNotMatch": "the secret key is wrong",
    "NoSuchBucket": "the bucket does not exist (camhub never creates it)",
    "AllAccessDisabled": "access to the bucket is disabled",
}
SHA256_META = "sha256"
LOCK_MODES = {"governance": GOVERNANCE, "compliance": COMPLIANCE}
NO_LOCK = (
    "object lock is not enabled on the bucket, so copies cannot be locked: make a bucket "
    'with object lock (e.g. `mc mb --with-lock`), or set lock = "off"'
)


NOT_FOUND = ("NoSuchKey", "NoSuchObject", "ResourceNotFound")


@dataclass(frozen=True, slots=True)
class Stored:
    """What the bucket confirmed of an upload; `locked_until` (Unix time) with a lock."""

    size: int
    sha256: str
    locked_until: float | None = None


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an object; `latest` is the one a plain GET reads, `deleted` a
    delete marker (what a plain DELETE leaves on a versioned bucket)."""

    version_id: str | None
    latest: bool
    deleted: bool
    modified: float


class BucketError(Exception):
    """An operation on the bucket failed; `config`: the owner must fix something;
    `missing`: the object is not there."""

    def __init__(
        self, message: str, *, config: bool = False, missing: bool = False, code: str = ""
    ) -> None:
        super().__init__(message)
        self.config = config
        self.missing = missing
        self.code = code  # the S3 error code, if the store gave one


class Stopped(Exception):
    """The hub is stopping: an upload in progress was abandoned (it resumes next start)."""


class RateLimit:
    """Paces bytes to an average rate; the wait ends early when `stop` is set."""

    def __init__(self, mbit_per_s: float, stop: threading.Event) -> None:
        self._bytes_per_s = mbit_per_s * 1e6 / 8
        self._stop = stop
        self._next = time.monotonic()

    def take(self, size: int) -> None:
        if self._stop.is_set():
            raise Stopped
        if self._bytes_per_s <= 0:
            return
        now = time.monotonic()
        self._next = max(self._next, now - 1.0) + size / self._bytes_per_s  # 1 s of burst
        if self._next > now and self._stop.wait(self._next - now):
            raise Stopped


class _Sending:
    """A file as the client reads it: in pieces, paced, hashed as it goes."""

    def __init__(self, src: BinaryIO, rate: RateLimit) -> None:
        self._src = src
        self._rate = rate
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        piece = self._src.read(SEND_PIECE if size < 0 else min(size, SEND_PIECE))
        self._rate.take(len(piece))
        self.hash.update(piece)
        self.size += len(piece)
        return piece


class Bucket:
    def __init__(self, settings: OffsiteSettings, *, stop: threading.Event | None = None) -> None:
        self.name = settings.bucket
        self.where = f"bucket {settings.bucket} at {settings.endpoint}"
        self._stop = stop or threading.Event()
        self._rate = RateLimit(settings.max_upload_mbps, self._stop)
        self._lock = LOCK_MODES.get(settings.lock)
        self._lock_days = settings.keep_days
        self._client = Minio(
            settings.host,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
                retries=urllib3.Retry(total=0),  # the uploader retries, with its backoff
                maxsize=2,
            ),
        )

    def check(self) -> None:
        """That the bucket exists and these keys may use it."""
        with self._errors("checking"):
            exists = self._client.bucket_exists(self.name)
        if not exists:
            raise BucketError(f"{self.where}: {CONFIG_ERRORS['NoSuchBucket']}", config=True)

    def check_lock(self) -> None:
        """With `lock` on: that the bucket has object lock enabled (so versioning too)."""
        if self._lock is None:
            return
        try:
            with self._errors("reading the object lock configuration"):
                self._client.get_object_lock_config(self.name)
        except BucketError as exc:
            if exc.code != "ObjectLockConfigurationNotFoundError":
                raise
            raise BucketError(f"{self.where}: {NO_LOCK}", config=True) from None

    def put_file(self, name: str, path: Path) -> Stored:
        """Upload a file; what the bucket confirmed."""
        with path.open("rb") as src:
            size = _size(src)
            digest = _sha256(src)
            src.seek(0)
            return self._put(name, src, size, digest)

    def put_bytes(self, name: str, data: bytes) -> Stored:
        return self._put(name, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())

    def _put(self, name: str, src: BinaryIO, size: int, digest: str) -> Stored:
        sending = _Sending(src, self._rate)
        retention = None
        if self._lock is not None:  # a date, set here: the hub keeps it to wait for it
            until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=self._lock_days)
            retention = Retention(self._lock, until)
        with self._errors(f"uploading {name}"):
            written = self._client.put_object(
                self.name,
                name,
                sending,  # type: ignore[arg-type]
                size,
                metadata={SHA256_META: digest},
                part_size=PART_SIZE,
                num_parallel_uploads=1,
                retention=retention,
            )
            stat = self._client.stat_object(self.name, name, version_id=written.version_id)
        stored = (stat.metadata or {}).get(f"x-amz-meta-{SHA256_META}")
        if sending.hash.hexdigest() != digest or sending.size != size:
            raise BucketError(f"{name}: the file changed while it was uploaded")
        if stat.size != size or stored != digest:
            raise BucketError(f"{self.where}: {name} reads back as {stat.size} bytes, not {size}")
        if retention is None:
            return Stored(size, digest)
        if (stat.metadata or {}).get("x-amz-object-lock-mode") != retention.mode:
            raise BucketError(f"{self.where}: {name} was stored without its lock", config=True)
        return Stored(size, digest, retention.retain_until_date.timestamp())

    def exists(self, name: str) -> bool:
        try:
            with self._errors(f"looking for {name}"):
                self._client.stat_object(self.name, name)
        except BucketError as exc:
            if exc.missing:
                return False
            raise
        return True

    def locked_until(self, name: str) -> float | None:
        """When the lock of the object's current version ends (Unix time); None if it
        has none, or the store answers with any error (no such object, a delete marker
        on top: stores differ in the code), so the caller writes it anew."""
        try:
            with self._errors(f"reading the lock of {name}"):
                retention = self._client.get_object_retention(self.name, name)
        except BucketError as exc:
            if exc.code:  # the store answered; only a failure to reach it is raised
                return None
            raise
        until = retention.retain_until_date if retention is not None else None
        return until.timestamp() if until is not None else None

    def get_into(self, name: str, out: BinaryIO, version_id: str | None = None) -> tuple[int, str]:
        """Download to `out` in pieces; (size, SHA-256 hex) of what came."""
        digest, size = hashlib.sha256(), 0
        with self._errors(f"downloading {name}"):
            response = self._client.get_object(self.name, name, version_id=version_id)
            try:
                for piece in response.stream(PIECE):
                    digest.update(piece)
                    size += out.write(piece)
            finally:
                response.close()
                response.release_conn()
        return size, digest.hexdigest()

    def get_bytes(self, name: str, limit: int, version_id: str | None = None) -> bytes:
        out = io.BytesIO()
        with self._errors(f"downloading {name}"):
            stat = self._client.stat_object(self.name, name, version_id=version_id)
        if (stat.size or 0) > limit:
            raise BucketError(f"{name} is {stat.size} bytes, more than the {limit} expected")
        self.get_into(name, out, version_id)
        return out.getvalue()

    def names(self, prefix: str, *, recursive: bool = True) -> Iterator[str]:
        with self._errors(f"listing {prefix}"):
            for obj in self._client.list_objects(self.name, prefix=prefix, recursive=recursive):
                yield obj.object_name

    def versions(self, prefix: str, *, recursive: bool = True) -> dict[str, list[Version]]:
        """Every version of every object under `prefix`, delete markers included, each
        name's newest first: what a thief's DELETE or PUT left on a versioned bucket.
        Not recursive: the "folders" under `prefix`, with no versions. A store that
        keeps no versions (it answers NotImplemented) gives its objects as they are."""
        try:
            return self._versions(prefix, recursive)
        except BucketError as exc:
            if exc.code != "NotImplemented":
                raise
        as_is = [Version(None, True, False, 0.0)]
        names = self.names(prefix, recursive=recursive)
        return {n: [] if n.endswith("/") else as_is for n in names}

    def _versions(self, prefix: str, recursive: bool) -> dict[str, list[Version]]:
        found: dict[str, list[Version]] = {}
        with self._errors(f"listing the versions under {prefix}"):
            for obj in self._client.list_objects(
                self.name, prefix=prefix, recursive=recursive, include_version=True
            ):
                versions = found.setdefault(obj.object_name, [])
                if obj.is_dir:
                    continue
                modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
                version_id = None if obj.version_id in (None, "null") else obj.version_id
                latest = str(obj.is_latest).lower() == "true"
                versions.append(Version(version_id, latest, obj.is_delete_marker, modified))
        for versions in found.values():
            versions.sort(key=lambda v: (v.latest, v.modified), reverse=True)
        return found

    def delete(self, name: str) -> float | None:
        """Delete the object; with a lock, every version of it, so nothing of it stays
        behind a delete marker. None once done; else when the lock of a version the
        store refused to delete ends (the caller waits for it: an upload it did not
        know had happened, or someone else's locked version)."""
        if self._lock is None:
            with self._errors(f"deleting {name}"):
                self._client.remove_object(self.name, name)
            return None
        locked: float | None = None
        for version in self.versions(name).get(name, []):
            try:
                with self._errors(f"deleting {name}"):
                    self._client.remove_object(self.name, name, version_id=version.version_id)
            except BucketError as exc:
                until = self._lock_end(name, version) if exc.code == "AccessDenied" else None
                if until is None:
                    raise
                locked = max(locked or until, until)
        return locked

    def _lock_end(self, name: str, version: Version) -> float | None:
        """When the lock of one version ends, if it is still locked."""
        with self._errors(f"reading the lock of {name}"):
            retention = self._client.get_object_retention(
                self.name, name, version_id=version.version_id
            )
        until = retention.retain_until_date if retention is not None else None
        return until.timestamp() if until is not None and until > datetime.now(UTC) else None

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """One clear message per failure; never the keys (the client does not show them)."""
        try:
            yield
        except Stopped:
            raise
        except S3Error as exc:
            if exc.code in CONFIG_ERRORS:
                message = f"{self.where}: {CONFIG_ERRORS[exc.code]}"
                raise BucketError(message, config=True, code=exc.code) from exc
            raise BucketError(
                f"{self.where}: {doing}: {exc.code}: {exc.message}",
                missing=exc.code in NOT_FOUND,
                code=exc.code,
            ) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise BucketError(f"{self.where}: {doing}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The root cause in a few words (urllib3 nests it inside MaxRetryError)."""
    reason = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = reason.reason  # type: ignore[attr-defined]
    text = str(reason or exc)
    return text.split(": ", 1)[-1] if "Connection refused" in text else text[:200]


def _size(src: BinaryIO) -> int:
    src.seek(0, 2)
    size = src.tell()
    src.seek(0)
    return size


def _sha256(src: BinaryIO) -> str:
    digest = hashlib.sha256()
    while piece := src.read(SEND_PIECE):
        digest.update(piece)
    return digest.hexdigest()
