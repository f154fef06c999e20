"""Sound in recordings and clips, with real pieces only.

The crowd clip's AAC track is served by the real RTSP test camera, as it is (`aac`) and
re-encoded to G.711 A-law at 8 kHz (`alaw`, as doorbells send it); `camhub run` records
it, `camhub decrypt` opens the sealed segments and ffprobe reads them; clips are built
from them as the web side builds them.
"""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from rtsp_camera import RtspCamera, camera_fixture
from test_daemon import (
    CONNECTED,
    HubProcess,
    Site,
    decrypt_many,
    leaks,
    new_site,
    read_index,
)
from test_record import MemorySink

from hub.capture.av_source import AVSource
from hub.capture.base import SourceError
from hub.clip import ClipPart, ClipTooLarge, build_clip
from hub.media import Packet
from hub.record import Recorder, RecordSettings, TimeOrder
from hub.store import SegmentRow, SegmentState

# A segment's sound and video end within an audio packet (128 ms for AAC at 8 kHz, 23 ms
# at 44.1 kHz) and a frame (40 ms) of each other, where the clip repeats within 25 ms more.
DURATION_SLACK = 0.2
# A sound lies within a picture and an AAC frame of where it belongs, and back to back.
PLACEMENT_SLACK = 0.2
SEGMENT_WAIT = 60.0


alaw_camera = camera_fixture("crowd_av_clip", audio="alaw")


