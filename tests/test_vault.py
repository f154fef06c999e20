"""The vault: owner key file, sealed files, tamper detection, crash recovery, share wraps."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import tracemalloc
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.vault import (
    CHUNK_SIZE,
    HEADER_SIZE,
    CorruptFile,
    FileKind,
    KdfParams,
    KeyFile,
    NewerKeyFile,
    SealWriter,
    TruncatedFile,
    VaultError,
    WrappedKey,
    WrongPassword,
    create_owner_keys,
    open_bytes,
    open_sealed,
    parse_header,
    rewrap,
    seal_bytes,
    sealed_prefix_length,
    sealed_size,
    unlock,
    unlock_with_recovery,
    unwrap_data_key,
    unwrap_with_secret,
    wrap_for_secret,
)

FAST = KdfParams(memory_kib=256, iterations=1, lanes=1)
SEALED = CHUNK_SIZE + 16  # one whole sealed chunk on disk
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def keys() -> tuple[KeyFile, str]:
    return create_owner_keys(PASSWORD, kdf=FAST)


def _open(data: bytes, key: X25519PrivateKey | None, **kwargs: Any) -> bytes:
    return b"".join(open_sealed(io.BytesIO(data), key, **kwargs))


def _spec_decrypt(data: bytes, private_key: X25519PrivateKey) -> bytes:
    """A decryptor written from docs/FORMAT.md alone (no hub.vault), to keep the spec honest."""
    assert data[:8] == b"\x89camhub\n"
    assert data[8] == 1
    assert int.from_bytes(data[10:14], "big") == 65536
    header, ephemeral, wrapped = data[:110], data[30:62], data[62:110]
    owner_public = private_key.public_key().public_bytes_raw()
    shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral))
    wrap_key = HKDF(
        hashes.SHA256(), 32, salt=ephemeral + owner_public, info=b"camhub/v1 data-key wrap"
    ).derive(shared)
    aead = ChaCha20Poly1305(ChaCha20Poly1305(wrap_key).decrypt(bytes(12), wrapped, data[:62]))
    body = data[110:]
    chunks = [body[i : i + 65552] for i in range(0, len(body), 65552)]
    return b"".join(
        aead.decrypt(i.to_bytes(11, "big") + bytes([i == len(chunks) - 1]), chunk, header)
        for i, chunk in enumerate(chunks)
    )


def _spec_check_keyfile(text: str) -> bytes:
    """The public key of a key file, checked as docs/FORMAT.md §1 says (no hub.vault)."""
    doc = json.loads(text)
    assert doc["format"] == "camhub-keyfile"
    public = base64.b64decode(doc["public_key"], validate=True)
    assert len(public) == 32
    if doc["version"] == 1:
        assert "public_key_check" not in doc
        return public
    assert doc["version"] == 2
    check = base64.b64decode(doc["public_key_check"], validate=True)
    assert check == hashlib.sha256(b"camhub/v2 public key check" + public).digest()
    return public


# --- owner key file -------------------------------------------------------------------


def test_key_file_round_trips_through_json_and_unlocks(keys: tuple[KeyFile, str]) -> None:
    keyfile, code = keys
    loaded = KeyFile.from_json(keyfile.to_json())
    assert loaded == keyfile
    private_key = unlock(loaded, PASSWORD)
    assert private_key.public_key().public_bytes_raw() == keyfile.public_bytes
    sealed = seal_bytes(b"hello", loaded.public_key(), FileKind.SNAPSHOT)
    assert open_bytes(sealed, private_key) == b"hello"
    assert re.fullmatch(r"[A-Z2-7]{5}(-[A-Z2-7]{5}){5}", code)


def test_key_file_keeps_no_secret_in_clear(keys: tuple[KeyFile, str]) -> None:
    keyfile, code = keys
    text = keyfile.to_json()
    private_raw = unlock(keyfile, PASSWORD).private_bytes_raw()
    assert PASSWORD not in text
    assert code.replace("-", "") not in text
    assert base64.b64encode(private_raw).decode() not in text


@pytest.mark.parametrize("attempt", ["wrong", PASSWORD.upper(), PASSWORD + " ", ""])
def test_wrong_password_is_refused(keys: tuple[KeyFile, str], attempt: str) -> None:
    with pytest.raises(WrongPassword, match="wrong password"):
        unlock(keys[0], attempt)


def test_password_is_unicode_normalized() -> None:
    keyfile, _ = create_owner_keys(unicodedata.normalize("NFC", "café"), kdf=FAST)
    private_key = unlock(keyfile, unicodedata.normalize("NFD", "café"))
    assert private_key.public_key().public_bytes_raw() == keyfile.public_bytes


def test_empty_password_cannot_create_keys() -> None:
    with pytest.raises(VaultError, match="must not be empty"):
        create_owner_keys("", kdf=FAST)


@pytest.mark.parametrize(
    "retype",
    [
        lambda code: code,
        str.lower,
        lambda code: code.replace("-", ""),
        lambda code: code.replace("-", " "),
        lambda code: "  " + code.lower().replace("-", " - ") + "\n",
    ],
)
def test_recovery_code_unlocks_however_it_is_typed(
    keys: tuple[KeyFile, str], retype: Callable[[str], str]
) -> None:
    keyfile, code = keys
    private_key = unlock_with_recovery(keyfile, retype(code))
    assert private_key.public_key().public_bytes_raw() == keyfile.public_bytes


def test_wrong_recovery_code_is_refused(keys: tuple[KeyFile, str]) -> None:
    keyfile, code = keys
    wrong = ("B" if code[0] == "A" else "A") + code[1:]
    with pytest.raises(WrongPassword, match="wrong recovery code"):
        unlock_with_recovery(keyfile, wrong)


@pytest.mark.parametrize("typed", ["ABCDE-FGHIJ", "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY-Z2341"])
def test_malformed_recovery_code_says_what_is_expected(
    keys: tuple[KeyFile, str], typed: str
) -> None:
    with pytest.raises(WrongPassword, match="30 letters A-Z and digits 2-7"):
        unlock_with_recovery(keys[0], typed)


def test_default_argon2_params_are_stored_and_work() -> None:
    keyfile, _ = create_owner_keys(PASSWORD)
    doc = json.loads(keyfile.to_json())
    for slot in ("password", "recovery"):
        assert doc[slot]["kdf"] == "argon2id"
        assert (doc[slot]["memory_kib"], doc[slot]["iterations"], doc[slot]["lanes"]) == (
            65536,
            3,
            4,
        )
    assert unlock(
        KeyFile.from_json(keyfile.to_json()), PASSWORD
    ).public_key().public_bytes_raw() == (keyfile.public_bytes)


def test_rewrap_changes_password_and_keeps_recovery(
    keys: tuple[KeyFile, str], owner: X25519PrivateKey
) -> None:
    keyfile, code = keys
    private_key = unlock(keyfile, PASSWORD)
    sealed_before = seal_bytes(b"old footage", keyfile.public_key(), FileKind.SEGMENT)

    changed = rewrap(keyfile, private_key, "new password", kdf=FAST)

    assert changed.public_bytes == keyfile.public_bytes
    assert changed.recovery == keyfile.recovery
    with pytest.raises(WrongPassword):
        unlock(changed, PASSWORD)
    assert open_bytes(sealed_before, unlock(changed, "new password")) == b"old footage"
    assert open_bytes(sealed_before, unlock_with_recovery(changed, code)) == b"old footage"
    with pytest.raises(VaultError, match="does not belong"):
        rewrap(keyfile, owner, "new password", kdf=FAST)


def test_unlock_rejects_a_slot_that_holds_another_key(keys: tuple[KeyFile, str]) -> None:
    keyfile, _ = keys
    salt = os.urandom(16)
    aad = b"camhub/v1 owner key password" + keyfile.public_bytes
    stranger = X25519PrivateKey.generate().private_bytes_raw()
    forged = ChaCha20Poly1305(FAST.derive(PASSWORD.encode(), salt)).encrypt(
        bytes(12), stranger, aad
    )
    doctored = dataclasses.replace(keyfile, password=WrappedKey(FAST, salt, forged))
    with pytest.raises(VaultError, match="another public key") as info:
        unlock(doctored, PASSWORD)
    assert not isinstance(info.value, WrongPassword)


def _edit(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        for key in path[:-1]:
            doc = doc[key]
        if value is KeyError:
            del doc[path[-1]]
        else:
            doc[path[-1]] = value

    return apply


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit(("format",), "age"), "format must be 'camhub-keyfile'"),
        (_edit(("version",), 3), "unsupported version 3"),
        (_edit(("version",), True), "unsupported version True"),
        (_edit(("version",), 2.0), "unsupported version 2.0"),
        (_edit(("version",), "2"), "unsupported version '2'"),
        (_edit(("version",), KeyError), "unsupported version None"),
        (_edit(("format",), KeyError), "format must be 'camhub-keyfile', got None"),
        (_edit(("public_key_check",), KeyError), "missing public_key_check"),
        (_edit(("public_key_check",), "AAAA"), "public_key_check: must be 32 bytes, got 3"),
        (_edit(("recovery",), KeyError), "missing recovery"),
        (_edit(("comment",), "hi"), "unknown comment"),
        (_edit(("public_key",), "not base64!"), "public_key: not valid base64"),
        (_edit(("public_key",), "AAAA"), "public_key: must be 32 bytes, got 3"),
        (_edit(("password", "kdf"), "scrypt"), r"password.kdf: must be 'argon2id'"),
        (_edit(("password", "iterations"), "3"), "password.iterations: must be an integer"),
        (_edit(("recovery", "memory_kib"), 2**40), "recovery: argon2id memory_kib"),
        (_edit(("recovery", "lanes"), 0), "recovery: argon2id lanes"),
        (_edit(("password", "salt"), 7), "password.salt: must be a base64 string"),
        (_edit(("password",), []), "password: must be a JSON object"),
    ],
)
def test_bad_key_file_names_what_is_wrong(
    keys: tuple[KeyFile, str], edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    doc = json.loads(keys[0].to_json())
    edit(doc)
    with pytest.raises(VaultError, match=message):
        KeyFile.from_json(json.dumps(doc))


def test_key_file_that_is_not_json_is_refused() -> None:
    with pytest.raises(VaultError, match="not valid JSON"):
        KeyFile.from_json("{nope")


def test_key_file_carries_a_check_of_its_public_key(keys: tuple[KeyFile, str]) -> None:
    text = keys[0].to_json()
    assert json.loads(text)["version"] == 2
    assert _spec_check_keyfile(text) == keys[0].public_bytes


def _flip_field(text: str, name: str, bit: int) -> str:
    doc = json.loads(text)
    raw = bytearray(base64.b64decode(doc[name]))
    raw[bit // 8] ^= 1 << (bit % 8)
    doc[name] = base64.b64encode(raw).decode()
    return json.dumps(doc)


@pytest.mark.parametrize("name", ["public_key", "public_key_check"])
def test_every_single_bit_flip_of_the_public_key_or_its_check_is_refused(
    keys: tuple[KeyFile, str], name: str
) -> None:
    text = keys[0].to_json()
    for bit in range(256):
        with pytest.raises(VaultError, match="public_key does not match public_key_check"):
            KeyFile.from_json(_flip_field(text, name, bit))


def test_a_rewritten_public_key_with_a_fresh_check_is_caught_at_login(
    keys: tuple[KeyFile, str],
) -> None:
    """The check is unkeyed: whoever rewrites the file can recompute it. The slots bind
    the public key as AAD, so the owner's login refuses such a file."""
    keyfile, code = keys
    stranger = X25519PrivateKey.generate().public_key().public_bytes_raw()
    forged = KeyFile.from_json(dataclasses.replace(keyfile, public_bytes=stranger).to_json())
    with pytest.raises(WrongPassword, match="or the key file was altered"):
        unlock(forged, PASSWORD)
    with pytest.raises(WrongPassword, match="or the key file was altered"):
        unlock_with_recovery(forged, code)


