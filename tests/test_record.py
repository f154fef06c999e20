"""Recorder: real clips in, stream-copied fMP4 segments out, through an in-memory sink."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import itertools
import json
import logging
import sqlite3
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import av
import pytest
from clips import reencode
from rtsp_camera import RtspCamera, camera_fixture

from hub.capture import AVSource
from hub.media import Packet, StreamInfo
from hub.record import Recorder, RecordMode, RecordSettings

T0 = 1_700_000_000.0  # wall-clock time of each clip's first frame
LOOP_SECONDS = 6.0  # the looping B-frame camera's clip
Clip = tuple[StreamInfo, tuple[Packet, ...]]


@dataclass(frozen=True)
class DiskFull:
    """When a failing segment reports a full disk: after `writes` writes, or at finish
    (as the file system does, or as SQLite does when indexing it)."""

    writes: int | None = None
    at_finish: bool = False
    in_index: bool = False

    def check(self, writes: int, finishing: bool = False) -> None:
        if (self.writes is not None and writes >= self.writes) or (finishing and self.at_finish):
            if self.in_index:
                raise sqlite3.OperationalError("database or disk is full")
            raise OSError(errno.ENOSPC, "No space left on device")


@dataclass
class MemorySegment:
    """Collects one segment's bytes, or fails like a full disk."""

    start_time: float
    disk_full: DiskFull | None = None
    chunks: list[bytes] = field(default_factory=list)
    end_time: float | None = None
    frames: int | None = None
    aborted: bool = False

    def write(self, data: bytes) -> int:
        if self.disk_full:
            self.disk_full.check(len(self.chunks))
        self.chunks.append(bytes(data))
        return len(data)

    def finish(self, end_time: float, frames: int) -> None:
        if self.disk_full:
            self.disk_full.check(len(self.chunks), finishing=True)
        self.end_time, self.frames = end_time, frames

    def abort(self) -> None:
        self.aborted = True

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class MemorySink:
    def __init__(self, failing: Iterable[int] = (), disk_full: DiskFull | None = None) -> None:
        self.segments: list[MemorySegment] = []
        self._failing = set(failing)
        self._disk_full = disk_full

    def open_segment(self, camera_id: str, start_time: float) -> MemorySegment:
        assert camera_id == "cam"
        failing = len(self.segments) in self._failing
        segment = MemorySegment(start_time, self._disk_full if failing else None)
        self.segments.append(segment)
        return segment


@cache
def _load(path: Path) -> Clip:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        assert tb is not None
        info = StreamInfo(
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            time_base=tb,
            extradata=stream.codec_context.extradata,
            fps=float(stream.guessed_rate) if stream.guessed_rate else None,
        )
        packets = tuple(
            Packet(
                data=bytes(p),
                pts=p.pts,
                dts=p.dts,
                duration=p.duration or 0,
                keyframe=p.is_keyframe,
                time=T0 + float((p.pts if p.pts is not None else p.dts) * tb),
            )
            for p in container.demux(stream)
            if p.size
        )
    return info, packets


@pytest.fixture
def person(person_clip: Path) -> Clip:
    return _load(person_clip)


@pytest.fixture
def crowd(crowd_clip: Path) -> Clip:
    return _load(crowd_clip)


@pytest.fixture
def crowd_without_pts(crowd: Clip) -> Clip:
    """The AVI as its container really stores it: dts only (ffprobe shows pts N/A)."""
    info, packets = crowd
    tb = float(info.time_base)
    assert packets[0].dts is not None
    return info, tuple(
        dataclasses.replace(p, pts=None, time=T0 + (p.dts or 0) * tb) for p in packets
    )


@dataclass
class Demuxed:
    data: bytes
    keyframe: bool
    dts: int | None


def _demux(data: bytes) -> list[Demuxed]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return [Demuxed(bytes(p), p.is_keyframe, p.dts) for p in container.demux(stream) if p.size]


def _decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def _ffprobe(data: bytes) -> dict[str, object]:
    """The one video stream ffprobe finds in `data`, read from stdin (no file written)."""
    result = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_packets", "-of", "json",
            "-show_entries", "stream=codec_name,width,height,nb_read_packets", "-",
        ],
        input=data,
        capture_output=True,
        check=False,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not result.stderr, result.stderr
    (stream,) = json.loads(result.stdout)["streams"]
    return stream