def streams(path: Path) -> dict[str, float]:
    """{codec_type: duration} of a file's streams, by ffprobe."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = json.loads(done.stdout)["streams"]
    return {s["codec_type"]: float(s.get("duration", 0)) for s in found}


def codecs(path: Path) -> set[str]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
         str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(done.stdout.split())


def complete(site: Site) -> list[SegmentRow]:
    segments, _ = read_index(site)
    return [s for s in segments if s.state is SegmentState.COMPLETE]


def wait_for_segments(hub: HubProcess, site: Site, count: int, after: float = 0.0) -> None:
    deadline = time.monotonic() + SEGMENT_WAIT
    while len([s for s in complete(site) if s.start_time >= after]) < count:
        assert hub.running, hub.log
        if time.monotonic() > deadline:
            pytest.fail(f"fewer than {count} segments in {SEGMENT_WAIT} s:\n{hub.log}")
        time.sleep(0.2)


def decrypted(site: Site, tmp_path: Path) -> list[tuple[SegmentRow, Path]]:
    segments = complete(site)
    outs = [tmp_path / f"{site.root.name}-{s.id}.mp4" for s in segments]
    jobs = [(site.data / s.path, out, ()) for s, out in zip(segments, outs, strict=True)]
    for done in decrypt_many(site, jobs):
        assert done.returncode == 0, done.stderr
    return list(zip(segments, outs, strict=True))


# -- capture ----------------------------------------------------------------------------


def test_g711_comes_out_as_aac_on_the_video_timeline(alaw_camera: RtspCamera) -> None:
    source = AVSource(alaw_camera.url, decode=False, audio=True)
    info = source.open()
    assert info is not None and info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 8000, 1)
    video: list[Packet] = []
    sound: list[Packet] = []
    try:
        for packet in source.read():
            assert isinstance(packet, Packet)
            (sound if packet.audio else video).append(packet)
            if len(video) >= 150:  # 6 s at 25 fps
                break
    finally:
        source.close()
    assert sound and all(p.keyframe for p in sound)
    assert video[0].starts_gop and not any(p.starts_gop for p in sound)
    # On one timeline: the sound spans the video's time, give or take an AAC frame.
    assert abs(sound[0].time - video[0].time) < 0.3
    assert abs(sound[-1].time - video[-1].time) < 0.5
    assert all(b.pts > a.pts for a, b in itertools.pairwise(sound))


def test_sound_off_takes_none(alaw_camera: RtspCamera) -> None:
    source = AVSource(alaw_camera.url, decode=False)
    info = source.open()
    try:
        assert info is not None and info.audio is None
        items = [p for _, p in zip(range(60), source.read(), strict=False)]
    finally:
        source.close()
    assert not any(isinstance(p, Packet) and p.audio for p in items)


@pytest.fixture
def short_clip(crowd_av_clip: Path, tmp_path: Path) -> Path:
    """8 s: two keyframes, so a client that joins after the first still gets video."""
    out = tmp_path / "short.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(crowd_av_clip), "-t", "8", "-c", "copy", str(out)],
        check=True,
    )
    return out


def test_video_that_stalls_while_sound_goes_on_is_a_stall(short_clip: Path) -> None:
    """Sound keeps every read busy, so only a check on the video itself sees the stall."""
    with RtspCamera(short_clip, loop=False, audio="tone") as camera:
        source = AVSource(camera.url, decode=False, audio=True, timeout=3)
        source.open()
        sound_after_video = 0
        last_video = time.monotonic()
        try:
            with pytest.raises(SourceError, match="no video for 3 s"):
                for packet in source.read():
                    assert isinstance(packet, Packet)
                    if not packet.audio:
                        last_video = time.monotonic()
                    elif time.monotonic() - last_video > 1:
                        sound_after_video += 1
                    assert time.monotonic() - last_video < 30, "the stall went unnoticed"
        finally:
            source.close()
    assert sound_after_video > 0  # the sound did go on without the video


@pytest.fixture
def noisy_clip(crowd_clip: Path, tmp_path: Path) -> Path:
    """8 s of the crowd with noise for sound: every AAC packet differs (the crowd's own
    sound repeats a few packets over and over), so each names its moment in the clip."""
    out = tmp_path / "noisy.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-fflags", "+genpts", "-i", str(crowd_clip), "-f", "lavfi",
         "-i", "anoisesrc=r=44100:a=0.3", "-map", "0:v", "-map", "1:a", "-t", "8",
         "-c:v", "copy", "-c:a", "aac", str(out)],
        check=True,
    )  # fmt: skip
    return out


def clip_times(clip: Path) -> dict[bytes, float]:
    """{packet tail: clip seconds} of a clip's pictures and sounds, each tail unique.

    A packet's last 32 bytes name it across the RTSP round trip: H.264 comes back with
    start codes instead of length prefixes, but ends in the same slice; AAC as it was.
    """
    times: dict[bytes, list[float]] = {}
    with av.open(str(clip)) as container:
        for packet in container.demux():
            if packet.size and packet.pts is not None:
                times.setdefault(bytes(packet)[-32:], []).append(
                    float(packet.pts * packet.time_base)
                )
    return {tail: found[0] for tail, found in times.items() if len(found) == 1}


def test_sound_stays_with_its_picture_when_the_camera_clock_jumps(noisy_clip: Path) -> None:
    """At the test camera's loop both RTSP clocks go back a clip's length, then forward
    again when each stream's next RTCP report comes, seconds apart: the sound in between
    was put a clip's length (8 s) before its picture, and the recording dropped it."""
    known = clip_times(noisy_clip)
    heard: list[tuple[float, float, float]] = []  # (arrival, wall time, clip time)
    seen: list[tuple[float, float, float]] = []
    sounds = 0
    with RtspCamera(noisy_clip, audio="aac") as camera:
        source = AVSource(camera.url, decode=False, audio=True)
        info = source.open()
        assert info is not None and info.audio is not None
        sink = MemorySink()
        recorder = Recorder("cam", RecordSettings(mode="continuous", segment_seconds=2), sink)
        recorder.start_stream(info)
        started = time.monotonic()
        try:
            for packet in source.read():
                assert isinstance(packet, Packet)
                arrival = time.monotonic()
                where = known.get(packet.data[-32:])
                if where is not None:
                    (heard if packet.audio else seen).append((arrival, packet.time, where))
                sounds += packet.audio
                recorder.push(packet)
                if arrival - started > 20:  # a loop, and both streams' next RTCP reports
                    break
        finally:
            source.close()
        recorder.close()
    loops = sum(b[2] < a[2] - 1 for a, b in itertools.pairwise(seen))
    assert loops >= 1 and len(heard) > 500, (loops, len(heard))
    # Where each sound belongs: beside the picture of the same clip moment that came with it.
    misplaced = []
    for arrival, wall, moment in heard:
        near = [(abs(c - moment), t - c) for a, t, c in seen if abs(a - arrival) < 1.5]
        belongs = moment + min(near)[1]
        if abs(wall - belongs) > PLACEMENT_SLACK:
            misplaced.append(round(wall - belongs, 2))
    assert not misplaced, f"{len(misplaced)} of {len(heard)} sounds misplaced: {misplaced[:5]}"
    # ...and the recording keeps it all, without a hole (it dropped 135 of 645 as late,
    # leaving one segment without sound and another with a 3 s hole).
    assert recorder.stats.audio_packets_late == 0
    assert recorder.stats.audio_packets_written == sounds
    # Nor does the picture freeze where the camera's clock stepped forward (the segment
    # across the loop held an 8 s hole in its video).
    for segment in sink.segments:
        with av.open(io.BytesIO(segment.data)) as container:
            assert container.streams.audio, f"no sound in the segment of {segment.start_time}"
            sound, video = container.streams.audio[0], container.streams.video[0]
            sound_tick, video_tick = sound.time_base, video.time_base
            packets = [
                (p.stream_index == video.index, p.pts, p.pts + p.duration)
                for p in container.demux(sound, video)
                if p.size
            ]
        ends = sorted((a, b) for picture, a, b in packets if not picture)
        holes = [float((b[0] - a[1]) * sound_tick) for a, b in itertools.pairwise(ends)]
        assert max(holes, default=0.0) < PLACEMENT_SLACK, (segment.start_time, holes)
        shown = sorted(a for picture, a, _ in packets if picture)
        steps = [float((b - a) * video_tick) for a, b in itertools.pairwise(shown)]
        assert len(shown) > 10 and max(steps) < PLACEMENT_SLACK, (segment.start_time, steps)


