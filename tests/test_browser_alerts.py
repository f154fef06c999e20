"""The Alerts panel in a real headless Chromium: push on this browser, a test alert,
snooze 1 h, per-camera switches, and the link an alert opens.

A real hub runs in this process (two synthetic cameras, alerts to a real webhook
receiver on 127.0.0.1). Headless Chromium here has no push service to reach (no
network but 127.0.0.1, background networking off), so subscribing fails: the test
checks that the service worker is registered for the whole page and that the panel
says why push is not on, rather than failing silently. What a real subscription gets
is checked in tests/test_alert_delivery.py, with a subscription made the way a browser
makes it. The screenshot of the panel goes to docs/screenshots/ under `make screenshots`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from alert_receivers import Receiver, serve
from hubkit import base, make_hub, running
from test_browser import (  # the same module-scoped browser fixture and helpers
    DESKTOP,
    PageProblems,
    browser,
    log_in,
    new_context,
    shot,
)

from hub.daemon import Hub

try:
    from playwright.sync_api import Browser, Page
    from playwright.sync_api import expect as pw_expect
except ImportError:  # pragma: no cover - reported by the browser fixture
    pass

__all__ = ["browser"]  # the fixture, imported for pytest

pytestmark = pytest.mark.slow

SECRET = "browser-alerts-secret-0123"
TABLES = """
[alerts]
quiet_hours = ["23:00-06:30"]
time_zone = "Europe/Berlin"

[webhook]
enabled = true
url = "{hook}/camhub"
secret = "{secret}"

[[camera]]
id = "porch"
name = "Front porch"
url = "synthetic:porch"
record = "off"

[[camera]]
id = "garden"
name = "Garden"
url = "synthetic:porch"
record = "off"
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve() as running:
        yield running


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Hub]:
    tables = TABLES.format(hook=receiver.url, secret=SECRET)
    with running(make_hub(tmp_path_factory.mktemp("browser-alerts"), tables)) as hub:
        yield hub


def an_event(hub: Hub, camera_id: str) -> int:
    """An ended event, as the tracker would record it (no footage: the player says so)."""
    start = time.time() - 60
    event_id = hub.index.add_event(camera_id, start)
    hub.index.end_event(
        event_id, end_time=start + 8, peak_score=0.04, peak_time=start + 3, bbox=None
    )
    return event_id


def test_the_alerts_panel(hub: Hub, browser: Browser, receiver: Receiver) -> None:
    problems = PageProblems()
    context = new_context(browser, DESKTOP)
    context.grant_permissions(["notifications"], origin=base(hub))
    try:
        page = problems.watch(context.new_page())
        page.goto(base(hub) + "/")
        log_in(page)
        pw_expect(page.locator("#app-view")).to_be_visible()
        page.click("#alerts-open")
        dialog = page.locator("#alerts-dialog")
        pw_expect(dialog).to_be_visible()
        pw_expect(page.locator("#alerts-push-state")).to_have_text("This browser gets no alerts.")
        pw_expect(page.locator("#alerts-rules")).to_have_text(
            "One alert per camera per 60 s. Quiet hours: 23:00-06:30 (Europe/Berlin)."
        )

        try_push(page, hub)
        snooze_and_wake(page, hub)
        switch_a_camera(page, hub)
        send_a_test_alert(page, receiver)

        page.click("#alerts-snooze")  # as the owner leaves it for the picture
        pw_expect(page.locator("#alerts-unsnooze")).to_be_visible()
        page.locator("#alerts-message").evaluate("e => { e.hidden = true; }")
        shot(page, "alerts.png")
        page.click("#alerts-unsnooze")
        pw_expect(page.locator("#alerts-snooze")).to_be_visible()
    finally:
        context.close()
    assert problems.found == []