def _record(
    packets: Iterable[Packet],
    info: StreamInfo,
    settings: RecordSettings,
    sink: MemorySink | None = None,
    wants: Sequence[tuple[float, float, float]] = (),
) -> tuple[Recorder, MemorySink]:
    """Push every packet; at clip second `at` (before the first packet that late),
    call want(T0 + start, T0 + end) for each (at, start, end)."""
    sink = sink or MemorySink()
    recorder = Recorder("cam", settings, sink)
    recorder.start_stream(info)
    pending = sorted(wants)
    for packet in packets:
        while pending and packet.time - T0 >= pending[0][0]:
            _, start, end = pending.pop(0)
            recorder.want(T0 + start, T0 + end)
        recorder.push(packet)
    recorder.close()
    return recorder, sink


def _index(packets: Sequence[Packet], time: float) -> int:
    """Index of the keyframe at clip second `time`."""
    (index,) = (i for i, p in enumerate(packets) if p.keyframe and p.time == T0 + time)
    return index


def _until(packets: Sequence[Packet], first: int, end: float) -> list[Packet]:
    """From packets[first] up to (not including) the first later packet past clip second `end`."""
    stop = next((i for i in range(first, len(packets)) if packets[i].time > T0 + end), None)
    return list(packets[first:stop])


def _recorded(sink: MemorySink) -> list[bytes]:
    return [d.data for s in sink.segments if not s.aborted for d in _demux(s.data)]


def _keyframe_cuts(packets: Iterable[Packet], seconds: float) -> list[float]:
    """Start times of continuous segments: at the first keyframe `seconds` after the last."""
    starts: list[float] = []
    for p in packets:
        if p.keyframe and (not starts or p.time - starts[-1] >= seconds):
            starts.append(p.time)
    return starts


@pytest.mark.parametrize(
    ("clip", "seconds"), [("person", 10.0), ("crowd", 4.0), ("crowd_without_pts", 4.0)]
)
def test_continuous_cuts_valid_stream_copied_segments_at_keyframes(
    clip: str, seconds: float, request: pytest.FixtureRequest
) -> None:
    info, packets = request.getfixturevalue(clip)
    settings = RecordSettings(mode=RecordMode.CONTINUOUS, segment_seconds=seconds)
    recorder, sink = _record(packets, info, settings)

    segments = sink.segments
    assert [s.start_time for s in segments] == _keyframe_cuts(packets, seconds)
    assert len(segments) >= 3
    keyframe_times = [p.time for p in packets if p.keyframe]
    longest_gop = max(b - a for a, b in itertools.pairwise(keyframe_times))
    for segment, following in itertools.pairwise(segments):
        assert segment.end_time is not None
        assert seconds - 0.05 <= segment.end_time - segment.start_time <= seconds + longest_gop
        assert segment.end_time == pytest.approx(following.start_time, abs=0.1)

    copied: list[bytes] = []
    for segment in segments:
        assert not segment.aborted
        demuxed = _demux(segment.data)
        assert demuxed[0].keyframe
        assert demuxed[0].dts == 0  # each segment's timeline starts at 0
        probed = _ffprobe(segment.data)
        assert (probed["codec_name"], probed["width"], probed["height"]) == (
            "h264",
            info.width,
            info.height,
        )
        assert segment.frames == len(demuxed) == int(str(probed["nb_read_packets"]))
        copied += [d.data for d in demuxed]
    assert copied == [p.data for p in packets]  # every frame, byte for byte: no re-encode
    assert _decoded_frames(segments[0].data) == segments[0].frames  # decodable on its own

    assert recorder.stats.segments_written == len(segments)
    assert recorder.stats.packets_written == len(packets)
    assert recorder.stats.bytes_muxed == sum(len(s.data) for s in segments)
    assert recorder.stats.errors == 0
    assert not recorder.recording


def test_a_segment_ends_no_later_than_the_next_one_starts(person: Clip) -> None:
    # A camera whose pictures arrive faster than their timestamps say (an encoder's
    # nominal rate above the real one, or a late first picture): the footage's own
    # length ran 59 ms past the next segment's start, and the index had them overlap.
    info, packets = person
    hurried = [replace(p, time=T0 + (p.time - T0) * 0.95) for p in packets]
    settings = RecordSettings(mode=RecordMode.CONTINUOUS, segment_seconds=4.0)
    _, sink = _record(hurried, info, settings)

    segments = sink.segments
    assert len(segments) >= 3
    for segment, following in itertools.pairwise(segments):
        assert segment.end_time is not None
        assert segment.end_time <= following.start_time
        assert segment.end_time == pytest.approx(following.start_time, abs=0.01)


