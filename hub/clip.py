"""Clips: stream-copy a camera's consecutive segments into one MP4 a browser can seek in.

Each segment is a fragmented MP4 that starts on a keyframe with its timestamps rebased
to 0 (see `hub.record`). A browser's <video> plays fragmented MP4 poorly over plain
HTTP (no index, no duration until the end), so a clip is re-muxed into a regular MP4
with the moov atom in front ("faststart"): the player learns the duration and every
keyframe's byte offset from the first response and seeks with HTTP Range requests.

Everything happens in memory. Plaintext footage never touches the disk, so each part is
read whole into memory and the clip is muxed into an anonymous memory mapping of its
own (`_Mapped`); FFmpeg's faststart pass, which normally reopens the output *file* to
move the media data, is handed a second cursor over that same mapping instead
(`_ReadBack`). A part's sound goes where its video goes: the same shift in seconds,
each track in time order, the two interleaved by time. The mapping, not the C heap,
holds the clip, so that its memory goes
back to the system the moment the last view of it is dropped, whatever the state of
malloc's heap, and nothing else (a PyAV container waiting in a reference cycle for
the garbage collector) keeps it alive.

Invariants:
1. Packets are copied byte for byte; nothing is decoded or re-encoded.
2. Decode timestamps rise strictly across the whole clip; parts never overlap.
3. The clip has one set of codec parameters, those of the first part, sound included:
   it ends before the first part whose parameters differ (a camera that reconnected
   with a new resolution, or without its sound). It never starts later than asked,
   and `Clip.stopped_before` tells the caller where the rest begins.
4. At most `max_bytes` of plaintext is ever read; past that, `ClipTooLarge`.
5. The clip's memory is one mapping, reserved at `max_bytes` plus `_MOOV_ROOM` but
   only touched as far as it is written; after a build, malloc gives the heap's free
   pages back (`malloc_trim`), so what the parts and packets used is not kept either.

Placement: the first picture is shown at 0 and each later part at its wall-clock
`start_time` relative to the first part's, so clip time t is wall time first + t. A
short hole (a lost segment, a camera that hiccupped) stays in the timeline as the last
frame held that long, and positions keep matching the wall clock. A hole longer than
`max_gap` is closed up: between two motion events it would be minutes of one frozen
frame, which only makes the seek bar useless. Either way the file has the layout of
`ffmpeg -c copy -movflags +faststart` output, which Chromium plays and seeks: one avc1
sample description, the usual edit list when there are B-frames, and seams that are a
keyframe following on (a kept hole is one long sample, a closed one a plain cut).
"""

from __future__ import annotations

import ctypes
import io
import logging
import mmap
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import av
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_GAP = 5.0  # seconds; about one lost segment stays visible as a pause

# Not fragmented: moov (with every sample's offset) written last, then moved to the front.
_MOVFLAGS = "+faststart"
_AVIO_FLAG_WRITE = 2  # libavformat's AVIO_FLAG_WRITE
# The output's room beyond the plaintext read: the clip is the parts' packets plus one
# moov, whose per-sample tables take fewer bytes than the parts' moofs they replace.
_MOOV_ROOM = 1024 * 1024
# Everything stream copy needs (codec, size, extradata, time base) is in the segment's moov.
# Left to itself, opening a part decodes a frame to learn the pixel format (15 ms for 720p,
# 20x the cost of the rest of the open): don't probe, and skip every frame if it tries.
_PROBE = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}
_NO_DECODE = [{"skip_frame": "all"}]


class ClipError(Exception):
    """The parts cannot be made into a clip; `part` is the 0-based index of the culprit."""

    def __init__(self, message: str, part: int | None = None) -> None:
        super().__init__(message)
        self.part = part


class ClipTooLarge(ClipError):
    """The parts hold more plaintext than the clip may use: ask for a shorter range."""


@dataclass(frozen=True, slots=True)
class ClipPart:
    """One segment's plaintext fMP4, as the archive or a share link yields it."""

    start_time: float  # wall-clock seconds (Unix time) of the segment's first frame
    chunks: Iterable[bytes]


