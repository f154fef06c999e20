"""Capture against real video: clips, a real RTSP camera, MJPEG over HTTP, a synthetic porch."""

from __future__ import annotations

import itertools
import logging
import random
import socket
import threading
import time
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hubkit import wait_until
from rtsp_camera import RtspCamera, camera_fixture

from hub.capture import (
    AVSource,
    CaptureLoop,
    EncodingSource,
    SourceError,
    SyntheticPorch,
    V4L2Source,
    needs_encoding,
    open_source,
)
from hub.capture.base import Source, redact
from hub.capture.supervisor import backoff_delay
from hub.capture.timing import (
    BestEffort,
    DisplayOrder,
    PacketTimestamps,
    SharedTimeline,
    WallClock,
)
from hub.media import Frame, Packet, StreamInfo

rtsp_camera = camera_fixture("person_clip")

SECRET = "hunter2"


def take(source: Source, frames: int) -> tuple[list[Packet], list[Frame]]:
    """Read until `frames` frames have come (or the source ends)."""
    packets: list[Packet] = []
    pictures: list[Frame] = []
    for item in source.read():
        (pictures if isinstance(item, Frame) else packets).append(item)
        if len(pictures) >= frames:
            break
    return packets, pictures


def rising(values: Iterable[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- pure parts -----------------------------------------------------------------------


def test_redact_masks_passwords_and_tokens() -> None:
    text = f"rtsp://admin:{SECRET}@10.0.0.5:554/s0 then http://cam/cgi?user=admin&pwd={SECRET}"
    assert redact(text) == (
        "rtsp://admin:***@10.0.0.5:554/s0 then http://cam/cgi?user=admin&pwd=***"
    )
    assert redact(f"rtsp://admin:p@ss{SECRET}@cam/x") == "rtsp://admin:***@cam/x"
    assert (
        redact("/srv/clips/door.mp4 rtsp://cam:554/s0") == "/srv/clips/door.mp4 rtsp://cam:554/s0"
    )


def test_packet_timestamps_fill_order_and_restart() -> None:
    fix = PacketTimestamps(Fraction(1, 50), frame_ticks=2).fix
    assert fix(None, None) is None  # nothing to go on yet
    assert fix(None, 0) == (0, 0)  # AVI: pts from dts
    assert fix(2, 1) == (2, 2)  # no reordering known: decoded when shown
    assert fix(2, 2) == (3, 3)  # dts must strictly increase
    assert fix(None, None) == (4, 4)  # later gaps: one frame after the latest picture
    assert fix(300, 300) == (300, 300)  # a gap forward is kept as it is
    assert fix(2, 0) == (302, 302)  # jumped back (a loop, a camera reboot): carry on


def test_packet_timestamps_close_a_live_camera_clock_step_forward() -> None:
    """A live camera's clock that steps forward (an NTP correction, RTCP resync) much
    further than the time between the packets' arrivals is a step, not a gap: the
    timeline carries on one frame later, or the recording would freeze the picture for
    the step's length. A gap the arrivals took as long too is real and kept."""
    fix = PacketTimestamps(Fraction(1, 50), frame_ticks=2).fix
    assert fix(0, 0, arrived=100.0) == (0, 0)
    assert fix(2, 2, arrived=100.04) == (2, 2)
    assert fix(402, 402, arrived=100.08) == (4, 4)  # 8 s ahead, 40 ms later: a step
    assert fix(404, 404, arrived=100.12) == (6, 6)  # ...and the stream goes on from there
    assert fix(654, 654, arrived=105.12) == (256, 256)  # 5 s of nothing, 5 s later: a gap
    assert fix(656, 656, arrived=105.16) == (258, 258)
    # Without arrival times (a file read as fast as it decodes) every gap is kept.
    files = PacketTimestamps(Fraction(1, 50), frame_ticks=2).fix
    assert [files(t, t) for t in (0, 2, 402)] == [(0, 0), (2, 2), (402, 402)]


def test_packet_timestamps_keep_b_frames_in_order_across_a_restart() -> None:
    # Decode order I P B B, shown I B B P; a frame is 2 ticks, a second 50: reorder depth 2.
    def pictures(start: int, count: int) -> list[int]:
        return [start + n + d for n in range(0, 2 * count, 8) for d in (0, 6, 2, 4)]

    fix = PacketTimestamps(Fraction(1, 50), frame_ticks=2, reorder=2).fix
    first = [fix(pts, None) for pts in pictures(0, 32)]  # RTSP's first packets lack dts
    assert first[:4] == [(0, -4), (6, -2), (2, 0), (4, 2)]
    # The camera restarts its clock and FFmpeg's dts become the pts: only pts count.
    again = [fix(pts, pts) for pts in pictures(0, 8)]
    assert [pts for pts, _ in again] == pictures(64, 8)  # one frame after the last picture
    assert rising(d for _, d in first + again)
    assert all(p >= d for p, d in first + again)


def test_packet_timestamps_learn_a_deeper_reordering() -> None:
    fix = PacketTimestamps(Fraction(1, 50), frame_ticks=2).fix  # told: no B-frames
    fixed = [fix(pts, None) for pts in [0, 4, 2, 8, 6, 12, 10]]
    assert [pts for pts, _ in fixed] == [0, 4, 5, 8, 7, 12, 10]  # only the first B is late
    assert rising(d for _, d in fixed) and all(p >= d for p, d in fixed)


def test_best_effort_switches_to_dts_when_pts_is_in_decode_order() -> None:
    pick = BestEffort()
    # An AVI with B-frames: pts come out of the decoder out of order, dts are sane.
    picked = [pick(pts, dts) for pts, dts in [(2, 2), (6, 4), (8, 6), (4, 8), (10, 10)]]
    assert picked == [2, 6, 8, 8, 10]


def test_display_order_gives_packets_the_pts_of_their_pictures() -> None:
    # Decode order I P B B, shown I B B P; one picture of delay, as the AVI's decoder has.
    order: DisplayOrder[str] = DisplayOrder(limit=4)
    released: list[tuple[str, int]] = []
    for dts, name in enumerate("IPBB"):
        order.hold(dts * 2, name)
    order.shown(0, 2)  # I, tagged with its own dts, shown in the slot of the next packet
    released += order.ready()
    order.shown(4, 4)  # the first B
    released += order.ready()  # P waits for its picture: B cannot leave before it
    assert released == [("I", 2)]
    order.shown(6, 6)
    order.shown(2, None)  # P, flushed out last: one slot after the one before
    released += order.ready()
    assert released == [("I", 2), ("P", 8), ("B", 4), ("B", 6)]


def test_display_order_lets_a_packet_go_whose_picture_never_comes() -> None:
    order: DisplayOrder[int] = DisplayOrder(limit=2)
    for dts in range(4):
        order.hold(dts, dts)
    order.shown(1, 2)  # packet 0 was damaged: no picture
    assert list(order.ready()) == [(0, 0), (1, 2)]  # 0 keeps pts = dts, once 2 wait behind it
    order.shown(3, 3)
    assert list(order.drain()) == [(2, 2), (3, 3)]


def test_wall_clock_follows_stream_and_reanchors_live_drift() -> None:
    clock = WallClock(Fraction(1, 1000), anchor=100.0, max_drift=3.0)
    assert clock.at(5000, now=100.0) == 100.0
    assert clock.at(6000, now=101.5) == 101.0  # bursts keep the stream's spacing
    assert clock.at(7000, now=120.0) == 120.0  # drifted too far: follow our clock
    assert clock.at(8000, now=121.0) == 121.0
    file_clock = WallClock(Fraction(1, 1000), 0.0, max_drift=None)
    assert file_clock.at(1000, now=0.0) == 0.0
    assert file_clock.at(99_000, now=0.0) == 98.0  # a file reads faster than real time


def test_sound_stays_beside_its_picture_when_the_stream_clocks_step_apart() -> None:
    """RTSP moves each stream to a stepped clock at its own RTCP report: the video's
    times jump first (its wall time carries on), the sound's later, or the other way."""
    timeline = SharedTimeline(max_apart=1.0)
    assert timeline.at(0.0) is None  # no picture yet: nothing to place the sound by
    timeline.video(10.0, wall=100.0)
    assert timeline.at(10.5) == 100.5  # sound a little late: its own place
    timeline.video(21.0, wall=101.0)  # the video's clock stepped 10 s forward
    assert timeline.at(11.0) == 101.0  # the sound's has not: it keeps its own spacing
    assert timeline.at(11.5) == 101.5
    timeline.video(22.0, wall=102.0)
    assert timeline.at(22.0) == 102.0  # its step came too: on the shared clock again
    timeline.at(22.5)
    timeline.video(1.0, wall=103.0)  # both step back (a camera restarting its clock)...
    assert timeline.at(23.0) == 103.0  # ...sound late to follow keeps its spacing
    assert timeline.at(7.0) == 103.0  # a step of its own, by another amount: at the picture
    assert timeline.at(7.5) == 103.5
    timeline.video(5.0, wall=107.0)
    assert timeline.at(5.0) == 107.0  # sound back after a gap: the shared clock places it
    timeline.reset()
    assert timeline.at(5.0) is None
    file_timeline = SharedTimeline(max_apart=None)  # a file's sound may come in chunks
    file_timeline.video(10.0, wall=100.0)
    assert file_timeline.at(13.0) == 103.0


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (500, 30.0)]:
        delays = [backoff_delay(failures, 1.0, 30.0, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not lockstep


# -- files ------------------------------------------------------------------------------


def reference(clip: Path, count: int) -> tuple[list[av.Packet], list[av.VideoFrame]]:
    """The clip's first `count` packets and `count` frames, read with plain PyAV."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        packets, pictures = [], []
        for packet in container.demux(stream):
            if packet.size:
                packets.append(packet)
            pictures.extend(packet.decode())
            if len(packets) >= count and len(pictures) >= count:
                return packets[:count], pictures[:count]
    raise AssertionError(f"{clip} is shorter than {count} frames")


@pytest.mark.parametrize(
    ("clip_fixture", "size", "fps", "has_pts"),
    [("person_clip", (768, 432), 10.0, True), ("crowd_clip", (1280, 720), 25.0, False)],
)
def test_file_source_yields_stream_copy_packets_and_luma(
    request: pytest.FixtureRequest,
    clip_fixture: str,
    size: tuple[int, int],
    fps: float,
    has_pts: bool,
) -> None:
    clip = request.getfixturevalue(clip_fixture)
    source = AVSource(str(clip))
    info = source.open()
    try:
        packets, frames = take(source, 60)  # an AVI's packets come a few pictures late
    finally:
        source.close()
    packets, frames = packets[:50], frames[:50]

    assert info is not None and not needs_encoding(info)
    assert (info.codec, info.width, info.height, info.fps) == ("h264", *size, fps)
    assert info.extradata and info.extradata[0] == 1  # avcC, as MP4 wants it
    ref_packets, ref_frames = reference(clip, 50)
    with av.open(str(clip)) as container:
        assert info.time_base == container.streams.video[0].time_base
    # Packets are the file's own, untouched: same bytes, timestamps and keyframe flags ...
    assert [(p.data, p.dts, p.keyframe) for p in packets] == [
        (bytes(p), p.dts, p.is_keyframe) for p in ref_packets
    ]
    # ... but an AVI stores no pts (PyAV makes them up): they are its pictures' display
    # times, learnt from the decoder (test_record checks the order they give).
    if has_pts:
        assert [p.pts for p in packets] == [p.pts for p in ref_packets]
    assert all(p.pts is not None and p.dts is not None and p.pts >= p.dts for p in packets)
    assert packets[0].keyframe
    assert rising(p.dts for p in packets)

    assert len(frames) == 50
    for ours, ref in zip(frames, ref_frames, strict=True):
        assert (ours.width, ours.height) == size
        # luma is the decoder's Y plane as is (yuv420p as an array: Y rows, then U, V) ...
        assert np.array_equal(ours.luma, ref.to_ndarray()[: ref.height])
        # ... which to_ndarray("gray") would stretch from video range (16-235) to 0-255.
        stretched = ref.to_ndarray(format="gray").astype(np.int16)
        expected = np.clip((ours.luma.astype(np.float32) - 16) * 255 / 219, 0, 255)
        assert np.abs(stretched - expected).max() <= 3
    assert np.array_equal(frames[7].bgr(), ref_frames[7].to_ndarray(format="bgr24"))
    times = np.array([f.time for f in frames])
    assert np.all(np.diff(times) >= 0)
    assert times[-1] - times[0] == pytest.approx(49 / fps, abs=3 / fps)


def test_bgr_of_the_same_pictures_from_many_threads_at_once(person_clip: Path) -> None:
    # PyAV's own to_ndarray shares one swscale context per picture between threads:
    # this crashed the process (SIGSEGV) every time before bgr() was made thread-safe.
    source = AVSource(str(person_clip))
    source.open()
    try:
        _, frames = take(source, 20)
    finally:
        source.close()
    ref_frames = reference(person_clip, 20)[1]
    expected = [ref.to_ndarray(format="bgr24") for ref in ref_frames]
    start = threading.Barrier(4)
    wrong: list[int] = []

    def convert() -> None:
        start.wait()
        for _ in range(5):
            wrong.extend(
                i for i, f in enumerate(frames) if not np.array_equal(f.bgr(), expected[i])
            )

    threads = [threading.Thread(target=convert) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_realtime_file_is_paced_at_its_frame_rate(person_clip: Path) -> None:
    source = AVSource(str(person_clip), realtime=True, keep_packets=False)
    assert source.open() is None
    started = time.monotonic()
    try:
        _, frames = take(source, 11)
    finally:
        source.close()
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed <= 2.5  # 10 intervals of 0.1 s
    assert abs(frames[-1].time - time.time()) < 0.5  # and stamped as it plays


def test_looping_file_keeps_timestamps_running(crowd_clip: Path) -> None:
    source = AVSource(str(crowd_clip), loop=True)
    assert not source.finite
    source.open()
    try:
        packets, frames = take(source, 400)  # the clip has 341
    finally:
        source.close()
    assert len(frames) == 400
    assert rising(p.dts for p in packets)
    # The 342nd packet is the first one again: a keyframe, one frame after the last.
    assert packets[341].keyframe and packets[341].dts == packets[340].dts + 2
    times = np.array([f.time for f in frames])
    assert np.all(np.diff(times) >= 0)
    assert times[-1] - times[0] == pytest.approx(399 / 25, abs=0.5)


def test_file_that_ends_finishes_the_capture_loop(crowd_clip: Path) -> None:
    infos: list[StreamInfo | None] = []
    items: list[Packet | Frame] = []
    loop = CaptureLoop(
        "hall", lambda: AVSource(str(crowd_clip), decode=False), infos.append, items.append
    )
    loop.start()
    wait_until(lambda: not loop.running, 20, "the file to end")
    assert loop.status.finished and not loop.status.connected
    assert loop.status.reconnects == 0 and loop.status.last_error is None
    assert len(infos) == 1 and infos[0] is not None
    assert len(items) == 341 and all(isinstance(i, Packet) for i in items)


# -- errors ---------------------------------------------------------------------------


def test_missing_file_and_bad_urls_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="No such file or directory"):
        AVSource(str(tmp_path / "nowhere.mp4")).open()
    with pytest.raises(SourceError, match="unsupported camera URL") as bad:
        open_source(f"ftp://admin:{SECRET}@cam/feed")
    assert SECRET not in str(bad.value) and "admin:***@" in str(bad.value)
    refused = f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/cam"
    with pytest.raises(SourceError, match="refused") as failed:
        AVSource(refused, timeout=2).open()
    assert SECRET not in str(failed.value)
    assert failed.value.__suppress_context__  # FFmpeg's error, URL and all, stays out


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_times_out_instead_of_hanging(scheme: str) -> None:
    held: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
        source = AVSource(f"{scheme}://admin:{SECRET}@127.0.0.1:{port}/cam", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"no data within 0.5 s") as stalled:
            source.open()
        assert time.monotonic() - started < 3.0
        assert SECRET not in str(stalled.value)
    for conn in held:
        conn.close()


def test_v4l2_missing_device_raises() -> None:
    source = open_source("v4l2:///dev/video-camhub-none", v4l2_size=(640, 480, 15))
    assert isinstance(source, V4L2Source)
    with pytest.raises(SourceError, match="no such device"):
        source.open()
    with pytest.raises(SourceError, match="cannot open"):
        V4L2Source("/dev/null", 640, 480, 15).open()  # exists, but is no camera


def test_open_source_picks_by_scheme(person_clip: Path) -> None:
    assert isinstance(open_source("rtsp://cam/s0"), AVSource)
    assert isinstance(open_source(str(person_clip)), AVSource)
    assert open_source(person_clip.as_uri(), loop=True).finite is False
    assert open_source(str(person_clip)).finite is True
    assert isinstance(open_source("synthetic:porch"), SyntheticPorch)
    assert isinstance(open_source("v4l2:///dev/video0"), V4L2Source)
    with pytest.raises(SourceError, match="synthetic:porch"):
        open_source("synthetic:garden")


# -- synthetic porch ---------------------------------------------------------------------


def porch_frames(count: int, seed: int = 1) -> tuple[SyntheticPorch, list[Frame]]:
    porch = SyntheticPorch(realtime=False, visit_every=6.0, visit_length=3.0, seed=seed)
    assert porch.open() is None and needs_encoding(None)
    try:
        return porch, take(porch, count)[1]
    finally:
        porch.close()


def test_synthetic_porch_is_deterministic_with_visits_where_the_figure_is() -> None:
    porch, frames = porch_frames(120)
    _, again = porch_frames(120)
    _, other = porch_frames(5, seed=2)
    assert all(np.array_equal(a.luma, b.luma) for a, b in zip(frames, again, strict=True))
    assert not np.array_equal(frames[0].luma, other[0].luma)
    times = np.array([f.time for f in frames])
    assert np.allclose(np.diff(times), 0.1)

    visits = porch.visits(12.0)
    assert len(visits) == 2 and all(end - start == pytest.approx(3.0) for start, end in visits)
    (start, end), _ = visits
    empty = [i for i in range(120) if not any(s - 0.2 <= i / 10 <= e + 0.2 for s, e in visits)]
    base = frames[empty[0]].luma.astype(np.int16)
    # Without a visitor only noise and the slow light drift change the picture.
    assert all(np.abs(frames[i].luma - base).mean() < 4 for i in empty)
    middle = round((start + end) / 2 * 10)
    box = porch.figure_box(middle / 10)
    assert box is not None
    x0, y0, x1, y1 = box
    changed = np.abs(frames[middle].luma - base) > 40
    inside = changed[y0:y1, x0:x1].sum()
    assert inside > 0.1 * (x1 - x0) * (y1 - y0)  # the figure is there ...
    assert inside > 0.97 * changed.sum()  # ... and nowhere else
    assert frames[middle].bgr().shape == (360, 640, 3)


def test_synthetic_porch_realtime_paces_at_fps() -> None:
    porch = SyntheticPorch(width=160, height=90, fps=20.0)
    porch.open()
    started = time.monotonic()
    try:
        take(porch, 11)
    finally:
        porch.close()
    assert 0.45 <= time.monotonic() - started <= 1.5


# -- encoding -----------------------------------------------------------------------------


def decode_h264(info: StreamInfo, packets: list[Packet]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = info.extradata
    pictures = []
    for p in packets:
        packet = av.Packet(p.data)
        packet.pts, packet.dts = p.pts, p.dts
        pictures.extend(decoder.decode(packet))
    return pictures + list(decoder.decode(None))


def test_encoding_source_makes_decodable_h264_with_regular_keyframes() -> None:
    porch = SyntheticPorch(realtime=False, visit_every=6, visit_length=3)
    source = EncodingSource(porch, fps=10, gop_seconds=1.0)
    info = source.open()
    try:
        packets, frames = take(source, 31)  # read() yields a frame, then its packets
    finally:
        source.close()
    frames = frames[:30]
    assert (info.codec, info.width, info.height) == ("h264", 640, 360)
    assert info.time_base == Fraction(1, 90000) and info.extradata
    assert not needs_encoding(info)
    assert len(packets) == 30  # zero latency: each frame's packet comes right after it
    assert [i for i, p in enumerate(packets) if p.keyframe] == [0, 10, 20]
    assert [p.time for p in packets] == pytest.approx([f.time for f in frames])
    assert rising(p.pts for p in packets)
    decoded = decode_h264(info, packets)
    assert len(decoded) == 30 and (decoded[0].width, decoded[0].height) == (640, 360)
    # Lossy, but it is the same picture (frame 25 has the visitor in it).
    y = decoded[25].to_ndarray(format="gray", src_color_range="JPEG", dst_color_range="JPEG")
    assert np.abs(y.astype(np.int16) - frames[25].luma).mean() < 8


def test_encoding_source_passes_encoded_streams_through(person_clip: Path) -> None:
    source = EncodingSource(AVSource(str(person_clip)), fps=10)
    info = source.open()
    try:
        packets, frames = take(source, 10)
    finally:
        source.close()
    assert info.time_base == Fraction(1, 200000)  # the file's own stream, not re-encoded
    ref_packets, _ = reference(person_clip, len(packets))
    assert [p.data for p in packets] == [bytes(p) for p in ref_packets]
    assert len(frames) == 10


# -- HTTP MJPEG -------------------------------------------------------------------------------


def test_mjpeg_over_http_is_decoded_and_encoded_once(mjpeg_camera: str) -> None:
    raw = AVSource(mjpeg_camera, timeout=3)
    source = EncodingSource(raw, fps=10, gop_seconds=1.0)
    info = source.open()
    try:
        packets, frames = take(source, 12)
    finally:
        source.close()
    assert info.codec == "h264" and (info.width, info.height) == (768, 432)
    assert len(frames) == 12 and frames[0].luma.shape == (432, 768)
    assert len(decode_h264(info, packets)) == len(packets) >= 11
    # MJPEG over HTTP carries no real timestamps: frames are timed as they arrive.
    gaps = np.diff([f.time for f in frames[2:]])
    assert 0.05 < float(np.median(gaps)) < 0.2
    assert abs(frames[-1].time - time.time()) < 1.0


def test_mjpeg_source_yields_frames_only_even_when_asked_for_packets(mjpeg_camera: str) -> None:
    source = AVSource(mjpeg_camera, timeout=3, decode=False)
    assert source.open() is None  # MJPEG is not stream-copied ...
    try:
        packets, frames = take(source, 3)
    finally:
        source.close()
    assert packets == [] and len(frames) == 3  # ... so pictures come, for encoding


# -- a real RTSP camera ----------------------------------------------------------------------------


@pytest.mark.slow
def test_rtsp_camera_streams_then_stalls(rtsp_camera: RtspCamera) -> None:
    source = AVSource(rtsp_camera.url, timeout=1.0)
    info = source.open()
    packets: list[Packet] = []
    frames: list[Frame] = []
    frozen = wall = 0.0
    with pytest.raises(SourceError, match="no data within 1 s"):
        for item in source.read():
            if isinstance(item, Frame):
                frames.append(item)
            else:
                packets.append(item)
            if len(frames) == 12 and not frozen:
                rtsp_camera.freeze()  # the camera hangs with the connection open
                frozen, wall = time.monotonic(), time.time()
    assert frozen and time.monotonic() - frozen < 5.0  # the read timed out, no hang
    source.close()

    assert info is not None
    assert (info.codec, info.width, info.height) == ("h264", 768, 432)
    assert info.time_base == Fraction(1, 90000) and info.extradata
    assert all((f.width, f.height) == (768, 432) for f in frames)
    assert packets[0].keyframe and all(p.pts is not None for p in packets)
    assert rising(p.dts for p in packets)
    assert abs(frames[11].time - wall) < 3.0  # stamped with wall-clock time


@pytest.mark.slow
def test_capture_loop_reconnects_after_the_camera_drops(rtsp_camera: RtspCamera) -> None:
    made: list[float] = []
    infos: list[StreamInfo | None] = []
    frames: list[Frame] = []

    def make() -> Source:
        made.append(time.monotonic())
        return AVSource(rtsp_camera.url, timeout=2)

    def on_item(item: Packet | Frame) -> None:
        if isinstance(item, Frame):
            frames.append(item)

    loop = CaptureLoop("door", make, infos.append, on_item, backoff_initial=0.2, backoff_max=0.8)
    loop.start()
    try:
        wait_until(lambda: len(frames) >= 5, 15, "first frames")
        assert loop.status.connected and loop.status.reconnects == 0
        rtsp_camera.kill()
        dropped = time.monotonic()
        wait_until(lambda: loop.status.reconnects >= 5, 15, "reconnect attempts")
        assert not loop.status.connected and "refused" in (loop.status.last_error or "")
        rtsp_camera.start()  # back on the same port
        seen = len(frames)
        wait_until(lambda: len(frames) >= seen + 5, 15, "frames after the camera came back")
        assert loop.status.connected
    finally:
        loop.stop()
    assert not loop.running
    assert len(infos) >= 2 and all(i is not None and i.width == 768 for i in infos)
    gaps = np.diff([t for t in made if t > dropped])
    assert len(gaps) >= 3
    assert gaps.min() >= 0.09 and gaps.max() <= 0.8 + 0.3  # never hammers, never exceeds the cap
    assert gaps[1:].max() > gaps[0]  # and backs off


def test_handler_errors_reconnect_without_leaking_secrets(caplog: pytest.LogCaptureFixture) -> None:
    made: list[float] = []
    raised: list[float] = []

    def make() -> Source:
        made.append(time.monotonic())
        return SyntheticPorch(width=96, height=64, realtime=False)

    def on_item(item: Packet | Frame) -> None:
        raised.append(time.monotonic())
        raise ValueError(f"recorder choked on rtsp://admin:{SECRET}@cam/s0")

    def delays(healthy_after: float) -> np.ndarray:
        made.clear()
        raised.clear()
        loop = CaptureLoop(
            "porch",
            make,
            lambda _: None,
            on_item,
            backoff_initial=0.1,
            backoff_max=0.4,
            healthy_after=healthy_after,
        )
        loop.start()
        wait_until(lambda: len(made) >= 5, 10, "reconnects")
        loop.stop()
        assert not loop.running and loop.status.reconnects >= 4
        assert "ValueError" in (loop.status.last_error or "")
        assert SECRET not in (loop.status.last_error or "")
        return np.array(made[1:5]) - np.array(raised[:4])

    with caplog.at_level(logging.INFO, logger="hub.capture"):
        failing = delays(healthy_after=60.0)  # never healthy: waits double up to the cap
        flowing = delays(healthy_after=0.0)  # healthy every time: back to the first step
    assert failing[0] <= 0.19 and failing[3] >= 0.2
    assert flowing.max() <= 0.19
    assert "admin:***@cam" in caplog.text and "Traceback" in caplog.text
    assert SECRET not in caplog.text
