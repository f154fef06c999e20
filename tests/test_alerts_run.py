"""`camhub run` alerts the owner: the real CLI as a subprocess, a real RTSP camera (the
person clip, whose first visitor walks in 6 s after the stream starts), a webhook
receiver and a Web Push service on 127.0.0.1.

The first event of the visit reaches both, the push decrypts for the subscribed
"browser" and names the same event as the webhook; the log says where alerts go, and
holds no secret, no token path and no traceback.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alert_receivers import BrowserKeys, b64url, serve, vapid_claims, webhook_verifies
from rtsp_camera import serving
from test_daemon import HubProcess, new_site

from hub.alerts.vapid import application_server_key, load_or_create
from hub.store import Index

SECRET = "run-secret-5e6f7a8b9c0d"
TOKEN = "camhub-door-91b2"


@pytest.mark.slow
def test_camhub_run_alerts_by_webhook_and_web_push(
    tmp_path: Path,
    person_clip: Path,
    hubs: Callable[[Path], HubProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tls = tmp_path / "push-tls"
    tls.mkdir()
    with serving(person_clip) as camera, serve() as hook, serve(tls) as push:
        push.status = lambda _path: 201
        # The hub trusts the local push service as it trusts real ones (system CAs).
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls / "cert.pem"))
        site = new_site(
            tmp_path / "site",
            camera.url,
            record="motion",
            segment_seconds=3,
            camera_extra='name = "Front door"\n',
        )
        with site.config.open("a") as config:
            config.write(
                '\n[alerts]\ncooldown_seconds = 3600\npush_contact = "mailto:me@example.org"\n'
                f'\n[webhook]\nenabled = true\nurl = "{hook.url}/{TOKEN}"\n'
                f'secret = "{SECRET}"\n'
            )
        phone = BrowserKeys.new()
        with Index(site.data / "index.sqlite3") as index:
            endpoint = f"{push.url}/push/{TOKEN}"
            keys = (phone.p256dh, b64url(phone.auth))
            index.add_push_subscription(endpoint, *keys, time.time(), "owner from test")
        hub = hubs(site.config)
        (posted,) = hook.wait_for(1, timeout=60)
        (pushed,) = push.wait_for(1, timeout=30)
        assert hub.terminate() == 0, hub.log

    assert webhook_verifies(posted, SECRET)
    alert = json.loads(posted.body)
    assert (alert["type"], alert["camera"]) == ("motion", "door")
    payload = json.loads(phone.decrypt(pushed))
    assert payload["camera"] == "Front door" and payload["url"] == f"/#event-{alert['event_id']}"
    assert payload["time"] == alert["time"]
    claims, key = vapid_claims(pushed)
    pem = site.data / "vapid.pem"
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    assert key == application_server_key(load_or_create(pem))
    assert claims["sub"] == "mailto:me@example.org"

    log = hub.log
    assert "alerts: sending to Web Push" in log and f"the webhook at {hook.url}" in log
    assert "Traceback" not in log and SECRET not in log and TOKEN not in log
    assert "stopped cleanly" in log
    with Index(site.data / "index.sqlite3") as index:
        kinds = [r.kind for r in index.audit_records(0, 1000)]
    assert "webhook target set" in kinds
