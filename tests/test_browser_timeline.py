"""The timeline of recordings in a real headless Chromium, on a desktop and a phone.

A real hub runs in this process with test_browser's cameras: the synthetic porch, and
the real person clip played back in real time by a file camera and recorded
continuously in 2 s segments. The page plays the footage from a moment clicked on the
bar, on across segment boundaries and from one clip window to the next (windows
shortened to 3 s so that several follow each other), shows the picture's time in the
browser's time zone, jumps where the bar is clicked or dragged (with a mouse, and with
a finger on the phone), zooms by wheel, buttons and pinch, and downloads and deletes a
range selected with Shift-drag: the download is an MP4 that PyAV decodes, the deletion
removes the files and the index rows and is in the access log. Screenshots of the
timeline go to docs/screenshots/ under `make screenshots`.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import pytest
import test_browser
from hubkit import make_hub, running
from recorded_spans import insert_segments
from test_browser import (
    DESKTOP,
    PHONE,
    PLAY_TIMEOUT_MS,
    PageProblems,
    log_in,
    new_context,
    shot,
    wait_until,
)

from hub.audit import AuditKind
from hub.daemon import Hub
from hub.store import SegmentRow, SegmentState

try:
    from playwright.sync_api import Browser, Page
    from playwright.sync_api import expect as pw_expect
except ImportError:  # pragma: no cover - reported by test_browser's fixture
    pass

pytestmark = pytest.mark.slow

browser = test_browser.browser  # the same real Chromium

TIME_ZONE = "Europe/Berlin"  # the browser's; the times shown must be in it
LOCALE = "en-GB"  # 24 h clock: "14:03:05"
SEGMENT_SECONDS = 2
SEGMENTS_WANTED = 12  # complete segments before the page is opened
SEGMENT_WAIT = 60.0  # seconds
WINDOW = 3  # seconds of footage per clip window here: two 2 s segments a clip
PLAY_SECONDS = 10.0  # watched for the boundaries
MAX_STALL = 1.5  # seconds the shown time may stand still while playing
ZOOM_STEPS = 8  # from the whole day to 2 min
BUSY_RECORDINGS = 2500  # more than the 2000 stretches one answer holds
PORCH_WAIT_MS = 45_000  # the synthetic porch's visits come every 20 s


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Iterator[Hub]:
    # test_browser's two cameras: the synthetic porch, and the hall recording all the time
    made = make_hub(
        tmp_path_factory.mktemp("timeline-hub"),
        test_browser.CAMERAS.format(clip=person_clip),
        storage=f"segment_seconds = {SEGMENT_SECONDS}",
    )
    with running(made) as started:
        complete(started, SEGMENTS_WANTED)
        yield started


def complete(hub: Hub, wanted: int) -> list[SegmentRow]:
    """The camera's complete segments, oldest first, once there are `wanted` of them."""
    deadline = time.monotonic() + SEGMENT_WAIT
    while True:
        done = sorted(
            (r for r in hub.index.segments("hall", limit=1000) if r.state is SegmentState.COMPLETE),
            key=lambda r: r.start_time,
        )
        if len(done) >= wanted:
            return done
        assert time.monotonic() < deadline, f"{len(done)} segments in {SEGMENT_WAIT:.0f} s"
        time.sleep(0.2)


def base(hub: Hub) -> str:
    assert hub.web is not None
    return hub.web.url.rstrip("/")


def local_clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, ZoneInfo(TIME_ZONE)).strftime("%H:%M:%S")


# -- the page ------------------------------------------------------------------------------


