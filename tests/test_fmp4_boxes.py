"""The hand-written movie fragments and what they read from an init segment: each box
read back here field by field, as ISO/IEC 14496-12 lays it out."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from test_hdlive import camera_packets, packets_of

from hub.fmp4 import Fragment, FragmentMuxer
from hub.fmp4_boxes import Sample, Track, avc_config, fragment, length_prefixed, tracks


def boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, content) of each box in `data` (32-bit sizes only, as the writer makes)."""
    found, at = [], 0
    while at < len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        assert 8 <= size <= len(data) - at, f"{kind!r} at {at}: size {size}"
        found.append((kind, data[at + 8 : at + size]))
        at += size
    return found


def full_box(content: bytes) -> tuple[int, int, bytes]:
    """(version, flags, the rest) of a full box's content."""
    head = struct.unpack_from(">I", content)[0]
    return head >> 24, head & 0xFFFFFF, content[4:]


def timing(made: Fragment) -> tuple[int, int, int]:
    """(track ID, decode time, duration) of a one-sample fragment, as its boxes say."""
    (_, moof), _ = boxes(made.data[8:])
    tfhd, tfdt, trun = (content for _, content in boxes(boxes(moof)[1][1]))
    return (
        struct.unpack_from(">I", tfhd, 4)[0],
        struct.unpack_from(">Q", tfdt, 4)[0],
        struct.unpack_from(">I", trun, 12)[0],  # after flags, count, data offset
    )


def back_to_back(made: list[Fragment]) -> None:
    """Within each track, every sample starts where the one before it ended: MSE takes
    a gap for a discontinuity."""
    times = [timing(f) for f in made]
    for track in {t for t, _, _ in times}:
        mine = [(start, length) for t, start, length in times if t == track]
        for (start, length), (following, _) in itertools.pairwise(mine):
            assert start + length == following, (track, start, length, following)


def test_a_fragment_is_one_sample_its_moof_describes() -> None:
    data = bytes(range(256)) * 3
    written = fragment(7, 2, Sample(900_000, 3600, 7200, False, data))
    (moof_kind, moof), (mdat_kind, mdat) = boxes(written)
    assert (moof_kind, mdat_kind, mdat) == (b"moof", b"mdat", data)
    (mfhd_kind, mfhd), (traf_kind, traf) = boxes(moof)
    assert (mfhd_kind, traf_kind) == (b"mfhd", b"traf")
    assert full_box(mfhd) == (0, 0, struct.pack(">I", 7))  # the sequence number
    (tfhd_kind, tfhd), (tfdt_kind, tfdt), (trun_kind, trun) = boxes(traf)
    assert (tfhd_kind, tfdt_kind, trun_kind) == (b"tfhd", b"tfdt", b"trun")
    # default-base-is-moof, no defaults: the trun says everything about its sample.
    assert full_box(tfhd) == (0, 0x020000, struct.pack(">I", 2))
    assert full_box(tfdt) == (1, 0, struct.pack(">Q", 900_000))
    version, flags, run = full_box(trun)
    assert (version, flags) == (0, 0x000F01)
    count, offset, duration, size, sample_flags, composition = struct.unpack(">IiIIII", run)
    assert (count, duration, size, composition) == (1, 3600, len(data), 7200)
    assert sample_flags == 0x01010000  # depends on others, not a sync sample
    assert written[offset : offset + size] == data  # counted from the moof's first byte


def test_a_keyframe_is_marked_as_a_sync_sample() -> None:
    written = fragment(1, 1, Sample(0, 1024, 0, True, b"\x01\x02"))
    (_, moof), _ = boxes(written)
    (_, traf) = boxes(moof)[1]
    (_, trun) = boxes(traf)[2]
    assert struct.unpack_from(">I", trun, 20)[0] == 0x02000000  # depends on no other