@dataclass(frozen=True, slots=True)
class Clip:
    """An assembled clip, and what it covers (for the response headers and access log)."""

    data: memoryview  # a regular MP4, moov before mdat; read-only, over its own mapping
    frames: int
    duration: float  # seconds of timeline, closed gaps excluded
    parts: int  # how many leading parts went in
    stopped_before: float | None  # start_time of the first part left out, None if none was


@dataclass(frozen=True, slots=True)
class _SoundParams:
    """What must match for sound packets to share one MP4 sample description."""

    codec: str
    sample_rate: int
    layout: str
    extradata: bytes

    def __str__(self) -> str:
        return f"{self.codec} {self.sample_rate} Hz {self.layout}"


@dataclass(frozen=True, slots=True)
class _Params:
    """What must match for packets to share one MP4 sample description."""

    codec: str
    width: int
    height: int
    extradata: bytes
    sound: _SoundParams | None = None

    def __str__(self) -> str:
        video = f"{self.codec} {self.width}x{self.height}, {len(self.extradata)} B of setup"
        return video if self.sound is None else f"{video}, sound {self.sound}"


@dataclass(slots=True)
class _Demuxed:
    """One part's packets, with timestamps as the segment stores them (`time_base` units),
    and its sound's (`sound_base` units)."""

    params: _Params
    time_base: Fraction
    packets: list[av.Packet]
    sound_base: Fraction = Fraction(1, 1)
    sound: list[av.Packet] = field(default_factory=list)


