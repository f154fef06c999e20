"""The settings routes against a real hub started from a real config file.

Two cameras record continuously (the synthetic porch, and the real person clip played
in real time); a third, disabled, has a password in its URL. A change to one camera
rewrites the file (comments kept, the previous file kept as .bak), goes in the access
log without secrets, and restarts that camera alone: the other's segments go on, and
the changed one's open segment is finished, not lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from hubkit import FAST, PASSWORD, base, origin

from hub import vault
from hub.cli import init_data_dir
from hub.config import default_config, load_config
from hub.daemon import DataPaths, Hub
from hub.store import SegmentState
from hub.web.settings_routes import HubStopping

SECRET = "s3cret-camera-pw"
NEW_SECRET = "n3w-camera-pw"
WAIT = 30.0  # seconds for segments to appear

CONFIG = """\
# The test house. This comment stays.
[hub]
data_dir = "data"
log_level = "warning"

[storage]
segment_seconds = 1
min_free_gb = 0

[web]
listen = "127.0.0.1:0"
tls = false

[[camera]]
id = "porch"   # by the door
url = "synthetic:porch"
record = "continuous"

[[camera]]
id = "hall"
url = "file://{clip}"
realtime = true
record = "continuous"

[[camera]]
id = "yard"
url = "rtsp://admin:{secret}@127.0.0.1:1/stream"
enabled = false
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("settings-hub")
    init_data_dir(DataPaths(root / "data"), PASSWORD, kdf=FAST)
    path = root / "camhub.toml"
    path.write_text(CONFIG.format(clip=person_clip, secret=SECRET))
    running = Hub(load_config(path))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(
            f"{base(hub)}/api/login", json={"password": PASSWORD}, headers=origin(hub)
        ) as resp:
            assert resp.status == 200, await resp.text()
        yield session


def config_path(hub: Hub) -> Path:
    assert hub.config.path is not None
    return hub.config.path


async def call(
    client: aiohttp.ClientSession, hub: Hub, method: str, path: str, body: object = None
) -> tuple[int, dict]:
    """One request; its body checked for the camera password on the way."""
    async with client.request(method, base(hub) + path, json=body, headers=origin(hub)) as resp:
        text = await resp.text()
    assert SECRET not in text and NEW_SECRET not in text, f"a URL password in {path}'s answer"
    return resp.status, json.loads(text) if text else {}


def audit_after(hub: Hub, seq: int, kind: str) -> list[dict]:
    rows = hub.index.audit_records(seq, 10000)
    return [json.loads(r.detail) | {"actor": r.actor} for r in rows if r.kind == kind]


def last_seq(hub: Hub) -> int:
    rows = hub.audit.recent(0, 1)
    return rows[0].seq if rows else 0


def complete_segments(hub: Hub, camera_id: str) -> list:
    return [
        s for s in hub.index.segments(camera_id, limit=10000) if s.state is SegmentState.COMPLETE
    ]


def wait_for_segments(hub: Hub, camera_id: str, more_than: int) -> None:
    deadline = time.monotonic() + WAIT
    while len(complete_segments(hub, camera_id)) <= more_than:
        assert time.monotonic() < deadline, f"{camera_id}: no new segment in {WAIT:.0f} s"
        time.sleep(0.2)


async def test_settings_list_the_cameras_with_url_passwords_hidden(
    hub: Hub, client: aiohttp.ClientSession
) -> None:
    status, doc = await call(client, hub, "GET", "/api/settings")
    assert status == 200
    assert doc["read_only"] is None and doc["file"] == str(config_path(hub))
    assert [c["id"] for c in doc["cameras"]] == ["porch", "hall", "yard"]
    yard = doc["cameras"][2]
    assert yard["url"] == "rtsp://admin:***@127.0.0.1:1/stream"
    assert yard["enabled"] is False and yard["sensitivity"] == 3 and yard["masks"] == []
    assert [level["level"] for level in doc["sensitivity_levels"]] == [1, 2, 3, 4, 5]
    assert doc["session_idle_minutes"] == 30