def open_timeline(page: Page, hub: Hub, around: float) -> None:
    """Log in on the Timeline tab, today's bar showing, and zoom from the whole day to
    2 minutes with the wheel over the moment `around` (each step keeps the time under
    the pointer where it is); then the zoom buttons one step out and in again."""
    page.goto(base(hub) + "/#timeline")
    log_in(page)
    pw_expect(page.locator('.tab[data-tab="timeline"]')).to_have_class(re.compile(r"\bactive\b"))
    # The first camera is shown first: the porch, which records on motion, so its
    # stretches are drawn as recorded on motion (the bar follows its new events).
    pw_expect(page.locator("#tl-camera")).to_have_value("porch")
    porch = page.locator('#tl-track[data-camera="porch"] .tl-range-motion')
    pw_expect(porch.first).to_be_attached(timeout=PORCH_WAIT_MS)
    # The hallway records all the time: none of its stretches is drawn as recorded on
    # motion, though it saw motion (drawn as such, with the event marks).
    page.select_option("#tl-camera", "hall")
    hall = page.locator('#tl-track[data-camera="hall"]')
    pw_expect(hall.locator(".tl-range").first).to_be_attached()
    pw_expect(hall.locator(".tl-motion").first).to_be_attached()
    pw_expect(hall.locator(".tl-event").first).to_be_attached()
    pw_expect(hall.locator(".tl-range-motion")).to_have_count(0)
    pw_expect(page.locator("#tl-date")).to_have_value(
        datetime.now(ZoneInfo(TIME_ZONE)).strftime("%Y-%m-%d")
    )
    label = page.locator("#tl-zoom-label")
    pw_expect(label).to_have_text("24 h")
    for _ in range(ZOOM_STEPS):
        before = label.text_content()
        page.mouse.move(*x_of(page, around))
        page.mouse.wheel(0, -100)
        pw_expect(label).not_to_have_text(before or "")
    pw_expect(label).to_have_text("2 min")
    pw_expect(page.locator("#tl-zoom-in")).to_be_disabled()
    page.click("#tl-zoom-out")
    pw_expect(label).to_have_text("5 min")
    page.click("#tl-zoom-in")
    pw_expect(label).to_have_text("2 min")
    x_of(page, around)  # still in view
    page.locator("#tab-timeline").evaluate(f"s => {{ s.dataset.window = '{WINDOW}'; }}")


def x_of(page: Page, moment: float) -> tuple[float, float]:
    """Where on the screen the bar shows `moment`: (x, y) in the track's middle."""
    bar = page.locator("#tl-bar")
    start = float(bar.get_attribute("data-start") or "nan")
    end = float(bar.get_attribute("data-end") or "nan")
    assert start <= moment <= end, (start, moment, end)
    box = page.locator("#tl-track").bounding_box()
    assert box is not None
    return box["x"] + (moment - start) / (end - start) * box["width"], box["y"] + box["height"] / 2


SHOWN = """() => {
  const v = [...document.querySelectorAll('.tl-video')].find(v => !v.hidden);
  const t = document.getElementById('tl-clock').dataset.time;
  return v && v.readyState >= 2 && t ? {time: Number(t), paused: v.paused, id: v.id} : null;
}"""


def shown_time(page: Page) -> dict[str, object]:
    """The picture's time on the page, once the visible <video> has a picture."""
    return wait_until(page, SHOWN, timeout=PLAY_TIMEOUT_MS)


def expect_paused_at(page: Page, moment: float) -> None:
    """The picture shown is paused at `moment` (±1 s), and the clock says so in local time."""
    wait_until(
        page,
        "m => { const s = (" + SHOWN + ")(); return s && s.paused && Math.abs(s.time - m) <= 1; }",
        moment,
        PLAY_TIMEOUT_MS,
    )
    shown = float(page.locator("#tl-clock").get_attribute("data-time") or "nan")
    pw_expect(page.locator("#tl-clock")).to_have_text(local_clock(shown))