def _as_version_1(text: str) -> str:
    doc = json.loads(text)
    del doc["public_key_check"]
    return json.dumps({**doc, "version": 1}, indent=2)


def test_version_1_key_file_opens_and_is_written_back_as_version_2(
    keys: tuple[KeyFile, str],
) -> None:
    keyfile, code = keys
    old_text = _as_version_1(keyfile.to_json())
    old = KeyFile.from_json(old_text)
    assert old.version == 1 and _spec_check_keyfile(old_text) == keyfile.public_bytes
    assert unlock(old, PASSWORD).public_key().public_bytes_raw() == keyfile.public_bytes
    assert unlock_with_recovery(old, code).public_key().public_bytes_raw() == keyfile.public_bytes
    upgraded = rewrap(old, unlock(old, PASSWORD), "new password", kdf=FAST).to_json()
    assert _spec_check_keyfile(upgraded) == keyfile.public_bytes
    assert KeyFile.from_json(upgraded).version == 2


def test_version_1_key_file_has_no_check_field() -> None:
    keyfile, _ = create_owner_keys(PASSWORD, kdf=FAST)
    doc = json.loads(keyfile.to_json())
    with pytest.raises(VaultError, match="unknown public_key_check"):
        KeyFile.from_json(json.dumps({**doc, "version": 1}))


