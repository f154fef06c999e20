"""The owner's API and share links, against a real hub on 127.0.0.1.

One hub per module: a file camera (the real person clip, decoded as fast as it goes,
recorded continuously) gives footage, a synthetic camera gives live view. Requests
are real HTTP from aiohttp's client; the index is the real SQLite file.
"""

from __future__ import annotations

import io
import json
import logging
import mmap
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import av
import pytest
from hubkit import base, logged_in, make_hub, origin, running, wait_until

from hub.clip import ClipTooLarge
from hub.daemon import Hub
from hub.web.clips import ClipCache, is_owner_clip


def hall_and_porch(clip: Path, porch_record: str) -> str:
    """The config's cameras: "hall" records the clip (as fast as it decodes), "porch"
    is the synthetic camera."""
    return f"""
        [[camera]]
        id = "hall"
        url = "file://{clip}"
        record = "continuous"
        [[camera]]
        id = "porch"
        url = "synthetic:porch"
        record = "{porch_record}"
        """


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Iterator[Hub]:
    made = make_hub(
        tmp_path_factory.mktemp("hub"),
        hall_and_porch(person_clip, "off"),
        storage="segment_seconds = 2",
        web='origins = ["https://Cams.Home.arpa/"]',
    )
    with running(made) as started:
        wait_until(
            lambda: started.cameras[0].status[0].finished,
            60,
            "the file camera to finish recording",
        )
        segments = started.index.segments("hall", limit=1000)
        assert len(segments) > 20
        # An event over three seconds of recorded footage, as the tracker would log it.
        first = min(s.start_time for s in segments)
        event_id = started.index.add_event("hall", first + 10)
        started.index.end_event(
            event_id,
            end_time=first + 13,
            peak_score=0.1,
            peak_time=first + 11,
            bbox=None,
            snapshot_id=None,
        )
        started.test_event = event_id  # type: ignore[attr-defined]
        yield started


def audit_kinds(hub: Hub, since: int = 0) -> list[tuple[str, str, dict]]:
    rows = hub.index.audit_records(since, 10000)
    return [(r.kind, r.actor, json.loads(r.detail)) for r in rows]


def flush_refusals(hub: Hub) -> None:
    """Write the summaries of held-back refusals now, as housekeeping would later."""
    hub.audit.record_repeats(hub.repeats.due(time.time(), everything=True))


def last_seq(hub: Hub) -> int:
    rows = hub.audit.recent(0, 1)
    return rows[0].seq if rows else 0


OWNER_ROUTES = [
    ("GET", "/api/session"),
    ("GET", "/api/stream"),
    ("POST", "/api/logout"),
    ("GET", "/api/cameras"),
    ("GET", "/api/cameras/porch/live.mjpeg"),
    ("GET", "/api/cameras/porch/live.ws"),
    ("GET", "/api/cameras/porch/snapshot.jpg"),
    ("GET", "/api/cameras/hall/clip.mp4?start=0&end=10"),
    ("GET", "/api/events"),
    ("GET", "/api/events/1"),
    ("GET", "/api/events/1/snapshot.jpg"),
    ("GET", "/api/events/1/clip.mp4"),
    ("GET", "/api/shares"),
    ("POST", "/api/shares"),
    ("DELETE", "/api/shares/0123456789abcdef"),
    ("GET", "/api/audit"),
    ("GET", "/api/audit/verify"),
]


async def test_every_owner_route_needs_a_session(hub: Hub) -> None:
    async with aiohttp.ClientSession() as client:
        for method, path in OWNER_ROUTES:
            async with client.request(method, base(hub) + path, headers=origin(hub)) as resp:
                assert resp.status == 401, (method, path, resp.status)
                assert (await resp.json()) == {"error": "log in first"}
        # a forged session cookie is no session
        client.cookie_jar.update_cookies({"camhub_session": "forged"})
        async with client.get(base(hub) + "/api/events") as resp:
            assert resp.status == 401


