"""Share links and request parsing under attack, against a real hub on 127.0.0.1.

Issue 8, items 12-14: a share's view limit held only against honest browsers (the
secret as a cookie passed for a reload, and the clip never counted), the owner-only
label reached the recipient, and some malformed requests were answered 500 with a
traceback in the log. Real HTTP from aiohttp's client, each "browser" its own cookie
jar; the index is the real SQLite file of the hub that `test_web` also uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from hubkit import base, logged_in, origin
from test_web import (  # the same module-scoped hub fixture and helpers
    audit_kinds,
    create_share,
    flush_refusals,
    frames_in,
    hub,
    last_seq,
    open_link,
)

from hub.daemon import Hub
from hub.store import Index, ShareEnd, ShareRow

__all__ = ["hub"]  # the fixture, imported for pytest

SECRET_COOKIE = "camhub_share"
OPEN_COOKIE = "camhub_share_open"


def browser() -> aiohttp.ClientSession:
    """A new browser: a cookie jar of its own."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def with_cookie(client: aiohttp.ClientSession, hub: Hub, share_id: str, **cookies: str) -> None:
    client.cookie_jar.update_cookies(
        cookies, response_url=aiohttp.client.URL(f"{base(hub)}/share/{share_id}/")
    )


def cookie(client: aiohttp.ClientSession, name: str) -> str | None:
    return next((c.value for c in client.cookie_jar if c.key == name), None)


async def reopen(client: aiohttp.ClientSession, hub: Hub, link: str) -> tuple[int, dict]:
    """The same browser opens the link again (its cookies go along)."""
    path, _, secret = link.partition("#")
    async with client.post(
        base(hub) + path + "open", json={"secret": secret}, headers=origin(hub)
    ) as resp:
        return resp.status, await resp.json()


def uses(hub: Hub, since: int, kind: str, share_id: str) -> int:
    """How many uses of a share the access log holds: records plus summed repeats."""
    total = 0
    for k, actor, detail in audit_kinds(hub, since):
        if k == kind and actor.startswith(f"share {share_id} "):
            total += detail.get("repeats", 1)  # a summary counts the uses it stands for
    return total


def age_opens(hub: Hub, share_id: str, seconds: float) -> None:
    """As if the share's opens were `seconds` older (no sleeping in tests)."""
    with sqlite3.connect(hub.paths.index) as db:
        db.execute(
            "UPDATE share_opens SET opened = opened - ? WHERE share_id = ?", (seconds, share_id)
        )


# -- item 12: a view per browser --------------------------------------------------------


async def test_a_two_view_share_opens_in_two_browsers_of_ten(hub: Hub) -> None:
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub, max_views=2)
    secret = share["link"].partition("#")[2]
    statuses = []
    for n in range(10):
        async with browser() as visitor:
            if n % 2:  # half of them send the secret as a cookie as well: no pass
                with_cookie(visitor, hub, share["id"], **{SECRET_COOKIE: secret})
            path = share["link"].partition("#")[0]
            async with visitor.post(
                base(hub) + path + "open", json={"secret": secret}, headers=origin(hub)
            ) as resp:
                statuses.append(resp.status)
            async with visitor.get(f"{base(hub)}/share/{share['id']}/clip.mp4") as resp:
                assert resp.status == (200 if statuses[-1] == 200 else 403)
    assert sorted(statuses) == [200] * 2 + [403] * 8
    row = hub.index.get_share(share["id"])
    assert row is not None and row.views == 2


async def test_a_reload_with_the_open_token_costs_no_view(hub: Hub) -> None:
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub, max_views=2)
    status, visitor = await open_link(hub, share["link"])
    async with visitor:
        assert status == 200
        token = next(c for c in visitor.cookie_jar if c.key == OPEN_COOKIE)
        assert token["httponly"] and token["samesite"] == "Strict"
        assert token["path"] == f"/share/{share['id']}/"
        for _ in range(3):  # reloads within the window: the same view
            status, info = await reopen(visitor, hub, share["link"])
            assert status == 200 and info["views"] == 1
        assert cookie(visitor, OPEN_COOKIE) == token.value  # not renewed by a reload
        # past the reload window the same browser counts a view again, with a new token
        age_opens(hub, share["id"], 3600)
        status, info = await reopen(visitor, hub, share["link"])
        assert status == 200 and info["views"] == 2
        assert cookie(visitor, OPEN_COOKIE) != token.value
    # a token of one share is nothing to another: that open counts a view
    owner = await logged_in(hub)
    async with owner:
        other = await create_share(owner, hub, max_views=1)
    async with browser() as thief:
        with_cookie(thief, hub, other["id"], **{OPEN_COOKIE: cookie(visitor, OPEN_COOKIE) or ""})
        status, info = await reopen(thief, hub, other["link"])
        assert status == 200 and info["views"] == 1
        status, _ = await reopen(thief, hub, other["link"])
        assert status == 200  # its own token now: a reload


