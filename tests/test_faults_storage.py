"""Storage under faults: revoked keys shredded from the WAL, a full disk mid-recording,
a damaged index while recording. Real files, real SQLite, real small filesystems."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub.archive import Archive, RetentionPolicy
from hub.shares import ShareRequest, create_share
from hub.store import Index, ShareEnd

T0 = 1_700_000_000.0
NO_LIMITS = RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0)


@pytest.fixture(scope="module")
def owner() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    with Index(tmp_path / "index.sqlite3") as idx:
        yield idx


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def record(archive: Archive, data: bytes, start: float, camera: str = "porch") -> str:
    out = archive.open_segment(camera, start)
    out.write(data)
    out.finish(start + 4.0, frames=40)
    return out.row.id


# -- 16. a revoked share's wrapped keys leave the WAL too -----------------------------


def wrapped_keys(db: Path, share_id: str) -> list[bytes]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT wrapped FROM share_keys WHERE share_id = ?", (share_id,))
        return [bytes(row[0]) for row in rows]
    finally:
        conn.close()


@pytest.mark.parametrize("reason", [ShareEnd.REVOKED, ShareEnd.EXPIRED])
def test_an_ended_share_leaves_no_wrapped_key_in_the_database_files(
    tmp_path: Path, index: Index, owner: X25519PrivateKey, reason: ShareEnd
) -> None:
    archive = Archive(tmp_path, index, owner.public_key(), NO_LIMITS)
    for i in range(3):
        record(archive, payload(70_000, i), T0 + 4 * i)
    share, _secret = create_share(
        archive, owner, ShareRequest("porch", T0, T0 + 12, expires_in=3600, label="for Ann")
    )
    db = tmp_path / "index.sqlite3"
    keys = wrapped_keys(db, share.id)
    assert len(keys) == 3
    files = [db, db.with_name(db.name + "-wal")]

    def found() -> list[str]:
        data = {path.name: path.read_bytes() if path.exists() else b"" for path in files}
        return [name for name, blob in data.items() for key in keys if key in blob]

    assert found(), "the wrapped keys were never on disk: the test proves nothing"
    assert index.end_share(share.id, T0 + 60, reason)
    assert wrapped_keys(db, share.id) == []
    assert found() == []
    # The share itself (its hash, label, times) is still listed as ended.
    ended = index.get_share(share.id)
    assert ended is not None and ended.end_reason is reason
