"""One camera's pipeline: capture → motion → events and recording.

Runs on the capture threads (one per stream); everything per frame here is hot. The
disk work (muxed segments sealed and written, fsyncs, index rows, event snapshots)
is handed, in order, to the camera's DiskWriter thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from hub.capture import open_source
from hub.capture.base import Source
from hub.capture.encode import EncodingSource
from hub.capture.meter import StreamMeter
from hub.capture.supervisor import CaptureLoop, CaptureStatus
from hub.config import CameraSettings
from hub.media import Frame, Packet, StreamInfo
from hub.motion import (
    DetectGate,
    EventEnded,
    EventStarted,
    EventTracker,
    MotionDetector,
    MotionEvent,
    MotionResult,
    MotionSettings,
    TrackerSettings,
)
from hub.record import Recorder, RecordMode, RecordSettings, SegmentSink
from hub.web.hdlive import StreamFeed
from hub.web.live import LiveFeed
from hub.writer import DiskWriter

log = logging.getLogger(__name__)

SNAPSHOT_JPEG_QUALITY = 85
UPDATE_INTERVAL = 2.0  # seconds of frame time between reports of a growing event


class EventSink:
    """Where a camera reports its motion events (the index and the sealed snapshots).

    `motion_changed` is called on the capture thread, at the tracker's decision only,
    and must not block; the others are called on the camera's writer thread, in order.
    """

    def motion_changed(self, camera_id: str, moving: bool, time: float) -> None:
        """The camera started or stopped seeing motion (the frame time of the change)."""

    def event_started(self, camera_id: str, event: MotionEvent) -> int:
        raise NotImplementedError

    def event_updated(self, camera_id: str, event_id: int, event: MotionEvent) -> None:
        """The open event reached a higher peak (its box so far with it), at most once
        every UPDATE_INTERVAL."""

    def event_ended(
        self, camera_id: str, event_id: int, event: MotionEvent, jpeg: bytes | None
    ) -> None:
        raise NotImplementedError


@dataclass(slots=True)
class _Peak:
    """The sharpest look at the current event, kept in memory for its snapshot."""

    score: float = -1.0
    bgr: np.ndarray | None = None


class Camera:
    """Wires one camera's streams to its detector, tracker and recorder."""

    def __init__(
        self,
        settings: CameraSettings,
        segment_seconds: float,
        segments: SegmentSink,
        events: EventSink,
    ) -> None:
        self.settings = settings
        self.id = settings.id
        self._events = events
        self._mode = RecordMode(settings.record)
        self._recorder = Recorder(
            settings.id,
            RecordSettings(
                mode=self._mode,
                pre_roll=settings.pre_roll,
                post_roll=settings.post_roll,
                segment_seconds=segment_seconds,
            ),
            segments,
        )
        motion = settings.motion
        self._detector = MotionDetector(
            MotionSettings(
                detect_width=motion.detect_width,
                threshold=motion.threshold,
                min_area=motion.min_area,
                masks=motion.masks,
                light_change=motion.light_change,
            )
        )
        self._tracker = EventTracker(
            TrackerSettings(start_frames=motion.start_frames, quiet_seconds=motion.quiet_seconds)
        )
        self._gate = DetectGate(motion.detect_fps)
        # Live view shows the decoded stream: the detect substream when there is one.
        self.live = LiveFeed(settings.id)
        # HD live view: the camera's own packets, main stream and detect substream.
        self.streams = {"main": StreamFeed(settings.id, "main")}
        if settings.detect_url:
            self.streams["sub"] = StreamFeed(settings.id, "sub")
        self._event_id: int | None = None  # used on the writer thread only
        self._peak = _Peak()
        self._reported = (0.0, 0.0)  # (peak score, frame time) last told for the open event
        self._last_frame_time = 0.0
        # The main stream's frame rate, bit rate and size, for the camera's health.
        self.meter = StreamMeter()
        # The recorder and the event sink run on the writer thread, which takes the
        # record stream's packets and the detect stream's decisions in arrival order.
        self._writer = DiskWriter(settings.id)
        self._skipping = False  # packets dropped (the disk fell behind) until a keyframe
        # The tracker and the peak are shared by the detect thread and stop().
        self._lock = threading.Lock()
        self._loops = self._make_loops()

    # -- wiring --------------------------------------------------------------------------

    def _make_loops(self) -> list[CaptureLoop]:
        s = self.settings
        record = self._mode is not RecordMode.OFF
        if s.detect_url:
            loops = [
                CaptureLoop(
                    f"{s.id}/detect",
                    self._detect_source,
                    self.streams["sub"].start_stream,
                    self._on_detect_item,
                )
            ]
            if record:
                loops.append(
                    CaptureLoop(
                        f"{s.id}/record", self._record_source, self._on_stream, self._on_item
                    )
                )
            return loops
        return [CaptureLoop(s.id, self._main_source, self._on_stream, self._on_item)]

    def _open(self, url: str, *, decode: bool, record: bool) -> Source:
        """Packets are always kept (they are the HD/SD live view); sound only to record."""
        s = self.settings
        return open_source(
            url,
            decode=decode,
            keep_packets=True,
            rtsp_transport=s.rtsp_transport,
            realtime=s.realtime,
            audio=s.audio and record,
            v4l2_size=(s.v4l2.width, s.v4l2.height, s.v4l2.fps),
        )

    def _main_source(self) -> Source:
        record = self._mode is not RecordMode.OFF
        source = self._open(self.settings.url, decode=True, record=record)
        return self._recordable(source) if record else source

    def _detect_source(self) -> Source:
        return self._open(self.settings.detect_url, decode=True, record=False)

    def _record_source(self) -> Source:
        return self._recordable(self._open(self.settings.url, decode=False, record=True))

    def _recordable(self, source: Source) -> Source:
        """Any source, ready to record: only once open does it tell whether its stream
        can be stream-copied (MJPEG over HTTP cannot), and an EncodingSource encodes it
        then, or passes it through untouched."""
        # fps sets only the encoder's keyframe interval and bit budget (times come from
        # the pictures): V4L2's configured rate, a fair guess where a camera states none.
        return EncodingSource(source, fps=self.settings.v4l2.fps)

    def start(self) -> None:
        self._writer.start()
        for loop in self._loops:
            loop.start()

    def stop(self) -> None:
        """Stop capturing, close the open event and flush the open segment."""
        for loop in self._loops:
            loop.stop()
        self.live.close()
        for feed in self.streams.values():
            feed.close()
        with self._lock:
            for change in self._tracker.flush(self._last_frame_time):
                self._on_event(change)
        self._writer.put(self._recorder.close)
        self._writer.close()

    @property
    def status(self) -> list[CaptureStatus]:
        return [loop.status for loop in self._loops]

    @property
    def last_frame_time(self) -> float | None:
        """The newest decoded frame's time (Unix seconds); None before the first."""
        return self._last_frame_time or None

    def is_online(self) -> bool:
        """Every stream of the camera is connected."""
        return all(loop.status.connected for loop in self._loops)

    # -- hot path ------------------------------------------------------------------------

    def _on_stream(self, info: StreamInfo | None) -> None:
        self.meter.restart(None if info is None else (info.width, info.height))
        self.streams["main"].start_stream(info)
        self._writer.put(partial(self._recorder.start_stream, info))

    def _on_detect_item(self, item: Packet | Frame) -> None:
        """The detect substream: packets go to SD live view only, never to the recorder.
        Its pictures are measured only when no record stream is read (one thread each
        meter)."""
        if isinstance(item, Packet):
            self.streams["sub"].offer(item)
            return
        if self._mode is RecordMode.OFF:
            self.meter.picture(item.width, item.height)
        self._on_frame(item)

    def _on_item(self, item: Packet | Frame) -> None:
        if isinstance(item, Packet):
            # Live view first (it muxes only while watched), then the disk; sound too.
            self.streams["main"].offer(item)
            self.meter.packet(len(item.data), video=not item.audio)
            if self._mode is not RecordMode.OFF:
                self._record(item)
            return
        self.meter.picture(item.width, item.height)
        self._on_frame(item)

    def _on_frame(self, frame: Frame) -> None:
        """A decoded picture (the detect stream's, when there is one): motion, live view."""
        self._last_frame_time = frame.time
        if self._gate.due(frame.time):
            self._detect(frame)
        # From here the live feed may convert the frame on its own thread, while this one
        # may still be using it (an EncodingSource encodes it next): Frame.bgr() is
        # thread-safe for every source.
        self.live.offer(frame)

    def _record(self, packet: Packet) -> None:
        if self._skipping and not packet.starts_gop:
            return  # a GOP without its keyframe is of no use (nor is its sound)
        taken = self._writer.put(partial(self._recorder.push, packet), len(packet.data))
        if not taken and not self._skipping:
            log.warning(
                "%s: the disk is %d MiB behind; dropping video until it catches up",
                self.id,
                self._writer.pending_bytes >> 20,
            )
        elif taken and self._skipping:
            log.info("%s: the disk caught up; recording again", self.id)
        self._skipping = not taken

    def _detect(self, frame: Frame) -> None:
        result = self._detector.process(frame.luma, frame.time)
        with self._lock:
            for change in self._tracker.update(result):
                self._on_event(change)
            if self._tracker.active is not None:
                self._follow_event(self._tracker.active, result, frame)

    def _follow_event(self, event: MotionEvent, result: MotionResult, frame: Frame) -> None:
        s = self.settings
        if result.moving:
            self._writer.put(
                partial(self._recorder.want, event.start - s.pre_roll, result.time + s.post_roll)
            )
            if result.score > self._peak.score:
                self._peak = _Peak(result.score, frame.bgr())
            told_score, told_at = self._reported
            if event.peak_score > told_score and result.time >= told_at + UPDATE_INTERVAL:
                self._reported = (event.peak_score, result.time)
                self._writer.put(partial(self._event_updated, event))

    def _on_event(self, change: EventStarted | EventEnded) -> None:
        event = change.event
        if isinstance(change, EventStarted):
            self._events.motion_changed(self.id, True, event.start)
            self._peak = _Peak()
            self._reported = (event.peak_score, event.start)
            self._writer.put(partial(self._event_started, event))
            return
        self._events.motion_changed(self.id, False, event.end or self._last_frame_time)
        self._writer.put(partial(self._event_ended, change, self._peak.bgr))
        self._peak = _Peak()

    # -- on the writer thread --------------------------------------------------------------

    def _event_started(self, event: MotionEvent) -> None:
        self._event_id = self._events.event_started(self.id, event)
        log.info("%s: motion started", self.id)

    def _event_updated(self, event: MotionEvent) -> None:
        if self._event_id is not None:
            self._events.event_updated(self.id, self._event_id, event)

    def _event_ended(self, change: EventEnded, peak: np.ndarray | None) -> None:
        if self._event_id is None:
            return
        jpeg = _encode_jpeg(peak) if peak is not None else None
        self._events.event_ended(self.id, self._event_id, change.event, jpeg)
        log.info(
            "%s: motion ended after %.1f s (peak %.1f%% of the frame)",
            self.id,
            (change.event.end or change.event.start) - change.event.start,
            change.event.peak_score * 100,
        )
        self._event_id = None


def _encode_jpeg(bgr: np.ndarray) -> bytes | None:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_JPEG_QUALITY])
    return buf.tobytes() if ok else None