def test_motion_records_wanted_windows_with_pre_roll_from_the_ring(person: Clip) -> None:
    info, packets = person  # 10 fps, a keyframe every whole second
    settings = RecordSettings(mode=RecordMode.MOTION, pre_roll=5.0, segment_seconds=4.0)
    wants = [
        (20.0, 15.0, 30.0),  # motion seen at 20 s asks for 5 s before it
        (28.0, 15.0, 35.0),  # the same event goes on: only the end moves
        (60.0, 30.0, 65.0),  # asks for more past than the ring keeps
    ]
    _, sink = _record(packets, info, settings, wants=wants)

    # The keyframe at 35.0 is still wanted, so it opens a (one-frame) segment. The ring
    # keeps from the newest keyframe at or before now - pre_roll (59.9 - 5).
    assert [s.start_time - T0 for s in sink.segments] == [15, 19, 23, 27, 31, 35, 54, 58, 62]
    expected = _until(packets, _index(packets, 15), 35) + _until(packets, _index(packets, 54), 65)
    assert _recorded(sink) == [p.data for p in expected]  # nothing outside the windows
    for segment in sink.segments:
        assert segment.frames == len(_demux(segment.data))
    assert sink.segments[5].end_time == pytest.approx(T0 + 35.1)


def test_motion_retrigger_continues_or_resumes_without_duplicates(person: Clip) -> None:
    info, packets = person
    settings = RecordSettings(mode=RecordMode.MOTION, pre_roll=10.0, segment_seconds=4.0)
    wants = [
        (20.0, 15.0, 25.0),
        (25.45, 20.0, 30.0),  # window over but the GOP is not: the segment just goes on
        (40.0, 28.0, 45.0),  # overlaps footage already recorded: resume after it
    ]
    _, sink = _record(packets, info, settings, wants=wants)

    assert [s.start_time - T0 for s in sink.segments] == [15, 19, 23, 27, 31, 35, 39, 43]
    expected = _until(packets, _index(packets, 15), 30) + _until(packets, _index(packets, 31), 45)
    recorded = _recorded(sink)
    assert recorded == [p.data for p in expected]
    assert len(set(recorded)) == len(recorded)


def test_motion_ring_is_bounded_by_pre_roll(person: Clip) -> None:
    info, packets = person
    recorder = Recorder("cam", RecordSettings(pre_roll=5.0), sink := MemorySink())
    recorder.start_stream(info)
    for packet in packets:
        recorder.push(packet)
        # From the newest keyframe at or before now - 5 s: at most 5 s plus one GOP (1 s).
        assert recorder.ring_seconds <= 6.0 + 0.2
        if packet.time - T0 > 8:
            assert recorder.ring_seconds >= 5.0 - 0.2
    assert 0 < recorder.ring_bytes < sum(len(p.data) for p in packets[-70:])
    assert sink.segments == []
    assert recorder.stats.packets_written == 0


def test_motion_ring_is_bounded_by_bytes(person: Clip) -> None:
    info, packets = person
    cap = 1024 * 1024  # the clip is ~3 MiB: a 200 s pre-roll must be cut by the cap
    settings = RecordSettings(pre_roll=200.0, ring_max_bytes=cap)
    recorder = Recorder("cam", settings, sink := MemorySink())
    recorder.start_stream(info)
    for packet in packets:
        recorder.push(packet)
        assert recorder.ring_bytes <= cap
    assert recorder.ring_seconds < 100
    recorder.want(T0, packets[-1].time + 10)  # wants it all; gets what the ring kept
    recorder.close()

    first = sink.segments[0].start_time
    assert first > T0 + 40
    recorded = _recorded(sink)
    assert recorded == [p.data for p in packets[_index(packets, first - T0) :]]
    assert sum(len(d) for d in recorded) <= cap


def test_off_records_and_keeps_nothing(person: Clip) -> None:
    info, packets = person
    recorder, sink = _record(
        packets, info, RecordSettings(mode=RecordMode.OFF), wants=[(10.0, 5.0, 50.0)]
    )
    assert sink.segments == []
    assert recorder.ring_bytes == 0
    assert recorder.stats == type(recorder.stats)()


def test_no_stream_idles(person: Clip) -> None:
    _, packets = person
    recorder = Recorder("cam", RecordSettings(mode=RecordMode.CONTINUOUS), sink := MemorySink())
    recorder.start_stream(None)
    for packet in packets[:50]:
        recorder.push(packet)
    assert sink.segments == []