@pytest.mark.parametrize(
    "sample",
    [
        Sample(0, 0, 0, True, b"x"),  # no duration: the next sample would overlap it
        Sample(0, 10, -1, True, b"x"),  # shown before it is decoded
        Sample(-1, 10, 0, True, b"x"),
    ],
)
def test_a_sample_out_of_range_is_refused(sample: Sample) -> None:
    with pytest.raises(ValueError, match="sample times"):
        fragment(1, 1, sample)


def test_annex_b_becomes_length_prefixed_nal_units() -> None:
    sps, pps = b"\x67\x4d\x40\x1f\x99", b"\x68\xee\x3c\x80"
    idr = b"\x65\x88\x84\x00\x21"  # a NAL unit may hold zero bytes inside
    annexb = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x00\x01" + idr
    assert length_prefixed(annexb + b"\x00\x00", 4) == (
        b"\x00\x00\x00\x05" + sps + b"\x00\x00\x00\x04" + pps + b"\x00\x00\x00\x05" + idr
    )
    assert length_prefixed(b"\x00\x00\x01" + idr, 2) == b"\x00\x05" + idr


def test_a_packet_that_is_not_annex_b_is_refused() -> None:
    with pytest.raises(ValueError, match="start code"):
        length_prefixed(b"\x00\x00\x00\x05\x65\x88\x84\x00\x21", 4)  # length-prefixed already
    with pytest.raises(ValueError, match="too long"):
        length_prefixed(b"\x00\x00\x01" + b"\x65" * 300, 1)


def test_the_init_segments_tracks_are_read_from_its_moov(
    person_clip: Path, crowd_av_clip: Path
) -> None:
    """PyAV's init segments (video only, and with sound): IDs, timescales, the avcC."""
    info, packets = packets_of(person_clip, 1)
    muxer = FragmentMuxer(info)
    muxer.push(packets[0], 0.0)
    assert muxer.init is not None
    assert tracks(muxer.init) == {"vide": Track(1, 200_000, "vide")}
    config = avc_config(muxer.init)
    assert config is not None and config[:4] == bytes.fromhex("014d401f")  # Main, 3.1
    assert config[4] & 0x03 == 3  # 4-byte NAL lengths

    info, items = camera_packets(crowd_av_clip, 10)
    muxer = FragmentMuxer(info, sound=True)
    muxer.push(next(p for p in items if p.starts_gop), 0.0)
    assert muxer.init is not None and info.audio is not None
    assert tracks(muxer.init) == {
        "vide": Track(1, 12_800, "vide"),  # the muxer's own: 1/25 s doubled past 10000
        "soun": Track(2, info.audio.sample_rate, "soun"),
    }


def test_an_init_without_a_moov_is_refused() -> None:
    with pytest.raises(ValueError, match="no moov"):
        tracks(struct.pack(">I4s", 16, b"ftyp") + b"isom\x00\x00\x02\x00")


def test_a_picture_after_a_lost_one_covers_the_gap(person_clip: Path) -> None:
    """A camera loses a picture: the next one's sample starts where the previous ended
    and lasts both intervals (it shows one frame early), so no gap opens."""
    info, packets = packets_of(person_clip, 12)  # 10 fps, B-frames
    muxer = FragmentMuxer(info)
    made = [f for p in packets[:6] + packets[7:] for f in muxer.push(p, 0.0)]
    back_to_back(made)
    durations = [length for _, _, length in map(timing, made)]
    frame = durations[0]
    assert durations == [frame] * 6 + [2 * frame] + [frame] * (len(made) - 7)


def test_picture_and_sound_are_each_back_to_back(crowd_av_clip: Path) -> None:
    """Both tracks of a camera with sound, in time order as the feed hands them over:
    every sample of each starts where the one before it ended."""
    info, items = camera_packets(crowd_av_clip, 400)
    start = next(i for i, p in enumerate(items) if p.starts_gop)
    muxer = FragmentMuxer(info, sound=True)
    ordered = sorted(items[start:], key=lambda p: p.time)
    made = [f for p in ordered for f in muxer.push(p, 0.0)]
    assert {f.audio for f in made} == {True, False}
    back_to_back(made)