class _Mapped:
    """The clip being muxed: a seekable, writable file over an anonymous private mapping.

    Reserved at its largest size up front (address space only: a page costs memory once
    written), so the output never grows by realloc and copy; unmapped when the last
    view of it from `detach()` goes, so its memory returns to the system at once.
    """

    __slots__ = ("_map", "_position", "size")

    def __init__(self, capacity: int) -> None:
        self._map: mmap.mmap | None = mmap.mmap(-1, capacity, flags=mmap.MAP_PRIVATE)
        self._position = 0
        self.size = 0  # bytes written so far: the end of the file

    def write(self, data: bytes) -> int:
        memory = self._memory()
        end = self._position + len(data)
        if end > len(memory):
            raise OSError(f"the clip outgrew its {_mib(len(memory))} of memory")
        memory[self._position : end] = data
        self._position = end
        self.size = max(self.size, end)
        return len(data)

    def read_at(self, position: int, size: int) -> bytes:
        end = self.size if size < 0 else min(self.size, position + size)
        return self._memory()[position:end]

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = _seek(self._position, self.size, offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing: the mapping lives as long as a view of it does."""

    def detach(self) -> memoryview:
        """The clip as written, read-only, handed over: the mapping goes when the last
        view of it does. This object lets go of it, since PyAV's containers sit in
        reference cycles that keep their file object alive until a garbage collection."""
        view = memoryview(self._memory())[: self.size].toreadonly()
        self._map = None
        return view

    def _memory(self) -> mmap.mmap:
        if self._map is None:
            raise ValueError("the clip was handed over; its muxer may not touch it")
        return self._map


class _ReadBack:
    """A second, read-only cursor over the output, for FFmpeg's faststart pass.

    With +faststart the MP4 muxer writes moov last, then shifts the media data up to
    make room for it in front, reading the output back as it writes (libavformat's
    `ff_format_shift_data`). It reopens the output by name for that, and the mapping
    has none, so `av.open(io_open=...)` hands it this view of the same memory, which
    leaves the writer's position alone.
    """

    __slots__ = ("_output", "_position")

    def __init__(self, output: _Mapped) -> None:
        self._output = output
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        data = self._output.read_at(self._position, size)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = _seek(self._position, self._output.size, offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _seek(position: int, size: int, offset: int, whence: int) -> int:
    """A file position after seek(offset, whence), as BytesIO computes it."""
    if whence == io.SEEK_SET:
        return offset
    if whence == io.SEEK_CUR:
        return position + offset
    if whence == io.SEEK_END:
        return size + offset
    # as BytesIO does, e.g. for AVSEEK_SIZE: FFmpeg falls back to SEEK_END
    raise ValueError(f"invalid whence ({whence})")


def build_clip(
    parts: Iterable[ClipPart],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_gap: float = DEFAULT_MAX_GAP,
) -> Clip:
    """Stream-copy consecutive segments of one camera into one MP4 with moov in front.

    `parts` is consumed lazily, in order, one part in memory at a time besides the
    clip being built; it is not read past a part whose codec parameters differ from
    the first part's. Raises `ClipTooLarge` as soon as more than `max_bytes` of
    plaintext has been read, `ClipError` (with `.part`) for a part that does not
    demux, and `ValueError` for bad arguments. Whatever `chunks` raises (the vault's
    `CorruptFile`, say) passes through as it is: tampering is not a clip problem.
    CPU-bound and synchronous: an event loop should run it in a worker thread.
    """
    try:
        return _build(parts, max_bytes, max_gap)
    finally:
        release_free_memory()


def _build(parts: Iterable[ClipPart], max_bytes: int, max_gap: float) -> Clip:
    if max_bytes <= 0:
        raise ValueError(f"max_bytes: must be positive, got {max_bytes}")
    if not 0 <= max_gap < float("inf"):
        raise ValueError(f"max_gap: must be 0 or more seconds, got {max_gap}")

    output = _Mapped(max_bytes + _MOOV_ROOM)
    writer = _Writer(output, max_gap)
    budget = _Budget(max_bytes)
    stopped_before: float | None = None
    try:
        for index, part in enumerate(parts):
            demuxed = _demux(index, part, budget)
            if writer.params is not None and demuxed.params != writer.params:
                log.info(
                    "clip ends before part %d: codec parameters change (%s -> %s)",
                    index,
                    writer.params,
                    demuxed.params,
                )
                stopped_before = part.start_time
                break
            writer.add(index, part.start_time, demuxed)
        if writer.params is None:
            raise ClipError("no footage: the clip has no parts")
        writer.close()
    finally:
        writer.abort()  # no-op once closed
    return Clip(
        data=output.detach(),
        frames=writer.frames,
        duration=writer.duration,
        parts=writer.parts,
        stopped_before=stopped_before,
    )


class _Budget:
    """Counts plaintext read across all parts against `max_bytes`."""

    __slots__ = ("max_bytes", "used")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def take(self, index: int, size: int) -> None:
        self.used += size
        if self.used > self.max_bytes:
            raise ClipTooLarge(
                f"clip too large: more than {_mib(self.max_bytes)} of footage by part {index}; "
                "ask for a shorter range",
                part=index,
            )


def _demux(index: int, part: ClipPart, budget: _Budget) -> _Demuxed:
    """Read one part into memory, in one piece, and demux all its video packets.

    A packet FFmpeg flags as corrupt is a short read at the end of the data: a
    crash-recovered segment ends without its last chunk. Its complete packets are
    kept and the rest of it dropped (the sealing already vouches for every byte read).
    """
    chunks: list[bytes] = []
    for chunk in part.chunks:
        budget.take(index, len(chunk))
        chunks.append(chunk)
    buffer = io.BytesIO(b"".join(chunks))  # sized once; BytesIO shares it, no copy
    del chunks
    try:
        return _demux_buffer(index, part, buffer)
    finally:
        buffer.close()  # the container may outlive this call in a cycle; its data need not


def _demux_buffer(index: int, part: ClipPart, buffer: io.BytesIO) -> _Demuxed:
    where = f"part {index} (start {part.start_time:.3f})"
    try:
        container: InputContainer = av.open(
            buffer, "r", format="mp4", options=_PROBE, stream_options=_NO_DECODE
        )
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ClipError(f"{where}: not an MP4 segment: {exc}", part=index) from exc
    with container:
        streams = container.streams.video
        if not streams:
            raise ClipError(f"{where}: no video stream", part=index)
        stream = streams[0]
        ctx = stream.codec_context
        time_base = stream.time_base
        if time_base is None or time_base <= 0:
            raise ClipError(f"{where}: video stream has no time base", part=index)
        audio = _sound_stream(container)
        sound_params = None if audio is None else _sound_params(audio)
        params = _Params(ctx.name, ctx.width, ctx.height, bytes(ctx.extradata or b""), sound_params)
        packets: list[av.Packet] = []
        sound: list[av.Packet] = []
        try:
            for packet in container.demux(stream, *([audio] if audio is not None else [])):
                if packet.is_corrupt:
                    log.info("%s: ends in a truncated packet; %d kept", where, len(packets))
                    break
                if not packet.size:
                    continue  # the end-of-stream marker
                if packet.dts is None:
                    raise ClipError(f"{where}: a packet without timestamps", part=index)
                is_sound = audio is not None and packet.stream_index == audio.index
                (sound if is_sound else packets).append(packet)
        except (av.FFmpegError, OSError) as exc:
            raise ClipError(f"{where}: cannot demux: {exc}", part=index) from exc
    if not packets:
        raise ClipError(f"{where}: no video packets", part=index)
    if not packets[0].is_keyframe:
        raise ClipError(f"{where}: does not start on a keyframe", part=index)
    sound_base = audio.time_base if audio is not None and audio.time_base else Fraction(1, 1)
    return _Demuxed(params, time_base, packets, sound_base, sound)


def _sound_stream(container: InputContainer) -> AudioStream | None:
    """A segment's sound track, if it has one with the rate MP4 needs."""
    streams = container.streams.audio
    if not streams or not streams[0].codec_context.sample_rate or not streams[0].time_base:
        return None
    return streams[0]


def _sound_params(stream: AudioStream) -> _SoundParams:
    ctx = stream.codec_context
    return _SoundParams(ctx.name, ctx.sample_rate, ctx.layout.name, bytes(ctx.extradata or b""))


class _Writer:
    """The output MP4: places each part on one rising timeline and muxes its packets."""

    def __init__(self, output: _Mapped, max_gap: float) -> None:
        self._output = output
        self._max_gap = max_gap
        self._container: OutputContainer | None = None
        self._stream: VideoStream | None = None
        self._sound: AudioStream | None = None
        self._sound_end = 0  # where the next sound packet may start, in its time base
        self._time_base = Fraction(1, 90_000)
        self._first_start = 0.0
        self._anchor: int | None = None  # output pts of the first part's first packet
        self._removed = 0  # ticks of closed-up gaps so far
        self._last_dts: int | None = None  # negative at first with B-frames (edit list)
        self._dts_end = 0  # where the next part's decode timeline may start
        self._pts_end = 0  # where the next part's presentation may start
        self._frame_ticks = 0  # a frame's duration, for a packet that states none
        self.params: _Params | None = None
        self.frames = 0
        self.parts = 0

    @property
    def duration(self) -> float:
        return float(self._pts_end * self._time_base)  # presentation starts at 0

    def add(self, index: int, start_time: float, part: _Demuxed) -> None:
        if self._container is None:
            self._open(part, start_time)
        assert self._stream is not None and self._container is not None
        packets = part.packets
        scale = part.time_base / self._time_base

        def ticks(value: int) -> int:
            return value if scale == 1 else round(value * scale)

        origin = min(packets[0].dts, _pts(packets[0]))
        local = [(ticks(p.dts - origin), ticks(_pts(p) - origin)) for p in packets]
        offset = self._place(start_time, local)
        stream, time_base = self._stream, self._time_base
        timed: list[tuple[float, av.Packet]] = []  # (decode time in seconds, packet)
        seconds = float(time_base)
        for packet, (dts, pts) in zip(packets, local, strict=True):
            duration = ticks(packet.duration or 0)
            if duration > 0:
                self._frame_ticks = duration
            else:
                duration = self._frame_ticks
            dts += offset
            if self._last_dts is not None and dts <= self._last_dts:
                dts = self._last_dts + 1
            pts = max(pts + offset, dts)
            packet.stream = stream
            packet.time_base = time_base
            packet.dts, packet.pts, packet.duration = dts, pts, duration
            timed.append((dts * seconds, packet))
            self._last_dts = dts
            self._dts_end = max(self._dts_end, dts + duration)
            self._pts_end = max(self._pts_end, pts + duration)
        # The sound moves as far as the video: its time (seconds) past the part's origin.
        shift = offset * time_base - origin * part.time_base
        sound = self._place_sound(part, shift)
        if sound:
            timed += sound
            timed.sort(key=lambda item: item[0])  # stable: video first at a tie
        try:
            for _, packet in timed:
                self._container.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise ClipError(f"part {index}: cannot mux: {exc}", part=index) from exc
        self.frames += len(packets)
        self.parts += 1

    def _place_sound(self, part: _Demuxed, shift: Fraction) -> list[tuple[float, av.Packet]]:
        """A part's sound packets at `shift` seconds on, back to back at the least."""
        stream = self._sound
        if stream is None or not part.sound:
            return []
        base = stream.time_base
        assert base is not None
        placed = []
        for packet in part.sound:
            duration = round((packet.duration or 0) * part.sound_base / base)
            tick = max(round((packet.dts * part.sound_base + shift) / base), self._sound_end)
            packet.stream = stream
            packet.time_base = base
            packet.dts = packet.pts = tick
            packet.duration = duration
            placed.append((float(tick * base), packet))
            self._sound_end = tick + max(duration, 1)
        return placed

    def _open(self, first: _Demuxed, start_time: float) -> None:
        """The output takes its stream parameters (extradata included) from the first part."""
        container = av.open(
            self._output,
            "w",
            format="mp4",
            options={"movflags": _MOVFLAGS},
            io_open=self._read_back,
        )
        try:
            # A codec context that is never opened, so nothing is encoded (see hub.record).
            scratch = av.open(io.BytesIO(), "w", format="mp4")
            out = container.add_stream_from_template(scratch.add_stream(first.params.codec))
            ctx = out.codec_context
            ctx.width, ctx.height = first.params.width, first.params.height
            if first.params.extradata:
                ctx.extradata = first.params.extradata
            out.time_base = first.time_base
            sound = first.params.sound
            if sound is not None:
                self._sound = container.add_stream_from_template(scratch.add_stream(sound.codec))
                ctx = self._sound.codec_context
                ctx.sample_rate = sound.sample_rate
                ctx.layout = sound.layout
                ctx.extradata = sound.extradata
                self._sound.time_base = Fraction(1, sound.sample_rate)
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, out
        self._time_base = first.time_base
        self._first_start = start_time
        self.params = first.params

    def _read_back(self, url: str, flags: int, options: dict[str, str]) -> _ReadBack:
        """The muxer may only read its own output back (faststart); it opens nothing else."""
        if flags & _AVIO_FLAG_WRITE:
            raise PermissionError(f"the clip muxer may not open {url!r} for writing")
        return _ReadBack(self._output)

    def _place(self, start_time: float, local: list[tuple[int, int]]) -> int:
        """The offset to add to a part's local (dts, pts) to put it on the clip's timeline.

        The first part's first picture is shown at 0 (with B-frames its first dts is
        negative: the muxer writes the usual edit list). A later part's first packet
        goes `start_time - first start_time` after the first part's, less the gaps
        closed so far; never before the previous part ends (a clock set back), and a
        hole longer than `max_gap` is closed up, moving every later part up with it.
        """
        first_pts = local[0][1]
        min_pts = min(pts for _, pts in local)
        if self._anchor is None:
            self._anchor = first_pts - min_pts
            return -min_pts
        since_first = round((start_time - self._first_start) / self._time_base)
        wall = self._anchor + since_first - self._removed - first_pts
        earliest = max(self._dts_end - local[0][0], self._pts_end - min_pts)
        gap = wall - earliest
        if gap * self._time_base > self._max_gap:
            self._removed += gap
            return earliest
        return max(wall, earliest)

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()  # writes moov and moves it to the front
            except (av.FFmpegError, OSError) as exc:
                raise ClipError(f"cannot finish the clip: {exc}") from exc

    def abort(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # already failing; the first error is the one to report
                log.debug("closing an abandoned clip muxer: %s", exc)


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`).

    A build frees many megabytes of parts and packets in several threads' arenas, and
    glibc keeps freed memory that is not at the top of a heap. Elsewhere (musl) there
    is nothing to call, and nothing to do.
    """
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


_LIBC = ctypes.CDLL(None)


def _pts(packet: av.Packet) -> int:
    """A packet's pts, or its dts where the container gives none."""
    return packet.pts if packet.pts is not None else packet.dts


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB"
