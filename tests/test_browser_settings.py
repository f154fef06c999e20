"""The Settings tab in a real headless Chromium: a motion mask drawn on the live picture
is saved to the config file and then keeps the porch's visitor from making events.

A real hub runs in this process from a real config file: the synthetic porch (a figure
walks across its lower part every 20 s, at times known in advance) and a disabled
camera whose URL holds a password. On a desktop viewport the owner sees an event, draws
a mask over the lower part of the porch's picture, saves it, and no event comes from
the next two visits. On a 390 px phone the tab and the editor fit the screen. The
demo, which has no config file, says its settings cannot be changed. The screenshots
go to docs/screenshots/ under `make screenshots`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit import FAST, base
from test_browser import (
    DESKTOP,
    PASSWORD,
    PHONE,
    PageProblems,
    log_in,
    new_context,
    shot,
    wait_until,
)
from test_browser import browser as chromium  # noqa: F401 (the shared Chromium, as a fixture)

from hub.capture.synthetic import SyntheticPorch
from hub.cli import init_data_dir
from hub.config import default_config, load_config
from hub.daemon import DataPaths, Hub

try:
    from playwright.sync_api import Browser, Page
    from playwright.sync_api import expect as pw_expect
except ImportError:  # pragma: no cover - reported by test_browser's fixture
    pass

pytestmark = pytest.mark.slow

SECRET = "garage-pw-0123"
CONFIG = """\
# The browser test's house.
[hub]
data_dir = "data"
log_level = "warning"

[storage]
min_free_gb = 0

[web]
listen = "127.0.0.1:0"
tls = false

[[camera]]
id = "porch"
name = "Front porch"
url = "synthetic:porch"
record = "off"

