"""Clip assembly: real segments from the real Recorder, stream-copied into one seekable MP4."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import random
import struct
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import av.logging
import pytest

from hub.clip import Clip, ClipError, ClipPart, ClipTooLarge, build_clip
from hub.media import Packet, StreamInfo
from hub.record import Recorder, RecordMode, RecordSettings

T0 = 1_700_000_000.0  # wall-clock time of each clip's first frame
CHUNK = 65536  # the vault's plaintext chunk: parts arrive from the archive in pieces this big


@dataclass(frozen=True)
class Segment:
    """One recorded segment's plaintext, as the archive would hand it back."""

    start_time: float
    end_time: float
    frames: int
    data: bytes

    def part(self, start_time: float | None = None) -> ClipPart:
        start = self.start_time if start_time is None else start_time
        chunks = [self.data[i : i + CHUNK] for i in range(0, len(self.data), CHUNK)]
        return ClipPart(start, chunks)


@dataclass
class _Output:
    start_time: float
    chunks: list[bytes] = field(default_factory=list)
    done: Segment | None = None

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def finish(self, end_time: float, frames: int) -> None:
        self.done = Segment(self.start_time, end_time, frames, b"".join(self.chunks))

    def abort(self) -> None:
        raise AssertionError("a segment was aborted")


class _Sink:
    def __init__(self) -> None:
        self.outputs: list[_Output] = []

    def open_segment(self, camera_id: str, start_time: float) -> _Output:
        self.outputs.append(output := _Output(start_time))
        return output


@cache
def _segments(path: Path, time_base: Fraction | None = None) -> tuple[Segment, ...]:
    """The clip recorded continuously in 4 s segments, as the hub records a camera
    (whose timestamps may come in another `time_base`)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        assert tb is not None
        scale = tb / (time_base or tb)

        def ticks(value: int | None) -> int | None:
            return None if value is None else round(value * scale)

        info = StreamInfo(
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            time_base=time_base or tb,
            extradata=stream.codec_context.extradata,
            fps=float(stream.guessed_rate) if stream.guessed_rate else None,
        )
        recorder = Recorder("cam", RecordSettings(mode=RecordMode.CONTINUOUS), sink := _Sink())
        recorder.start_stream(info)
        for p in container.demux(stream):
            if p.size:
                pts = p.pts if p.pts is not None else p.dts
                time = T0 + float(pts * tb)
                duration = ticks(p.duration) or 0
                packet = Packet(bytes(p), ticks(p.pts), ticks(p.dts), duration, p.is_keyframe, time)
                recorder.push(packet)
        recorder.close()
    segments = tuple(o.done for o in sink.outputs if o.done is not None)
    assert len(segments) == len(sink.outputs) >= 3
    return segments


@pytest.fixture
def person(person_clip: Path) -> tuple[Segment, ...]:
    return _segments(person_clip)  # 768x432, 10 fps, B-frames: 35 segments of 40 frames


@pytest.fixture
def crowd(crowd_clip: Path) -> tuple[Segment, ...]:
    return _segments(crowd_clip)  # 1280x720, 25 fps


@dataclass
class Probe:
    """What a player sees in a clip: container layout, packets, and decoded pictures."""

    boxes: list[str]
    width: int
    height: int
    duration: float
    packets: list[bytes]
    dts: list[int]
    keyframes: list[int]  # packet indexes
    keyframe_times: list[float]
    times: list[float]  # decoded pictures, in presentation order
    errors: list[str]  # FFmpeg's complaints while decoding


def _boxes(data: bytes) -> list[str]:
    """The MP4's top-level boxes, in order; they must tile the whole file."""
    names, at = [], 0
    while at < len(data):
        size, name = struct.unpack_from(">I4s", data, at)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
        assert size >= 8, f"bad box size {size} at {at}"
        names.append(name.decode("ascii"))
        at += size
    assert at == len(data)
    return names


