"""Faults and floods, measured on a real hub (issue 8's figures), one part after another.

- footage lost per kill -9, with 1 s and 5 s keyframe intervals (bench/fault_kill.py);
- peak RSS for 10 sequential and 3 concurrent 10-minute clip requests (fault_clips.py);
- the hub's segment rate while 1,000 slow connections are held (fault_slow.py).

Each part is also a script of its own. This prints, never asserts.

    python bench/bench_faults.py [--short]
"""

from __future__ import annotations

import argparse
import time

import fault_clips
import fault_kill
import fault_slow

PARTS = (
    ("footage lost per kill -9", fault_kill.main),
    ("clip memory", fault_clips.main),
    ("recording under a flood of slow connections", fault_slow.main),
)


def main(short: bool) -> None:
    for title, part in PARTS:
        print(f"== {title}", flush=True)
        began = time.monotonic()
        part(short)
        print(f"   ({time.monotonic() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="smaller and quicker, for CI")
    main(parser.parse_args().short)
