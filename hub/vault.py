"""Keys and encryption at rest: the owner's key file, sealed segments and snapshots.

Pure: bytes in, bytes out, file-like objects passed in. Recording needs only the
owner's public key; opening needs the private key, which only the password (or the
recovery code) unlocks. docs/FORMAT.md is the byte-level spec of everything here.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import io
import json
import os
import secrets
import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK_SIZE = 65536
TAG_SIZE = 16
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
KEY_SIZE = 32
FILE_ID_SIZE = 16

MAGIC = b"\x89camhub\n"
VERSION = 1
WRAPPED_KEY_SIZE = KEY_SIZE + TAG_SIZE
# Big-endian: magic, version, kind, chunk size, file id, ephemeral public key; the
# prefix is what the data-key wrap authenticates, and the wrapped data key follows it.
_PREFIX = struct.Struct(f">{len(MAGIC)}sBBI{FILE_ID_SIZE}s{KEY_SIZE}s")
_HEADER = struct.Struct(f"{_PREFIX.format}{WRAPPED_KEY_SIZE}s")
HEADER_SIZE = _HEADER.size

DATA_KEY_WRAP_INFO = b"camhub/v1 data-key wrap"
SECRET_WRAP_INFO = b"camhub/v1 secret wrap"
OWNER_KEY_AAD = b"camhub/v1 owner key "
SALT_SIZE = 16
MIN_SECRET_SIZE = 16
# Each key that uses it is fresh (new ephemeral key, new salt), so one nonce is safe.
_ZERO_NONCE = bytes(12)

RECOVERY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32
RECOVERY_LENGTH = 30  # 150 bits
RECOVERY_GROUP = 5

KEYFILE_FORMAT = "camhub-keyfile"
KEYFILE_VERSION = 2  # what is written; version 1 (no public_key_check) is still read
PUBLIC_KEY_CHECK_LABEL = b"camhub/v2 public key check"
MAX_KEYFILE_SIZE = 65536  # a key file is about 700 bytes; more is not one
_SLOT_FIELDS = {"kdf", "memory_kib", "iterations", "lanes", "salt", "wrapped_key"}
_KEYFILE_FIELDS = {
    1: {"format", "version", "public_key", "password", "recovery"},
    2: {"format", "version", "public_key", "public_key_check", "password", "recovery"},
}


class VaultError(Exception):
    """Base of every vault failure; the message is fit to show the owner."""


class WrongPassword(VaultError):
    """The password or recovery code does not open the key file."""


class NewerKeyFile(VaultError):
    """The key file has a version this hub does not know: a newer camhub wrote it."""


class CorruptFile(VaultError):
    """Not a camhub sealed file, or altered, reordered or sealed to another key."""


class TruncatedFile(CorruptFile):
    """Every chunk present is authentic, but the final chunk is missing."""


class FileKind(enum.IntEnum):
    SEGMENT = 1
    SNAPSHOT = 2
    JOURNAL = 3  # the off-site copy's sealed metadata (hub/offsite/journal.py)


# --- the owner's key file ------------------------------------------------------------


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost; stored beside each wrapping so it can be raised later."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        # Bounds also stop a doctored key file from asking for absurd memory or time.
        if not 1 <= self.lanes <= 64:
            raise VaultError(f"argon2id lanes: must be 1..64, got {self.lanes}")
        if not 1 <= self.iterations <= 64:
            raise VaultError(f"argon2id iterations: must be 1..64, got {self.iterations}")
        if not 8 * self.lanes <= self.memory_kib <= 4 * 1024 * 1024:
            raise VaultError(
                f"argon2id memory_kib: must be {8 * self.lanes}..4194304, got {self.memory_kib}"
            )

    def derive(self, secret: bytes, salt: bytes) -> bytes:
        return Argon2id(
            salt=salt,
            length=KEY_SIZE,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
        ).derive(secret)


@dataclass(frozen=True)
class WrappedKey:
    """The owner's private key sealed under a key derived from one secret."""

    kdf: KdfParams
    salt: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class KeyFile:
    """The owner's public key in clear, plus two wrappings of the private key.

    `version` is the one read; `to_json` always writes the current one, so a rewrite
    (`camhub passwd`) upgrades an old file.
    """

    public_bytes: bytes
    password: WrappedKey
    recovery: WrappedKey
    version: int = KEYFILE_VERSION

    def public_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.public_bytes)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": KEYFILE_FORMAT,
                "version": KEYFILE_VERSION,
                "public_key": _b64(self.public_bytes),
                "public_key_check": _b64(public_key_check(self.public_bytes)),
                "password": _slot_to_json(self.password),
                "recovery": _slot_to_json(self.recovery),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, data: str | bytes) -> KeyFile:
        """Parse and check a key file (text, or the file's bytes); VaultError says why not."""
        doc = _parse_json(data)
        if not isinstance(doc, dict):
            raise VaultError("key file: must be a JSON object")
        if doc.get("format") != KEYFILE_FORMAT:
            raise VaultError(
                f"key file: format must be {KEYFILE_FORMAT!r}, got {doc.get('format')!r}"
            )
        version = doc.get("version")
        if type(version) is not int or version not in _KEYFILE_FIELDS:
            newer = type(version) is int and version > KEYFILE_VERSION
            raise (NewerKeyFile if newer else VaultError)(
                f"key file: unsupported version {version!r} "
                f"(this hub reads {' and '.join(map(str, _KEYFILE_FIELDS))})"
            )
        doc = _check_fields(doc, _KEYFILE_FIELDS[version], "key file")
        public_bytes = _unb64(doc["public_key"], KEY_SIZE, "key file: public_key")
        if version >= 2:
            check = _unb64(doc["public_key_check"], KEY_SIZE, "key file: public_key_check")
            if check != public_key_check(public_bytes):  # nothing secret: a plain compare
                raise VaultError(
                    "key file: public_key does not match public_key_check, "
                    "so one of them was damaged or edited"
                )
        return cls(
            public_bytes=public_bytes,
            password=_slot_from_json(doc["password"], "key file: password"),
            recovery=_slot_from_json(doc["recovery"], "key file: recovery"),
            version=version,
        )