@pytest.mark.parametrize(
    ("path", "body", "status", "problem"),
    [
        (
            "/api/settings/cameras/porch",
            {"pre_roll": 99},
            400,
            "camera[0].pre_roll: must be 0..30, got 99",
        ),
        (
            "/api/settings/cameras/hall",
            {"detect_fps": 0},
            400,
            "camera[1].motion.detect_fps: must be 0.5..30, got 0",
        ),
        (
            "/api/settings/cameras/porch",
            {"masks": "all"},
            400,
            "camera[0].motion.masks: must be an array of polygons",
        ),
        (
            "/api/settings/cameras/porch",
            {"colour": "red"},
            400,
            "colour: not a setting the page can change",
        ),
        (
            "/api/settings/cameras/yard",
            {"url": "rtsp://admin:" + NEW_SECRET + "@h:0/x"},
            400,
            "camera[2].url: has a bad port",
        ),
        ("/api/settings/cameras/porch", [1, 2], 400, "the body must be a JSON object"),
        ("/api/settings/cameras/garage", {"pre_roll": 1}, 404, "no such camera"),
        (
            "/api/settings/session",
            {"idle_minutes": 0},
            400,
            "web.session_idle_minutes: must be 1..1440, got 0",
        ),
        ("/api/settings/session", {"minutes": 5}, 400, 'send {"idle_minutes": N}'),
    ],
)
async def test_a_bad_change_is_a_4xx_naming_the_key_and_changes_nothing(
    hub: Hub, client: aiohttp.ClientSession, path: str, body: object, status: int, problem: str
) -> None:
    before = config_path(hub).read_bytes()
    cameras = list(hub.cameras)
    seq = last_seq(hub)
    got, doc = await call(client, hub, "PUT", path, body)
    assert (got, doc["error"]) == (status, doc["error"])
    assert problem in doc["error"]
    assert config_path(hub).read_bytes() == before
    assert hub.cameras == cameras
    assert audit_after(hub, seq, "settings changed") == []


async def test_settings_need_the_owner_and_our_own_page(hub: Hub) -> None:
    async with aiohttp.ClientSession() as anonymous:
        for method, path in [
            ("GET", "/api/settings"),
            ("PUT", "/api/settings/cameras/porch"),
            ("PUT", "/api/settings/session"),
            ("POST", "/api/settings/password"),
        ]:
            async with anonymous.request(method, base(hub) + path, json={}) as resp:
                assert resp.status == 401, (method, path)


async def test_a_camera_change_restarts_that_camera_alone_and_loses_nothing(
    hub: Hub, client: aiohttp.ClientSession
) -> None:
    wait_for_segments(hub, "porch", 2)
    wait_for_segments(hub, "hall", 2)
    porch, hall = hub.cameras
    before = config_path(hub).read_text()
    recorded = {s.id for s in hub.index.segments("porch", limit=10000)}  # one of them open
    seq = last_seq(hub)
    mask = [[0.0, 0.25], [1.0, 0.25], [1.0, 1.0], [0.0, 1.0]]
    status, doc = await call(
        client,
        hub,
        "PUT",
        "/api/settings/cameras/porch",
        {"pre_roll": 2, "sensitivity": 2, "masks": [mask]},
    )
    assert status == 200, doc
    assert doc["restarted"] is True
    assert doc["camera"]["masks"] == [mask] and doc["camera"]["sensitivity"] == 2

    # The file: rewritten with the owner's comments, the previous one kept.
    text = config_path(hub).read_text()
    assert text.startswith("# The test house. This comment stays.\n")
    assert 'id = "porch"   # by the door' in text
    assert config_path(hub).with_name("camhub.toml.bak").read_text() == before
    assert load_config(config_path(hub)).cameras[0].motion.masks == (tuple(map(tuple, mask)),)

    # Only the porch restarted, with its new settings; the hall runs on.
    new_porch, same_hall = hub.cameras
    assert same_hall is hall and new_porch is not porch
    assert new_porch.settings.pre_roll == 2.0 and new_porch.settings.motion.threshold == 32
    assert hub.web is not None
    halls = len(complete_segments(hub, "hall"))
    porches = len(complete_segments(hub, "porch"))
    wait_for_segments(hub, "hall", halls)
    wait_for_segments(hub, "porch", porches)
    # Nothing the stopped pipeline recorded is lost: its open segment was finished.
    states = {s.id: s.state for s in hub.index.segments("porch", limit=10000)}
    assert {states[segment] for segment in recorded} == {SegmentState.COMPLETE}

    # The access log: who, which keys, old and new values.
    (record,) = audit_after(hub, seq, "settings changed")
    assert record["actor"].startswith("owner from 127.0.0.1")
    assert record == {
        "actor": record["actor"],
        "camera[0].pre_roll": "5.0 → 2",
        "camera[0].motion.threshold": "25 → 32",
        "camera[0].motion.min_area": "0.002 → 0.005",
        "camera[0].motion.masks": "0 masks → 1 mask",
    }

    # The same change again changes nothing, and restarts nothing.
    status, doc = await call(client, hub, "PUT", "/api/settings/cameras/porch", {"pre_roll": 2})
    assert (status, doc["restarted"], doc["changes"]) == (200, False, [])
    assert hub.cameras[0] is new_porch


async def test_disabling_and_enabling_a_camera_from_the_page(
    hub: Hub, client: aiohttp.ClientSession
) -> None:
    status, _ = await call(client, hub, "PUT", "/api/settings/cameras/porch", {"enabled": False})
    assert status == 200
    assert [c.id for c in hub.cameras] == ["hall"]
    status, cameras = await call(client, hub, "GET", "/api/cameras")
    assert [c["id"] for c in cameras] == ["hall"]
    status, _ = await call(client, hub, "PUT", "/api/settings/cameras/porch", {"enabled": True})
    assert status == 200
    _, cameras = await call(client, hub, "GET", "/api/cameras")
    assert [c["id"] for c in cameras] == ["porch", "hall"]  # back in the config's order


