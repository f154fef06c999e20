"""A camera's sound made recordable: AAC is kept as it is, anything else becomes AAC once.

MP4 in a browser plays AAC; doorbells mostly send G.711 (PCMA/PCMU at 8 kHz), which it
does not. So G.711 and any other codec is decoded and encoded to AAC-LC with FFmpeg's
own encoder, at the camera's sample rate and channel count: at 8 kHz mono that costs
about 0.2 % of a core (bench/bench_audio.py). Nothing here may fail the video: a packet
that does not decode or encode is dropped, and a track that cannot be set up is None.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.stream import AudioStream

from hub.media import AudioInfo

log = logging.getLogger(__name__)

#: Sound stream-copied into MP4 as it is; everything else is transcoded to AAC.
COPYABLE_AUDIO = frozenset({"aac"})
# AAC-LC's sample rates: the encoder takes no other.
_AAC_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
)
_MAX_CHANNELS = 2  # a doorbell is mono; more channels are mixed down to stereo


@dataclass(frozen=True, slots=True)
class AudioOut:
    """One AAC packet, timed in `AudioInfo.time_base` on the input's own timeline."""

    data: bytes
    pts: int
    duration: int


class AudioTrack:
    """Turns one input audio stream's packets into AAC packets (see the module doc)."""

    def __init__(self, info: AudioInfo, time_base: Fraction) -> None:
        self.info = info
        self._in_base = time_base  # the input stream's
        self._decoder: AudioCodecContext | None = None
        self._encoder: AudioCodecContext | None = None

    @classmethod
    def open(cls, stream: AudioStream, name: str) -> AudioTrack | None:
        """The track for `stream` of the source `name` (redacted), or None (logged) when
        its sound cannot be recorded."""
        ctx = stream.codec_context
        time_base = stream.time_base or Fraction(1, ctx.sample_rate or 8000)
        if ctx.name in COPYABLE_AUDIO and ctx.extradata and ctx.sample_rate:
            info = AudioInfo(
                codec=ctx.name,
                sample_rate=ctx.sample_rate,
                channels=ctx.channels or 1,
                layout=ctx.layout.name,
                time_base=time_base,
                extradata=bytes(ctx.extradata),
            )
            return cls(info, time_base)
        try:
            track = cls._transcoding(stream, time_base)
        except (av.FFmpegError, ValueError) as err:
            log.warning("%s: cannot record %s sound (%s); video only", name, ctx.name, err)
            return None
        log.info("%s: recording %s sound as AAC at %d Hz", name, ctx.name, track.info.sample_rate)
        return track

    @classmethod
    def _transcoding(cls, stream: AudioStream, time_base: Fraction) -> AudioTrack:
        source = stream.codec_context
        decoder = av.CodecContext.create(source.name, "r")
        assert isinstance(decoder, AudioCodecContext)
        if source.extradata:
            decoder.extradata = source.extradata
        if source.sample_rate:
            decoder.sample_rate = source.sample_rate
            decoder.layout = source.layout
        decoder.open()
        rate = source.sample_rate if source.sample_rate in _AAC_RATES else 48000
        channels = min(max(source.channels, 1), _MAX_CHANNELS)
        encoder = av.CodecContext.create("aac", "w")
        assert isinstance(encoder, AudioCodecContext)
        encoder.sample_rate = rate
        layout = "mono" if channels == 1 else "stereo"
        encoder.layout = layout
        encoder.format = "fltp"
        encoder.bit_rate = channels * min(64_000, 4 * rate)  # 32 kbit/s for 8 kHz mono
        encoder.time_base = Fraction(1, rate)
        encoder.open()
        info = AudioInfo(
            codec="aac",
            sample_rate=rate,
            channels=channels,
            layout=layout,
            time_base=Fraction(1, rate),
            extradata=bytes(encoder.extradata or b""),
        )
        track = cls(info, time_base)
        track._decoder, track._encoder = decoder, encoder
        return track

    @property
    def transcodes(self) -> bool:
        return self._encoder is not None

    def convert(self, data: bytes, pts: int) -> Iterator[AudioOut]:
        """The AAC packets for one input packet whose (continuous) pts is `pts`, in the
        input's time base. A transcoded track yields them a frame or two later."""
        if self._decoder is None or self._encoder is None:
            yield AudioOut(data, pts, 0)
            return
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = self._in_base
        try:
            start: Fraction | None = None
            for frame in self._decoder.decode(packet):
                rate = frame.sample_rate
                start = pts * self._in_base if start is None else start
                frame.pts = round(start * rate)  # the encoder resamples, timing and all
                frame.time_base = Fraction(1, rate)
                start += Fraction(frame.samples, rate)
                for out in self._encoder.encode(frame):
                    if out.pts is not None:
                        yield AudioOut(bytes(out), out.pts, out.duration or 0)
        except (av.FFmpegError, ValueError):
            return  # a damaged packet costs its sound, never the video

    def flush(self) -> Iterator[AudioOut]:
        """The AAC the encoder still holds (about 0.3 s): the input ended. The track
        takes no more input after this."""
        if self._encoder is None:
            return
        encoder, self._encoder, self._decoder = self._encoder, None, None
        try:
            for out in encoder.encode(None):
                if out.pts is not None:
                    yield AudioOut(bytes(out), out.pts, out.duration or 0)
        except (av.FFmpegError, ValueError):
            return
