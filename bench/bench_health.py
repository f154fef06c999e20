"""What measuring a camera's health costs its capture thread.

Why: `StreamMeter` (hub/capture/meter.py) runs in the hot loop, once per packet and
once per decoded picture, for every camera. Measured: nanoseconds a call, and what
that is as a share of one core for a 25 fps camera with sound (25 video packets,
~47 AAC packets and 25 decoded pictures a second). Printed, never asserted.

    python bench/bench_health.py [--short]
"""

from __future__ import annotations

import argparse
import time

from hub.capture.meter import StreamMeter

VIDEO_PER_S, SOUND_PER_S, PICTURES_PER_S = 25, 47, 25


def per_call(calls: int, call: object) -> float:
    """Seconds per call of `call()` (the best of three runs)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            call()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="fewer calls (CI)")
    args = parser.parse_args()
    calls = 100_000 if args.short else 1_000_000
    meter = StreamMeter()
    meter.restart((1920, 1080))
    packet = per_call(calls, lambda: meter.packet(5000, video=True))
    picture = per_call(calls, lambda: meter.picture(1920, 1080))
    per_second = (VIDEO_PER_S + SOUND_PER_S) * packet + PICTURES_PER_S * picture
    print(f"StreamMeter.packet: {packet * 1e9:.0f} ns a call")
    print(f"StreamMeter.picture: {picture * 1e9:.0f} ns a call")
    print(
        f"a 25 fps camera with sound: {per_second * 1e6:.0f} us a second, "
        f"{per_second * 100:.4f} % of one core"
    )


if __name__ == "__main__":
    main()
