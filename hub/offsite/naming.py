"""Object names in the bucket: opaque, so the bucket learns no camera name or date.

Layout under the configured prefix, for one hub (one owner key pair):

    <prefix><hub>/keys          a copy of keys.json that only the recovery code opens
    <prefix><hub>/f/<file id>   a sealed segment or snapshot, byte for byte
    <prefix><hub>/j/<file id>   a sealed journal (what a restore needs to know)

`<hub>` is derived from the owner's public key, so a hub finds its own objects again
after a reinstall, and several hubs can share one bucket. File ids are the sealed
files' own random 128-bit ids, already in their clear headers.
"""

from __future__ import annotations

import hashlib
import re

HUB_TAG_LABEL = b"camhub/v1 offsite hub"
HUB_TAG = re.compile(r"[0-9a-f]{16}")
FILE_ID = re.compile(r"[0-9a-f]{32}")


def hub_tag(public_key: bytes) -> str:
    """16 hex digits naming one hub's objects: a hash of its owner's public key."""
    return hashlib.sha256(HUB_TAG_LABEL + public_key).hexdigest()[:16]


def hub_prefix(prefix: str, tag: str) -> str:
    return f"{prefix}{tag}/"


def keys_object(prefix: str, tag: str) -> str:
    return f"{hub_prefix(prefix, tag)}keys"


def file_object(prefix: str, tag: str, file_id: str) -> str:
    return f"{file_prefix(prefix, tag)}{file_id}"


def journal_object(prefix: str, tag: str, file_id: str) -> str:
    return f"{journal_prefix(prefix, tag)}{file_id}"


def file_prefix(prefix: str, tag: str) -> str:
    return f"{hub_prefix(prefix, tag)}f/"


def journal_prefix(prefix: str, tag: str) -> str:
    return f"{hub_prefix(prefix, tag)}j/"


def tag_of(prefix: str, name: str) -> str | None:
    """The hub tag of a `<prefix><hub>/` listing entry, or None if it is not one."""
    rest = name.removeprefix(prefix).removesuffix("/")
    return rest if name.startswith(prefix) and HUB_TAG.fullmatch(rest) else None