# -- recording --------------------------------------------------------------------------


def _packet(time: float, *, audio: bool = False, key: bool = False) -> Packet:
    return Packet(b"x", 0, 0, 0, key or audio, time, audio=audio)


def _times(packets: list[Packet]) -> list[tuple[str, float]]:
    return [("a" if p.audio else "v", p.time) for p in packets]


def test_time_order_merges_by_time_and_waits_boundedly() -> None:
    order = TimeOrder(wait=1.0)
    out = order.push(_packet(0.0, key=True))  # alone: waits for sound
    out += order.push(_packet(0.04))
    assert out == []
    out += order.push(_packet(-0.3, audio=True))  # sound lagging behind the video
    out += order.push(_packet(0.02, audio=True))
    out += order.push(_packet(0.05, audio=True))
    assert _times(out) == [("a", -0.3), ("v", 0.0), ("a", 0.02), ("v", 0.04)]
    # The sound stops: the video leaves once it is a second older than the newest packet.
    for i in range(2, 40):
        out += order.push(_packet(i * 0.04))
    assert ("v", 0.08) in _times(out) and ("v", 1.52) not in _times(out)
    assert _times(out) == sorted(_times(out), key=lambda item: item[1])
    rest = order.drain()
    assert [t for _, t in _times(out + rest)][-1] == 39 * 0.04
    assert order.drain() == []


def test_motion_pre_roll_keeps_the_sound_beside_its_video(
    crowd_av_clip: Path, tmp_path: Path
) -> None:
    """An event wanted 3 s after the stream's 10th second gets its pre-roll's sound too."""
    source = AVSource(str(crowd_av_clip), decode=False, audio=True)
    info = source.open()
    assert info is not None
    sink = MemorySink()
    settings = RecordSettings(mode="motion", pre_roll=3, segment_seconds=30)
    recorder = Recorder("cam", settings, sink)
    recorder.start_stream(info)
    first: float | None = None
    try:
        for packet in source.read():
            assert isinstance(packet, Packet)
            first = packet.time if first is None else first
            recorder.push(packet)
            if packet.time - first >= 13:
                recorder.want(first + 10 - 3, first + 16)
            if packet.time - first > 16:
                break
    finally:
        source.close()
    recorder.close()
    (segment,) = sink.segments
    assert segment.start_time <= first + 7  # from the keyframe before the pre-roll
    path = tmp_path / "event.mp4"
    path.write_bytes(segment.data)
    found = streams(path)
    assert set(found) == {"video", "audio"}
    assert found["video"] > 8
    assert abs(found["audio"] - found["video"]) <= DURATION_SLACK, found


