"""The live cards' camera health, and the page as a home-screen app, in a real headless
Chromium.

A real hub runs in this process with two cameras with long names: the person clip
served over RTSP by GStreamer (768x432 at 10 fps), and a camera whose address nobody
answers (refused). On a desktop and on a 390 px phone the cards say, without a
reload: connected with size, frame rate and bit rate; offline with the reason in
words and the reconnects; and no text of a card is cut (every text box is as wide as
its text). The manifest is read by Chromium itself (DevTools' `Page.getAppManifest`),
which finds the page installable, and every icon it names is served as the PNG of the
size it states. Screenshots go to
docs/screenshots/ under `make screenshots`.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hubkit import base, make_hub, running
from rtsp_camera import RtspCamera
from test_browser import (
    DESKTOP,
    PHONE,
    PageProblems,
    browser,  # noqa: F401 - the fixture
    log_in,
    new_context,
    shot,
)

from hub.daemon import Hub, IndexedEvents
from hub.motion import MotionEvent

try:
    from playwright.sync_api import Browser, Page
    from playwright.sync_api import expect as pw_expect
except ImportError:  # pragma: no cover - reported by test_browser's fixture
    pass

pytestmark = pytest.mark.slow

DOOR = "Front door by the garden gate, the one with the bell"
GARAGE = "Garage side entrance beside the recycling bins"
CAMERAS = """
[[camera]]
id = "door"
name = "{door}"
url = "{door_url}"

