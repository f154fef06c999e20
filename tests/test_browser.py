"""The owner's web page and a share link, end to end, in a real headless Chromium.

A real hub runs in this process (two cameras: the synthetic porch, and the real person
clip played back in real time and recorded continuously); Chromium, driven by
Playwright, uses the page the way the owner and a friend would: log in (after wrong
passwords and the throttle), watch live, play an event's clip, share it, open the link
in a clean browser, revoke it, see the link refused, and read the access log. A
screenshot of each view is taken; `make screenshots` (CAMHUB_SCREENSHOTS=docs/screenshots)
keeps them for the README, other runs throw them away.

Needs Debian's `chromium` at /usr/bin/chromium and the `playwright` Python package
(its own browser download is not used); the test says so and fails when either is missing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import pytest
from hubkit import PASSWORD, make_hub, running
from mosquitto import PASSWORD as BROKER_PASSWORD
from mosquitto import USER as BROKER_USER
from mosquitto import Broker
from rtsp_camera import RtspCamera
from test_footage import ffprobe_frames

from hub.alerts.sink import AnnouncingEvents
from hub.daemon import Hub, IndexedEvents
from hub.motion import MotionEvent
from hub.store import SegmentState

try:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, sync_playwright
    from playwright.sync_api import expect as pw_expect
except ImportError:  # pragma: no cover - reported by the fixture below
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
# The committed pictures change only when asked for; other runs write to scratch.
SCREENSHOTS = Path(
    os.environ.get("CAMHUB_SCREENSHOTS") or Path(tempfile.gettempdir()) / "camhub-screenshots"
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SEGMENT_SECONDS = 2
SEGMENTS_WANTED = 3  # complete segments of the file camera before the event is made
SEGMENT_WAIT = 25.0  # seconds
STEP_TIMEOUT_MS = 15_000  # any single wait in the browser
PLAY_TIMEOUT_MS = 15_000  # a clip to load and advance
EVENTS_PAGE = 30  # as in app.js
MAX_WRONG_TRIES = 6  # the hub throttles after 3 free failures (hub/web/auth.py)
THROTTLE_TIMEOUT_MS = 20_000  # the wait it imposes: 1, 2, 4... s

CAMERAS = """
[[camera]]
id = "porch"
name = "Front porch"
url = "synthetic:porch"

[[camera]]
id = "hall"
name = "Hallway"
url = "file://{clip}"
realtime = true
record = "continuous"
"""


# -- the hub ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningHub:
    hub: Hub
    base: str  # http://127.0.0.1:PORT
    event_id: int


@pytest.fixture(scope="module")
def running_hub(
    tmp_path_factory: pytest.TempPathFactory, person_clip: Path
) -> Iterator[RunningHub]:
    made = make_hub(
        tmp_path_factory.mktemp("browser-hub"),
        CAMERAS.format(clip=person_clip),
        storage=f"segment_seconds = {SEGMENT_SECONDS}",
    )
    with running(made) as hub:
        yield RunningHub(hub, f"http://127.0.0.1:{hub.web.port}", make_event(hub, person_clip))


def make_event(hub: Hub, clip: Path, camera_id: str = "hall") -> int:
    """An event over footage the file camera has really recorded, with a real snapshot.

    Motion events come on their own too, but on the clip's schedule; this one is over
    complete segments within seconds of start-up, through the hub's own index.
    """
    deadline = time.monotonic() + SEGMENT_WAIT
    while True:
        done = [
            row
            for row in hub.index.segments(camera_id)
            if row.state is SegmentState.COMPLETE and row.end_time is not None
        ]
        if len(done) >= SEGMENTS_WANTED:
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"the file camera recorded {len(done)} complete segment(s) in "
                f"{SEGMENT_WAIT:.0f} s, wanted {SEGMENTS_WANTED}"
            )
        time.sleep(0.2)
    oldest, newest = done[-1], done[0]  # newest first
    assert newest.end_time is not None
    start, end = oldest.start_time + 0.5, newest.end_time - 0.5
    event_id = hub.index.add_event(camera_id, start)
    snapshot = hub.archive.save_snapshot(camera_id, event_id, start, still_from(clip, 12.0))
    hub.index.end_event(
        event_id,
        end_time=end,
        peak_score=0.05,
        peak_time=(start + end) / 2,
        bbox=(0.4, 0.2, 0.2, 0.6),
        snapshot_id=snapshot,
    )
    return event_id


def add_old_events(hub: Hub, count: int) -> list[int]:
    """Motion events of two days ago on the porch camera, with no footage left (as if
    retention had deleted it): enough to page through, and a clip the hub must refuse."""
    start = time.time() - 2 * 86400
    ids = []
    for n in range(count):
        event_id = hub.index.add_event("porch", start + n * 60)
        hub.index.end_event(
            event_id,
            end_time=start + n * 60 + 8,
            peak_score=0.02,
            peak_time=start + n * 60 + 4,
            bbox=None,
        )
        ids.append(event_id)
    return ids


def still_from(clip: Path, seconds: float) -> bytes:
    """A JPEG of the clip's first frame at or after `seconds`."""
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds:
                ok, jpeg = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"))
                assert ok
                return jpeg.tobytes()
    raise AssertionError(f"{clip} is shorter than {seconds} s")