def test_start_stream_mid_segment_finishes_it_and_follows_the_new_stream(
    person: Clip, crowd: Clip
) -> None:
    person_info, person_packets = person
    crowd_info, crowd_packets = crowd
    recorder = Recorder("cam", RecordSettings(mode=RecordMode.CONTINUOUS), sink := MemorySink())
    recorder.start_stream(person_info)
    for packet in person_packets[:25]:
        recorder.push(packet)
    assert recorder.recording

    recorder.start_stream(crowd_info)  # reconnected, and the camera now sends 720p
    (cut,) = sink.segments
    assert cut.frames == 25 and not cut.aborted
    assert [d.data for d in _demux(cut.data)] == [p.data for p in person_packets[:25]]
    assert cut.end_time == pytest.approx(T0 + 2.5)

    later = [dataclasses.replace(p, time=p.time + 10) for p in crowd_packets]
    for packet in later:
        recorder.push(packet)
    recorder.close()
    new = sink.segments[1:]
    assert new[0].start_time == later[0].time
    assert {_ffprobe(s.data)["width"] for s in new} == {1280}
    assert sum(s.frames or 0 for s in new) == len(crowd_packets)


def test_start_stream_clears_the_pre_roll(person: Clip) -> None:
    info, packets = person
    recorder = Recorder("cam", RecordSettings(), sink := MemorySink())
    recorder.start_stream(info)
    head, tail = packets[:100], packets[100:]
    for packet in head:
        recorder.push(packet)
    assert recorder.ring_bytes > 0

    recorder.start_stream(info)
    assert recorder.ring_bytes == 0
    recorder.want(T0 + 5, T0 + 12.5)  # old packets are gone: only new ones can be kept
    assert not recorder.recording
    for packet in tail:
        recorder.push(packet)
    recorder.close()
    assert [s.start_time for s in sink.segments] == [T0 + 10]
    assert _recorded(sink) == [p.data for p in _until(packets, _index(packets, 10), 12.5)]


@pytest.mark.parametrize(
    "disk_full",
    [
        DiskFull(writes=0),  # the header
        DiskFull(writes=3),  # a fragment mid-segment
        DiskFull(writes=5),  # the last fragment, flushed when the muxer closes
        DiskFull(at_finish=True),  # sealing the end
        DiskFull(at_finish=True, in_index=True),
    ],
    ids=["header", "fragment", "trailer", "finish", "index"],
)
def test_full_disk_drops_segments_then_recording_resumes(
    person: Clip, disk_full: DiskFull, caplog: pytest.LogCaptureFixture
) -> None:
    info, packets = person
    sink = MemorySink(failing={2, 3}, disk_full=disk_full)
    settings = RecordSettings(mode=RecordMode.CONTINUOUS, segment_seconds=4.0)
    with caplog.at_level(logging.INFO, logger="hub.record"):
        recorder, _ = _record(packets, info, settings, sink=sink)

    segments = sink.segments
    assert [s.aborted for s in segments[:5]] == [False, False, True, True, False]
    assert all(s.frames is not None for s in segments if not s.aborted)
    assert recorder.stats.errors == 2
    assert recorder.stats.segments_written == len(segments) - 2
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]  # logged once
    assert "No space left" in warning.getMessage() or "disk is full" in warning.getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)

    # Lost: from the first failed segment to the next keyframe after the second failure.
    lost = range(
        _index(packets, segments[2].start_time - T0), _index(packets, segments[4].start_time - T0)
    )
    assert _recorded(sink) == [p.data for i, p in enumerate(packets) if i not in lost]
    resumed = segments[4]
    assert resumed.frames == int(str(_ffprobe(resumed.data)["nb_read_packets"]))


def test_annex_b_stream_without_extradata_records(person_clip: Path) -> None:
    """Cameras that send SPS/PPS in-band: the muxer takes them from the first keyframe."""
    with av.open(str(person_clip)) as container:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", in_stream=stream)
        annex_b = [q for p in container.demux(stream) if p.size for q in bsf.filter(p)][:120]
        tb = stream.time_base
        assert tb is not None
        info = StreamInfo("h264", stream.width, stream.height, tb, None, 10.0)
        packets = [
            Packet(bytes(p), p.pts, p.dts, p.duration or 0, p.is_keyframe, T0 + float(p.pts * tb))
            for p in annex_b
        ]
    settings = RecordSettings(mode=RecordMode.CONTINUOUS, segment_seconds=4.0)
    _, sink = _record(packets, info, settings)

    assert [s.frames for s in sink.segments] == [40, 40, 40]
    for segment in sink.segments:
        assert _decoded_frames(segment.data) == segment.frames


