"""The web edge under attack: slow and many connections, and a login flood.

A real `camhub run` (synthetic camera, recording continuously) runs with its file limit
lowered to NOFILE, and real sockets on 127.0.0.x hold slow connections to it: it must
go on writing segments, keep its log small and still serve the page. The login flood
runs against a real hub in this process, from many loopback addresses (all of 127/8 is
loopback), while the owner logs in from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from hubkit import PASSWORD, make_hub, running

from hub.daemon import Hub
from hub.logs import RepeatLogFilter
from hub.web.auth import DEVICE_COOKIE, GLOBAL_FAILURES, GLOBAL_SPACING, LoginThrottle
from hub.web.connections import PER_CLIENT
from hub.web.server import HEADER_SECONDS

NOFILE = 256  # the hub's file limit here: its web cap is then 64 connections
FLOOD = 300  # slow connections held open at once, well past the cap and the limit
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 12)]  # the flood's source addresses
ROUND = 0.5  # seconds between trickled header lines
MAX_ROUNDS = 120  # the flood lasts at most this many rounds
NEW_SEGMENTS = 3  # sealed while the flood is on
LOG_BYTES = 64 * 1024
COMMAND_TIMEOUT = 60.0
STARTED = re.compile(r"owner page at http://127\.0\.0\.1:(\d+)/")


# -- a real hub process with a low file limit -------------------------------------------


def camhub_command() -> list[str]:
    script = Path(sys.executable).with_name("camhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


class LimitedHub:
    """`camhub run` with RLIMIT_NOFILE = NOFILE, its log in a file."""

    def __init__(self, root: Path) -> None:
        password = root / "password"
        password.write_text(PASSWORD + "\n")
        done = subprocess.run(
            [*camhub_command(), "init", "--data-dir", "data", "--password-file", password],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
        config = root / "camhub.toml"
        config.write_text(
            '[hub]\ndata_dir = "data"\n\n[web]\nlisten = "127.0.0.1:0"\ntls = false\n\n'
            "[storage]\nsegment_seconds = 1\nmin_free_gb = 0\n\n"
            '[[camera]]\nid = "porch"\nurl = "synthetic:porch"\nrecord = "continuous"\n'
        )
        self.footage = root / "data" / "footage"
        self.log_path = root / "hub.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*camhub_command(), "run", "--config", str(config)],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_low_file_limit,
        )
        self.port = int(self._wait_for(STARTED, 30).group(1))

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (found := pattern.search(self.log)) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {pattern.pattern!r} in the hub's log:\n{self.log[-5000:]}")
            time.sleep(0.1)
        return found

    def segments(self) -> int:
        return sum(1 for _ in self.footage.rglob("*.seg"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()


@pytest.fixture(scope="module")
def limited_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedHub]:
    hub = LimitedHub(tmp_path_factory.mktemp("limited"))
    try:
        deadline = time.monotonic() + 30
        while hub.segments() < 2:
            assert time.monotonic() < deadline, f"no segments recorded:\n{hub.log[-5000:]}"
            time.sleep(0.2)
        yield hub
    finally:
        hub.close()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a request head, never finished
    return sock


def closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """Whether the hub closes the connection within `wait` seconds (it sends nothing)."""
    sock.settimeout(wait)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:
        return True  # reset


def page_status(port: int, within: float = HEADER_SECONDS) -> int:
    """The page's status once the hub has let go of the connections just closed: it
    learns of a close only when its loop reads the EOF, so until then a new connection
    may still find the web side at its cap and be closed unread."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                return resp.status
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- slow heads, slow bodies, many connections ------------------------------------------


def test_a_request_head_that_never_ends_is_cut_off(limited_hub: LimitedHub) -> None:
    with connect(limited_hub.port) as sock:
        assert closed_by_peer(sock, 3 * HEADER_SECONDS)


def test_a_body_that_never_ends_gets_408(limited_hub: LimitedHub) -> None:
    with socket.create_connection(("127.0.0.1", limited_hub.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"password": '
        )
        sock.settimeout(3 * HEADER_SECONDS)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert answer.rstrip().endswith(b'"error": "the request body came too slowly"}')


def test_recording_goes_on_under_a_flood_of_slow_connections(limited_hub: LimitedHub) -> None:
    """FLOOD slow clients (more than the hub's whole file limit), reconnecting as the
    hub drops them: new segments keep coming, the log stays small, the page loads."""
    before = limited_hub.segments()
    log_before = limited_hub.log_path.stat().st_size
    held: list[socket.socket] = []
    try:
        for n in range(MAX_ROUNDS):
            for sock in held[:]:  # trickle a header line; the hub's refusals come back
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    held.remove(sock)
                    sock.close()
            while len(held) < FLOOD:
                try:
                    held.append(connect(limited_hub.port, ATTACKERS[len(held) % len(ATTACKERS)]))
                except OSError:
                    break  # the hub's backlog is full: try again next round
            if n >= 20 and limited_hub.segments() - before >= NEW_SEGMENTS:
                break
            time.sleep(ROUND)
        during = limited_hub.segments() - before
    finally:
        for sock in held:
            sock.close()
    assert during >= NEW_SEGMENTS, limited_hub.log[-5000:]
    grown = limited_hub.log_path.stat().st_size - log_before
    assert grown < LOG_BYTES, limited_hub.log[-5000:]
    assert "Traceback" not in limited_hub.log
    assert "web connections at their cap" in limited_hub.log  # once, not per refusal
    assert page_status(limited_hub.port) == 200


def test_a_repeated_error_is_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("camhub.test.repeats")
    repeats = RepeatLogFilter(interval=0.5)
    logger.addFilter(repeats)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            for _ in range(1000):
                logger.error("accept failed: %s", "EMFILE")
            logger.info("an info line is never held back")
            time.sleep(0.6)
            logger.error("accept failed: %s", "EMFILE")
    finally:
        logger.removeFilter(repeats)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "accept failed: EMFILE"
    assert lines[1] == "an info line is never held back"
    assert re.fullmatch(r"accept failed: EMFILE \[999 more like this in the last \d+ s\]", lines[2])
    assert len(lines) == 3


# -- the login flood -------------------------------------------------------------------


# The hub's own camera is off: these tests are about its web edge.
QUIET_PORCH = '[[camera]]\nid = "porch"\nurl = "synthetic:porch"\nrecord = "off"\n'


@pytest.fixture(scope="module")
def web_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running(make_hub(tmp_path_factory.mktemp("loginhub"), QUIET_PORCH)) as hub:
        yield hub


def test_one_address_cannot_take_every_connection(web_hub: Hub) -> None:
    """Past PER_CLIENT connections from one address, its next ones are closed unread,
    long before a head's time limit; another address is still served."""
    assert web_hub.web is not None
    port = web_hub.web.port
    held = [connect(port, "127.0.0.5") for _ in range(PER_CLIENT)]
    try:
        for _ in range(3):
            with connect(port, "127.0.0.5") as extra:
                assert closed_by_peer(extra, HEADER_SECONDS / 2)
        with socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=("127.0.0.6", 0)
        ) as other:
            other.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert other.recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held:
            sock.close()


