"""The hub's recording rate with and without a flood of slow connections.

A real `camhub run` (one synthetic camera, recording continuously in 1 s segments)
runs with the file limit a service gets when its unit sets none (1024). First its
segment rate is measured undisturbed; then while 1,000 slow connections are held from
ten loopback addresses, each sending one header line every few seconds and reconnecting
as soon as the hub drops it (as a slowloris does). Printed: segments and sealed bytes
per minute in each window, how many connections the hub refused or closed, how much
its log grew, and whether the page still loads afterwards. This prints, never asserts.

    python bench/fault_slow.py [--short]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NOFILE = 1024  # a service's soft limit when its unit sets no LimitNOFILE
FLOOD = 1000
SOURCES = [f"127.0.0.{n}" for n in range(2, 12)]
TRICKLE = 2.0  # seconds between header lines on each connection
WINDOW = {True: 15.0, False: 60.0}  # seconds per measured window
PASSWORD = "bench password, not secret"
STARTED = re.compile(r"owner page at http://127\.0\.0\.1:(\d+)/")


@dataclass
class Hub:
    proc: subprocess.Popen[bytes]
    root: Path
    port: int

    @property
    def log_path(self) -> Path:
        return self.root / "hub.log"

    def footage(self) -> tuple[int, int]:
        """(segment files, their bytes) so far."""
        files = list((self.root / "data" / "footage").rglob("*.seg"))
        return len(files), sum(f.stat().st_size for f in files)


def _command() -> list[str]:
    script = Path(sys.executable).with_name("camhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]


def _service_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@contextlib.contextmanager
def running_hub() -> Iterator[Hub]:
    with tempfile.TemporaryDirectory(prefix="camhub-fault-slow-") as tmp:
        root = Path(tmp)
        (root / "password").write_text(PASSWORD + "\n")
        subprocess.run(
            [*_command(), "init", "--data-dir", "data", "--password-file", "password"],
            cwd=root,
            check=True,
            capture_output=True,
            timeout=60,
        )
        (root / "camhub.toml").write_text(
            '[hub]\ndata_dir = "data"\n\n[web]\nlisten = "127.0.0.1:0"\ntls = false\n\n'
            "[storage]\nsegment_seconds = 1\nmin_free_gb = 0\n\n"
            '[[camera]]\nid = "porch"\nurl = "synthetic:porch"\nrecord = "continuous"\n'
        )
        with (root / "hub.log").open("wb") as log:
            proc = subprocess.Popen(
                [*_command(), "run", "--config", "camhub.toml"],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_service_file_limit,
            )
            try:
                yield Hub(proc, root, _wait_for_port(proc, root / "hub.log"))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_for_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if found := STARTED.search(log.read_text(errors="replace")):
            time.sleep(3.0)  # let the camera connect and the first segments start
            return int(found.group(1))
        time.sleep(0.1)
    raise SystemExit(f"camhub run did not start:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Flood:
    opened: int = 0
    failed: int = 0  # connect() refused or timed out: the backlog was full
    dropped: int = 0  # closed by the hub (refused at the cap, or timed out)


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def measure(hub: Hub, seconds: float, flood: Flood | None) -> tuple[int, int]:
    """(segments, bytes) written during `seconds`, holding the flood if one is given."""
    count0, bytes0 = hub.footage()
    held: list[socket.socket] = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if flood is not None:
                for sock in held[:]:
                    try:
                        sock.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        held.remove(sock)
                        sock.close()
                        flood.dropped += 1
                failures = 0
                while len(held) < FLOOD and failures < 3 and time.monotonic() < end:
                    source = SOURCES[(flood.opened + flood.failed) % len(SOURCES)]
                    try:
                        held.append(_connect(hub.port, source))
                        flood.opened += 1
                    except OSError:  # the hub's accept queue is full: try the next round
                        flood.failed += 1
                        failures += 1
            time.sleep(min(TRICKLE, max(end - time.monotonic(), 0)))
    finally:
        for sock in held:
            sock.close()
    count1, bytes1 = hub.footage()
    return count1 - count0, bytes1 - bytes0


def page_status(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            return str(resp.status)
    except OSError as exc:
        return f"failed ({exc})"


def main(short: bool) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * FLOOD)), hard))
    window = WINDOW[short]
    print(f"fault_slow: hub file limit {NOFILE}, {FLOOD} slow connections, {window:g} s windows")
    with running_hub() as hub:
        quiet = measure(hub, window, None)
        log_before = hub.log_path.stat().st_size
        flood = Flood()
        flooded = measure(hub, window, flood)
        log_growth = hub.log_path.stat().st_size - log_before
        tracebacks = hub.log_path.read_text(errors="replace").count("Traceback")
        page = page_status(hub.port)
    for name, (segments, size) in (("without flood", quiet), ("with flood", flooded)):
        print(
            f"  {name:14}: {segments * 60 / window:6.1f} segments/min, "
            f"{size / window / 1024:7.1f} KiB/s sealed"
        )
    print(
        f"  flood: {flood.opened} connections opened, {flood.dropped} closed by the hub, "
        f"{flood.failed} connect() failures"
    )
    print(f"  log grew {log_growth} bytes during the flood; {tracebacks} traceback(s) in all")
    print(f"  page after the flood: {page}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help=f"{WINDOW[True]:g} s windows (CI)")
    main(parser.parse_args().short)