def test_video_is_recorded_whole_when_sound_starts_late_and_stops(
    crowd_av_clip: Path, tmp_path: Path
) -> None:
    """Sound missing for the first 3 s and after 9 s: every video packet is still muxed."""
    source = AVSource(str(crowd_av_clip), decode=False, audio=True)
    info = source.open()
    assert info is not None and info.audio is not None
    sink = MemorySink()
    recorder = Recorder("cam", RecordSettings(mode="continuous", segment_seconds=2), sink)
    recorder.start_stream(info)
    first: float | None = None
    videos = 0
    try:
        for packet in source.read():
            assert isinstance(packet, Packet)
            first = packet.time if first is None else first
            if packet.time - first > 20:
                break
            if packet.audio and not 3 <= packet.time - first <= 9:
                continue
            videos += not packet.audio
            recorder.push(packet)
    finally:
        source.close()
    recorder.close()
    assert recorder.stats.packets_written == videos
    assert recorder.stats.audio_packets_written > 0
    tracks = []
    for index, segment in enumerate(sink.segments):
        path = tmp_path / f"{index}.mp4"
        path.write_bytes(segment.data)
        tracks.append(streams(path))
        assert tracks[-1]["video"] > 0
    assert any("audio" in t and t["audio"] > 1 for t in tracks)


def continuous_recording(clip: Path) -> tuple[AVSource, Recorder, MemorySink]:
    """The clip opened with its sound, and a recorder of 2 s segments ready for it."""
    source = AVSource(str(clip), decode=False, audio=True)
    info = source.open()
    assert info is not None
    sink = MemorySink()
    recorder = Recorder("cam", RecordSettings(mode="continuous", segment_seconds=2), sink)
    recorder.start_stream(info)
    return source, recorder, sink


def first_times(data: bytes) -> tuple[float, float]:
    """(first picture, first sound) presentation times of an MP4, read by PyAV."""
    firsts = []
    for kind in ("video", "audio"):
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.get(**{kind: 0})[0]
            times = [p.pts * p.time_base for p in container.demux(stream) if p.pts is not None]
            firsts.append(float(min(times)))
    return firsts[0], firsts[1]


def test_sound_that_starts_after_the_picture_keeps_its_place(crowd_av_clip: Path) -> None:
    """The sound of each segment starts where it came, against the picture: it was put
    at 0 (the header is written before any sample, and a track starting later had no
    offset), 0.5 s early in the first segment here, up to an AAC frame in each."""
    source, recorder, sink = continuous_recording(crowd_av_clip)
    pushed: list[Packet] = []
    try:
        for packet in source.read():
            assert isinstance(packet, Packet)
            if packet.audio and packet.time - pushed[0].time < 0.5:
                continue  # the sound starts half a second after the picture
            pushed.append(packet)
            recorder.push(packet)
            if packet.time - pushed[0].time > 12:
                break
    finally:
        source.close()
    recorder.close()
    assert len(sink.segments) >= 2
    for segment in sink.segments:
        sound = min(p.time for p in pushed if p.audio and p.time >= segment.start_time)
        picture, heard = first_times(segment.data)
        assert heard - picture == pytest.approx(sound - segment.start_time, abs=0.005)


def test_video_reaches_the_disk_while_the_sound_is_missing(crowd_av_clip: Path) -> None:
    """The muxer interleaves by time: without a bound it held 10 s of video waiting for
    sound that never came, all of it lost to a crash."""
    source = AVSource(str(crowd_av_clip), decode=False, audio=True)
    info = source.open()
    assert info is not None and info.audio is not None
    sink = MemorySink()
    recorder = Recorder("cam", RecordSettings(mode="continuous", segment_seconds=60), sink)
    recorder.start_stream(info)
    pushed: list[tuple[float, int]] = []  # (time, bytes) of the video pushed
    try:
        for packet in source.read():
            assert isinstance(packet, Packet)
            if packet.audio:
                continue  # the camera's sound is gone
            recorder.push(packet)
            pushed.append((packet.time, len(packet.data)))
            if packet.time - pushed[0][0] > 8:
                break
    finally:
        source.close()
    (segment,) = sink.segments
    on_disk = len(segment.data)  # before close: only what the muxer let go of
    recorder.close()
    older = sum(size for t, size in pushed if t < pushed[-1][0] - 3)
    assert on_disk >= older, (on_disk, older)