def test_a_tls_handshake_that_never_comes_is_cut_off(tmp_path: Path) -> None:
    with running(make_hub(tmp_path, QUIET_PORCH, tls=True)) as hub:
        assert hub.web is not None and hub.web.url.startswith("https://")
        with socket.create_connection(("127.0.0.1", hub.web.port), timeout=5) as sock:
            assert closed_by_peer(sock, 3 * HEADER_SECONDS)


async def login(client: aiohttp.ClientSession, url: str, password: str) -> int:
    async with client.post(f"{url}api/login", json={"password": password}) as resp:
        await resp.read()
        return resp.status


async def test_owner_logs_in_while_many_addresses_guess(web_hub: Hub) -> None:
    assert web_hub.web is not None
    url = web_hub.web.url
    owner = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with owner:
        assert await login(owner, url, PASSWORD) == 200  # the owner, at home, earlier
        device = next(c for c in owner.cookie_jar if c.key == DEVICE_COOKIE)
        assert device["path"] == "/api/login" and device["httponly"]
        failures = throttled = 0

        async def guess(source: str) -> None:
            nonlocal failures, throttled
            connector = aiohttp.TCPConnector(local_addr=(source, 0))
            async with aiohttp.ClientSession(connector=connector) as client:
                for _ in range(400):  # bounded; cancelled once the owner is done
                    status = await login(client, url, "letmein-guess")
                    failures += status == 401
                    throttled += status == 429

        attack = [asyncio.create_task(guess(a)) for a in ATTACKERS * 3]
        try:
            for _ in range(200):  # until the attack has put the throttle in global mode
                if failures >= GLOBAL_FAILURES and throttled >= 20:
                    break
                await asyncio.sleep(0.05)
            assert failures >= GLOBAL_FAILURES and throttled >= 20
            # the owner's browser (device cookie), and a fresh one from the same address
            fresh = aiohttp.ClientSession()
            async with fresh:
                for client in (owner, fresh):
                    statuses = [await login(client, url, PASSWORD) for _ in range(3)]
                    assert 200 in statuses, statuses
        finally:
            for task in attack:
                task.cancel()
            for task in attack:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def test_known_devices_cannot_be_made_up() -> None:
    throttle = LoginThrottle()
    owner = throttle.attempt("10.0.0.5", None)
    device = throttle.succeeded(owner, "10.0.0.5", None)
    assert throttle.attempt("10.0.0.9", device).known  # the owner's phone, elsewhere
    assert not throttle.attempt("10.0.0.9", "made-up-token").known
    assert throttle.attempt("10.0.0.5", None).known  # the address is remembered too
    assert throttle.succeeded(throttle.attempt("10.0.0.9", device), "10.0.0.9", device) == device


def test_the_shared_slot_is_fair_between_addresses() -> None:
    """30 addresses guessing every half second for minutes cannot keep a newcomer (the
    owner on a new phone, say) from the shared slot: it is next, as it never had it."""
    throttle = LoginThrottle()
    attackers = [throttle.attempt(f"10.9.0.{n}", None) for n in range(30)]
    newcomer = throttle.attempt("10.0.0.77", None)
    granted: list[float] = []
    for step in range(1200):  # 600 s of simulated time
        now = 1000.0 + step * 0.5
        for attempt in attackers:
            if throttle.wait_time(attempt, now) == 0:
                throttle.failed(attempt, now)
        arrived = step >= 400  # after 200 s of attack, asking every second
        if arrived and step % 2 == 0 and throttle.wait_time(newcomer, now) == 0:
            granted.append(now - 1200.0)
            throttle.failed(newcomer, now)  # a typo: it has to wait its turn again
    assert granted, "the newcomer never had the shared slot"
    assert granted[0] <= GLOBAL_SPACING + 1
    assert len(granted) >= 2  # and again later, though 30 others keep asking