def public_key_check(public_bytes: bytes) -> bytes:
    """SHA-256 over a label and the public key. Unkeyed: it catches accidents (bit rot, a
    bad edit), not someone who rewrites the file; a login catches that (FORMAT.md §1.1)."""
    return hashlib.sha256(PUBLIC_KEY_CHECK_LABEL + public_bytes).digest()


def _parse_json(data: str | bytes) -> object:
    """The JSON value; else a VaultError saying in words what the bytes are instead, since
    the owner has to decide from it whether the file is cut short, garbage or foreign."""
    if len(data) > MAX_KEYFILE_SIZE:
        raise VaultError(f"key file: over {MAX_KEYFILE_SIZE} bytes, too large to be one")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VaultError(f"key file: not UTF-8 text (byte {exc.start})") from None
    if not data.strip():
        raise VaultError("key file: empty")
    try:
        return json.loads(data)
    except RecursionError:
        raise VaultError("key file: not valid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(data.rstrip()) or exc.msg.startswith("Unterminated string")
        why = "it ends early, cut short" if cut else f"{exc.msg} at line {exc.lineno}"
        raise VaultError(f"key file: not valid JSON: {why}") from None


MIN_PASSWORD_LENGTH = 10


def password_problem(password: str) -> str | None:
    """Why a new owner password is refused (`init`, `passwd` and the page), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    return None


def create_owner_keys(password: str, *, kdf: KdfParams | None = None) -> tuple[KeyFile, str]:
    """A new owner key pair, wrapped by `password` and by a recovery code shown once."""
    private_key = X25519PrivateKey.generate()
    public_bytes = private_key.public_key().public_bytes_raw()
    code = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    params = kdf or KdfParams()
    keyfile = KeyFile(
        public_bytes=public_bytes,
        password=_wrap_private(private_key, _password_bytes(password), "password", params),
        recovery=_wrap_private(private_key, code.encode("ascii"), "recovery", params),
    )
    groups = range(0, RECOVERY_LENGTH, RECOVERY_GROUP)
    return keyfile, "-".join(code[i : i + RECOVERY_GROUP] for i in groups)


def unlock(keyfile: KeyFile, password: str) -> X25519PrivateKey:
    if not password:
        raise WrongPassword("wrong password")
    return _unwrap_private(keyfile, keyfile.password, _password_bytes(password), "password")


def unlock_with_recovery(keyfile: KeyFile, code: str) -> X25519PrivateKey:
    return _unwrap_private(keyfile, keyfile.recovery, normalize_recovery_code(code), "recovery")


def rewrap(
    keyfile: KeyFile,
    private_key: X25519PrivateKey,
    new_password: str,
    *,
    kdf: KdfParams | None = None,
) -> KeyFile:
    """The same key file under a new password; the recovery wrapping is kept as is.

    `kdf` defaults to today's cost, so a password change also upgrades an old file.
    """
    if private_key.public_key().public_bytes_raw() != keyfile.public_bytes:
        raise VaultError("rewrap: this private key does not belong to the key file")
    new_slot = _wrap_private(
        private_key, _password_bytes(new_password), "password", kdf or KdfParams()
    )
    return KeyFile(keyfile.public_bytes, new_slot, keyfile.recovery)


def normalize_recovery_code(code: str) -> bytes:
    """The 30 canonical characters, so case, dashes and spaces typed back do not matter."""
    canonical = "".join(c for c in code.upper() if c != "-" and not c.isspace())
    if len(canonical) != RECOVERY_LENGTH or any(c not in RECOVERY_ALPHABET for c in canonical):
        raise WrongPassword(
            f"recovery code must be {RECOVERY_LENGTH} letters A-Z and digits 2-7 "
            f"(dashes and spaces are ignored), got {len(canonical)} characters"
        )
    return canonical.encode("ascii")


def _password_bytes(password: str) -> bytes:
    if not password:
        raise VaultError("password must not be empty")
    return unicodedata.normalize("NFC", password).encode("utf-8")


def _wrap_private(
    private_key: X25519PrivateKey, secret: bytes, slot: str, kdf: KdfParams
) -> WrappedKey:
    salt = os.urandom(SALT_SIZE)
    aead = ChaCha20Poly1305(kdf.derive(secret, salt))
    public_bytes = private_key.public_key().public_bytes_raw()
    ciphertext = aead.encrypt(
        _ZERO_NONCE, private_key.private_bytes_raw(), _owner_key_aad(slot, public_bytes)
    )
    return WrappedKey(kdf=kdf, salt=salt, ciphertext=ciphertext)


def _unwrap_private(
    keyfile: KeyFile, wrapped: WrappedKey, secret: bytes, slot: str
) -> X25519PrivateKey:
    aead = ChaCha20Poly1305(wrapped.kdf.derive(secret, wrapped.salt))
    try:
        raw = aead.decrypt(
            _ZERO_NONCE, wrapped.ciphertext, _owner_key_aad(slot, keyfile.public_bytes)
        )
    except InvalidTag:
        what = "password" if slot == "password" else "recovery code"
        raise WrongPassword(f"wrong {what} (or the key file was altered)") from None
    private_key = X25519PrivateKey.from_private_bytes(raw)
    if private_key.public_key().public_bytes_raw() != keyfile.public_bytes:
        raise VaultError(f"key file: the {slot} slot holds a key for another public key")
    return private_key


def _owner_key_aad(slot: str, public_bytes: bytes) -> bytes:
    return OWNER_KEY_AAD + slot.encode("ascii") + public_bytes


def _slot_to_json(slot: WrappedKey) -> dict[str, Any]:
    return {
        "kdf": "argon2id",
        "memory_kib": slot.kdf.memory_kib,
        "iterations": slot.kdf.iterations,
        "lanes": slot.kdf.lanes,
        "salt": _b64(slot.salt),
        "wrapped_key": _b64(slot.ciphertext),
    }


def _slot_from_json(doc: object, where: str) -> WrappedKey:
    doc = _check_fields(doc, _SLOT_FIELDS, where)
    if doc["kdf"] != "argon2id":
        raise VaultError(f"{where}.kdf: must be 'argon2id', got {doc['kdf']!r}")
    numbers = {name: doc[name] for name in ("memory_kib", "iterations", "lanes")}
    for name, value in numbers.items():
        if type(value) is not int:
            raise VaultError(f"{where}.{name}: must be an integer, got {value!r}")
    try:
        kdf = KdfParams(**numbers)
    except VaultError as exc:
        raise VaultError(f"{where}: {exc}") from None
    return WrappedKey(
        kdf=kdf,
        salt=_unb64(doc["salt"], SALT_SIZE, f"{where}.salt"),
        ciphertext=_unb64(doc["wrapped_key"], WRAPPED_KEY_SIZE, f"{where}.wrapped_key"),
    )


def _check_fields(doc: object, expected: set[str], where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise VaultError(f"{where}: must be a JSON object")
    if missing := expected - doc.keys():
        raise VaultError(f"{where}: missing {', '.join(sorted(missing))}")
    if unknown := doc.keys() - expected:
        raise VaultError(f"{where}: unknown {', '.join(sorted(unknown))}")
    return doc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, size: int, where: str) -> bytes:
    if not isinstance(value, str):
        raise VaultError(f"{where}: must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise VaultError(f"{where}: not valid base64") from None
    if len(data) != size:
        raise VaultError(f"{where}: must be {size} bytes, got {len(data)}")
    return data


# --- sealed files ---------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The fixed header of a sealed file; `raw` is bound to every chunk as AAD."""

    version: int
    kind: FileKind
    chunk_size: int
    file_id: bytes
    ephemeral_public: bytes
    wrapped_key: bytes
    raw: bytes = field(repr=False)


def parse_header(data: bytes) -> Header:
    """Read the header at the start of `data` (extra bytes after it are ignored)."""
    if len(data) < HEADER_SIZE:
        raise CorruptFile(
            f"not a camhub sealed file: {len(data)} bytes, a header alone is {HEADER_SIZE}"
        )
    magic, version, kind, chunk_size, file_id, ephemeral_public, wrapped = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptFile("not a camhub sealed file (bad magic bytes)")
    if version != VERSION:
        raise CorruptFile(f"unsupported camhub file version {version} (this hub reads {VERSION})")
    try:
        kind = FileKind(kind)
    except ValueError:
        raise CorruptFile(f"camhub file has unknown kind {kind}") from None
    if chunk_size != CHUNK_SIZE:
        raise CorruptFile(f"camhub file has chunk size {chunk_size}, version 1 uses {CHUNK_SIZE}")
    return Header(
        version=version,
        kind=kind,
        chunk_size=chunk_size,
        file_id=file_id,
        ephemeral_public=ephemeral_public,
        wrapped_key=wrapped,
        raw=bytes(data[:HEADER_SIZE]),
    )


def unwrap_data_key(header: Header, private_key: X25519PrivateKey) -> bytes:
    owner_public = private_key.public_key().public_bytes_raw()
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(header.ephemeral_public))
    except ValueError:  # a low-order point: no honest writer makes one
        raise CorruptFile("camhub file header has an invalid ephemeral key") from None
    aead = ChaCha20Poly1305(_data_wrap_key(shared, header.ephemeral_public, owner_public))
    try:
        return aead.decrypt(_ZERO_NONCE, header.wrapped_key, header.raw[: _PREFIX.size])
    except InvalidTag:
        raise CorruptFile(
            "cannot unwrap the file's data key: it was sealed to another owner key, "
            "or its header was altered"
        ) from None


