"""MP4 boxes the live view writes by hand: a movie fragment holding one sample
(moof+mdat), made the moment its packet comes, and the little such fragments need from
an init segment (each track's ID and timescale, the avcC).

Pure: bytes in, bytes out. Layouts from ISO/IEC 14496-12 (§8.8 movie fragments) and
14496-15 (§5.3 the AVC sample form: each NAL unit after its length).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_HEADER = struct.Struct(">I4s")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_VISUAL_ENTRY = 86  # bytes of a visual sample entry (header included) before its boxes
# tfhd: default-base-is-moof (a fragment's data offsets count from its own moof).
_TFHD_FLAGS = 0x020000
# trun: data-offset, then per sample its duration, size, flags, composition time offset.
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
_SYNC = 0x02000000  # sample_depends_on = 2: decodable alone
_NON_SYNC = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample
_START_CODE = b"\x00\x00\x01"


@dataclass(frozen=True, slots=True)
class Track:
    """One track of an init segment, as its fragments must name and time it."""

    track_id: int  # tkhd
    timescale: int  # mdhd: ticks per second of its decode times and durations
    handler: str  # hdlr: "vide" or "soun"


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a fragment; times in its track's timescale."""

    decode_time: int
    duration: int  # > 0
    composition_offset: int  # presentation time minus decode time, >= 0
    sync: bool  # a keyframe (every sound sample is one)
    data: bytes  # as the track carries it (H.264: NAL units after their lengths)


def fragment(sequence: int, track_id: int, sample: Sample) -> bytes:
    """moof+mdat of one sample: mfhd, a traf with tfhd (default-base-is-moof), tfdt
    (version 1) and trun (version 0), then the sample's data."""
    if sample.duration <= 0 or sample.composition_offset < 0 or sample.decode_time < 0:
        raise ValueError(f"sample times out of range: {sample!r:.120}")
    mfhd = _full_box(b"mfhd", 0, 0, _U32.pack(sequence))
    tfhd = _full_box(b"tfhd", 0, _TFHD_FLAGS, _U32.pack(track_id))
    tfdt = _full_box(b"tfdt", 1, 0, _U64.pack(sample.decode_time))
    trun_size = 12 + 4 + 4 + 16
    moof_size = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + trun_size
    flags = _SYNC if sample.sync else _NON_SYNC
    run = struct.pack(
        ">IiIIII",
        1,  # sample_count
        moof_size + 8,  # data_offset: past this moof and the mdat's header
        sample.duration,
        len(sample.data),
        flags,
        sample.composition_offset,
    )
    trun = _full_box(b"trun", 0, _TRUN_FLAGS, run)
    moof = _box(b"moof", mfhd + _box(b"traf", tfhd + tfdt + trun))
    return moof + _box(b"mdat", sample.data)


def tracks(init: bytes) -> dict[str, Track]:
    """The init segment's tracks by handler type ("vide", "soun")."""
    found: dict[str, Track] = {}
    for trak in _children(_first(init, b"moov"), b"trak"):
        tkhd = _first(trak, b"tkhd")
        mdia = _first(trak, b"mdia")
        mdhd, hdlr = _first(mdia, b"mdhd"), _first(mdia, b"hdlr")
        wide = 8 if tkhd[0] == 1 else 4  # version 1: 64-bit creation/modification times
        track_id = _U32.unpack_from(tkhd, 4 + 2 * wide)[0]
        wide = 8 if mdhd[0] == 1 else 4
        timescale = _U32.unpack_from(mdhd, 4 + 2 * wide)[0]
        handler = hdlr[8:12].decode("latin-1")
        if track_id == 0 or timescale == 0:
            raise ValueError(f"init segment: track {track_id} with timescale {timescale}")
        found[handler] = Track(track_id, timescale, handler)
    return found


def avc_config(init: bytes) -> bytes | None:
    """The video track's AVCDecoderConfigurationRecord (the avcC box's content), if any."""
    for trak in _children(_first(init, b"moov"), b"trak"):
        stbl = _first(_first(_first(trak, b"mdia"), b"minf"), b"stbl")
        stsd = _first(stbl, b"stsd")
        for kind, entry in _boxes(stsd, 8):  # past version, flags and entry_count
            if kind in (b"avc1", b"avc3"):
                for inner, content in _boxes(entry, _VISUAL_ENTRY - 8):
                    if inner == b"avcC":
                        return content
    return None


def length_prefixed(annexb: bytes, length_size: int) -> bytes:
    """An H.264 access unit from Annex B (NAL units after 00 00 01 start codes) to the
    form MP4 carries: each NAL unit after its length, big-endian in `length_size`
    bytes (the avcC's lengthSizeMinusOne + 1). Zero bytes between NAL units (a 4-byte
    start code's first byte, trailing_zero_8bits) are dropped."""
    if not (annexb.startswith(_START_CODE) or annexb.startswith(b"\x00" + _START_CODE)):
        raise ValueError("H.264 packet does not start with an Annex B start code")
    out = bytearray()
    start = annexb.find(_START_CODE) + 3
    while start > 2:
        following = annexb.find(_START_CODE, start)
        nal = annexb[start : following if following >= 0 else len(annexb)].rstrip(b"\x00")
        if nal:
            if len(nal) >= 1 << (8 * length_size):
                raise ValueError(f"NAL unit of {len(nal)} bytes is too long for its length field")
            out += len(nal).to_bytes(length_size, "big") + nal
        start = following + 3
    return bytes(out)


def _box(kind: bytes, content: bytes) -> bytes:
    if 8 + len(content) > 0xFFFFFFFF:
        raise ValueError(f"{kind.decode()} box of {len(content)} bytes needs a 64-bit size")
    return _HEADER.pack(8 + len(content), kind) + content


def _full_box(kind: bytes, version: int, flags: int, content: bytes) -> bytes:
    return _box(kind, _U32.pack(version << 24 | flags) + content)


def _boxes(data: bytes, start: int = 0) -> Iterator[tuple[bytes, bytes]]:
    """(type, content) of each box in `data` from `start` on."""
    at = start
    while at + 8 <= len(data):
        size, kind = _HEADER.unpack_from(data, at)
        header = 8
        if size == 1:  # 64-bit size after the type
            if at + 16 > len(data):
                break
            size, header = _U64.unpack_from(data, at + 8)[0], 16
        elif size == 0:  # to the end
            size = len(data) - at
        if size < header or at + size > len(data):
            raise ValueError(f"{kind!r} box at byte {at}: size {size} out of bounds")
        yield kind, data[at + header : at + size]
        at += size


def _children(data: bytes, kind: bytes) -> Iterator[bytes]:
    return (content for found, content in _boxes(data) if found == kind)


def _first(data: bytes, kind: bytes) -> bytes:
    for content in _children(data, kind):
        return content
    raise ValueError(f"init segment: no {kind.decode()} box")