async def test_a_new_camera_url_is_written_but_never_sent_back(
    hub: Hub, client: aiohttp.ClientSession
) -> None:
    seq = last_seq(hub)
    url = f"rtsp://admin:{NEW_SECRET}@127.0.0.1:1/main"
    status, doc = await call(client, hub, "PUT", "/api/settings/cameras/yard", {"url": url})
    assert status == 200
    assert doc["camera"]["url"] == "rtsp://admin:***@127.0.0.1:1/main"
    assert load_config(config_path(hub)).cameras[2].url == url
    (record,) = audit_after(hub, seq, "settings changed")
    assert record == {"actor": record["actor"], "camera[2].url": "(hidden) → (hidden)"}
    everything = json.dumps([r.detail for r in hub.index.audit_records(0, 100000)])
    assert SECRET not in everything and NEW_SECRET not in everything
    status, doc = await call(client, hub, "GET", "/api/settings")
    assert doc["cameras"][2]["url"] == "rtsp://admin:***@127.0.0.1:1/main"
    assert doc["cameras"][2]["enabled"] is False  # it stays off: nothing connects to it

    placeholder = "rtsp://admin:change-me@127.0.0.1:1/main"
    status, doc = await call(client, hub, "PUT", "/api/settings/cameras/yard", {"url": placeholder})
    assert status == 200
    assert doc["warnings"] == [
        "camera[2].url: the password is a placeholder (rtsp://admin:***@127.0.0.1:1/main); "
        "put the camera's real password there"
    ]
    assert "change-me" not in json.dumps(doc)


async def test_the_session_idle_time_applies_to_open_sessions(
    hub: Hub, client: aiohttp.ClientSession
) -> None:
    status, doc = await call(client, hub, "PUT", "/api/settings/session", {"idle_minutes": 45})
    assert (status, doc["session_idle_minutes"]) == (200, 45)
    assert hub.sessions.idle_seconds == 45 * 60
    assert load_config(config_path(hub)).web.session_idle_minutes == 45
    _, session = await call(client, hub, "GET", "/api/session")
    assert session["idle_minutes"] == 45


async def test_the_password_change_rewraps_the_same_key(
    hub: Hub, client: aiohttp.ClientSession
) -> None:
    keys = hub.paths.keys
    public = vault.KeyFile.from_json(keys.read_bytes()).public_bytes
    seq = last_seq(hub)
    path = "/api/settings/password"
    status, doc = await call(client, hub, "POST", path, {"current": PASSWORD, "new": "short"})
    assert (status, doc["error"]) == (400, "new: the password must have at least 10 characters")
    status, doc = await call(client, hub, "POST", path, {"current": "wrong one!", "new": "x" * 12})
    assert (status, doc["error"]) == (403, "current: wrong password")
    new = "a much longer new password"
    status, _ = await call(client, hub, "POST", path, {"current": PASSWORD, "new": new})
    assert status == 200
    keyfile = vault.KeyFile.from_json(keys.read_bytes())
    assert keyfile.public_bytes == public  # the footage key pair is the same: nothing re-encrypted
    vault.unlock(keyfile, new)
    with pytest.raises(vault.WrongPassword):
        vault.unlock(keyfile, PASSWORD)
    kinds = [r.kind for r in hub.index.audit_records(seq, 1000)]
    assert kinds == ["password change refused", "password changed"]
    everything = json.dumps([r.detail for r in hub.index.audit_records(seq, 1000)])
    assert new not in everything and PASSWORD not in everything
    status, _ = await call(client, hub, "POST", path, {"current": new, "new": PASSWORD})
    assert status == 200  # back, for the other tests


async def test_a_hub_without_a_config_file_says_so(tmp_path: Path) -> None:
    init_data_dir(DataPaths(tmp_path), PASSWORD, kdf=FAST)
    demo = Hub(default_config(tmp_path, "127.0.0.1:0"))
    demo.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            await call(client, demo, "POST", "/api/login", {"password": PASSWORD})
            status, doc = await call(client, demo, "GET", "/api/settings")
            assert status == 200 and doc["file"] is None
            assert "started without a config file" in doc["read_only"]
            status, doc = await call(
                client, demo, "PUT", "/api/settings/cameras/demo", {"pre_roll": 1}
            )
            assert status == 409 and "started without a config file" in doc["error"]
            assert demo.config.cameras[0].pre_roll == 5.0
    finally:
        demo.stop()
    stopped = list(demo.cameras)
    with pytest.raises(HubStopping):  # a change racing the stop: no camera starts again
        demo.restart_camera(demo.config.cameras[0])
    assert demo.cameras == stopped