def _data_wrap_key(shared: bytes, ephemeral_public: bytes, owner_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_SIZE,
        salt=ephemeral_public + owner_public,
        info=DATA_KEY_WRAP_INFO,
    ).derive(shared)


def _build_header(
    public_key: X25519PublicKey, kind: FileKind, file_id: bytes, data_key: bytes
) -> Header:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    prefix = _PREFIX.pack(MAGIC, VERSION, kind, CHUNK_SIZE, file_id, ephemeral_public)
    wrap_key = _data_wrap_key(
        ephemeral.exchange(public_key), ephemeral_public, public_key.public_bytes_raw()
    )
    wrapped = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, data_key, prefix)
    return parse_header(prefix + wrapped)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SealWriter:
    """A write-only file-like sink that seals what it is given, chunk by chunk.

    PyAV can mux straight into it, so plaintext never leaves memory. A full chunk is
    held until the next byte arrives, because only then is it known not to be the
    last one; the buffer therefore never exceeds one chunk. `close()` writes the
    final chunk but neither flushes nor closes `out`: durability is the caller's job.
    """

    def __init__(
        self,
        out: BinaryIO,
        public_key: X25519PublicKey,
        kind: FileKind,
        file_id: bytes | None = None,
    ) -> None:
        if file_id is None:
            file_id = os.urandom(FILE_ID_SIZE)
        if len(file_id) != FILE_ID_SIZE:
            raise ValueError(f"file_id must be {FILE_ID_SIZE} bytes, got {len(file_id)}")
        data_key = ChaCha20Poly1305.generate_key()
        self.file_id = bytes(file_id)
        self.header = _build_header(public_key, FileKind(kind), self.file_id, data_key)
        self._aead = ChaCha20Poly1305(data_key)
        self._out = out
        self._buffer = bytearray()
        self._closed = False
        self.sealed_chunks = 0
        self.plaintext_bytes = 0
        out.write(self.header.raw)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered_bytes(self) -> int:
        """Plaintext held in memory, not yet sealed (at most one chunk)."""
        return len(self._buffer)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed SealWriter")
        view = memoryview(data).cast("B")
        pos = 0
        while pos < len(view):
            if len(self._buffer) == CHUNK_SIZE:
                self._seal(last=False)
            take = min(CHUNK_SIZE - len(self._buffer), len(view) - pos)
            self._buffer += view[pos : pos + take]
            pos += take
        self.plaintext_bytes += len(view)
        return len(view)

    def close(self) -> None:
        if not self._closed:
            self._seal(last=True)
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an error the file is left without its final chunk, so nobody mistakes a
        # half-written recording for a complete one.
        if exc_type is None:
            self.close()

    def _seal(self, *, last: bool) -> None:
        nonce = _nonce(self.sealed_chunks, last)
        self._out.write(self._aead.encrypt(nonce, bytes(self._buffer), self.header.raw))
        self._buffer.clear()
        self.sealed_chunks += 1