def try_push(page: Page, hub: Hub) -> None:
    """Enabling push registers the worker for the whole page; subscribing then needs a
    push service, which headless Chromium cannot reach here: the panel says so."""
    button = page.locator("#alerts-push")
    pw_expect(button).to_have_text("Enable push on this browser")
    button.click()
    message = page.locator("#alerts-message")
    pw_expect(message).to_be_visible()
    scope = page.evaluate(
        "async () => (await navigator.serviceWorker.getRegistration('/'))?.scope ?? null"
    )
    assert scope == base(hub) + "/"
    if hub.index.push_subscriptions():  # a Chromium that can reach a push service
        pw_expect(page.locator("#alerts-push-state")).to_have_text("This browser gets alerts.")
        page.click("#alerts-push")  # turned off again: no alert may leave 127.0.0.1
        pw_expect(page.locator("#alerts-push-state")).to_have_text("This browser gets no alerts.")
        assert hub.index.push_subscriptions() == []
    else:
        pw_expect(message).to_have_text(re.compile(r"^The browser's push service refused"))
        pw_expect(message).to_have_class("form-error")
        print(f"headless Chromium did not subscribe: {message.text_content()}")


def snooze_and_wake(page: Page, hub: Hub) -> None:
    page.click("#alerts-snooze")
    pw_expect(page.locator("#alerts-snooze-state")).to_have_text(
        re.compile(r"^All alerts are snoozed until \d")
    )
    until = hub.index.snoozed_until()
    assert until is not None and 3500 < until - time.time() <= 3600
    page.click("#alerts-unsnooze")
    pw_expect(page.locator("#alerts-snooze-state")).to_have_text("Alerts are on.")
    assert hub.index.snoozed_until() is None


def switch_a_camera(page: Page, hub: Hub) -> None:
    boxes = page.locator("#alerts-cameras input[type=checkbox]")
    pw_expect(boxes).to_have_count(2)
    garden = page.locator('#alerts-cameras input[data-camera="garden"]')
    pw_expect(garden).to_be_checked()
    garden.uncheck()
    deadline = time.monotonic() + 15
    while hub.index.muted_cameras() != {"garden"}:
        assert time.monotonic() < deadline, "the switch never reached the hub"
        time.sleep(0.05)
    # The panel shows the hub's state when opened again. Closed with its button, and
    # seen closed, before it is opened: an Escape pressed while the panel re-renders
    # after the switch was once seen to leave it open (a CI run).
    dialog = page.locator("#alerts-dialog")
    dialog.get_by_role("button", name="Done").click()
    pw_expect(dialog).to_be_hidden()
    page.click("#alerts-open")
    pw_expect(garden).not_to_be_checked()
    pw_expect(page.locator('#alerts-cameras input[data-camera="porch"]')).to_be_checked()
    garden.check()
    deadline = time.monotonic() + 15
    while hub.index.muted_cameras():
        assert time.monotonic() < deadline, "the switch never reached the hub"
        time.sleep(0.05)


def send_a_test_alert(page: Page, receiver: Receiver) -> None:
    before = len(receiver.got)
    page.click("#alerts-test")
    pw_expect(page.locator("#alerts-message")).to_have_text(re.compile(r"^Test alert sent"))
    # The synthetic porch walks by now and then: its motion alerts may come in between.
    got = receiver.wait_for(before + 1)
    while not any(json.loads(request.body)["type"] == "test" for request in got[before:]):
        got = receiver.wait_for(len(got) + 1)  # fails after its timeout
    target = page.locator('#alerts-targets [data-target="webhook"]')
    pw_expect(target).to_contain_text(re.compile(r"working \([1-9]\d* sent\)"))


def test_an_alert_link_opens_the_event_after_login(hub: Hub, browser: Browser) -> None:
    event_id = an_event(hub, "garden")
    problems = PageProblems()
    context = new_context(browser, DESKTOP)
    try:
        page = problems.watch(context.new_page())
        page.goto(f"{base(hub)}/#event-{event_id}")  # what the notification opens
        pw_expect(page.locator("#login-view")).to_be_visible()
        log_in(page)
        pw_expect(page.locator("#player")).to_be_visible()
        pw_expect(page.locator("#player-title")).to_have_text("Garden")
        assert page.evaluate("location.hash") == "#events"
    finally:
        context.close()
    assert problems.found == []


def test_the_worker_and_manifest_are_served(hub: Hub) -> None:
    import urllib.request

    with urllib.request.urlopen(base(hub) + "/sw.js") as resp:
        assert resp.headers["Content-Type"].startswith("text/javascript")
        assert b"showNotification" in resp.read()
    with urllib.request.urlopen(base(hub) + "/static/manifest.webmanifest") as resp:
        assert resp.headers["Content-Type"] == "application/manifest+json"
        manifest = json.load(resp)
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == (
        "/",
        "/",
        "standalone",
    )