def test_newer_key_file_is_told_apart() -> None:
    doc = json.loads(create_owner_keys(PASSWORD, kdf=FAST)[0].to_json())
    with pytest.raises(NewerKeyFile, match="unsupported version 3"):
        KeyFile.from_json(json.dumps({**doc, "version": 3}))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "key file: empty"),
        (b" \n\t", "key file: empty"),
        (b'{"format": "camhub-keyfile", "ver', "not valid JSON: it ends early, cut short"),
        (b'{"format": "camhub-\n', "ends early"),
        (b"\x89PNG\r\n\x1a\n", "not UTF-8 text \\(byte 0\\)"),
        (b"[" * 50_000, "nested too deeply"),
        (b"{} x", "not valid JSON: Extra data at line 1"),
        (b"null", "must be a JSON object"),
        (b" " * 65537, "over 65536 bytes"),
    ],
)
def test_key_file_bytes_that_are_not_a_key_file_say_why(data: bytes, message: str) -> None:
    with pytest.raises(VaultError, match=message):
        KeyFile.from_json(data)


def test_key_file_reads_from_its_utf8_bytes(keys: tuple[KeyFile, str]) -> None:
    assert KeyFile.from_json(keys[0].to_json().encode()) == keys[0]


# --- sealing round trips ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE])
def test_round_trip_and_size(owner: X25519PrivateKey, size: int) -> None:
    data = os.urandom(size)
    sealed = seal_bytes(data, owner.public_key(), FileKind.SEGMENT)
    chunks = max(1, -(-size // CHUNK_SIZE))  # an exact multiple adds no empty chunk
    assert len(sealed) == HEADER_SIZE + size + 16 * chunks == sealed_size(size)
    assert open_bytes(sealed, owner) == data
    assert _spec_decrypt(sealed, owner) == data


def test_round_trip_of_several_mb_in_random_writes(owner: X25519PrivateKey, tmp_path: Path) -> None:
    rng = random.Random(7)
    data = rng.randbytes(5 * 2**20 + 123)
    path = tmp_path / "segment.sealed"
    with path.open("wb") as out:
        writer = SealWriter(out, owner.public_key(), FileKind.SEGMENT)
        pos = 0
        while pos < len(data):
            step = rng.choice((1, 7, 4096, CHUNK_SIZE, 3 * CHUNK_SIZE + 5, 200_000))
            assert writer.write(data[pos : pos + step]) == len(data[pos : pos + step])
            pos += step
            # All but the newest (possibly last) chunk is already sealed and written out.
            assert writer.buffered_bytes <= CHUNK_SIZE
            assert writer.sealed_chunks == (writer.plaintext_bytes - 1) // CHUNK_SIZE
            assert out.tell() == HEADER_SIZE + writer.sealed_chunks * SEALED
        writer.close()
    assert writer.plaintext_bytes == len(data)
    assert path.stat().st_size == sealed_size(len(data))
    with path.open("rb") as src:
        assert b"".join(open_sealed(src, owner)) == data


class _CountingSink:
    """Keeps nothing, so the memory measured is the writer's own."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def test_seal_writer_memory_stays_bounded(owner: X25519PrivateKey) -> None:
    data = os.urandom(8 * 2**20)
    sink = _CountingSink()
    tracemalloc.start()
    try:
        writer = SealWriter(sink, owner.public_key(), FileKind.SEGMENT)  # type: ignore[arg-type]
        writer.write(data)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size == sealed_size(len(data))
    assert peak < 8 * CHUNK_SIZE, f"writer peaked at {peak} bytes for an 8 MiB write"


def test_seal_writer_close_is_idempotent_and_final(owner: X25519PrivateKey) -> None:
    out = io.BytesIO()
    writer = SealWriter(out, owner.public_key(), FileKind.SEGMENT)
    writer.write(b"abc")
    writer.close()
    size = len(out.getvalue())
    writer.close()
    assert len(out.getvalue()) == size
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")
    assert open_bytes(out.getvalue(), owner) == b"abc"


def test_header_records_kind_and_file_id(owner: X25519PrivateKey) -> None:
    file_id = bytes(range(16))
    out = io.BytesIO()
    with SealWriter(out, owner.public_key(), FileKind.SNAPSHOT, file_id=file_id) as writer:
        writer.write(b"x")
    header = parse_header(out.getvalue())
    assert header == writer.header
    assert (header.version, header.kind, header.chunk_size) == (1, FileKind.SNAPSHOT, CHUNK_SIZE)
    assert header.file_id == writer.file_id == file_id
    assert header.raw == out.getvalue()[:HEADER_SIZE]
    with pytest.raises(ValueError, match="file_id must be 16 bytes"):
        SealWriter(io.BytesIO(), owner.public_key(), FileKind.SEGMENT, file_id=b"short")


def test_each_file_gets_its_own_data_key(owner: X25519PrivateKey) -> None:
    first, second = (seal_bytes(b"same", owner.public_key(), FileKind.SEGMENT) for _ in "ab")
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]
    assert unwrap_data_key(parse_header(first), owner) != unwrap_data_key(
        parse_header(second), owner
    )


def test_open_needs_exactly_one_key(owner: X25519PrivateKey) -> None:
    sealed = seal_bytes(b"x", owner.public_key(), FileKind.SEGMENT)
    with pytest.raises(ValueError, match="exactly one"):
        _open(sealed, None)
    with pytest.raises(ValueError, match="exactly one"):
        _open(sealed, owner, data_key=bytes(32))


# --- no plaintext on disk -------------------------------------------------------------------


def _assert_no_plaintext(sealed: bytes, plain: bytes, signatures: list[bytes]) -> None:
    for signature in signatures:
        assert signature not in sealed, f"plaintext {signature!r} found in sealed bytes"
    rng = random.Random(1)
    for _ in range(200):
        start = rng.randrange(0, max(1, len(plain) - 32))
        assert plain[start : start + 32] not in sealed


def test_sealed_mp4_muxed_by_pyav_has_no_plaintext_on_disk(
    owner: X25519PrivateKey, person_clip: Path, tmp_path: Path
) -> None:
    path = tmp_path / "segment.sealed"
    with av.open(str(person_clip)) as source, path.open("wb") as out:
        writer = SealWriter(out, owner.public_key(), FileKind.SEGMENT)
        video = source.streams.video[0]
        muxer = av.open(writer, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"})
        stream = muxer.add_stream_from_template(video)
        muxed = 0
        for packet in source.demux(video):
            if packet.dts is None:
                continue
            packet.stream = stream
            muxer.mux(packet)
            muxed += 1
            if muxed == 60:
                break
        muxer.close()
        writer.close()

    sealed = path.read_bytes()
    with path.open("rb") as src:
        plain = b"".join(open_sealed(src, owner))
    assert plain[4:8] == b"ftyp"
    _assert_no_plaintext(sealed, plain, [plain[4:12], plain[:64]])
    with av.open(io.BytesIO(plain)) as decrypted:
        assert sum(1 for p in decrypted.demux(video=0) if p.dts is not None) == muxed


def test_sealed_jpeg_snapshot_has_no_plaintext_on_disk(
    owner: X25519PrivateKey, person_clip: Path, tmp_path: Path
) -> None:
    with av.open(str(person_clip)) as source:
        picture = next(source.decode(video=0)).to_ndarray(format="bgr24")
    ok, encoded = cv2.imencode(".jpg", picture)
    assert ok
    jpeg = encoded.tobytes()
    path = tmp_path / "snapshot.sealed"
    path.write_bytes(seal_bytes(jpeg, owner.public_key(), FileKind.SNAPSHOT))

    sealed = path.read_bytes()
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert sealed[HEADER_SIZE : HEADER_SIZE + 3] != b"\xff\xd8\xff"
    _assert_no_plaintext(sealed, jpeg, [jpeg[:20]])
    assert parse_header(sealed).kind == FileKind.SNAPSHOT
    assert open_bytes(sealed, owner) == jpeg


# --- tampering ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(owner: X25519PrivateKey) -> tuple[bytes, bytes]:
    """Two whole chunks and a half-full final one: (plaintext, sealed)."""
    plain = os.urandom(2 * CHUNK_SIZE + CHUNK_SIZE // 2)
    return plain, seal_bytes(plain, owner.public_key(), FileKind.SEGMENT)


def _flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    edited = bytearray(data)
    edited[offset] ^= mask
    return bytes(edited)


def _chunks(sealed: bytes) -> list[bytes]:
    body = sealed[HEADER_SIZE:]
    return [body[i : i + SEALED] for i in range(0, len(body), SEALED)]


@pytest.mark.parametrize(
    ("offset", "mask", "message"),
    [
        (0, 0x01, "not a camhub sealed file"),
        (8, 0x03, "unsupported camhub file version 2"),
        (9, 0x07, "unknown kind 6"),
        (9, 0x03, "cannot unwrap"),  # segment -> snapshot: valid kind, but authenticated
        (12, 0x01, "chunk size"),
        (14, 0x01, "cannot unwrap"),  # file id
        (30, 0x01, "cannot unwrap"),  # ephemeral public key
        (62, 0x01, "cannot unwrap"),  # wrapped data key
        (HEADER_SIZE - 1, 0x80, "cannot unwrap"),  # wrapped key's tag
    ],
)
def test_header_edit_is_detected(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes], offset: int, mask: int, message: str
) -> None:
    with pytest.raises(CorruptFile, match=message):
        _open(_flip(sample[1], offset, mask), owner)


@pytest.mark.parametrize("offset", [9, 14, 30, 62, HEADER_SIZE - 1])
def test_header_is_bound_to_every_chunk(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes], offset: int
) -> None:
    """Even when the data key comes from elsewhere (a share), the header cannot change."""
    data_key = unwrap_data_key(parse_header(sample[1]), owner)
    assert _open(sample[1], None, data_key=data_key) == sample[0]
    with pytest.raises(CorruptFile, match="chunk 0 failed authentication"):
        _open(_flip(sample[1], offset, 0x03), None, data_key=data_key)  # kind 1 -> 2


@pytest.mark.parametrize(
    "offset",
    [
        HEADER_SIZE,  # first ciphertext byte
        HEADER_SIZE + SEALED - 1,  # first chunk's tag
        HEADER_SIZE + SEALED + SEALED // 2,  # middle chunk
        HEADER_SIZE + 2 * SEALED,  # final chunk's ciphertext
        -1,  # final chunk's tag
    ],
)
def test_body_bit_flip_is_detected(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes], offset: int
) -> None:
    with pytest.raises(CorruptFile, match="failed authentication"):
        _open(_flip(sample[1], offset % len(sample[1])), owner)


def test_no_chunk_is_yielded_before_it_is_authenticated(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes]
) -> None:
    plain, sealed = sample
    chunks = open_sealed(io.BytesIO(_flip(sealed, HEADER_SIZE + SEALED + 5)), owner)
    assert next(chunks) == plain[:CHUNK_SIZE]
    with pytest.raises(CorruptFile, match="chunk 1 failed authentication"):
        next(chunks)


def _restructure(sealed: bytes, order: list[int]) -> bytes:
    chunks = _chunks(sealed)
    return sealed[:HEADER_SIZE] + b"".join(chunks[i] for i in order)


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ([1, 0, 2], "chunk 0 failed"),  # swapped
        ([0, 0, 1, 2], "chunk 1 failed"),  # replayed
        ([0, 2], "last chunk \\(1,"),  # middle chunk dropped
        ([2], "last chunk \\(0,"),  # final chunk alone
    ],
)
def test_reordered_chunks_are_detected(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes], order: list[int], message: str
) -> None:
    with pytest.raises(CorruptFile, match=message) as info:
        _open(_restructure(sample[1], order), owner)
    assert not isinstance(info.value, TruncatedFile)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (HEADER_SIZE + 2 * SEALED, "ends after chunk 1 without its final chunk"),
        (HEADER_SIZE + SEALED, "ends after chunk 0 without its final chunk"),
        (HEADER_SIZE, "header but no chunks"),
    ],
)
def test_truncation_at_chunk_boundary_is_reported_as_truncated(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes], cut: int, message: str
) -> None:
    with pytest.raises(TruncatedFile, match=message):
        _open(sample[1][:cut], owner)


@pytest.mark.parametrize("cut", [-10, HEADER_SIZE + SEALED + 1000, HEADER_SIZE + 5])
def test_truncation_mid_chunk_is_detected(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes], cut: int
) -> None:
    with pytest.raises(CorruptFile, match="cut mid-chunk or altered"):
        _open(sample[1][:cut], owner)


def test_truncation_inside_header_is_detected(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes]
) -> None:
    with pytest.raises(CorruptFile, match="a header alone is 110"):
        _open(sample[1][:50], owner)


@pytest.mark.parametrize("extra", ["one byte", "random chunk", "copy of chunk 0"])
def test_appended_data_is_detected(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes], extra: str
) -> None:
    appended = {
        "one byte": b"\x00",
        "random chunk": os.urandom(SEALED),
        "copy of chunk 0": _chunks(sample[1])[0],
    }[extra]
    with pytest.raises(CorruptFile, match="failed authentication"):
        _open(sample[1] + appended, owner)


def test_exact_multiple_ends_with_full_final_chunk(owner: X25519PrivateKey) -> None:
    plain = os.urandom(2 * CHUNK_SIZE)
    sealed = seal_bytes(plain, owner.public_key(), FileKind.SEGMENT)
    assert len(_chunks(sealed)) == 2
    with pytest.raises(TruncatedFile, match="after chunk 0"):
        _open(sealed[: HEADER_SIZE + SEALED], owner)

    # An empty final chunk after data is invalid even when correctly sealed.
    header = parse_header(sealed)
    aead = ChaCha20Poly1305(unwrap_data_key(header, owner))
    non_final = aead.encrypt(bytes(11) + b"\x00", plain[:CHUNK_SIZE], header.raw)
    empty_final = aead.encrypt((1).to_bytes(11, "big") + b"\x01", b"", header.raw)
    with pytest.raises(CorruptFile, match="empty final chunk"):
        _open(header.raw + non_final + empty_final, owner)
    assert _open(header.raw + non_final, owner, allow_partial=True) == plain[:CHUNK_SIZE]


def test_wrong_owner_key_is_detected(sample: tuple[bytes, bytes]) -> None:
    with pytest.raises(CorruptFile, match="sealed to another owner key"):
        _open(sample[1], X25519PrivateKey.generate())


def test_wrong_data_key_is_detected(sample: tuple[bytes, bytes]) -> None:
    with pytest.raises(CorruptFile, match="chunk 0 failed authentication"):
        _open(sample[1], None, data_key=os.urandom(32))


def test_header_from_another_file_is_detected(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes]
) -> None:
    other = seal_bytes(sample[0], owner.public_key(), FileKind.SEGMENT)
    with pytest.raises(CorruptFile, match="chunk 0 failed authentication"):
        _open(other[:HEADER_SIZE] + sample[1][HEADER_SIZE:], owner)


def test_non_camhub_file_is_refused(person_clip: Path) -> None:
    with pytest.raises(CorruptFile, match="not a camhub sealed file"):
        parse_header(person_clip.read_bytes()[:HEADER_SIZE])


# --- crash recovery -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, 0),
        (HEADER_SIZE - 1, 0),
        (HEADER_SIZE, HEADER_SIZE),
        (HEADER_SIZE + SEALED - 1, HEADER_SIZE),
        (HEADER_SIZE + SEALED, HEADER_SIZE + SEALED),
        (HEADER_SIZE + 2 * SEALED + 5, HEADER_SIZE + 2 * SEALED),
    ],
)
def test_sealed_prefix_length(size: int, expected: int) -> None:
    assert sealed_prefix_length(size) == expected


def test_sealed_prefix_length_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="file_size"):
        sealed_prefix_length(-1)


def test_file_cut_mid_write_is_recovered_to_its_whole_chunks(
    owner: X25519PrivateKey, tmp_path: Path
) -> None:
    plain = os.urandom(3 * CHUNK_SIZE + CHUNK_SIZE // 2)
    path = tmp_path / "crashed.sealed"
    with path.open("wb") as out:
        writer = SealWriter(out, owner.public_key(), FileKind.SEGMENT)
        writer.write(plain)  # never closed: the hub "crashed" here
        out.write(os.urandom(1000))  # and the OS had written part of the next chunk
    assert writer.sealed_chunks == 3

    with path.open("rb") as src, pytest.raises(CorruptFile, match="cut mid-chunk"):
        b"".join(open_sealed(src, owner))
    with path.open("rb") as src:  # a recovered file: the fragment is dropped, not trusted
        assert b"".join(open_sealed(src, owner, allow_partial=True)) == plain[: 3 * CHUNK_SIZE]

    keep = sealed_prefix_length(path.stat().st_size)
    assert keep == HEADER_SIZE + 3 * SEALED
    os.truncate(path, keep)

    with path.open("rb") as src, pytest.raises(TruncatedFile):
        b"".join(open_sealed(src, owner))
    with path.open("rb") as src:
        assert b"".join(open_sealed(src, owner, allow_partial=True)) == plain[: 3 * CHUNK_SIZE]


def test_allow_partial_still_checks_complete_files(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes]
) -> None:
    plain, sealed = sample
    assert _open(sealed, owner, allow_partial=True) == plain
    assert sealed_prefix_length(len(sealed)) == HEADER_SIZE + 2 * SEALED  # never on closed files
    with pytest.raises(CorruptFile, match="chunk 1 failed authentication"):
        _open(_flip(sealed, HEADER_SIZE + SEALED + 5), owner, allow_partial=True)
    # A short tail that does not authenticate is what a crash mid-chunk leaves: dropped,
    # as truncating it would be; nothing unauthenticated is returned.
    assert _open(_flip(sealed, -1), owner, allow_partial=True) == plain[: 2 * CHUNK_SIZE]
    with pytest.raises(CorruptFile, match="failed authentication"):
        _open(_flip(sealed, -1), owner)


def test_writer_left_by_an_error_is_not_finalized(owner: X25519PrivateKey) -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), SealWriter(out, owner.public_key(), FileKind.SEGMENT) as w:
        w.write(os.urandom(CHUNK_SIZE + 1))
        raise RuntimeError("muxer failed")
    assert not w.closed
    with pytest.raises(TruncatedFile):
        _open(out.getvalue(), owner)


# --- share wrapping -------------------------------------------------------------------------


def test_share_wrap_opens_the_file_with_the_secret_only(
    owner: X25519PrivateKey, sample: tuple[bytes, bytes]
) -> None:
    plain, sealed = sample
    header = parse_header(sealed)
    secret = os.urandom(32)
    context = b"share 42 " + header.file_id
    blob = wrap_for_secret(unwrap_data_key(header, owner), secret, context)
    assert blob != wrap_for_secret(unwrap_data_key(header, owner), secret, context)  # fresh salt

    data_key = unwrap_with_secret(blob, secret, context)
    assert _open(sealed, None, data_key=data_key) == plain


@pytest.mark.parametrize(
    ("secret", "context", "message"),
    [
        (b"x" * 32, b"share 42", "wrong share secret"),
        (None, b"share 43", "wrong share secret"),
        (b"short", b"share 42", "at least 16 bytes"),
    ],
)
def test_share_unwrap_refuses_wrong_secret_or_context(
    secret: bytes | None, context: bytes, message: str
) -> None:
    right = os.urandom(32)
    blob = wrap_for_secret(os.urandom(32), right, b"share 42")
    with pytest.raises(VaultError, match=message):
        unwrap_with_secret(blob, secret or right, context)


def test_share_unwrap_refuses_altered_blob() -> None:
    secret = os.urandom(32)
    blob = wrap_for_secret(os.urandom(32), secret, b"ctx")
    with pytest.raises(VaultError, match="wrong share secret"):
        unwrap_with_secret(_flip(blob, 20), secret, b"ctx")
    with pytest.raises(VaultError, match="must be 64 bytes"):
        unwrap_with_secret(blob[:-1], secret, b"ctx")
