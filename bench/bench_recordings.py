"""The timeline's question, "what did this camera record between t1 and t2", before and
after the recordings query sought to the range.

A real index (hub.store.Index, its migrations) holding a month of back-to-back 4 s
segments for each of two cameras. Each question is asked by the former query (SQLite
window functions over the camera's history up to the range's end) and by
Index.recorded_spans; both answers must agree. Prints the median of a few runs of each
and the ratio: a day early and late in the month (the timeline asks for a day), an
hour, and the whole month.

    python bench/bench_recordings.py [--short]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from recorded_spans import insert_segments, window_spans  # noqa: E402

from hub.store import Index  # noqa: E402

SEGMENT = 4.0
DAY = 86400.0
T0 = 1_700_000_000.0
GAP = 2.0  # the route's default
LIMIT = 2001


def timed(ask: Callable[[], object], runs: int) -> tuple[float, object]:
    """Median seconds of `runs` answers, and the answer."""
    took = []
    answer = None
    for _ in range(runs):
        started = time.perf_counter()
        answer = ask()
        took.append(time.perf_counter() - started)
    return statistics.median(took), answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a week of footage, not a month")
    args = parser.parse_args()
    days = 7 if args.short else 31
    runs = 3 if args.short else 5
    per_camera = int(days * DAY / SEGMENT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.db"
        with Index(path) as index:
            for camera in ("cam", "other"):
                insert_segments(
                    path,
                    [(T0 + SEGMENT * i, T0 + SEGMENT * (i + 1)) for i in range(per_camera)],
                    camera,
                    size=250_000,
                )
            now = T0 + days * DAY + 60
            print(f"{per_camera} segments of {SEGMENT:.0f} s per camera ({days} days), 2 cameras")
            questions = {
                "first day": (T0, T0 + DAY),
                "last day": (T0 + (days - 1) * DAY, T0 + days * DAY),
                "last hour": (T0 + days * DAY - 3600, T0 + days * DAY),
                f"all {days} days": (T0, T0 + days * DAY),
            }
            for name, (start, end) in questions.items():
                before, old = timed(
                    lambda s=start, e=end: window_spans(path, "cam", s, e, GAP, LIMIT, now), runs
                )
                after, new = timed(
                    lambda s=start, e=end: index.recorded_spans("cam", s, e, GAP, LIMIT, now),
                    runs,
                )
                if old != new:
                    print(f"{name}: the answers differ: {old} / {new}", file=sys.stderr)
                    return 1
                print(
                    f"{name:>12}: before {before * 1000:7.1f} ms, after {after * 1000:7.1f} ms, "
                    f"{before / after:5.1f}x faster"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