def play_across_boundaries(page: Page, segments: list[SegmentRow]) -> None:
    """From the second segment's start, playback runs on for PLAY_SECONDS of footage:
    the time shown never stands still for long, passes at least two segment boundaries,
    and the clip windows hand over from one <video> to the other."""
    x, y = x_of(page, segments[1].start_time + 0.3)
    page.mouse.click(x, y)
    first = shown_time(page)
    samples = [(time.monotonic(), float(first["time"]), str(first["id"]))]  # type: ignore[arg-type]
    deadline = time.monotonic() + PLAY_SECONDS * 3
    while samples[-1][1] < samples[0][1] + PLAY_SECONDS:
        assert time.monotonic() < deadline, f"playback stalled: {samples[-5:]}"
        page.wait_for_timeout(100)
        now = shown_time(page)
        samples.append((time.monotonic(), float(now["time"]), str(now["id"])))  # type: ignore[arg-type]
    page.click("#tl-play")  # pause
    start, end = samples[0][1], samples[-1][1]
    boundaries = [s.start_time for s in segments if start < s.start_time < end]
    assert len(boundaries) >= 2, (start, end, [s.start_time for s in segments])
    stalls = []
    last_change = samples[0]
    for sample in samples[1:]:
        if sample[1] > last_change[1]:
            stalls.append(sample[0] - last_change[0])
            last_change = sample
    assert max(stalls) <= MAX_STALL, f"the picture stood still for {max(stalls):.2f} s"
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(samples)), "time went back"
    videos = [s[2] for s in samples]
    swaps = sum(1 for a, b in itertools.pairwise(videos) if a != b)
    assert swaps >= 2, f"only {swaps} window hand-over(s) in {end - start:.1f} s"
    print(
        f"timeline: played {end - start:.1f} s of footage across {len(boundaries)} segment "
        f"boundaries and {swaps} window hand-overs; longest still picture {max(stalls):.2f} s"
    )


def jump_with_the_mouse(page: Page, segments: list[SegmentRow]) -> None:
    """While paused, a click and a drag each show the picture at that moment (±1 s),
    the arrow keys step 10 s, and Mark start / Mark end select from one to the other."""
    target = segments[8].start_time + 1.2
    page.mouse.click(*x_of(page, target))
    expect_paused_at(page, target)
    # A drag shows the time under the pointer as it goes, and jumps where it ends.
    start_x, y = x_of(page, segments[2].start_time)
    target = segments[5].start_time + 0.7
    page.mouse.move(start_x, y)
    page.mouse.down()
    page.mouse.move(*x_of(page, target), steps=5)
    page.mouse.up()
    expect_paused_at(page, target)
    pw_expect(page.locator("#tl-bar")).to_be_focused()  # the keys work after a click
    page.keyboard.press("ArrowRight")
    expect_paused_at(page, target + 10)
    page.keyboard.press("ArrowLeft")
    expect_paused_at(page, target)
    # Mark start here, step on, Mark end: that range is selected.
    shown = float(page.locator("#tl-clock").get_attribute("data-time") or "nan")
    page.click("#tl-mark-start")
    page.locator("#tl-bar").focus()
    page.keyboard.press("ArrowRight")
    expect_paused_at(page, target + 10)
    page.click("#tl-mark-end")
    selection = page.locator("#tl-selection")
    pw_expect(selection).to_contain_text(f"{local_clock(shown)} to {local_clock(shown + 10)}")
    pw_expect(selection).to_contain_text("(10 s)")
    page.click("#tl-clear")
    pw_expect(selection).to_contain_text("No range selected")


