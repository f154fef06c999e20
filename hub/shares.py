"""Time-bounded, revocable clip shares.

A share link is `/share/<id>/#<secret>`. The id is public (it names the share in the
owner's list and the access log); the secret is 32 random bytes that the hub never
stores: the index keeps its SHA-256, and each shared segment's data key wrapped
under it (vault.wrap_for_secret). The fragment (#) is never sent in a request line,
so the secret appears in no access log, proxy log or Referer. Ending a share (revoked,
expired, used up) deletes the wrapped keys, so even the secret opens nothing after.

The secret is the same for everyone it reaches, so it cannot tell one browser from
another. Views are counted with open tokens instead: each counted view hands out a
random token (kept as SHA-256 in the index, with the share and the time), which its
browser holds as a cookie. Presenting it again within RELOAD_WINDOW is a reload and
counts nothing; the clip is served only with a token younger than PLAY_WINDOW.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub import vault
from hub.archive import Archive
from hub.store import Index, SegmentRow, ShareEnd, ShareRow

SECRET_SIZE = 32
MIN_EXPIRY = 60.0  # seconds
MAX_EXPIRY = 30 * 86400.0
MAX_VIEWS = 1000
MAX_LABEL = 100
MAX_SPAN = 6 * 3600.0  # longest time range one share may cover
# A used-up share stays open this long after its last view, so the viewer who used
# the last view can still seek in the clip; then its keys are deleted.
USED_UP_GRACE = 15 * 60.0
SHARE_ID = re.compile(r"[0-9a-f]{16}")
OPEN_TOKEN_SIZE = 32
OPEN_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)
# Opening the link again in the same browser this soon after its counted view (its
# open token in hand) is a reload and counts no view.
RELOAD_WINDOW = 10 * 60.0
# An open token fetches the clip this long after its view: the longest share's clip
# (MAX_SPAN) can be watched and sought through to the end.
PLAY_WINDOW = MAX_SPAN
# Open tokens kept per share: enough for every view of a share with MAX_VIEWS, and a
# bound on the rows that one secret holder of a share without a limit can add.
MAX_OPENS = MAX_VIEWS


class ShareError(Exception):
    """A share that cannot be created; the message is fit to show the owner."""


class ShareRefused(Exception):
    """A share link that opens nothing; `reason` goes to the access log, never the secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ShareRequest:
    camera_id: str
    start: float
    end: float
    expires_in: float  # seconds
    label: str = ""
    max_views: int | None = None
    event_id: int | None = None

    def __post_init__(self) -> None:
        if not MIN_EXPIRY <= self.expires_in <= MAX_EXPIRY:
            raise ShareError(
                f"expires_in: must be {MIN_EXPIRY:.0f}..{MAX_EXPIRY:.0f} seconds "
                f"(1 minute to 30 days), got {self.expires_in}"
            )
        if self.max_views is not None and not 1 <= self.max_views <= MAX_VIEWS:
            raise ShareError(f"max_views: must be 1..{MAX_VIEWS}, got {self.max_views}")
        if len(self.label) > MAX_LABEL:
            raise ShareError(f"label: at most {MAX_LABEL} characters, got {len(self.label)}")
        if not self.end > self.start:
            raise ShareError("end must be after start")
        if self.end - self.start > MAX_SPAN:
            raise ShareError(f"a share covers at most {MAX_SPAN / 3600:.0f} hours")


@dataclass(frozen=True, slots=True)
class OpenedShare:
    """A share whose link checked out: its segments with their data keys, oldest first."""

    share: ShareRow
    segments: list[tuple[SegmentRow, bytes]]