def sealed_size(plaintext_length: int) -> int:
    """Bytes on disk of a complete sealed file holding `plaintext_length` bytes."""
    chunks = max(1, -(-plaintext_length // CHUNK_SIZE))
    return HEADER_SIZE + plaintext_length + chunks * TAG_SIZE


def sealed_prefix_length(file_size: int, chunk_size: int = CHUNK_SIZE) -> int:
    """How much of a file cut short mid-write is header plus whole chunks (0: nothing).

    Needs no key, so the hub can trim a segment it finds after a crash before anyone
    has logged in. Only for files never closed: a complete file's short final chunk
    does not count as whole.
    """
    if file_size < 0 or chunk_size <= 0:
        raise ValueError(
            f"file_size and chunk_size must be >= 0 and > 0, got {file_size}, {chunk_size}"
        )
    if file_size < HEADER_SIZE:
        return 0
    sealed_chunk = chunk_size + TAG_SIZE
    return HEADER_SIZE + (file_size - HEADER_SIZE) // sealed_chunk * sealed_chunk


def open_sealed(
    src: BinaryIO,
    private_key: X25519PrivateKey | None = None,
    *,
    data_key: bytes | None = None,
    allow_partial: bool = False,
) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, each only after it has been authenticated.

    Give either the owner's `private_key` or a `data_key` unwrapped some other way
    (share links). `allow_partial` accepts a file cut short by a crash: its whole
    chunks without the final one, and without a trailing fragment shorter than a chunk
    that does not authenticate (a cut mid-chunk). Only for the hub's recovered
    segments; what it yields is still an authentic prefix, in order.
    """
    if (private_key is None) == (data_key is None):
        raise ValueError("open_sealed needs exactly one of private_key or data_key")
    if data_key is not None and len(data_key) != KEY_SIZE:
        raise ValueError(f"data_key must be {KEY_SIZE} bytes, got {len(data_key)}")
    header = parse_header(_read_exact(src, HEADER_SIZE))
    if private_key is not None:
        data_key = unwrap_data_key(header, private_key)
    return _open_chunks(src, header, ChaCha20Poly1305(data_key), allow_partial)


def _open_chunks(
    src: BinaryIO, header: Header, aead: ChaCha20Poly1305, allow_partial: bool
) -> Iterator[bytes]:
    def decrypt(chunk: bytes, counter: int, last: bool) -> bytes | None:
        try:
            return aead.decrypt(_nonce(counter, last), chunk, header.raw)
        except InvalidTag:
            return None

    counter = 0
    chunk = _read_exact(src, SEALED_CHUNK_SIZE)
    while chunk:
        # Only the last chunk in the file may be final; look one chunk ahead to know.
        following = _read_exact(src, SEALED_CHUNK_SIZE) if len(chunk) == SEALED_CHUNK_SIZE else b""
        if not following:
            final = decrypt(chunk, counter, last=True)
            if final is not None:
                if not final and counter:
                    raise CorruptFile(f"chunk {counter} is an empty final chunk, which is invalid")
                if final:
                    yield final
                return
            if len(chunk) < SEALED_CHUNK_SIZE:
                if allow_partial:  # a crash cut the file mid-chunk: the fragment holds nothing
                    return
                raise CorruptFile(
                    f"the last chunk ({counter}, {len(chunk)} bytes) failed authentication: "
                    "the file was cut mid-chunk or altered"
                )
        plain = decrypt(chunk, counter, last=False)
        if plain is None:
            raise CorruptFile(
                f"chunk {counter} failed authentication: the file was altered or reordered"
            )
        yield plain
        chunk, counter = following, counter + 1
    if not allow_partial:
        raise TruncatedFile(
            f"the file ends after chunk {counter - 1} without its final chunk (truncated)"
            if counter
            else "the file has a header but no chunks (truncated)"
        )


def _read_exact(src: BinaryIO, size: int) -> bytes:
    """Read `size` bytes, fewer only at end of file (raw streams may return short reads)."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = src.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def seal_bytes(data: bytes, public_key: X25519PublicKey, kind: FileKind) -> bytes:
    out = io.BytesIO()
    with SealWriter(out, public_key, kind) as writer:
        writer.write(data)
    return out.getvalue()


def open_bytes(data: bytes, private_key: X25519PrivateKey) -> bytes:
    return b"".join(open_sealed(io.BytesIO(data), private_key))


# --- share links -----------------------------------------------------------------------


def wrap_for_secret(data_key: bytes, secret: bytes, context: bytes) -> bytes:
    """Wrap a data key under a high-entropy secret (a share link's), bound to `context`.

    The secret is random, not a password, so HKDF is enough; no Argon2 needed.
    """
    if len(data_key) != KEY_SIZE:
        raise ValueError(f"data_key must be {KEY_SIZE} bytes, got {len(data_key)}")
    salt = os.urandom(SALT_SIZE)
    aead = ChaCha20Poly1305(_secret_wrap_key(secret, salt))
    return salt + aead.encrypt(_ZERO_NONCE, data_key, context)


def unwrap_with_secret(blob: bytes, secret: bytes, context: bytes) -> bytes:
    if len(blob) != SALT_SIZE + WRAPPED_KEY_SIZE:
        raise VaultError(f"wrapped share key must be {SALT_SIZE + WRAPPED_KEY_SIZE} bytes")
    aead = ChaCha20Poly1305(_secret_wrap_key(secret, blob[:SALT_SIZE]))
    try:
        return aead.decrypt(_ZERO_NONCE, blob[SALT_SIZE:], context)
    except InvalidTag:
        raise VaultError("wrong share secret, or the wrapped key was altered") from None


def _secret_wrap_key(secret: bytes, salt: bytes) -> bytes:
    if len(secret) < MIN_SECRET_SIZE:
        raise VaultError(
            f"share secret must be at least {MIN_SECRET_SIZE} bytes, got {len(secret)}"
        )
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=SECRET_WRAP_INFO
    ).derive(secret)