def test_a_clip_with_sound_keeps_the_clip_budget(crowd_av_clip: Path, tmp_path: Path) -> None:
    """The sound is plaintext read like the video: it counts against `max_bytes`, and the
    clip (whose moov now indexes sound too) fits the memory reserved for it."""
    source, recorder, sink = continuous_recording(crowd_av_clip)
    try:
        for packet in source.read():
            assert isinstance(packet, Packet)
            recorder.push(packet)
    finally:
        source.close()
    recorder.close()
    parts = [(s.start_time, s.data) for s in sink.segments]
    total = sum(len(data) for _, data in parts)
    with pytest.raises(ClipTooLarge):
        build_clip([ClipPart(t, [data]) for t, data in parts], max_bytes=total - 1)
    clip = build_clip([ClipPart(t, [data]) for t, data in parts], max_bytes=total)
    out = tmp_path / "clip.mp4"
    out.write_bytes(clip.data)
    found = streams(out)
    assert set(found) == {"video", "audio"} and found["video"] > 40, found
    assert len(clip.data) < total


@pytest.mark.slow
def test_hub_records_sound_sealed_and_clips_carry_it(
    alaw_camera: RtspCamera, tmp_path: Path, hubs: Callable[[Path], HubProcess]
) -> None:
    """A doorbell's G.711, recorded with `audio = true` beside a hub without it."""
    on = new_site(
        tmp_path / "on", alaw_camera.url, record="continuous", segment_seconds=4,
        camera_extra="audio = true\n",
    )  # fmt: skip
    off = new_site(tmp_path / "off", alaw_camera.url, record="continuous", segment_seconds=4)
    hub_on, hub_off = hubs(on.config), hubs(off.config)
    hub_on.wait_for(CONNECTED, 30)
    hub_off.wait_for(CONNECTED, 30)
    wait_for_segments(hub_on, on, 3)
    wait_for_segments(hub_off, off, 1)
    assert hub_on.terminate() == 0 and hub_off.terminate() == 0
    assert "Traceback" not in hub_on.log + hub_off.log

    opened = decrypted(on, tmp_path)
    assert len(opened) >= 3
    for segment, mp4 in opened:
        found = streams(mp4)
        assert set(found) == {"video", "audio"}, (segment, found)
        # The last one too, cut by the stop: the encoder's last 0.3 s of sound is in it.
        assert abs(found["audio"] - found["video"]) <= DURATION_SLACK, (segment, found)
    assert codecs(opened[0][1]) == {"h264", "aac"}
    for _, mp4 in decrypted(off, tmp_path):
        assert set(streams(mp4)) == {"video"}

    # Sealed at rest like the rest: no MP4 box, AAC or not, in the clear.
    for path in on.data.rglob("*"):
        if path.is_file():
            assert not leaks(path.read_bytes()), path

    # A clip of them (as an event's clip or a share is built) has both tracks.
    parts = [ClipPart(s.start_time, [mp4.read_bytes()]) for s, mp4 in opened]
    clip = build_clip(parts)
    assert clip.parts == len(parts)
    out = tmp_path / "clip.mp4"
    out.write_bytes(clip.data)
    found = streams(out)
    assert set(found) == {"video", "audio"}
    assert abs(found["audio"] - found["video"]) <= 2 * DURATION_SLACK, found


@pytest.mark.slow
def test_camera_that_loses_its_sound_keeps_recording_video(
    crowd_av_clip: Path, tmp_path: Path, hubs: Callable[[Path], HubProcess]
) -> None:
    with RtspCamera(crowd_av_clip, audio="aac") as camera:
        site = new_site(
            tmp_path / "site", camera.url, record="continuous", segment_seconds=4,
            camera_extra="audio = true\n",
        )  # fmt: skip
        hub = hubs(site.config)
        hub.wait_for(CONNECTED, 30)
        wait_for_segments(hub, site, 2)
        camera.audio = "none"  # the same camera comes back without its sound track
        camera.restart()
        hub.wait_for(CONNECTED, 60, count=2)
        back = time.time()
        hub.wait_for("no sound track", 10)
        wait_for_segments(hub, site, 2, after=back)
        assert hub.terminate() == 0
    assert "Traceback" not in hub.log
    opened = decrypted(site, tmp_path)
    before = [set(streams(mp4)) for s, mp4 in opened if s.start_time < back - 5]
    after = [(s, set(streams(mp4))) for s, mp4 in opened if s.start_time >= back]
    assert before and all(found == {"video", "audio"} for found in before)
    assert len(after) >= 2 and all(found == {"video"} and s.frames for s, found in after)
