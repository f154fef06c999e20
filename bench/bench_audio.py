"""What a doorbell's sound costs: G.711 A-law (8 kHz mono) transcoded to AAC per camera.

Real sound: the crowd clip's AAC track, decoded and re-encoded to A-law in 20 ms packets
as a doorbell sends it over RTP, then timed through the hub's own AudioTrack (decode +
AAC encode, as capture does it). Prints the CPU share of one core and the bytes per hour
it adds to recordings, beside the AAC a camera might send itself.

    python bench/bench_audio.py [--short]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

from hub.capture.audio import AudioTrack

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowd-720p-h264.avi"
RATE = 8000
PACKET = 160  # samples: 20 ms, RTP's usual G.711 packet


def alaw_stream(seconds: float) -> bytes:
    """`seconds` of the clip's sound as A-law in a WAV file, in memory."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE, frame_size=PACKET)
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="wav") as out:
        stream = out.add_stream("pcm_alaw", rate=RATE, layout="mono")
        samples = 0
        while samples < seconds * RATE:
            with av.open(str(DATA)) as clip:
                for frame in clip.decode(audio=0):
                    for piece in resampler.resample(frame):
                        piece.pts = samples
                        piece.time_base = Fraction(1, RATE)
                        out.mux(stream.encode(piece))
                        samples += piece.samples
                    if samples >= seconds * RATE:
                        break
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="60 s of sound, not 600 s")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"missing real footage: {DATA}", file=sys.stderr)
        return 1
    seconds = 60.0 if args.short else 600.0
    with av.open(io.BytesIO(alaw_stream(seconds))) as source:
        stream = source.streams.audio[0]
        # A-law is a byte a sample: cut what the WAV demuxer reads into RTP-sized packets.
        packets = [
            (bytes(p)[at : at + PACKET], p.pts + at)
            for p in source.demux(stream)
            if p.size and p.pts is not None
            for at in range(0, p.size, PACKET)
        ]
        track = AudioTrack.open(stream, "bench")
    assert track is not None and track.transcodes
    out_bytes = 0
    cpu = time.process_time()
    for data, pts in packets:
        for out in track.convert(data, pts):
            out_bytes += len(out.data)
    cpu = time.process_time() - cpu
    print(f"G.711 A-law 8 kHz mono -> AAC {track.info.sample_rate} Hz: {len(packets)} packets, "
          f"{seconds:.0f} s of sound")  # fmt: skip
    print(f"  transcode CPU: {cpu * 1000 / seconds:.2f} ms per second of sound "
          f"= {cpu / seconds * 100:.2f} % of one core per camera")  # fmt: skip
    print(f"  AAC out: {out_bytes / seconds * 8 / 1000:.1f} kbit/s "
          f"= {out_bytes / seconds * 3600 / 1e6:.1f} MB per hour recorded for this sound; "
          f"at most {track.info.sample_rate * 4 / 1000:.0f} kbit/s "
          f"= {track.info.sample_rate * 4 / 8 * 3600 / 1e6:.1f} MB per hour")  # fmt: skip
    print("  (a camera's own AAC at 44.1 kHz stereo, as the crowd clip has: 127 kbit/s "
          "= 57 MB per hour, stream-copied at no CPU)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