def _pictures_as_shown(mp4: bytes) -> list[bytes]:
    """A digest of each picture in presentation (pts) order, as a player shows them."""
    with av.open(io.BytesIO(mp4)) as container:
        pictures = sorted(container.decode(video=0), key=lambda f: f.pts)
        return [hashlib.sha256(f.to_ndarray(format="gray").tobytes()).digest() for f in pictures]


def test_avi_with_b_frames_records_pictures_in_display_order(crowd_clip: Path) -> None:
    # An AVI stores dts only. With pts made up in decode order, as PyAV has FFmpeg do, a
    # P-frame was shown before the B-frames decoded after it, in every GOP.
    source = AVSource(str(crowd_clip), decode=False)
    info = source.open()
    try:
        packets = [p for p in source.read() if isinstance(p, Packet)]
    finally:
        source.close()
    assert info is not None and len(packets) == 341
    assert all(p.pts is not None and p.dts is not None and p.pts >= p.dts for p in packets)
    settings = RecordSettings(mode=RecordMode.CONTINUOUS, segment_seconds=4.0)
    _, sink = _record(packets, info, settings)

    with av.open(str(crowd_clip)) as container:  # the decoder's own display order
        expected = [
            hashlib.sha256(f.to_ndarray(format="gray").tobytes()).digest()
            for f in container.decode(video=0)
        ]
    assert len(sink.segments) >= 3
    assert [d for s in sink.segments for d in _pictures_as_shown(s.data)] == expected


@pytest.fixture(scope="module")
def b_frame_clip(person_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of the person clip with two B-frames between references (reorder depth 2)."""
    target = tmp_path_factory.mktemp("clips") / "b-frames.mp4"
    return reencode(person_clip, target, seconds=LOOP_SECONDS, keyframe_frames=10, b_frames=2)


looping_b_frame_camera = camera_fixture("b_frame_clip", loop=True)


def _pts_as_decoded(mp4: bytes) -> list[int]:
    """Each picture's pts in the order the decoder shows them (its own display order)."""
    with av.open(io.BytesIO(mp4)) as container:
        return [f.pts for f in container.decode(video=0)]


def test_b_frames_stay_in_display_order_after_the_camera_loops(
    looping_b_frame_camera: RtspCamera,
) -> None:
    # At each loop the camera's timestamps restart. FFmpeg then hands out dts = pts for
    # the RTSP stream, and pts forced to dts + 1 put every B-frame after its P-frame.
    source = AVSource(looping_b_frame_camera.url, decode=False, timeout=10)
    info = source.open()
    assert info is not None
    wanted = round(2.5 * LOOP_SECONDS * 10)  # packets, at 10 fps: over two restarts
    packets: list[Packet] = []
    try:
        for item in source.read():
            packets.append(item)  # type: ignore[arg-type]  # packets only: decode=False
            if len(packets) >= wanted:
                break
    finally:
        source.close()
    assert sum(p.keyframe for p in packets) >= 2.5 * LOOP_SECONDS  # one a second
    settings = RecordSettings(mode=RecordMode.CONTINUOUS, segment_seconds=4.0)
    _, sink = _record(packets, info, settings)

    shown = [_pts_as_decoded(s.data) for s in sink.segments]
    assert sum(map(len, shown)) == len(packets)  # every picture decodes
    out_of_order = sum(b <= a for pts in shown for a, b in itertools.pairwise(pts))
    assert out_of_order == 0, f"{out_of_order} of {len(packets)} pictures out of display order"


def test_settings_are_validated() -> None:
    assert RecordSettings(mode="continuous").mode is RecordMode.CONTINUOUS  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="segment_seconds"):
        RecordSettings(segment_seconds=0)
    with pytest.raises(ValueError, match="pre_roll"):
        RecordSettings(pre_roll=-1)
    with pytest.raises(ValueError, match="sometimes"):
        RecordSettings(mode="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(("codec", "message"), [("nosuch", "nosuch"), ("aac", "not a video")])
def test_unrecordable_codec_is_refused_clearly(person: Clip, codec: str, message: str) -> None:
    info, _ = person
    recorder = Recorder("cam", RecordSettings(), MemorySink())
    with pytest.raises(ValueError, match=message):
        recorder.start_stream(dataclasses.replace(info, codec=codec))