async def test_the_clip_needs_the_open_token(hub: Hub) -> None:
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub)  # no view limit: the secret alone opened it
    secret = share["link"].partition("#")[2]
    clip = f"{base(hub)}/share/{share['id']}/clip.mp4"
    status, visitor = await open_link(hub, share["link"])
    async with visitor:
        assert status == 200
        async with visitor.get(clip) as resp:
            assert resp.status == 200 and frames_in(await resp.read()) > 10
        token = cookie(visitor, OPEN_COOKIE)
        assert token is not None
    async with browser() as stranger:  # has the secret, never opened the link
        with_cookie(stranger, hub, share["id"], **{SECRET_COOKIE: secret})
        async with stranger.get(clip) as resp:
            assert resp.status == 403
            assert "error" in await resp.json()
        with_cookie(stranger, hub, share["id"], **{OPEN_COOKIE: "A" * 43})
        async with stranger.get(clip) as resp:
            assert resp.status == 403
        # a real token whose play window is over opens nothing either
        with_cookie(stranger, hub, share["id"], **{OPEN_COOKIE: token})
        async with stranger.get(clip, headers={"Range": "bytes=0-99"}) as resp:
            assert resp.status == 206
        age_opens(hub, share["id"], 7 * 3600)
        async with stranger.get(clip, headers={"Range": "bytes=0-99"}) as resp:
            assert resp.status == 403


async def test_every_share_use_is_in_the_access_log(hub: Hub) -> None:
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub)
    flush_refusals(hub)
    since = last_seq(hub)
    clip = f"{base(hub)}/share/{share['id']}/clip.mp4"
    for _ in range(3):  # three browsers: a view, two reloads, a clip and a seek each
        status, visitor = await open_link(hub, share["link"])
        async with visitor:
            assert status == 200
            for _ in range(2):
                assert (await reopen(visitor, hub, share["link"]))[0] == 200
            async with visitor.get(clip) as resp:
                assert resp.status == 200
                size = len(await resp.read())
            async with visitor.get(clip, headers={"Range": f"bytes={size // 2}-"}) as resp:
                assert resp.status == 206
    # the first use of each kind is on record at once; the rest are summed
    assert uses(hub, since, "share used", share["id"]) >= 1
    assert uses(hub, since, "clip served", share["id"]) >= 1
    flush_refusals(hub)
    assert uses(hub, since, "share used", share["id"]) == 9
    assert uses(hub, since, "clip served", share["id"]) == 6
    row = hub.index.get_share(share["id"])
    assert row is not None and row.views == 3
    secret = share["link"].partition("#")[2]
    assert all(secret not in json.dumps(r) for r in audit_kinds(hub, since))
    assert hub.audit.verify().ok


# -- item 13: the label is the owner's -----------------------------------------------------


async def test_the_share_label_stays_with_the_owner(hub: Hub) -> None:
    label = "neighbour Bob, re the broken fence"
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub, label=label)
        async with owner.get(base(hub) + "/api/shares") as resp:
            listed = {s["id"]: s for s in await resp.json()}
        assert listed[share["id"]]["label"] == label  # the owner still sees it
    path, _, secret = share["link"].partition("#")
    async with browser() as visitor:
        async with visitor.get(base(hub) + path) as resp:
            page = await resp.text()
        async with visitor.post(
            base(hub) + path + "open", json={"secret": secret}, headers=origin(hub)
        ) as resp:
            assert resp.status == 200
            raw = await resp.text()
        assert "label" not in json.loads(raw) and "Bob" not in raw and "Bob" not in page
        async with visitor.get(base(hub) + "/static/share.js") as resp:
            assert ".label" not in await resp.text()


# -- item 14: 4xx, never 500 ---------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000
HUGE = "9" * 5000
JSON = "application/json"
OPEN = "/share/0123456789abcdef/open"


def share_body(**fields: object) -> str:
    return json.dumps({"expires_in": 3600, "event_id": 1, **fields})