def _probe(data: bytes) -> Probe:
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs, av.open(io.BytesIO(data)) as container:
            (stream,) = container.streams
            assert isinstance(stream, av.VideoStream) and container.duration is not None
            assert stream.time_base is not None
            packets = [p for p in container.demux(stream) if p.size]
            pts = [f.pts for p in [*packets, None] for f in stream.codec_context.decode(p)]
            times = [float(t * stream.time_base) for t in pts if t is not None]
            probe = Probe(
                boxes=_boxes(data),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                duration=container.duration / av.time_base,
                packets=[bytes(p) for p in packets],
                dts=[p.dts for p in packets],
                keyframes=[i for i, p in enumerate(packets) if p.is_keyframe],
                keyframe_times=[float(p.pts * stream.time_base) for p in packets if p.is_keyframe],
                times=times,
                errors=[],
            )
    finally:
        av.logging.set_level(previous)
    probe.errors = [f"{name}: {message}" for _, name, message in logs]
    return probe


def _packets(segment: Segment) -> list[bytes]:
    with av.open(io.BytesIO(segment.data)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def _frame(segments: Iterable[Segment]) -> float:
    """One frame's duration."""
    first = next(iter(segments))
    return (first.end_time - first.start_time) / first.frames


def _assert_plays(
    clip: Clip, segments: list[Segment], starts: Iterable[float] | None = None
) -> Probe:
    """The clip holds every frame of the segments, copied as-is, and plays cleanly: each
    segment shows just as it does alone, from `starts` (default: its wall-clock place)."""
    probe = _probe(clip.data)
    frames = sum(s.frames for s in segments)
    assert clip.frames == frames
    assert probe.packets == [p for s in segments for p in _packets(s)]  # no re-encode
    assert probe.boxes[0] == "ftyp"
    assert probe.boxes.index("moov") < probe.boxes.index("mdat")  # faststart
    assert "moof" not in probe.boxes  # not fragmented
    assert all(a < b for a, b in itertools.pairwise(probe.dts))
    firsts = list(itertools.accumulate((s.frames for s in segments[:-1]), initial=0))
    assert set(firsts) <= set(probe.keyframes)  # every part starts on a keyframe
    assert probe.errors == []
    if starts is None:
        starts = [s.start_time - segments[0].start_time for s in segments]
    expected: list[float] = []
    for segment, start in zip(segments, starts, strict=True):
        alone = _probe(segment.data).times
        expected += [start + t - alone[0] for t in alone]
    assert probe.times == pytest.approx(expected, abs=1e-6)
    assert probe.times[0] == 0
    assert probe.duration == pytest.approx(clip.duration, abs=1e-3)
    return probe


@pytest.mark.parametrize(
    ("clip", "take"),
    [("person", slice(2, 6)), ("person", slice(None)), ("crowd", slice(None))],
    ids=["person-4-parts", "person-all", "crowd-all"],
)
def test_consecutive_segments_become_one_seekable_mp4(
    clip: str, take: slice, request: pytest.FixtureRequest
) -> None:
    segments = list(request.getfixturevalue(clip)[take])
    assert len(segments) >= 3

    result = build_clip(s.part() for s in segments)

    assert (result.parts, result.stopped_before) == (len(segments), None)
    probe = _assert_plays(result, segments)
    if clip == "person":  # the AVI's B-frames carry made-up pts, even in its segments
        assert all(a < b for a, b in itertools.pairwise(probe.times))
    first, last = segments[0], segments[-1]
    frame = _frame(segments)
    assert probe.duration == pytest.approx(last.end_time - first.start_time, abs=2 * frame)

    # Seeking lands on the keyframe at or before the target: the index is usable.
    with av.open(io.BytesIO(result.data)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        target = probe.duration * 0.6
        container.seek(round(target / stream.time_base), stream=stream)
        seen = next(container.decode(stream)).time
        assert seen == pytest.approx(max(t for t in probe.keyframe_times if t <= target))


def test_ffprobe_and_ffmpeg_agree_reading_from_a_pipe(person: tuple[Segment, ...]) -> None:
    segments = list(person[5:9])
    data = build_clip(s.part() for s in segments).data
    # A pipe cannot seek: reading it at all needs moov before mdat.
    probed = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-of", "json",
            "-show_entries", "stream=codec_name,width,height,nb_read_frames:format=duration", "-",
        ],
        input=data, capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert probed.returncode == 0 and not probed.stderr, probed.stderr
    info = json.loads(probed.stdout)
    (stream,) = info["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 768, 432)
    assert int(stream["nb_read_frames"]) == sum(s.frames for s in segments) == 160
    assert float(info["format"]["duration"]) == pytest.approx(16.0, abs=0.01)
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", "-", "-f", "null", "-"],
        input=data, capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert decoded.returncode == 0 and not decoded.stderr, decoded.stderr


def test_nothing_is_written_to_disk(
    person: tuple[Segment, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a muxer that opened its output by name would write
    data = build_clip(s.part() for s in person[:3]).data
    assert _boxes(data)[:2] == ["ftyp", "moov"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("take", "max_gap", "expected_starts", "duration"),
    [
        ((0, 1, 3), 10.0, (0.0, 4.0, 12.0), 16.0),  # a lost segment stays a pause
        ((0, 1, 3), 1.0, (0.0, 4.0, 8.0), 12.0),  # ... or is closed up
        ((0, 1, 3), 4.0, (0.0, 4.0, 12.0), 16.0),  # max_gap is inclusive
        ((0, 2, 20, 21), 5.0, (0.0, 8.0, 12.0, 16.0), 20.0),  # a 4 s gap kept, 68 s closed
    ],
)
def test_gaps_are_kept_up_to_max_gap_and_closed_beyond(
    person: tuple[Segment, ...],
    take: tuple[int, ...],
    max_gap: float,
    expected_starts: tuple[float, ...],
    duration: float,
) -> None:
    segments = [person[i] for i in take]
    result = build_clip((s.part() for s in segments), max_gap=max_gap)

    _assert_plays(result, segments, starts=expected_starts)
    assert result.duration == pytest.approx(duration)


def test_a_clock_set_back_never_overlaps_parts(person: tuple[Segment, ...]) -> None:
    segments = list(person[:3])
    parts = [
        segments[0].part(),
        segments[1].part(segments[0].start_time - 3600),  # NTP stepped the clock back
        segments[2].part(segments[0].start_time + 1),
    ]
    result = build_clip(parts)

    _assert_plays(result, segments, starts=[0.0, 4.0, 8.0])
    assert result.duration == pytest.approx(12.0)


def test_a_part_with_another_time_base_is_rescaled(
    person_clip: Path, person: tuple[Segment, ...]
) -> None:
    other = _segments(person_clip, Fraction(1, 90_000))  # the camera came back at 90 kHz
    with av.open(io.BytesIO(other[1].data)) as container:
        assert container.streams.video[0].time_base == Fraction(1, 90_000)
    segments = [person[0], other[1], person[2]]

    result = build_clip(s.part() for s in segments)

    _assert_plays(result, segments, starts=[0.0, 4.0, 8.0])
    assert result.duration == pytest.approx(12.0)


def test_a_resolution_change_ends_the_clip_before_it(
    person: tuple[Segment, ...], crowd: tuple[Segment, ...]
) -> None:
    pulled: list[int] = []
    later = person[1].end_time + 5  # the camera reconnected at 1280x720

    def parts() -> Iterator[ClipPart]:
        for index, part in enumerate(
            [person[0].part(), person[1].part()]
            + [s.part(later + s.start_time - T0) for s in crowd]
        ):
            pulled.append(index)
            yield part

    result = build_clip(parts())

    assert (result.parts, result.frames) == (2, 80)
    assert result.stopped_before == later + crowd[0].start_time - T0
    assert pulled == [0, 1, 2]  # nothing past the change is read, let alone decrypted
    probe = _assert_plays(result, list(person[:2]))
    assert (probe.width, probe.height) == (768, 432)

    # A clip asked for from the change onwards has the new parameters.
    rest = build_clip(s.part() for s in crowd)
    assert (_probe(rest.data).width, rest.parts) == (1280, len(crowd))


def test_too_large_is_refused_as_soon_as_the_budget_is_spent(
    person: tuple[Segment, ...],
) -> None:
    segments = list(person[:5])
    read: list[tuple[int, int]] = []  # (part, chunk) actually pulled

    def chunks(index: int, segment: Segment) -> Iterator[bytes]:
        for n, chunk in enumerate(segment.part().chunks):
            read.append((index, n))
            yield chunk

    def parts() -> Iterator[ClipPart]:
        for index, segment in enumerate(segments):
            yield ClipPart(segment.start_time, chunks(index, segment))

    limit = len(segments[0].data) + len(segments[1].data) + 1000
    with pytest.raises(ClipTooLarge, match="ask for a shorter range") as raised:
        build_clip(parts(), max_bytes=limit)
    assert isinstance(raised.value, ClipError) and raised.value.part == 2
    assert max(read) == (2, 0)  # stopped at part 2's first chunk, which crossed the line

    exact = sum(len(s.data) for s in segments)
    assert build_clip((s.part() for s in segments), max_bytes=exact).frames == 200
    with pytest.raises(ClipTooLarge):
        build_clip((s.part() for s in segments), max_bytes=exact - 1)


def _header_only(data: bytes) -> bytes:
    return data[: data.index(b"moof") - 4]  # ftyp + moov: a stream with no samples


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: random.Random(7).randbytes(len(data)), "not an MP4 segment"),
        (lambda data: b"", "not an MP4 segment"),
        (lambda data: data[:100], "not an MP4 segment"),  # ftyp alone
        (_header_only, "no video packets"),
    ],
    ids=["garbage", "empty", "cut-in-header", "no-samples"],
)
@pytest.mark.parametrize("bad", [0, 1])
def test_a_part_that_does_not_demux_is_named(
    person: tuple[Segment, ...], damage: object, message: str, bad: int
) -> None:
    assert callable(damage)
    parts = [s.part() for s in person[:3]]
    parts[bad] = ClipPart(parts[bad].start_time, [damage(person[bad].data)])

    with pytest.raises(ClipError, match=f"part {bad} .*{message}") as raised:
        build_clip(parts)
    assert raised.value.part == bad and not isinstance(raised.value, ClipTooLarge)


def test_a_recovered_segment_cut_short_keeps_its_complete_frames(
    person: tuple[Segment, ...],
) -> None:
    segments = list(person[:3])
    last = segments[-1]
    assert len(last.data) > CHUNK
    cut = dataclasses.replace(last, data=last.data[:CHUNK])  # lost its final sealed chunk
    with av.open(io.BytesIO(cut.data)) as container:
        whole = [p for p in container.demux(video=0) if p.size and not p.is_corrupt]
    assert 0 < len(whole) < last.frames

    result = build_clip(s.part() for s in [*segments[:-1], cut])

    probe = _probe(result.data)
    assert result.frames == len(probe.times) == 80 + len(whole)
    assert probe.packets == _packets(segments[0]) + _packets(segments[1]) + [
        bytes(p) for p in whole
    ]
    assert probe.errors == []


def test_no_parts_and_bad_limits_are_refused(person: tuple[Segment, ...]) -> None:
    with pytest.raises(ClipError, match="no parts"):
        build_clip([])
    with pytest.raises(ValueError, match="max_bytes"):
        build_clip([person[0].part()], max_bytes=0)
    with pytest.raises(ValueError, match="max_gap"):
        build_clip([person[0].part()], max_gap=-1)