[[camera]]
id = "garage"
name = "{garage}"
url = "rtsp://127.0.0.1:{dead_port}/cam"
"""
HEALTH_TIMEOUT_MS = 30_000  # the figures come with the first 2 s window and a look
# Every element of a card that shows text, and whether it is as wide as its text.
CUT_TEXT = """card => [...card.querySelectorAll(
    '.camera-name, .status, .camera-reason, .camera-meta > span, .live-stats, .motion-badge')]
  .filter(e => e.offsetParent !== null && e.textContent.trim())
  .filter(e => e.scrollWidth > e.clientWidth + 1
            || e.getBoundingClientRect().right > card.getBoundingClientRect().right + 1)
  .map(e => `${e.className}: ${e.textContent} (${e.scrollWidth} > ${e.clientWidth})`)"""


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Iterator[Hub]:
    with RtspCamera(person_clip) as door:
        cameras = CAMERAS.format(door=DOOR, door_url=door.url, garage=GARAGE, dead_port=dead_port())
        with running(make_hub(tmp_path_factory.mktemp("health-browser"), cameras)) as started:
            yield started


def card(page: Page, camera_id: str):  # -> Locator
    return page.locator(f'.camera-card[data-camera="{camera_id}"]')


def check_health(page: Page) -> None:
    door, garage = card(page, "door"), card(page, "garage")
    pw_expect(door.locator(".status")).to_have_text("Connected")
    meta = door.locator(".camera-meta")
    pw_expect(meta).to_contain_text("768\u00d7432", timeout=HEALTH_TIMEOUT_MS)
    pw_expect(meta).to_contain_text(re.compile(r"\b(9|10|11) fps"), timeout=HEALTH_TIMEOUT_MS)
    pw_expect(meta).to_contain_text(re.compile(r"\d+ kbit/s"), timeout=HEALTH_TIMEOUT_MS)
    pw_expect(door.locator(".camera-reason")).to_be_hidden()
    pw_expect(garage.locator(".status")).to_have_text("Offline", timeout=HEALTH_TIMEOUT_MS)
    reason = garage.locator(".camera-reason")
    pw_expect(reason).to_have_text("cannot connect: connection refused")
    placeholder = garage.locator(".live-placeholder")
    pw_expect(placeholder).to_have_text("No picture while the camera is offline.")
    pw_expect(garage.locator(".camera-meta")).to_contain_text(
        re.compile(r"\d+ reconnects? since start"), timeout=HEALTH_TIMEOUT_MS
    )
    for each in (door, garage):
        pw_expect(each.locator(".camera-name")).to_be_visible()
        assert each.evaluate(CUT_TEXT) == []


def check_events_uncut(page: Page, running: Hub) -> None:
    """The Events list on the phone: the long camera name wraps, nothing is cut."""
    now = time.time()
    events = IndexedEvents(running.index, running.archive)
    box = (0.2, 0.2, 0.3, 0.5)
    event_id = events.event_started("door", MotionEvent(now - 4, None, 0.2, now - 3, box, now - 3))
    events.event_ended("door", event_id, MotionEvent(now - 4, now, 0.2, now - 3, box, now), None)
    page.click('.tab[data-tab="events"]')
    item = page.locator(f'.event[data-event="{event_id}"]')
    pw_expect(item.locator(".event-camera")).to_have_text(DOOR)
    cut = item.evaluate(
        """item => [...item.querySelectorAll('.event-time, .event-camera, .event-meta')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"""
    )
    assert cut == []


def test_the_live_cards_say_each_camera_s_health_uncut_on_a_desktop_and_a_phone(
    hub: Hub,
    browser: Browser,  # noqa: F811 - the fixture
) -> None:
    problems = PageProblems()
    owner = new_context(browser, DESKTOP)
    try:
        page = problems.watch(owner.new_page())
        page.goto(base(hub) + "/#live")
        log_in(page)
        check_health(page)
        shot(page, "live-health.png")
        phone = new_context(
            browser,
            PHONE,
            storage_state=owner.storage_state(),
            is_mobile=True,
            has_touch=True,
            device_scale_factor=2,
        )
        try:
            small = problems.watch(phone.new_page())
            small.goto(base(hub) + "/#live")
            check_health(small)
            # The long name wraps: its box is taller than one line, not cut to "Fro…".
            name = card(small, "door").locator(".camera-name")
            assert name.evaluate("e => e.getBoundingClientRect().height") > 1.5 * float(
                name.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 20")
            )
            card(small, "garage").scroll_into_view_if_needed()
            shot(small, "live-health-phone.png")
            check_events_uncut(small, hub)
        finally:
            phone.close()
    finally:
        owner.close()
    assert problems.found == []


def test_chromium_reads_the_manifest_and_every_icon_is_the_png_it_says(
    hub: Hub,
    browser: Browser,  # noqa: F811 - the fixture
) -> None:
    problems = PageProblems()
    context = new_context(browser, PHONE, is_mobile=True, has_touch=True)
    try:
        page = problems.watch(context.new_page())
        page.goto(base(hub) + "/")
        pw_expect(page.locator("#login-view")).to_be_visible()
        cdp = context.new_cdp_session(page)
        found = cdp.send("Page.getAppManifest")
        assert found["url"] == base(hub) + "/static/manifest.webmanifest"
        assert found["errors"] == [], found["errors"]
        # Installable but for the test's own browser: a Playwright context is incognito.
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert {e["errorId"] for e in errors} <= {"in-incognito"}, errors
        theme = page.locator('meta[name="theme-color"]').get_attribute("content")
        touch = page.locator('link[rel="apple-touch-icon"]').get_attribute("href")
    finally:
        context.close()
    assert problems.found == []
    manifest = json.loads(found["data"])
    assert (manifest["display"], manifest["start_url"], manifest["theme_color"]) == (
        "standalone",
        "/",
        theme,
    )
    icons = manifest["icons"]
    assert {icon["purpose"] for icon in icons} == {"any", "maskable"}
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in icons if icon["purpose"] == "any"}
    wanted = [(icon["src"], icon["sizes"]) for icon in icons] + [(touch, "180x180")]
    for src, sizes in wanted:
        with urllib.request.urlopen(base(hub) + src) as resp:
            assert resp.headers["Content-Type"] == "image/png", src
            assert "img-src 'self'" in resp.headers["Content-Security-Policy"]
            data = resp.read()
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert picture is not None, src
        assert f"{picture.shape[1]}x{picture.shape[0]}" == sizes, src
    # A maskable icon fills its square (the platform cuts its own shape out of it).
    with urllib.request.urlopen(base(hub) + "/static/icon-maskable-512.png") as resp:
        maskable = cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert maskable.shape[2] == 3 or int(maskable[:, :, 3].min()) == 255