async def test_public_routes_and_security_headers(hub: Hub) -> None:
    async with aiohttp.ClientSession() as client:
        for path in ("/", "/healthz", "/share/0123456789abcdef/"):
            async with client.get(base(hub) + path) as resp:
                assert resp.status == 200, path
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
                assert resp.headers["X-Frame-Options"] == "DENY"
                assert resp.headers["Referrer-Policy"] == "no-referrer"
        async with client.get(base(hub) + "/static/../../keys.json") as resp:
            assert resp.status == 404
        async with client.get(base(hub) + "/api/nothing-here") as resp:
            assert resp.status in (401, 404)


async def test_login_cookie_logout_and_locked_vault(hub: Hub) -> None:
    since = last_seq(hub)
    client = await logged_in(hub)
    async with client:
        cookie = next(c for c in client.cookie_jar if c.key == "camhub_session")
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with client.get(base(hub) + "/api/session") as resp:
            assert resp.status == 200
        async with client.post(base(hub) + "/api/logout", headers=origin(hub)) as resp:
            assert resp.status == 204
        # the browser may keep the old token: it opens nothing now
        client.cookie_jar.update_cookies({"camhub_session": cookie.value})
        event = hub.test_event  # type: ignore[attr-defined]
        async with client.get(f"{base(hub)}/api/events/{event}/clip.mp4") as resp:
            assert resp.status == 401
    kinds = [k for k, _, _ in audit_kinds(hub, since)]
    assert kinds[:3] == ["login ok", "vault unlocked", "logout"]


async def test_wrong_passwords_are_refused_then_slowed(hub: Hub) -> None:
    since = last_seq(hub)
    async with aiohttp.ClientSession() as client:
        statuses = []
        for _ in range(4):
            async with client.post(
                base(hub) + "/api/login", json={"password": "guess-guess"}, headers=origin(hub)
            ) as resp:
                statuses.append(resp.status)
                retry = resp.headers.get("Retry-After")
        assert statuses == [401, 401, 401, 429]
        assert retry is not None and int(retry) >= 1
        time.sleep(int(retry) + 0.1)
    # the owner still gets in once the short wait is over
    client = await logged_in(hub)
    await client.close()
    kinds = [k for k, _, _ in audit_kinds(hub, since)]
    assert kinds.count("login failed") == 3 and "login throttled" in kinds
    assert all("guess" not in json.dumps(r) for r in audit_kinds(hub, since))