def create_share(
    archive: Archive, private_key: X25519PrivateKey, request: ShareRequest
) -> tuple[ShareRow, str]:
    """Wrap the data keys of the range's segments under a new secret; return the share
    and the secret as it goes into the link (base64url). The secret is not kept."""
    segments = archive.index.segments_overlapping(request.camera_id, request.start, request.end)
    if not segments:
        raise ShareError("no recorded footage in that range to share")
    secret = secrets.token_bytes(SECRET_SIZE)
    share_id = secrets.token_hex(8)
    wrapped = []
    for segment in segments:
        data_key = vault.unwrap_data_key(archive.segment_header(segment.id), private_key)
        wrapped.append(
            (segment.id, vault.wrap_for_secret(data_key, secret, _context(share_id, segment.id)))
        )
    now = time.time()
    share = ShareRow(
        id=share_id,
        secret_hash=hashlib.sha256(secret).digest(),
        label=request.label,
        camera_id=request.camera_id,
        start_time=request.start,
        end_time=request.end,
        event_id=request.event_id,
        created=now,
        expires=now + request.expires_in,
        max_views=request.max_views,
        views=0,
        last_used=None,
        ended=None,
        end_reason=None,
    )
    archive.index.add_share(share, wrapped)
    return share, base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def check_link(index: Index, share_id: str, token: str, now: float) -> tuple[ShareRow, bytes]:
    """The live share a link names, and its secret; ShareRefused says why not."""
    if not SHARE_ID.fullmatch(share_id):
        raise ShareRefused("malformed share id")
    secret = _decode_secret(token)
    share = index.get_share(share_id)
    if share is None:
        raise ShareRefused("no such share")
    if not hmac.compare_digest(hashlib.sha256(secret).digest(), share.secret_hash):
        raise ShareRefused("wrong secret")
    if share.ended is not None:
        raise ShareRefused(f"share {share.end_reason}")
    if share.expires <= now:
        raise ShareRefused("share expired")
    return share, secret


@dataclass(frozen=True, slots=True)
class Use:
    """One opening of a share link: the share as it now stands, and the open token to
    hand to this browser (None for a reload, which keeps the token it has)."""

    share: ShareRow
    open_token: str | None

    @property
    def reload(self) -> bool:
        return self.open_token is None


def use_share(index: Index, share_id: str, token: str, open_token: str, now: float) -> Use:
    """Open a share's page: a reload if `open_token` is the one this share handed this
    browser within RELOAD_WINDOW, else one more view (refused once used up) with a new
    open token. The secret alone is never taken as a reload."""
    share, _ = check_link(index, share_id, token, now)
    opened = _opened(index, share_id, open_token)
    if opened is not None and now - RELOAD_WINDOW < opened <= now:
        return Use(share, None)
    fresh = secrets.token_urlsafe(OPEN_TOKEN_SIZE)
    counted = index.count_share_view(
        share_id, now, _open_hash(fresh), forget_before=now - PLAY_WINDOW, keep=MAX_OPENS
    )
    if counted is None:
        raise ShareRefused("share used up")
    return Use(counted, fresh)


def open_share(index: Index, share_id: str, token: str, open_token: str, now: float) -> OpenedShare:
    """The shared segments with their data keys, for playing the clip: for a browser
    whose view was counted (it holds an open token of this share younger than
    PLAY_WINDOW), so the secret alone cannot fetch the clip again and again."""
    share, secret = check_link(index, share_id, token, now)
    opened = _opened(index, share_id, open_token)
    if opened is None or not now - PLAY_WINDOW < opened <= now:
        raise ShareRefused("not opened in this browser, or too long ago")
    segments = []
    for segment, wrapped in index.share_keys(share_id):
        try:
            key = vault.unwrap_with_secret(wrapped, secret, _context(share_id, segment.id))
        except vault.VaultError:
            raise ShareRefused("a wrapped key does not open") from None
        segments.append((segment, key))
    if not segments:
        raise ShareRefused("the shared footage was deleted by retention")
    return OpenedShare(share, segments)


def shares_to_end(index: Index, now: float) -> list[tuple[ShareRow, ShareEnd]]:
    """Live shares that must end now: expired, or used up and past the grace time."""
    due = []
    for share in index.live_shares():
        if share.expires <= now:
            due.append((share, ShareEnd.EXPIRED))
        elif (
            share.max_views is not None
            and share.views >= share.max_views
            and (share.last_used or 0) + USED_UP_GRACE <= now
        ):
            due.append((share, ShareEnd.USED_UP))
    return due


def _context(share_id: str, segment_id: str) -> bytes:
    """Binds a wrapped key to its share and segment, so keys cannot be moved between them."""
    return f"camhub share {share_id} segment {segment_id}".encode()


def _open_hash(open_token: str) -> bytes:
    return hashlib.sha256(open_token.encode()).digest()


def _opened(index: Index, share_id: str, open_token: str) -> float | None:
    """When this share handed out `open_token`, if it did (anything else: None)."""
    if not OPEN_TOKEN.fullmatch(open_token):
        return None
    return index.share_opened(share_id, _open_hash(open_token))


def _decode_secret(token: str) -> bytes:
    if not 40 <= len(token) <= 48:
        raise ShareRefused("malformed secret")
    try:
        secret = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise ShareRefused("malformed secret") from None
    if len(secret) != SECRET_SIZE:
        raise ShareRefused("malformed secret")
    return secret