def download_a_range(page: Page, start: float, end: float, tmp_path: Path) -> None:
    """Shift-drag selects the range; its Download is `<camera>-<local time>.mp4` and
    decodes, covering the range."""
    page.keyboard.down("Shift")
    page.mouse.move(*x_of(page, start))
    page.mouse.down()
    page.mouse.move(*x_of(page, end), steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    selection = page.locator("#tl-selection")
    pw_expect(selection).to_contain_text("Selected: Hallway")
    pw_expect(selection).to_contain_text(local_clock(start))
    with page.expect_download() as info:
        page.click("#tl-download")
    download = info.value
    assert re.fullmatch(r"Hallway-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.mp4", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with av.open(str(saved)) as container:
        frames = [frame.time for frame in container.decode(video=0)]
    assert frames and frames[-1] >= end - start - 1, (frames[-1:], end - start)


def delete_the_range(page: Page, hub: Hub, start: float, end: float) -> tuple[float, float]:
    """Delete… names the camera and the local times; confirmed, the segments of the
    range are gone from the index and the disk, and the access log says so."""
    doomed = hub.index.segments_overlapping("hall", start, end)
    assert doomed
    ranges_before = page.locator("#tl-track .tl-range").count()
    page.click("#tl-delete")
    dialog = page.locator("#tl-delete-dialog")
    pw_expect(dialog).to_be_visible()
    what = page.locator("#tl-delete-what")
    pw_expect(what).to_contain_text("Hallway")
    pw_expect(what).to_contain_text(local_clock(start))
    pw_expect(what).to_contain_text(local_clock(end))
    shot(page, "timeline-delete.png")
    page.click("#tl-delete-confirm")
    pw_expect(dialog).to_be_hidden()
    pw_expect(page.locator("#tl-message")).to_contain_text("Deleted:")
    for row in doomed:
        assert hub.index.get_segment(row.id) is None
        assert not (hub.archive.data_dir / row.path).exists()
    record = hub.index.last_audit(AuditKind.FOOTAGE_DELETED.value)
    assert record is not None
    detail = json.loads(record.detail)
    assert detail["camera"] == "hall" and abs(detail["start"] - start) < 0.01, detail
    assert detail["segments"] == len(doomed), detail
    # The bar shows the hole: the recording is now two stretches where it was one.
    pw_expect(page.locator("#tl-track .tl-range")).to_have_count(ranges_before + 1)
    last_end = doomed[-1].end_time
    assert last_end is not None
    return doomed[0].start_time, last_end


def skip_the_hole(page: Page, hole: tuple[float, float]) -> None:
    """Played from just before the deleted range, the picture goes on from the footage
    after it: the time shown jumps over the hole and never shows a moment inside it."""
    start, end = hole
    page.mouse.click(*x_of(page, start - 1.5))
    seen = [float(shown_time(page)["time"])]  # type: ignore[arg-type]
    deadline = time.monotonic() + PLAY_TIMEOUT_MS / 1000
    while seen[-1] < end + 1:
        assert time.monotonic() < deadline, f"did not get past the hole {hole}: {seen[-5:]}"
        page.wait_for_timeout(100)
        seen.append(float(shown_time(page)["time"]))  # type: ignore[arg-type]
    page.click("#tl-play")  # pause
    inside = [t for t in seen if start + 0.1 < t < end - 0.1]
    assert not inside, f"showed {inside} inside the deleted {hole}"
    assert seen[0] < start, seen[:3]


def test_the_timeline_on_a_desktop(hub: Hub, browser: Browser, tmp_path: Path) -> None:
    segments = complete(hub, SEGMENTS_WANTED)
    problems = PageProblems()
    context = new_context(
        browser, DESKTOP, accept_downloads=True, timezone_id=TIME_ZONE, locale=LOCALE
    )
    page = problems.watch(context.new_page())
    try:
        open_timeline(page, hub, segments[5].start_time)
        play_across_boundaries(page, segments)
        jump_with_the_mouse(page, segments)
        start, end = segments[9].start_time + 0.5, segments[10].end_time - 0.5  # type: ignore[operator]
        download_a_range(page, start, end, tmp_path)
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "timeline.png")
        hole = delete_the_range(page, hub, start, end)
        skip_the_hole(page, hole)
    finally:
        context.close()
    assert not problems.found, problems.found


def test_the_timeline_on_a_phone(hub: Hub, browser: Browser) -> None:
    """At 390 px nothing sticks out sideways; a finger's drag on the bar jumps to the
    moment where it lifts (±1 s)."""
    segments = complete(hub, SEGMENTS_WANTED)
    problems = PageProblems()
    context = new_context(
        browser,
        PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        timezone_id=TIME_ZONE,
        locale=LOCALE,
    )
    page = problems.watch(context.new_page())
    try:
        open_timeline(page, hub, segments[5].start_time)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.touchscreen.tap(*x_of(page, segments[3].start_time + 0.5))
        shown_time(page)
        page.click("#tl-play")  # pause
        target = segments[7].start_time + 0.5
        touch_drag(page, x_of(page, segments[4].start_time), x_of(page, target))
        expect_paused_at(page, target)
        # Two fingers drawn together zoom out around their middle; the picture stays.
        middle = x_of(page, target)
        pinch(page, middle, 120, 80)  # a third closer: one zoom step
        pw_expect(page.locator("#tl-zoom-label")).to_have_text("5 min")
        expect_paused_at(page, target)
        page.click("#tl-zoom-in")
        pw_expect(page.locator("#tl-zoom-label")).to_have_text("2 min")
        shot(page, "timeline-phone.png")
        # With Select range pressed, a finger's drag selects instead of playing.
        page.click("#tl-select-mode")
        pw_expect(page.locator("#tl-select-mode")).to_have_attribute("aria-pressed", "true")
        a, b = segments[2].start_time + 0.5, segments[6].start_time + 0.5
        touch_drag(page, x_of(page, a), x_of(page, b))
        selection = page.locator("#tl-selection")
        pw_expect(selection).to_contain_text("Selected: Hallway")
        pw_expect(selection).to_contain_text(re.compile(r"\((7|8|9) s\)"))  # 8 s, to a pixel
        pw_expect(page.locator("#tl-delete")).to_be_visible()
        expect_paused_at(page, target)  # the picture did not move
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()
    assert not problems.found, problems.found


TOUCH_STEPS = 6  # moves between a finger's touch and its lift


def touch_drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A finger put down at `start`, moved to `end` and lifted (Chromium's touch input)."""
    fingers(page, [start], [end])


def pinch(page: Page, middle: tuple[float, float], apart: float, together: float) -> None:
    """Two fingers `apart` px either side of `middle`, drawn to `together` px apart."""
    (x, y) = middle
    fingers(
        page,
        [(x - apart / 2, y), (x + apart / 2, y)],
        [(x - together / 2, y), (x + together / 2, y)],
    )


def fingers(page: Page, starts: list[tuple[float, float]], ends: list[tuple[float, float]]) -> None:
    cdp = page.context.new_cdp_session(page)

    def points(step: int) -> list[dict[str, float]]:
        return [
            {"x": a[0] + (b[0] - a[0]) * step / TOUCH_STEPS, "y": a[1], "id": n}
            for n, (a, b) in enumerate(zip(starts, ends, strict=True))
        ]

    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points(0)})
    for step in range(1, TOUCH_STEPS + 1):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": points(step)})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_a_busy_day_is_drawn_whole(hub: Hub, browser: Browser) -> None:
    """Yesterday, 2500 short recordings (a busy camera that records on motion): more
    than one answer of the recordings route holds, and the bar draws them all. The
    rows go straight into the real index (no footage behind them: only drawn)."""
    berlin = ZoneInfo(TIME_ZONE)
    today = datetime.now(berlin).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    first = yesterday.replace(hour=8).timestamp()
    insert_segments(
        hub.paths.index,
        [(first + 10 * n, first + 10 * n + 1) for n in range(BUSY_RECORDINGS)],
        "hall",
    )
    problems = PageProblems()
    context = new_context(browser, DESKTOP, timezone_id=TIME_ZONE, locale=LOCALE)
    page = problems.watch(context.new_page())
    try:
        page.goto(base(hub) + "/#timeline")
        log_in(page)
        page.select_option("#tl-camera", "hall")
        pw_expect(page.locator('#tl-track[data-camera="hall"] .tl-range').first).to_be_attached()
        page.click("#tl-prev-day")
        pw_expect(page.locator("#tl-date")).to_have_value(yesterday.strftime("%Y-%m-%d"))
        pw_expect(page.locator("#tl-track .tl-range")).to_have_count(BUSY_RECORDINGS)
        pw_expect(page.locator("#tl-message")).to_be_hidden()
        pw_expect(page.locator("#tl-next-day")).to_be_enabled()
        page.click("#tl-next-day")
        pw_expect(page.locator("#tl-date")).to_have_value(today.strftime("%Y-%m-%d"))
        pw_expect(page.locator("#tl-next-day")).to_be_disabled()  # no footage from tomorrow
    finally:
        context.close()
    assert not problems.found, problems.found