[[camera]]
id = "garage"
name = "Garage"
url = "rtsp://admin:{secret}@127.0.0.1:1/stream"
enabled = false
"""
FIRST_EVENT_WAIT = 40.0  # seconds: a visit comes every 20 s
VISITS_AFTER_MASK = 2
MASK_TOP = 0.2  # the figure's head is at 0.28 of the height, its feet at 0.9


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("browser-settings")
    init_data_dir(DataPaths(root / "data"), PASSWORD, kdf=FAST)
    path = root / "camhub.toml"
    path.write_text(CONFIG.format(secret=SECRET))
    running = Hub(load_config(path))
    running.start()
    try:
        assert running.web is not None
        yield running
    finally:
        running.stop()


def porch_events(hub: Hub, since: float) -> list:
    return hub.index.events("porch", start=since, limit=1000)


def open_settings(page: Page, hub: Hub) -> None:
    page.goto(base(hub) + "/#settings")
    pw_expect(page.locator('.tab[data-tab="settings"]')).to_have_class("tab active")
    pw_expect(page.locator(".settings-camera")).to_have_count(2)


def open_mask_editor(page: Page) -> None:
    page.locator('.settings-camera[data-camera="porch"] .settings-masks-open').click()
    wait_until(page, "() => document.querySelector('.mask-picture').naturalWidth > 0")


def click_at(page: Page, x: float, y: float, *, tap: bool = False) -> None:
    """A click (or a finger's tap) at fractions of the mask picture, within half a
    pixel of its edges."""
    drawing = page.locator(".mask-svg")
    box = drawing.bounding_box()
    assert box is not None
    position = {
        "x": min(max(x * box["width"], 0.5), box["width"] - 0.5),
        "y": min(max(y * box["height"], 0.5), box["height"] - 0.5),
    }
    if tap:
        drawing.tap(position=position)
    else:
        drawing.click(position=position)


def check_the_settings_view(page: Page, hub: Hub) -> None:
    garage = page.locator('.settings-camera[data-camera="garage"]')
    pw_expect(garage.locator(".settings-url-text")).to_have_text(
        "rtsp://admin:***@127.0.0.1:1/stream"
    )
    pw_expect(garage.locator('input[name="enabled"]')).not_to_be_checked()
    porch = page.locator('.settings-camera[data-camera="porch"]')
    pw_expect(porch.locator('select[name="sensitivity"]')).to_have_value("3")
    pw_expect(porch.locator(".settings-mask-count")).to_have_text(
        "No masks: motion anywhere counts."
    )
    assert SECRET not in page.content()


def check_a_bad_value_is_refused(page: Page, hub: Hub) -> None:
    """The hub's message names the key; the file is not touched."""
    assert hub.config.path is not None
    before = hub.config.path.read_bytes()
    porch = page.locator('.settings-camera[data-camera="porch"]')
    porch.locator('input[name="pre_roll"]').fill("99")
    porch.locator('button[type="submit"]').click()
    pw_expect(porch.locator(".form-error")).to_have_text(
        "camera[0].pre_roll: must be 0..30, got 99"
    )
    assert hub.config.path.read_bytes() == before
    porch.locator('input[name="pre_roll"]').fill("5")


def test_a_mask_drawn_on_the_live_picture_suppresses_motion_there(
    hub: Hub,
    chromium: Browser,  # noqa: F811 (the fixture imported above)
) -> None:
    problems = PageProblems()
    context = new_context(chromium, DESKTOP)
    try:
        page = problems.watch(context.new_page())
        page.goto(base(hub) + "/")
        log_in(page)
        open_settings(page, hub)
        check_the_settings_view(page, hub)
        shot(page, "settings.png")
        check_a_bad_value_is_refused(page, hub)

        # Before the mask: the visitor makes events.
        started = time.time()
        deadline = time.monotonic() + FIRST_EVENT_WAIT
        while not porch_events(hub, started - 60):
            assert time.monotonic() < deadline, "no motion event on the porch before the mask"
            time.sleep(0.5)

        open_mask_editor(page)
        corners = [(0.0, MASK_TOP), (1.0, MASK_TOP), (1.0, 1.0), (0.0, 1.0)]
        for x, y in corners:
            click_at(page, x, y)
        pw_expect(page.locator(".mask-dot")).to_have_count(4)
        click_at(page, *corners[0])  # the first corner again closes the shape
        pw_expect(page.locator(".mask-shape")).to_have_count(1)
        pw_expect(page.locator(".mask-item > span")).to_have_text(["Mask 1 · 4 corners"])
        page.locator(".mask-editor").evaluate("e => e.scrollIntoView({block: 'start'})")
        shot(page, "mask-editor.png")
        page.locator(".mask-editor .button.primary").click()
        pw_expect(page.locator(".mask-editor [role=status]")).to_have_text(
            "Saved: 1 mask. Motion detection restarted with them."
        )
        masked_at = time.time()

        # Saved in the config file, in its own form, and running.
        assert hub.config.path is not None
        (mask,) = load_config(hub.config.path).cameras[0].motion.masks
        assert [round(v, 2) for point in mask for v in point] == [
            0.0, MASK_TOP, 1.0, MASK_TOP, 1.0, 1.0, 0.0, 1.0
        ]  # fmt: skip
        assert hub.cameras[0].settings.motion.masks == (mask,)
        pw_expect(
            page.locator('.settings-camera[data-camera="porch"] .settings-mask-count')
        ).to_have_text("1 mask")

        # After it: the next visits walk through the mask and make no event.
        visits = SyntheticPorch().visits(until=VISITS_AFTER_MASK * 20.0)[:VISITS_AFTER_MASK]
        last_end = visits[-1][1]
        time.sleep(max(0.0, masked_at + last_end + 3.0 - time.time()))
        assert porch_events(hub, masked_at) == []

        page.click('.tab[data-tab="log"]')
        change = page.locator('#log-body tr[data-kind="settings changed"]')
        pw_expect(change).to_have_count(1)
        pw_expect(change).to_contain_text("camera[0].motion.masks")
        pw_expect(change).to_contain_text("0 masks → 1 mask")
        assert problems.found == []
    finally:
        context.close()


def test_the_settings_tab_and_mask_editor_on_a_phone(
    hub: Hub,
    chromium: Browser,  # noqa: F811 (the fixture imported above)
) -> None:
    problems = PageProblems()
    context = new_context(chromium, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page = problems.watch(context.new_page())
        page.goto(base(hub) + "/")
        log_in(page)
        open_settings(page, hub)
        fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
        assert page.evaluate(fits), "the settings tab is wider than the phone"
        shot(page, "settings-phone.png")
        page.locator("#settings-account").evaluate("e => e.scrollIntoView({block: 'end'})")
        shot(page, "settings-account-phone.png")
        open_mask_editor(page)
        for x, y in [(0.1, 0.05), (0.4, 0.05), (0.25, 0.15)]:
            click_at(page, x, y, tap=True)
        page.locator(".mask-tools .button", has_text="Close shape").tap()
        pw_expect(page.locator(".mask-shape")).to_have_count(2)
        assert page.evaluate(fits), "the mask editor is wider than the phone"
        page.locator(".mask-editor").evaluate("e => e.scrollIntoView({block: 'start'})")
        shot(page, "mask-editor-phone.png")
        page.locator(".mask-item .button.danger").last.click()
        pw_expect(page.locator(".mask-shape")).to_have_count(1)
        page.locator(".mask-editor .button.ghost").click()  # closed without saving
        pw_expect(page.locator(".mask-editor")).to_have_count(0)
        assert problems.found == []
    finally:
        context.close()


def test_the_demo_says_its_settings_cannot_be_changed(
    tmp_path: Path,
    chromium: Browser,  # noqa: F811 (the fixture imported above)
) -> None:
    init_data_dir(DataPaths(tmp_path), PASSWORD, kdf=FAST)
    demo = Hub(default_config(tmp_path, "127.0.0.1:0"))
    demo.start()
    context = new_context(chromium, DESKTOP)
    try:
        page = context.new_page()
        page.goto(base(demo) + "/")
        log_in(page)
        page.goto(base(demo) + "/#settings")
        note = page.locator("#settings-read-only")
        pw_expect(note).to_be_visible()
        pw_expect(note).to_contain_text("started without a config file")
        pw_expect(page.locator('.settings-camera button[type="submit"]')).to_be_disabled()
        pw_expect(page.locator("#settings-idle")).to_be_disabled()
        pw_expect(page.locator("#settings-current-password")).to_be_enabled()
        shot(page, "settings-demo.png")
    finally:
        context.close()
        demo.stop()