async def test_bad_requests_get_clear_4xx(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client:
        cases = [
            ("GET", "/api/events?limit=abc", None, 400),
            ("GET", "/api/events?start=nan", None, 400),
            ("GET", "/api/events?camera=attic", None, 400),
            ("GET", "/api/events/abc", None, 404),
            ("GET", "/api/events/999999/clip.mp4", None, 404),
            ("GET", "/api/cameras/attic/snapshot.jpg", None, 404),
            ("GET", "/api/cameras/hall/clip.mp4?start=10", None, 400),
            ("GET", "/api/cameras/hall/clip.mp4?start=10&end=5", None, 400),
            ("GET", "/api/cameras/hall/clip.mp4?start=10&end=20", None, 404),
            ("POST", "/api/shares", {"event_id": "x", "expires_in": 3600}, 400),
            ("POST", "/api/shares", {"event_id": 1, "expires_in": 1}, 400),
            ("POST", "/api/shares", {"camera_id": "hall", "expires_in": 3600}, 400),
            ("POST", "/api/shares", {"nonsense": 1}, 400),
            ("DELETE", "/api/shares/0123456789abcdef", None, 404),
        ]
        for method, path, body, status in cases:
            async with client.request(
                method, base(hub) + path, json=body, headers=origin(hub)
            ) as resp:
                assert resp.status == status, (path, body, await resp.text())
                assert "error" in await resp.json()
        async with client.post(
            base(hub) + "/api/shares", data="not json", headers=origin(hub)
        ) as resp:
            assert resp.status == 415
        async with client.post(
            base(hub) + "/api/shares",
            data=b"{" + b" " * 100_000 + b"}",
            headers={**origin(hub), "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 413
            assert await resp.json() == {"error": "request body too large (at most 64 KiB)"}


async def test_cross_site_state_changes_are_refused(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client:
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            async with client.post(
                base(hub) + "/api/shares",
                json={"event_id": hub.test_event, "expires_in": 3600},  # type: ignore[attr-defined]
                headers=headers,
            ) as resp:
                assert resp.status == 403
            async with client.post(base(hub) + "/api/logout", headers=headers) as resp:
                assert resp.status == 403
        async with client.get(base(hub) + "/api/session") as resp:
            assert resp.status == 200  # still logged in: the forged logout did nothing
        # unknown HTTP methods are a JSON 405, not a 500
        async with client.put(base(hub) + "/api/shares", headers=origin(hub)) as resp:
            assert resp.status == 405
            assert "error" in await resp.json()


async def test_origins_from_the_config_may_change_state(hub: Hub) -> None:
    """Behind a TLS reverse proxy the browser's Origin is the proxy's https name, not
    the hub's own http://host; `web.origins` lists it (normalised, in any case)."""
    async with aiohttp.ClientSession() as client:
        for sent, status in (
            ("https://cams.home.arpa", 401),  # past the origin check: the password is wrong
            ("http://cams.home.arpa", 403),  # another scheme is another origin
            ("https://cams.home.arpa:8443", 403),
            ("https://evil.example", 403),
        ):
            async with client.post(
                base(hub) + "/api/login", json={"password": "wrong"}, headers={"Origin": sent}
            ) as resp:
                assert resp.status == status, sent


def raw_request(hub: Hub, head: bytes) -> bytes:
    """Send bytes as they are (no client tidies them) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", hub.web.port), timeout=10) as sock:  # type: ignore[union-attr]
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


async def test_no_response_names_the_server_software(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client:
        for path in ("/", "/api/session", "/api/nothing-here", "/static/app.js"):
            async with client.get(base(hub) + path) as resp:
                assert "Server" not in resp.headers, path
        async with client.get(base(hub) + "/api/cameras/porch/live.mjpeg") as resp:
            assert resp.status == 200 and "Server" not in resp.headers  # a stream
    async with aiohttp.ClientSession() as stranger, stranger.get(base(hub) + "/api/events") as resp:
        assert resp.status == 401 and "Server" not in resp.headers
    # errors the HTTP parser answers before the app: still no Server, and JSON
    answer = raw_request(hub, b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400 ") and b"\r\nserver:" not in head.lower()
    assert json.loads(body) == {"error": "Bad Request"}


async def test_host_header_must_name_the_hub(hub: Hub) -> None:
    """DNS rebinding: a page on another name that resolves to the hub is refused."""
    host = socket.gethostname()
    port = hub.web.port  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as client:
        for name, status in (
            (f"127.0.0.1:{port}", 200),
            (f"localhost:{port}", 200),
            (f"[::1]:{port}", 200),
            (f"{host}:{port}", 200),
            (f"{host.partition('.')[0]}.local:{port}", 200),
            ("cams.home.arpa", 200),  # web.origins: the reverse proxy's name
            (f"192.168.1.20:{port}", 200),  # an address: not a name that can rebind
            (f"evil.example:{port}", 421),
            ("cams.home.arpa.evil.example", 421),
            (f"localhost.evil.example:{port}", 421),
        ):
            async with client.get(base(hub) + "/", headers={"Host": name}) as resp:
                assert resp.status == status, name
                if status == 421:
                    assert "web.origins" in (await resp.json())["error"]
            async with client.post(base(hub) + "/api/logout", headers={"Host": name}) as resp:
                assert resp.status == (421 if status == 421 else 401), name


async def test_request_paths_cannot_forge_log_lines(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="aiohttp.access"):
        answer = raw_request(
            hub,
            b"GET /x%0d%0a2026-01-01%20INFO%20forged%00 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 ")
        deadline = time.monotonic() + 5
        while not any("forged" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no access log line"
            time.sleep(0.05)
    line = next(r.getMessage() for r in caplog.records if "forged" in r.getMessage())
    assert not any(c in line for c in "\r\n\x00")
    assert "/x\\r\\n2026-01-01 INFO forged\\x00" in line


def frames_in(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4)) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_event_clip_plays_with_ranges_and_is_logged(hub: Hub) -> None:
    since = last_seq(hub)
    event = hub.test_event  # type: ignore[attr-defined]
    client = await logged_in(hub)
    async with client:
        url = f"{base(hub)}/api/events/{event}/clip.mp4"
        async with client.get(url, headers={"Range": "bytes=0-"}) as resp:
            assert resp.status == 206
            assert resp.headers["Cache-Control"] == "no-store"
            body = await resp.read()
        size = len(body)
        assert resp.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
        # 3 s of motion, no pre/post roll configured... the config's 5 + 10 s apply
        assert 10 * 10 <= frames_in(body) <= 25 * 10
        async with client.get(url, headers={"Range": "bytes=100-199"}) as resp:
            assert resp.status == 206 and await resp.read() == body[100:200]
        async with client.get(url, headers={"Range": f"bytes={size}-"}) as resp:
            assert resp.status == 416
        async with client.get(url, headers={"Range": "lines=1-2"}) as resp:
            assert resp.status == 416
    clips = [d for k, _, d in audit_kinds(hub, since) if k == "clip served"]
    assert len(clips) == 1 and clips[0]["event"] == event
    client = await logged_in(hub)
    since = last_seq(hub)
    async with client, client.get(url, headers={"Range": "bytes=-0"}) as resp:  # last 0 bytes
        assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{size}"
    # Nothing was shown, so nothing is logged as a look at footage.
    assert [k for k, _, _ in audit_kinds(hub, since) if k == "clip served"] == []


async def test_live_snapshot_and_stream_are_logged(hub: Hub) -> None:
    since = last_seq(hub)
    client = await logged_in(hub)
    async with client:
        async with client.get(base(hub) + "/api/cameras") as resp:
            cams = {c["id"]: c for c in await resp.json()}
        assert set(cams) == {"hall", "porch"}
        async with client.get(base(hub) + "/api/cameras/porch/snapshot.jpg") as resp:
            assert resp.status == 200
            assert (await resp.read())[:3] == b"\xff\xd8\xff"
        async with client.get(base(hub) + "/api/cameras/porch/live.mjpeg") as resp:
            assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            data = b""
            deadline = time.monotonic() + 10
            while data.count(b"\xff\xd8\xff") < 3 and time.monotonic() < deadline:
                data += await resp.content.read(65536)
            assert data.count(b"\xff\xd8\xff") >= 3
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kinds = [k for k, _, _ in audit_kinds(hub, since)]
        if "live view stopped" in kinds:
            break
        time.sleep(0.1)
    assert {"snapshot served", "live view started", "live view stopped"} <= set(kinds)


async def stream_ends(resp: aiohttp.ClientResponse, within: float = 10.0) -> bool:
    """Whether the server ends the stream within `within` seconds (reading it meanwhile)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not await resp.content.read(65536):
            return True
    return False


async def test_live_stream_ends_with_its_session(hub: Hub) -> None:
    """Logging out (here from another tab of the same browser) or idle expiry must
    stop a live view that is already streaming, not only refuse new ones."""
    client = await logged_in(hub)
    async with client, client.get(base(hub) + "/api/cameras/porch/live.mjpeg") as resp:
        assert resp.status == 200
        first = await resp.content.read(4096)
        assert first.startswith(b"--")
        async with client.post(base(hub) + "/api/logout", headers=origin(hub)) as out:
            assert out.status == 204
        assert await stream_ends(resp), "the live stream went on after logout"
    # idle expiry, with the stream open: the stream does not count as use
    client = await logged_in(hub)
    async with client:
        idle = hub.sessions.idle_seconds
        async with client.get(base(hub) + "/api/cameras/porch/live.mjpeg") as resp:
            assert resp.status == 200
            hub.sessions.idle_seconds = 1.5
            try:
                assert await stream_ends(resp), "the live stream kept an idle session open"
                async with client.get(base(hub) + "/api/session") as session:
                    assert session.status == 401
            finally:
                hub.sessions.idle_seconds = idle


async def create_share(client: aiohttp.ClientSession, hub: Hub, **fields: object) -> dict:
    body = {"event_id": hub.test_event, "expires_in": 3600, "label": "for the neighbour"}  # type: ignore[attr-defined]
    async with client.post(
        base(hub) + "/api/shares", json={**body, **fields}, headers=origin(hub)
    ) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def open_link(hub: Hub, link: str) -> tuple[int, aiohttp.ClientSession]:
    """What a recipient's browser does: post the fragment's secret, keep the cookie."""
    path, _, secret = link.partition("#")
    visitor = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with visitor.post(
        base(hub) + path + "open", json={"secret": secret}, headers=origin(hub)
    ) as resp:
        return resp.status, visitor


async def test_share_opens_its_clip_and_nothing_else(hub: Hub) -> None:
    since = last_seq(hub)
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub)
        other = await create_share(owner, hub, label="another")
    assert share["link"].startswith(f"/share/{share['id']}/#")
    status, visitor = await open_link(hub, share["link"])
    async with visitor:
        assert status == 200
        async with visitor.get(f"{base(hub)}/share/{share['id']}/clip.mp4") as resp:
            assert resp.status == 200 and frames_in(await resp.read()) > 100
        # nothing else: no owner routes, no live view, not another share's clip
        for path in ("/api/events", "/api/cameras/porch/live.mjpeg", "/api/shares"):
            async with visitor.get(base(hub) + path) as resp:
                assert resp.status == 401
        cookies = {c.key: c.value for c in visitor.cookie_jar if c.key.startswith("camhub_share")}
        assert set(cookies) == {"camhub_share", "camhub_share_open"}
        visitor.cookie_jar.update_cookies(
            cookies, response_url=aiohttp.client.URL(base(hub) + f"/share/{other['id']}/")
        )
        async with visitor.get(f"{base(hub)}/share/{other['id']}/clip.mp4") as resp:
            assert resp.status == 403
    rows = audit_kinds(hub, since)
    kinds = [k for k, _, _ in rows]
    assert "share created" in kinds and "share used" in kinds and "share refused" in kinds
    secret = share["link"].partition("#")[2]
    assert all(secret not in json.dumps(r) for r in rows)  # never in the log


async def test_forged_tampered_revoked_used_up_and_expired_links_are_refused(hub: Hub) -> None:
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub)
        once = await create_share(owner, hub, max_views=1)
        expiring = await create_share(owner, hub)
        path, _, secret = share["link"].partition("#")
        tampered = ("A" if secret[0] != "A" else "B") + secret[1:]
        forged = f"/share/{'0' * 16}/#{secret}"
        for link in (f"{path}#{tampered}", forged, f"{path}#short"):
            status, visitor = await open_link(hub, link)
            await visitor.close()
            assert status == 403, link
        # used up: one view, then refused
        status, visitor = await open_link(hub, once["link"])
        await visitor.close()
        assert status == 200
        status, visitor = await open_link(hub, once["link"])
        await visitor.close()
        assert status == 403
        # revoked: the keys are gone, the link opens nothing
        status, visitor = await open_link(hub, share["link"])
        assert status == 200
        async with owner.delete(f"{base(hub)}/api/shares/{share['id']}", headers=origin(hub)) as r:
            assert r.status == 204
        async with visitor.get(f"{base(hub)}/share/{share['id']}/clip.mp4") as resp:
            assert resp.status == 403
        await visitor.close()
        assert hub.index.share_keys(share["id"]) == []
        # expired: as if its time had passed; housekeeping deletes its keys
        with sqlite3.connect(hub.paths.index) as db:
            db.execute(
                "UPDATE shares SET expires = ? WHERE id = ?", (time.time() - 1, expiring["id"])
            )
        status, visitor = await open_link(hub, expiring["link"])
        await visitor.close()
        assert status == 403
        hub._end_due(time.time())
        assert hub.index.share_keys(expiring["id"]) == []
        async with owner.get(base(hub) + "/api/shares") as resp:
            states = {s["id"]: s["state"] for s in await resp.json()}
        assert states[share["id"]] == "revoked" and states[expiring["id"]] == "expired"
    reasons = [d.get("reason") for k, _, d in audit_kinds(hub) if k == "share refused"]
    assert {"wrong secret", "no such share", "malformed secret", "share used up"} <= set(reasons)
    assert {"share revoked", "share expired"} <= set(reasons)


async def test_audit_log_verifies_and_detects_an_edited_record(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client:
        async with client.get(base(hub) + "/api/audit/verify") as resp:
            verdict = await resp.json()
        assert verdict["ok"] and verdict["records"] > 5
        async with client.get(base(hub) + "/api/audit?limit=3") as resp:
            newest = await resp.json()
        assert [r["seq"] for r in newest] == sorted((r["seq"] for r in newest), reverse=True)
        with sqlite3.connect(hub.paths.index) as db:
            original = db.execute("SELECT actor FROM audit WHERE seq = 3").fetchone()[0]
            db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 3")
        try:
            async with client.get(base(hub) + "/api/audit/verify") as resp:
                verdict = await resp.json()
            assert not verdict["ok"] and verdict["first_broken"] == 3
        finally:
            with sqlite3.connect(hub.paths.index) as db:
                db.execute("UPDATE audit SET actor = ? WHERE seq = 3", (original,))


def mapped(data: bytes) -> memoryview:
    """A clip as `hub.clip` makes one: a read-only view of an mmap of its own."""
    memory = mmap.mmap(-1, len(data), flags=mmap.MAP_PRIVATE)
    memory[:] = data
    return memoryview(memory).toreadonly()


def test_clip_cache_counts_the_clip_being_built_and_forgets_stale_ones() -> None:
    cache = ClipCache(max_bytes=100, ttl=0.2)
    built: list[str] = []

    def clip(name: str, size: int) -> Callable[[int], memoryview]:
        def build(max_bytes: int) -> memoryview:
            assert max_bytes == 100 - cache.live  # the room left: it may use no more
            built.append(name)
            return mapped(name.encode() * size)

        return build

    assert cache.build(("owner", "a"), 40, clip("a", 40)) == b"a" * 40
    assert cache.build(("share", "b"), 40, clip("b", 40)) == b"b" * 40
    assert cache.get(("owner", "a")) == b"a" * 40  # a is now the most recently used
    # c needs 40: room is made before building (b, the least recently used, goes)
    cache.build(("owner", "c"), 40, clip("c", 40))
    assert cache.get(("share", "b")) is None and cache.size == cache.live == 80
    # asked again while cached: not built again
    cache.build(("owner", "c"), 40, clip("c", 40))
    assert built == ["a", "b", "c"] and cache.assembled == 3
    # footage larger than the whole budget is refused before anything is decrypted
    with pytest.raises(ClipTooLarge):
        cache.build(("owner", "d"), 101, clip("d", 101))
    assert built == ["a", "b", "c"]
    cache.drop(is_owner_clip)
    assert len(cache) == 0 and cache.size == cache.live == 0
    cache.build(("share", "e"), 10, clip("e", 10))
    time.sleep(0.3)
    cache.evict_stale()
    assert len(cache) == 0 and cache.size == cache.live == 0


async def test_footage_routes_refuse_head(hub: Hub) -> None:
    """HEAD would decrypt a clip (or start a stream) and log a look, for no picture."""
    since = last_seq(hub)
    client = await logged_in(hub)
    async with client:
        for path in (
            f"/api/events/{hub.test_event}/clip.mp4",  # type: ignore[attr-defined]
            "/api/cameras/porch/live.mjpeg",
            "/api/cameras/porch/snapshot.jpg",
            "/share/0123456789abcdef/clip.mp4",
        ):
            async with client.head(base(hub) + path) as resp:
                assert resp.status == 405, path
    kinds = {k for k, _, _ in audit_kinds(hub, since)}
    assert not kinds & {"clip served", "live view started", "snapshot served"}


def owner_clips(hub: Hub) -> int:
    return sum(1 for key in hub.clips._clips if is_owner_clip(key))


async def test_the_last_session_ending_drops_the_owners_clips(hub: Hub) -> None:
    """Decrypted clips stay in memory only while some owner session is open: logout and
    idle expiry (found by housekeeping, with no request coming) both drop them."""
    hub.sessions.clear()  # sessions left open by earlier tests
    url = f"{base(hub)}/api/events/{hub.test_event}/clip.mp4"  # type: ignore[attr-defined]
    client = await logged_in(hub)
    async with client:
        async with client.get(url) as resp:
            assert resp.status == 200
        assert owner_clips(hub) == 1
        async with client.post(base(hub) + "/api/logout", headers=origin(hub)) as resp:
            assert resp.status == 204
    assert owner_clips(hub) == 0
    client = await logged_in(hub)
    async with client:
        async with client.get(url) as resp:
            assert resp.status == 200
        assert owner_clips(hub) == 1
        since = last_seq(hub)
        hub._end_due(time.time() + hub.sessions.idle_seconds + 1)
    assert owner_clips(hub) == 0 and len(hub.sessions) == 0
    assert [k for k, _, _ in audit_kinds(hub, since)].count("session expired") == 1


async def test_a_flood_of_bad_links_is_summed_in_the_access_log(hub: Hub) -> None:
    """Refusals cost an attacker nothing; each one must not cost an fsynced record."""
    flush_refusals(hub)  # earlier tests'
    since = last_seq(hub)
    forged = "0123456789abcdef"
    async with aiohttp.ClientSession() as visitor:
        for _ in range(40):
            async with visitor.post(
                f"{base(hub)}/share/{forged}/open",
                json={"secret": "A" * 43},
                headers=origin(hub),
            ) as resp:
                assert resp.status == 403
    refused = [d for k, _, d in audit_kinds(hub, since) if k == "share refused"]
    assert refused == [{"reason": "no such share"}]
    flush_refusals(hub)
    refused = [d for k, _, d in audit_kinds(hub, since) if k == "share refused"]
    assert len(refused) == 2 and refused[1]["repeats"] == 39
    assert hub.audit.verify().ok


async def test_reloading_a_share_page_uses_no_second_view(hub: Hub) -> None:
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub, max_views=1, label="one look")
    flush_refusals(hub)
    since = last_seq(hub)
    path, _, secret = share["link"].partition("#")
    status, visitor = await open_link(hub, share["link"])
    async with visitor:
        assert status == 200
        for _ in range(2):  # the same browser reloads: it holds the link's cookie
            async with visitor.post(
                base(hub) + path + "open", json={"secret": secret}, headers=origin(hub)
            ) as resp:
                assert resp.status == 200 and (await resp.json())["views"] == 1
        async with visitor.get(base(hub) + path + "clip.mp4") as resp:
            assert resp.status == 200
    status, stranger = await open_link(hub, share["link"])  # another browser: used up
    await stranger.close()
    assert status == 403
    kinds = [k for k, _, _ in audit_kinds(hub, since)]
    assert kinds.count("share used") == 1 and "share refused" in kinds


async def test_login_seals_the_access_log_and_verify_checks_the_seal(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client, client.get(base(hub) + "/api/audit/verify") as resp:
        verdict = await resp.json()
    assert verdict["ok"] is True and verdict["first_broken"] is None
    newest_at_login = next(r.seq for r in hub.audit.recent(0, 200) if r.kind == "vault unlocked")
    assert verdict["sealed_through"] >= newest_at_login
    assert verdict["records"] >= verdict["sealed_through"]


async def test_event_pages_follow_a_cursor(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client:
        async with client.get(base(hub) + "/api/events?camera=hall&limit=500") as resp:
            everything = [e["id"] for e in (await resp.json())["events"]]
        assert len(everything) >= 1
        paged: list[int] = []
        url = base(hub) + "/api/events?camera=hall&limit=1"
        while True:
            async with client.get(url) as resp:
                page = await resp.json()
            paged += [e["id"] for e in page["events"]]
            if len(paged) == 1:  # an event begins while the owner pages: nothing shifts
                newest = max(hub.index.events("hall", limit=1)[0].start_time, time.time())
                hub.index.add_event("hall", newest + 1)
            if not page["more"]:
                break
            url = f"{base(hub)}/api/events?camera=hall&limit=1&before={paged[-1]}"
        assert paged == everything
        for bad in ("999999999", "abc", "0"):
            async with client.get(f"{base(hub)}/api/events?before={bad}") as resp:
                assert resp.status == 400, bad
