"""A real hub in this process and a client logged in to it, for the tests that need them.

The hub has a new data directory, its web page on 127.0.0.1 (without TLS unless asked)
and a fast key derivation (logins are not what these tests measure). What the tests
differ by, the cameras and other tables of the config, they pass in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from hub.alerts.offsite_notice import FAILING_FOR
from hub.cli import init_data_dir
from hub.config import load_config, parse_config
from hub.daemon import DataPaths, Hub
from hub.vault import KdfParams

PASSWORD = "correct horse battery"
FAST = KdfParams(memory_kib=256, iterations=1, lanes=1)


def make_hub(
    root: Path,
    tables: str = "",
    *,
    storage: str = "",
    web: str = "",
    tls: bool = False,
    data_dir: Path | None = None,
    in_file: bool = False,
    offsite_failing_for: float = FAILING_FOR,
) -> Hub:
    """A hub, not started yet, over a data directory made now (`root`/data unless given).
    `tables` is the rest of the config ([[camera]], [alerts]...); `storage` and `web`
    are more lines for those tables. `in_file`: the config is read from
    `root`/camhub.toml, so that the page can change its settings. `offsite_failing_for`:
    how long the off-site copy fails before the owner hears (Hub's parameter)."""
    data_dir = data_dir or root / "data"
    init_data_dir(DataPaths(data_dir), PASSWORD, kdf=FAST)
    text = (
        f'[hub]\ndata_dir = "{data_dir}"\n'
        f"[storage]\nmin_free_gb = 0\n{storage}\n"
        f'[web]\nlisten = "127.0.0.1:0"\ntls = {str(tls).lower()}\n{web}\n'
        f"{tables}"
    )
    if in_file:
        path = root / "camhub.toml"
        path.write_text(text)
        return Hub(load_config(path), offsite_failing_for=offsite_failing_for)
    return Hub(parse_config(text, base_dir=root), offsite_failing_for=offsite_failing_for)


@contextmanager
def running(hub: Hub) -> Iterator[Hub]:
    """The hub started, and stopped on leaving, whatever happened."""
    hub.start()
    try:
        assert hub.web is not None, "the hub's web server did not start"
        yield hub
    finally:
        hub.stop()


def wait_until(done: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `done` until it holds; fail the test naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds:g} s waiting for {what}")
        time.sleep(0.02)


def base(hub: Hub) -> str:
    """The page's address, http://127.0.0.1:PORT, without a trailing slash."""
    assert hub.web is not None
    return hub.web.url.rstrip("/")


def origin(hub: Hub) -> dict[str, str]:
    """The header the hub's own page sends with a state change."""
    return {"Origin": base(hub)}


async def logged_in(hub: Hub) -> aiohttp.ClientSession:
    """A client holding the owner's session cookie (the caller closes it)."""
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with client.post(
        f"{base(hub)}/api/login", json={"password": PASSWORD}, headers=origin(hub)
    ) as resp:
        assert resp.status == 200, await resp.text()
    return client