# (owner session?, method, path, body, content type, status)
HOSTILE = {
    "login nested 5000 deep": (False, "POST", "/api/login", DEEP, JSON, 400),
    "login nested field": (False, "POST", "/api/login", '{"password": ' + DEEP + "}", JSON, 400),
    "login bogus charset": (False, "POST", "/api/login", "{}", JSON + "; charset=bogus", 415),
    "login utf-16": (False, "POST", "/api/login", "{}", JSON + "; charset=utf-16", 415),
    "login utf-8 is fine": (
        False,
        "POST",
        "/api/login",
        '{"password": 1}',
        JSON + "; charset=UTF-8",
        400,
    ),
    "open nested 5000 deep": (False, "POST", OPEN, DEEP, JSON, 400),
    "open nested field": (False, "POST", OPEN, '{"secret": ' + DEEP + "}", JSON, 400),
    "open bogus charset": (False, "POST", OPEN, "{}", JSON + "; charset=bogus", 415),
    "events limit": (True, "GET", f"/api/events?limit={HUGE}", None, None, 400),
    "events offset": (True, "GET", f"/api/events?offset={HUGE}", None, None, 400),
    "events before": (True, "GET", f"/api/events?before={HUGE}", None, None, 400),
    "events start": (True, "GET", f"/api/events?start={HUGE}", None, None, 400),
    "audit limit": (True, "GET", f"/api/audit?limit={HUGE}", None, None, 400),
    "audit before": (True, "GET", f"/api/audit?before={HUGE}", None, None, 400),
    "share event_id 2^63": (True, "POST", "/api/shares", share_body(event_id=2**63), JSON, 400),
    "share event_id 2^64+5": (
        True,
        "POST",
        "/api/shares",
        share_body(event_id=2**64 + 5),
        JSON,
        400,
    ),
    "share event_id -2^63-1": (
        True,
        "POST",
        "/api/shares",
        share_body(event_id=-(2**63) - 1),
        JSON,
        400,
    ),
    "share expires_in 10^400": (
        True,
        "POST",
        "/api/shares",
        share_body(expires_in=10**400),
        JSON,
        400,
    ),
    "share max_views 10^400": (
        True,
        "POST",
        "/api/shares",
        share_body(max_views=10**400),
        JSON,
        400,
    ),
    "share start 10^400": (
        True,
        "POST",
        "/api/shares",
        json.dumps({"camera_id": "hall", "start": 10**400, "end": 10**401, "expires_in": 3600}),
        JSON,
        400,
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
async def test_hostile_requests_are_4xx_without_a_traceback(
    hub: Hub, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    needs_owner, method, path, body, content_type, status = HOSTILE[case]
    client = await logged_in(hub) if needs_owner else aiohttp.ClientSession()
    caplog.set_level(logging.DEBUG)
    headers = origin(hub)
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with client, client.request(method, base(hub) + path, data=body, headers=headers) as resp:
        assert resp.status == status, await resp.text()
        answer = await resp.json()
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()
        assert "Traceback" not in record.getMessage()


async def test_open_tokens_are_stored_hashed(hub: Hub) -> None:
    """A copied index opens nothing: it holds only SHA-256 of each open token."""
    owner = await logged_in(hub)
    async with owner:
        share = await create_share(owner, hub)
    status, visitor = await open_link(hub, share["link"])
    async with visitor:
        assert status == 200
        token = cookie(visitor, OPEN_COOKIE)
    assert token is not None
    with sqlite3.connect(hub.paths.index) as db:
        rows = db.execute(
            "SELECT token_hash FROM share_opens WHERE share_id = ?", (share["id"],)
        ).fetchall()
    assert rows == [(hashlib.sha256(token.encode()).digest(),)]
    for path in Path(hub.paths.index).parent.glob("index.sqlite3*"):
        assert token.encode() not in path.read_bytes(), path


def test_a_shares_open_tokens_are_bounded_and_end_with_it(tmp_path: Path) -> None:
    """One holder of a share without a view limit opens it again and again: the index
    keeps only the newest tokens and none past the play window; ending the share
    deletes them all."""
    now = 1_800_000_000.0
    share = ShareRow(
        id="0123456789abcdef",
        secret_hash=bytes(32),
        label="",
        camera_id="hall",
        start_time=now - 60,
        end_time=now,
        event_id=None,
        created=now,
        expires=now + 86400,
        max_views=None,
        views=0,
        last_used=None,
        ended=None,
        end_reason=None,
    )
    with Index(tmp_path / "index.sqlite3") as index:
        index.add_share(share, [])

        def hashed(n: int) -> bytes:
            return hashlib.sha256(str(n).encode()).digest()

        def view(n: int, at: float, forget_before: float) -> None:
            assert index.count_share_view(
                share.id, at, hashed(n), forget_before=forget_before, keep=3
            )

        def kept() -> list[int]:
            return [n for n in range(10) if index.share_opened(share.id, hashed(n)) is not None]

        for n in range(5):
            view(n, now + n, forget_before=0)
        assert kept() == [2, 3, 4]  # the newest three
        view(5, now + 100, forget_before=now + 3.5)
        assert kept() == [4, 5]  # and none issued before the play window
        assert index.share_opened("fedcba9876543210", hashed(5)) is None  # another share's
        assert index.end_share(share.id, now + 200, ShareEnd.REVOKED)
        assert kept() == []