# -- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail("the playwright package is missing: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/system-deps.sh)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


class PageProblems:
    """Uncaught script errors and CSP violations on any page of a context."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda exc: self.found.append(f"uncaught: {exc}"))
        page.on("console", self._console)
        return page

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.found.append(f"CSP: {text}")


def new_context(browser: Browser, viewport: dict[str, int], **options: Any) -> BrowserContext:
    context = browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    return context


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), animations="disabled", caret="initial")


def wait_until(page: Page, script: str, arg: object = None, timeout: int = STEP_TIMEOUT_MS) -> Any:
    handle = page.wait_for_function(script, arg=arg, timeout=timeout)
    return handle.json_value()


# Draw an <img> or <video> on a canvas and sum a sample of its pixels: a cheap fingerprint of the
# picture currently shown, to see that a live view keeps changing.
FINGERPRINT = """img => {
  const c = document.createElement('canvas');
  c.width = 64; c.height = 36;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0, 64, 36);
  const d = g.getImageData(0, 0, 64, 36).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 1) sum = (sum * 31 + d[i]) % 1000000007;
  return sum;
}"""


HD_VIEW, MJPEG_VIEW = ".live-video", ".live-img"
SHOWING = {
    HD_VIEW: "v => !v.hidden && v.readyState >= 2 && v.videoWidth > 0",
    MJPEG_VIEW: "i => !i.hidden && i.complete && i.naturalWidth > 0",
}
HD_SECONDS = 20  # watched for the live-edge check
MAX_LIVE_LAG = 1.5  # seconds of buffered picture ahead of the playhead


def expect_live_pictures(page: Page, view: str = HD_VIEW) -> None:
    """Every camera card shows a decoded picture in `view` (HD <video>, or the MJPEG
    <img> fallback), the picture keeps changing, and the camera's frame rate is shown
    (from the page's event stream)."""
    cards = page.locator(".camera-card")
    pw_expect(cards).to_have_count(2)
    wait_until(page, f"() => [...document.querySelectorAll('{view}')].every({SHOWING[view]})")
    for camera_id in ("porch", "hall"):
        picture = page.locator(f'.camera-card[data-camera="{camera_id}"] {view}')
        first = picture.evaluate(FINGERPRINT)
        deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
        while picture.evaluate(FINGERPRINT) == first:
            assert time.monotonic() < deadline, f"{camera_id}: the live picture never changed"
            page.wait_for_timeout(100)
    for meta in page.locator(".camera-card .camera-meta").all():
        pw_expect(meta).to_contain_text(re.compile(r"\d+(\.\d)? fps"))


def expect_playing(page: Page, selector: str) -> None:
    """A <video> has data, a duration, and its time advances."""
    video = page.locator(selector)
    wait_until(
        page,
        "v => v.readyState >= 2 && v.duration > 0 && isFinite(v.duration)",
        video.element_handle(),
        PLAY_TIMEOUT_MS,
    )
    video.evaluate("v => { if (v.paused) return v.play(); }")
    start = video.evaluate("v => v.currentTime")
    wait_until(
        page,
        "([v, t]) => v.currentTime > t + 0.5 && !v.error",
        [video.element_handle(), start],
        PLAY_TIMEOUT_MS,
    )
    video.evaluate("v => v.pause()")  # still, with its controls, for the screenshot


def audit_kinds(page: Page) -> list[str]:
    return page.locator("#log-body tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")


# -- the steps ---------------------------------------------------------------------------


def log_in_past_the_throttle(page: Page) -> None:
    """Wrong passwords are refused, then throttled (the button counts down), then the
    right one opens the page on the Live tab."""
    pw_expect(page.locator("#login-view")).to_be_visible()
    shot(page, "login.png")
    login, error = page.locator("#login-password"), page.locator("#login-error")
    submit = page.locator("#login-submit")
    answer = re.compile(r"^(Wrong password\.|too many failed logins.*)$")
    for attempt in range(MAX_WRONG_TRIES):
        login.fill("not the password")
        submit.click()  # clears the previous answer at once
        pw_expect(error).to_have_text(answer)
        if attempt == 0:
            pw_expect(error).to_have_text("Wrong password.")
        if "too many" in (error.text_content() or ""):
            break
        pw_expect(submit).to_be_enabled()
    else:
        pytest.fail(f"no throttling after {MAX_WRONG_TRIES} wrong passwords")
    pw_expect(submit).to_be_disabled()
    pw_expect(submit).to_have_text(re.compile(r"^Try again in \d+ s$"))
    pw_expect(submit).to_be_enabled(timeout=THROTTLE_TIMEOUT_MS)
    log_in(page)


def log_in(page: Page) -> None:
    page.locator("#login-password").fill(PASSWORD)
    page.click("#login-submit")
    pw_expect(page.locator("#app-view")).to_be_visible()
    pw_expect(page.locator("#login-view")).to_be_hidden()


def check_live(page: Page) -> None:
    pw_expect(page.locator('.tab[data-tab="live"]')).to_have_class(re.compile(r"\bactive\b"))
    expect_live_pictures(page)
    for status in page.locator(".camera-card .status").all():
        pw_expect(status).to_have_text("Connected")
    pw_expect(page.locator(".camera-card .camera-name")).to_have_text(["Front porch", "Hallway"])
    # The view, its resolution and the clock of the newest picture.
    stats = page.locator('.camera-card[data-camera="hall"] .live-stats')
    pw_expect(stats).to_have_text(re.compile(r"^HD · 768\u00d7432 · picture of \S+"))
    shot(page, "live.png")


def check_hd_live_edge(page: Page) -> None:
    """The HD view plays the camera's own picture at its size and stays near the live
    edge: sampled once a second for HD_SECONDS, playback advances and the buffered
    picture ahead of the playhead stays under MAX_LIVE_LAG."""
    video = page.locator('.camera-card[data-camera="hall"] .live-video').element_handle()
    samples = []
    for _ in range(HD_SECONDS):
        samples.append(
            video.evaluate(
                "v => ({t: v.currentTime, w: v.videoWidth, h: v.videoHeight, "
                "lag: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime"
                " : null, error: v.error && v.error.message})"
            )
        )
        page.wait_for_timeout(1000)
    assert all(s["error"] is None for s in samples), samples
    assert {(s["w"], s["h"]) for s in samples} == {(768, 432)}
    assert samples[-1]["t"] > samples[0]["t"] + HD_SECONDS / 2, samples
    lags = [s["lag"] for s in samples]
    assert all(lag is not None and lag < MAX_LIVE_LAG for lag in lags), lags
    print(f"HD live edge lag over {HD_SECONDS} s: median {sorted(lags)[len(lags) // 2]:.2f} s")


def check_mjpeg_fallback(
    browser: Browser, owner: BrowserContext, base: str, problems: PageProblems
) -> None:
    """A browser without Media Source Extensions gets the MJPEG view instead."""
    old = new_context(browser, DESKTOP, storage_state=owner.storage_state())
    old.add_init_script("delete window.MediaSource; delete window.ManagedMediaSource;")
    try:
        page = problems.watch(old.new_page())
        page.goto(base + "/#live")
        expect_live_pictures(page, MJPEG_VIEW)
        pw_expect(page.locator(HD_VIEW)).to_have_count(2)
        assert page.locator(HD_VIEW).evaluate_all("vs => vs.every(v => v.hidden)")
        stats = page.locator('.camera-card[data-camera="hall"] .live-stats')
        clock = r"picture of \d+:\d\d:\d\d"
        pw_expect(stats).to_have_text(re.compile(rf"^MJPEG · 768\u00d7432 · {clock}"))
        # The clock goes on with the pictures (from the hub's status stream).
        first = re.search(clock, stats.inner_text())
        pw_expect(stats).not_to_have_text(re.compile(re.escape(first[0]) if first else "^$"))
    finally:
        old.close()


def check_live_on_a_phone(
    browser: Browser, owner: BrowserContext, base: str, problems: PageProblems
) -> None:
    phone = new_context(
        browser,
        PHONE,
        storage_state=owner.storage_state(),  # the owner's session cookie
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    try:
        page = problems.watch(phone.new_page())
        page.goto(base + "/#live")
        expect_live_pictures(page)
        shot(page, "live-phone.png")
    finally:
        phone.close()


def check_events(page: Page, event_id: int) -> Locator:
    """The event is listed with its thumbnail; the camera filter works. Its item."""
    page.click('.tab[data-tab="events"]')
    item = page.locator(f'.event[data-event="{event_id}"]')
    pw_expect(item).to_be_visible()
    wait_until(page, "i => i.complete && i.naturalWidth > 0", item.locator("img").element_handle())
    pw_expect(item.locator(".event-camera")).to_have_text("Hallway")
    # The clip's real length (pre-roll, motion, post-roll), then the motion's.
    pw_expect(item.locator(".event-meta")).to_have_text(re.compile(r"^clip \d+ s · motion \d+ s$"))
    pw_expect(page.locator("#cameras .camera-card")).to_have_count(0)  # live streams closed
    shot(page, "events.png")
    page.select_option("#events-camera", "porch")
    pw_expect(item).to_have_count(0)
    page.select_option("#events-camera", "hall")
    pw_expect(item).to_be_visible()
    cameras_listed = page.locator(".event .event-camera").all_text_contents()
    assert cameras_listed and set(cameras_listed) == {"Hallway"}, cameras_listed
    return item


def play_and_share(page: Page, item: Locator, base: str) -> tuple[str, str]:
    """Play the event's clip, share it (7 days, 5 views, a label), copy the link, which
    is shown once. The link and the share's id."""
    item.click()
    pw_expect(page.locator("#player")).to_be_visible()
    pw_expect(page.locator("#player-title")).to_have_text("Hallway")
    expect_playing(page, "#player-video")
    shot(page, "player.png")

    page.click("#player-share")
    dialog = page.locator("#share-dialog")
    pw_expect(dialog).to_be_visible()
    dialog.get_by_label("7 days").check()
    page.fill("#share-views", "5")
    page.fill("#share-label", "For the insurer")
    page.click("#share-create")
    pw_expect(page.locator("#share-result")).to_be_visible()
    link = page.locator("#share-link").input_value()
    match = re.fullmatch(re.escape(base) + r"/share/([0-9a-f]{16})/#([A-Za-z0-9_\-]{20,})", link)
    assert match, f"unexpected share link {link!r}"
    page.click("#share-copy")
    pw_expect(page.locator("#share-copied")).not_to_be_empty()
    assert page.evaluate("navigator.clipboard.readText()") == link
    shot(page, "share-dialog.png")
    page.keyboard.press("Escape")  # the share dialog
    page.keyboard.press("Escape")  # the player
    pw_expect(page.locator("#player")).to_be_hidden()
    return link, match.group(1)


def check_link_plays(
    browser: Browser, link: str, base: str, share_id: str, problems: PageProblems, clip: str
) -> None:
    """A friend opens the link in a clean browser: the secret leaves the address bar at
    once, and the clip plays, said to be as long as the owner's list says (`clip`). The
    owner's label is nowhere on their page. Opening the link again in the same browser
    uses no second view, and plays again."""
    friend = new_context(browser, DESKTOP)
    try:
        page = problems.watch(friend.new_page())
        page.goto(link)
        pw_expect(page.locator("#share-clip")).to_be_visible()
        assert page.evaluate("location.hash") == ""
        assert page.url == f"{base}/share/{share_id}/"
        pw_expect(page.locator("#share-title")).to_have_text("Shared clip")
        pw_expect(page.locator("#share-views")).to_have_text("View 1 of 5")
        pw_expect(page.locator("#share-camera")).to_have_text(
            re.compile(rf"^Hallway · recorded .+ · {re.escape(clip)}$")
        )
        expect_playing(page, "#share-video")
        assert "insurer" not in page.content() and "insurer" not in page.title()
        shot(page, "share-page.png")
        page.goto("about:blank")  # else the link is only a fragment change: no reload
        page.goto(link)
        pw_expect(page.locator("#share-clip")).to_be_visible()
        pw_expect(page.locator("#share-views")).to_have_text("View 1 of 5")
        expect_playing(page, "#share-video")
    finally:
        friend.close()


def revoke(page: Page, share_id: str) -> None:
    """The share is listed live, viewed once; the owner revokes it."""
    page.click('.tab[data-tab="shares"]')
    row = page.locator(f'#shares-body tr[data-share="{share_id}"]')
    pw_expect(row).to_have_attribute("data-state", "live")
    pw_expect(row.locator('td[data-label="Views"]')).to_have_text("1 of 5")
    pw_expect(row.locator('td[data-label="Last used"]')).not_to_have_text("never")
    pw_expect(row.locator('td[data-label="Label"]')).to_have_text("For the insurer")
    shot(page, "shares.png")
    row.get_by_role("button", name="Revoke").click()  # the page's dialog handler confirms
    pw_expect(row).to_have_attribute("data-state", "revoked")
    pw_expect(row.get_by_role("button", name="Revoke")).to_have_count(0)


def check_link_refused(browser: Browser, link: str, problems: PageProblems) -> None:
    stranger = new_context(browser, DESKTOP)
    try:
        page = problems.watch(stranger.new_page())
        page.goto(link)
        pw_expect(page.locator("#share-refused")).to_be_visible()
        pw_expect(page.locator("#share-refused")).to_contain_text("revoked")
        pw_expect(page.locator("#share-clip")).to_be_hidden()
        assert page.evaluate("location.hash") == ""
    finally:
        stranger.close()


AUDITED = {
    "login failed",
    "login throttled",
    "login ok",
    "vault unlocked",
    "live view started",
    "live view stopped",
    "snapshot served",
    "clip served",
    "share created",
    "share used",
    "share revoked",
    "share refused",
}


def check_access_log(page: Page, share_id: str) -> None:
    """Every step so far is in the access log, and its chain verifies."""
    page.click('.tab[data-tab="log"]')
    pw_expect(page.locator("#verify")).to_have_class(re.compile(r"\bok\b"))
    pw_expect(page.locator("#verify")).to_contain_text("Access log verified")
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while missing := AUDITED - set(audit_kinds(page)):  # live view stops come on close
        assert time.monotonic() < deadline, f"not in the access log: {sorted(missing)}"
        page.wait_for_timeout(500)
        page.click("#log-refresh")
    shared_clip = page.locator('#log-body tr[data-kind="clip served"]', has_text=share_id)
    pw_expect(shared_clip.first).to_be_visible()
    shot(page, "access-log.png")


def check_paging_and_missing_footage(page: Page, hub: Hub) -> None:
    """Older events come a page at a time; a clip whose footage is gone shows the hub's
    reason in the player."""
    old_events = add_old_events(hub, EVENTS_PAGE + 5)
    page.click('.tab[data-tab="events"]')
    page.select_option("#events-camera", "porch")
    porch_events = page.locator(".timeline .event")
    pw_expect(porch_events).to_have_count(EVENTS_PAGE)
    pw_expect(page.locator("#events-more")).to_be_visible()
    page.click("#events-more")
    pw_expect(page.locator("#events-more")).to_be_hidden()
    shown = porch_events.evaluate_all("items => items.map(i => Number(i.dataset.event))")
    assert set(old_events) <= set(shown), "Load more lost events"
    assert len(shown) == len(set(shown)), "Load more repeated events"
    page.locator(f'.event[data-event="{old_events[0]}"]').click()
    pw_expect(page.locator("#player-error")).to_contain_text("no recorded footage")
    page.keyboard.press("Escape")
    pw_expect(page.locator("#player")).to_be_hidden()


def check_session_end_and_logout(page: Page, owner: BrowserContext, base: str) -> None:
    """A session that ends (here: its cookie gone) sends any view back to the login
    form, clearing the page; logging in again and out with the button works."""
    owner.clear_cookies()
    page.click("#events-refresh")
    pw_expect(page.locator("#login-view")).to_be_visible()
    pw_expect(page.locator("#login-error")).to_contain_text("session has ended")
    pw_expect(page.locator(".timeline .event")).to_have_count(0)
    pw_expect(page.locator("#login-error")).not_to_have_class(re.compile(r"form-info"))
    log_in(page)
    page.click("#logout")
    pw_expect(page.locator("#login-view")).to_be_visible()
    # Logging out is no error: the message is shown, not in the red error box.
    pw_expect(page.locator("#login-error")).to_contain_text("You have logged out")
    pw_expect(page.locator("#login-error")).to_have_class(re.compile(r"\bform-info\b"))
    assert page.request.get(base + "/api/session").status == 401


# -- the test ---------------------------------------------------------------------------


def test_owner_page_and_share_link(running_hub: RunningHub, browser: Browser) -> None:
    base = running_hub.base
    problems = PageProblems()
    owner = new_context(browser, DESKTOP)
    owner.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = problems.watch(owner.new_page())
    page.on("dialog", lambda dialog: dialog.accept())  # the Revoke confirmation
    try:
        page.goto(base + "/")
        log_in_past_the_throttle(page)
        check_live(page)
        check_hd_live_edge(page)
        check_mjpeg_fallback(browser, owner, base, problems)
        check_live_on_a_phone(browser, owner, base, problems)
        item = check_events(page, running_hub.event_id)
        clip = item.locator(".event-meta").inner_text().split(" · ")[0].removeprefix("clip ")
        link, share_id = play_and_share(page, item, base)
        pw_expect(page.locator("#player-meta")).to_contain_text(f"clip {clip},")
        check_link_plays(browser, link, base, share_id, problems, clip)
        revoke(page, share_id)
        check_link_refused(browser, link, problems)
        check_access_log(page, share_id)
        check_paging_and_missing_footage(page, running_hub.hub)
        check_session_end_and_logout(page, owner, base)
    finally:
        owner.close()
    assert not problems.found, problems.found


# -- the page updates itself -------------------------------------------------------------

DOOR_TABLES = """
[mqtt]
enabled = true
url = "{broker}"
username = "{user}"
password = "{password}"

[[camera]]
id = "door"
name = "Front door"
url = "{url}"
"""
VISIT_TIMEOUT_MS = 90_000  # the clip's visitors come every 20-50 s (shared/data/README.md)
# Set once the page has loaded; a reload would lose it.
NOT_RELOADED = "() => window.__camhubNotReloaded === true"


@dataclass(frozen=True, slots=True)
class DoorHub:
    hub: Hub
    door: RtspCamera  # the person clip served by GStreamer
    broker: Broker  # Mosquitto


@pytest.fixture(scope="module")
def door_hub(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Iterator[DoorHub]:
    """A hub with one real RTSP camera, publishing to a real MQTT broker."""
    root = tmp_path_factory.mktemp("door-hub")
    broker = Broker(root / "broker")
    broker.start()
    try:
        with RtspCamera(person_clip) as door:
            tables = DOOR_TABLES.format(
                url=door.url, broker=broker.url, user=BROKER_USER, password=BROKER_PASSWORD
            )
            with running(make_hub(root, tables)) as hub:
                yield DoorHub(hub, door, broker)
    finally:
        broker.kill()


def card_status(page: Page) -> Locator:
    return page.locator('.camera-card[data-camera="door"] .status')


def test_the_page_updates_itself(door_hub: DoorHub, browser: Browser) -> None:
    """Without a reload or a click: the camera's frame rate, a new event (as the hub's
    event path records and tells it) appearing and then getting its length and picture,
    a real motion event of the camera, the camera going offline when its server is
    killed and back online, the MQTT status when the broker goes away, and the page
    going back to the login form when the session is ended from elsewhere."""
    hub, door = door_hub.hub, door_hub.door
    assert hub.web is not None
    base = f"http://127.0.0.1:{hub.web.port}"
    problems = PageProblems()
    owner = new_context(browser, DESKTOP)
    page = problems.watch(owner.new_page())
    try:
        page.goto(base + "/")
        log_in(page)
        page.evaluate("() => { window.__camhubNotReloaded = true; }")
        pw_expect(card_status(page)).to_have_text("Connected")
        meta = page.locator('.camera-card[data-camera="door"] .camera-meta')
        pw_expect(meta).to_contain_text(re.compile(r"\d+(\.\d)? fps"))

        page.click('.tab[data-tab="events"]')
        pw_expect(page.locator("#tab-events")).to_be_visible()
        page.wait_for_function("() => !document.querySelector('#events-more').disabled")
        sink = AnnouncingEvents(IndexedEvents(hub.index, hub.archive), hub.alerts.bus)
        start = time.time()
        motion = MotionEvent(start, None, 0.2, start + 1, (0.2, 0.2, 0.3, 0.5), start + 1)
        event_id = sink.event_started("door", motion)
        item = page.locator(f'.event[data-event="{event_id}"]')
        pw_expect(item.locator(".event-meta")).to_have_text("in progress")
        pw_expect(item.locator(".event-camera")).to_have_text("Front door")
        still = hub.cameras[0].live.snapshot()
        assert still is not None
        ended = MotionEvent(start, start + 4, 0.2, start + 1, (0.2, 0.2, 0.3, 0.5), start + 1)
        sink.event_ended("door", event_id, ended, still.jpeg)
        pw_expect(item.locator(".event-meta")).to_contain_text("motion 4 s")
        page.mouse.move(5, 5)
        page.mouse.down()  # the owner is here: pictures load
        page.mouse.up()
        wait_until(
            page, "i => i.complete && i.naturalWidth > 0", item.locator("img").element_handle()
        )
        # The first in the list: the newest.
        assert page.locator(".event").first.get_attribute("data-event") == str(event_id)
        # The next visitor in the clip: a real motion event of the camera.
        real = page.locator(f'.event:not([data-event="{event_id}"])')
        pw_expect(real.first).to_be_visible(timeout=VISIT_TIMEOUT_MS)
        pw_expect(real.first.locator(".event-camera")).to_have_text("Front door")

        page.click('.tab[data-tab="live"]')
        pw_expect(card_status(page)).to_have_text("Connected")
        badge = page.locator('.camera-card[data-camera="door"] .motion-badge')
        pw_expect(badge).to_be_visible(timeout=VISIT_TIMEOUT_MS)  # someone is in view
        door.kill()
        try:
            pw_expect(card_status(page)).to_have_text(re.compile(r"^(Offline|Connecting)"))
            pw_expect(meta).to_contain_text("last picture")
        finally:
            door.start()
        pw_expect(card_status(page)).to_have_text("Connected", timeout=2 * STEP_TIMEOUT_MS)

        mqtt = page.locator("#mqtt-state")
        pw_expect(mqtt).to_have_text("connected")
        door_hub.broker.kill()
        pw_expect(mqtt).not_to_have_text("connected")
        pw_expect(mqtt).to_have_class(re.compile(r"\bbad\b"))
        door_hub.broker.start()
        pw_expect(mqtt).to_have_text("connected", timeout=2 * STEP_TIMEOUT_MS)
        assert page.evaluate(NOT_RELOADED)

        # Logged out from another tab of the same browser: this one stops by itself.
        assert page.request.post(base + "/api/logout", headers={"Origin": base}).status == 204
        pw_expect(page.locator("#login-view")).to_be_visible()
        pw_expect(page.locator("#login-error")).to_contain_text("session has ended")
        assert page.evaluate(NOT_RELOADED)
    finally:
        owner.close()
    assert not problems.found, problems.found


def test_download_and_delete_from_the_player(
    running_hub: RunningHub, browser: Browser, tmp_path: Path
) -> None:
    """The player's Download saves `<camera>-<local time>.mp4` that ffprobe plays; its
    Delete asks first, then shreds the event's files and rows, and says so in the log."""
    hub = running_hub.hub
    done = sorted(
        (r for r in hub.index.segments("hall") if r.state is SegmentState.COMPLETE),
        key=lambda r: r.start_time,
    )
    assert len(done) >= 2
    event_id = hub.index.add_event("hall", done[0].start_time + 0.5)
    hub.index.end_event(
        event_id, end_time=done[1].end_time - 0.5, peak_score=0.05, peak_time=None, bbox=None
    )
    problems = PageProblems()
    owner = new_context(browser, DESKTOP, accept_downloads=True)
    page = problems.watch(owner.new_page())
    try:
        page.goto(running_hub.base + "/")
        log_in(page)
        pw_expect(page.locator("#storage")).to_contain_text("Storage:")
        page.click('.tab[data-tab="events"]')
        page.locator(f'.event[data-event="{event_id}"]').click()
        pw_expect(page.locator("#player-meta")).to_contain_text("clip")
        # The motion is marked on the strip under the video, after the pre-roll.
        pw_expect(page.locator("#player-motion")).to_be_visible()
        left = page.locator("#player-motion .motion-span").evaluate("s => s.offsetLeft")
        assert left > 0
        with page.expect_download() as download_info:
            page.click("#player-download")
        download = download_info.value
        assert re.fullmatch(
            r"Hallway-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.mp4", download.suggested_filename
        )
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert ffprobe_frames(saved) > 10

        check_player_buttons_on_a_phone(browser, running_hub.base, event_id, problems)

        doomed = hub.index.segments_overlapping("hall", done[0].start_time, done[1].end_time)
        page.click("#player-delete")
        pw_expect(page.locator("#delete-dialog")).to_be_visible()
        shot(page, "delete-confirm.png")
        page.locator("#delete-dialog").get_by_role("button", name="Cancel").click()
        pw_expect(page.locator("#delete-dialog")).to_be_hidden()
        assert hub.index.get_event(event_id) is not None  # cancelled: nothing deleted
        page.click("#player-delete")
        page.click("#delete-confirm")
        pw_expect(page.locator("#notice-text")).to_contain_text("Deleted:")
        pw_expect(page.locator(f'.event[data-event="{event_id}"]')).to_have_count(0)
        shot(page, "deleted.png")
        page.locator("#storage").scroll_into_view_if_needed()
        shot(page, "storage.png")
        assert hub.index.get_event(event_id) is None
        for row in doomed:
            assert hub.index.get_segment(row.id) is None
            assert not (hub.archive.data_dir / row.path).exists()
        page.click('.tab[data-tab="log"]')
        pw_expect(
            page.locator('#log-body tr[data-kind="footage deleted by the owner"]')
        ).to_have_count(1)
        pw_expect(page.locator('#log-body tr[data-kind="clip downloaded"]')).to_have_count(1)
    finally:
        owner.close()
    assert not problems.found, problems.found


def check_player_buttons_on_a_phone(
    browser: Browser, base: str, event_id: int, problems: PageProblems
) -> None:
    """At 390 px the player's four buttons wrap inside the dialog, none cut off."""
    phone = new_context(browser, PHONE, is_mobile=True, has_touch=True)
    try:
        page = problems.watch(phone.new_page())
        page.goto(base + "/#events")
        log_in(page)
        page.locator(f'.event[data-event="{event_id}"]').click()
        pw_expect(page.locator("#player")).to_be_visible()
        page.locator("#player-share").scroll_into_view_if_needed()
        dialog = page.locator("#player").bounding_box()
        assert dialog is not None
        for button in ("#player-delete", "#player-download", "#player-share"):
            box = page.locator(button).bounding_box()
            assert box is not None, button
            assert (
                dialog["x"] <= box["x"] and box["x"] + box["width"] <= dialog["x"] + dialog["width"]
            )
        shot(page, "player-phone.png")
    finally:
        phone.close()


# -- sound --------------------------------------------------------------------------------

SOUND_CAMERA = """
[[camera]]
id = "door"
name = "Doorbell"
url = "{url}"
record = "continuous"
audio = true
"""


def test_a_clip_with_sound_plays_its_sound(
    browser: Browser,
    crowd_av_clip: Path,
    crowd_clip: Path,
    tmp_path: Path,
) -> None:
    """A doorbell sending G.711: its event's clip, from the hub's own route, carries
    AAC that Chromium decodes while the picture plays."""
    with RtspCamera(crowd_av_clip, audio="alaw") as camera:
        made = make_hub(
            tmp_path / "hub",
            SOUND_CAMERA.format(url=camera.url),
            storage=f"segment_seconds = {SEGMENT_SECONDS}",
        )
        with running(made) as hub:
            event_id = make_event(hub, crowd_clip, "door")
            base = f"http://127.0.0.1:{hub.web.port}"
            context = new_context(browser, DESKTOP)
            try:
                page = context.new_page()
                page.goto(base + "/")
                log_in(page)
                clip_url = f"{base}/api/events/{event_id}/clip.mp4"
                clip = page.request.get(clip_url)
                assert clip.ok, clip.status
                mp4 = tmp_path / "clip.mp4"
                mp4.write_bytes(clip.body())
                kinds = av_kinds(mp4)
                assert kinds == ["video", "audio"], kinds
                page.evaluate(
                    """url => {
                      const v = document.createElement('video');
                      v.id = 'sound-check'; v.muted = true; v.src = url;
                      document.body.append(v);
                      return v.play();
                    }""",
                    clip_url,
                )
                wait_until(
                    page,
                    "() => { const v = document.getElementById('sound-check');"
                    " return !v.error && v.currentTime > 0.5"
                    " && v.webkitAudioDecodedByteCount > 0; }",
                    timeout=PLAY_TIMEOUT_MS,
                )
            finally:
                context.close()


@pytest.mark.parametrize("sound", ["aac", "alaw"])
def test_the_live_view_is_heard_once_unmuted(
    browser: Browser, crowd_av_clip: Path, tmp_path: Path, sound: str
) -> None:
    """A camera sending AAC, or G.711 as doorbells do: its HD live view plays muted (as
    browsers autoplay), with a sound button; a click unmutes it, and Chromium decodes
    the sound while the picture goes on."""
    problems = PageProblems()
    with RtspCamera(crowd_av_clip, audio=sound) as camera:
        made = make_hub(
            tmp_path / "hub",
            SOUND_CAMERA.format(url=camera.url),
            storage=f"segment_seconds = {SEGMENT_SECONDS}",
        )
        with running(made) as hub, closing(new_context(browser, DESKTOP)) as context:
            page = problems.watch(context.new_page())
            page.goto(f"http://127.0.0.1:{hub.web.port}/")
            log_in(page)
            card = page.locator('.camera-card[data-camera="door"]')
            video, button = card.locator(HD_VIEW), card.locator(".live-sound")
            wait_until(page, SHOWING[HD_VIEW], video.element_handle(), timeout=PLAY_TIMEOUT_MS)
            pw_expect(button).to_be_visible()
            pw_expect(button).to_have_attribute("aria-pressed", "false")
            assert video.evaluate("v => v.muted")
            button.click()
            pw_expect(button).to_have_attribute("aria-pressed", "true")
            start = video.evaluate("v => v.currentTime")
            wait_until(
                page,
                "([v, t]) => !v.muted && !v.paused && v.currentTime > t + 2"
                " && v.webkitAudioDecodedByteCount > 0",
                [video.element_handle(), start],
                timeout=PLAY_TIMEOUT_MS,
            )
            button.click()
            pw_expect(button).to_have_attribute("aria-pressed", "false")
            assert video.evaluate("v => v.muted")
    assert not problems.found, problems.found


def av_kinds(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [stream.type for stream in container.streams]


# -- HD and SD ---------------------------------------------------------------------------

TWO_STREAMS = """
[[camera]]
id = "door"
name = "Front door"
url = "{main}"
detect_url = "{sub}"
"""


@pytest.fixture(scope="module")
def two_stream_hub(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Iterator[Hub]:
    """A hub with one RTSP camera that has a main stream and a substream."""
    root = tmp_path_factory.mktemp("two-streams")
    with (
        RtspCamera(person_clip) as main,
        RtspCamera(person_clip) as sub,
        running(make_hub(root, TWO_STREAMS.format(main=main.url, sub=sub.url))) as hub,
    ):
        streams = hub.cameras[0].streams.values()
        deadline = time.monotonic() + 60
        while not all(feed.info for feed in streams):
            assert time.monotonic() < deadline, f"no RTSP streams: {hub.cameras[0].status}"
            time.sleep(0.1)
        yield hub


def test_hd_and_sd_buttons_switch_the_live_stream(two_stream_hub: Hub, browser: Browser) -> None:
    assert two_stream_hub.web is not None
    base = f"http://127.0.0.1:{two_stream_hub.web.port}"
    since = two_stream_hub.audit.recent(0, 1)[0].seq
    problems = PageProblems()
    context = new_context(browser, DESKTOP)
    try:
        page = problems.watch(context.new_page())
        page.goto(base + "/")
        log_in(page)
        card = page.locator('.camera-card[data-camera="door"]')
        buttons = card.locator(".live-choice button")
        stats = card.locator(".live-stats")
        video = card.locator(HD_VIEW)
        pw_expect(buttons).to_have_text(["HD", "SD"])
        for pressed, label in ((0, "HD"), (1, "SD")):
            if pressed:
                buttons.nth(pressed).click()
            pw_expect(buttons.nth(pressed)).to_have_attribute("aria-pressed", "true")
            pw_expect(buttons.nth(1 - pressed)).to_have_attribute("aria-pressed", "false")
            pw_expect(stats).to_have_text(re.compile(rf"^{label} · 768\u00d7432 · "))
            wait_until(page, SHOWING[HD_VIEW], video.element_handle())
            start = video.evaluate("v => v.currentTime")
            wait_until(page, "([v, t]) => v.currentTime > t + 0.5", [video.element_handle(), start])
    finally:
        context.close()
    assert not problems.found, problems.found
    rows = two_stream_hub.index.audit_records(since, 100)
    views = [json.loads(r.detail).get("stream") for r in rows if r.kind == "live view started"]
    assert views == ["HD", "SD"]
