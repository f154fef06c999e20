"""The running hub: opens the store, recovers after an unclean stop, runs the cameras
and retention, and shuts everything down cleanly on a signal."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub import tls, vault
from hub.alerts.service import Alerts
from hub.alerts.sink import AnnouncingEvents
from hub.alerts.topics import CameraInfo, page_url
from hub.archive import Archive, RetentionPolicy
from hub.audit import AuditKind, AuditLog, RepeatFilter
from hub.camera import Camera, EventSink
from hub.config import Config
from hub.motion import MotionEvent
from hub.shares import shares_to_end
from hub.store import Index
from hub.web.app import CameraView, WebContext, make_app
from hub.web.auth import LoginThrottle, Sessions
from hub.web.clips import ClipCache, is_owner_clip
from hub.web.server import WebServer

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 15.0  # ending shares, expiring sessions
RETENTION_EVERY = 4  # housekeeping rounds between retention passes (a minute)


@dataclass(frozen=True, slots=True)
class DataPaths:
    """Where a hub keeps its state, all under one directory only it may read."""

    root: Path

    @property
    def keys(self) -> Path:
        return self.root / "keys.json"

    @property
    def index(self) -> Path:
        return self.root / "index.sqlite3"

    @property
    def footage(self) -> Path:
        return self.root / "footage"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls" / "cert.pem"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls" / "key.pem"


class HubNotInitialised(Exception):
    """The data directory has no owner keys yet: `camhub init` must run first."""


def load_keyfile(paths: DataPaths) -> vault.KeyFile:
    try:
        text = paths.keys.read_text()
    except FileNotFoundError:
        raise HubNotInitialised(f"no owner keys in {paths.root}: run `camhub init` first") from None
    return vault.KeyFile.from_json(text)


class IndexedEvents(EventSink):
    """Records motion events in the index, with a sealed snapshot of each."""

    def __init__(self, index: Index, archive: Archive) -> None:
        self._index = index
        self._archive = archive

    def event_started(self, camera_id: str, event: MotionEvent) -> int:
        return self._index.add_event(camera_id, event.start)

    def event_ended(
        self, camera_id: str, event_id: int, event: MotionEvent, jpeg: bytes | None
    ) -> None:
        snapshot_id = None
        if jpeg is not None:
            try:
                snapshot_id = self._archive.save_snapshot(
                    camera_id, event_id, event.peak_time, jpeg
                )
            except OSError as exc:
                log.warning("%s: could not store the event snapshot: %s", camera_id, exc.strerror)
        self._index.end_event(
            event_id,
            end_time=event.end if event.end is not None else event.peak_time,
            peak_score=event.peak_score,
            peak_time=event.peak_time,
            bbox=event.bbox,
            snapshot_id=snapshot_id,
        )


class Hub:
    """All cameras of one config, recording into one data directory."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.paths = DataPaths(config.hub.data_dir)
        keyfile = load_keyfile(self.paths)
        storage = config.storage
        self.index = Index(self.paths.index)
        self.archive = Archive(
            self.paths.root,
            self.index,
            keyfile.public_key(),
            RetentionPolicy(
                max_age_days=storage.retention_days,
                max_footage_bytes=storage.max_footage_bytes,
                min_free_bytes=storage.min_free_bytes,
            ),
        )
        self.audit = AuditLog(self.index)
        self.alerts = Alerts(config.mqtt)
        events = AnnouncingEvents(IndexedEvents(self.index, self.archive), self.alerts.bus)
        self.cameras = [
            Camera(cam, storage.segment_seconds, self.archive, events)
            for cam in config.cameras
            if cam.enabled
        ]
        self.sessions = Sessions(config.web.session_idle_minutes * 60.0)
        self.clips = ClipCache()
        self.repeats = RepeatFilter()
        self.web: WebServer | None = None
        self._stopping = threading.Event()
        self._housekeeping = threading.Thread(
            target=self._housekeeping_loop, name="housekeeping", daemon=True
        )

    def start(self) -> None:
        report = self.archive.recover()
        for line in report.lines():
            log.warning("%s", line)
        self._log_start()
        self._enforce_retention()
        for camera in self.cameras:
            camera.start()
        self._housekeeping.start()
        log.info("recording %d camera(s) into %s", len(self.cameras), self.paths.root)
        self._start_web()
        self._start_alerts()

    def stop(self) -> None:
        """Stop serving, flush every open segment and event, then close the index."""
        self._stopping.set()
        owner_key = self.sessions.any_key()  # stopping the web server drops the sessions
        if self.web is not None:
            self.web.stop()
        for camera in self.cameras:
            camera.stop()
        self.alerts.stop()  # after the cameras, so that their last events are told
        if self._housekeeping.is_alive():
            self._housekeeping.join(timeout=5)
        self.audit.record_repeats(self.repeats.due(time.time(), everything=True))
        self._seal_audit(owner_key)
        self.sessions.clear()
        self.index.close()
        log.info("stopped cleanly")

    def _start_web(self) -> None:
        """Serve the owner's page. If that fails (the port is taken), recording goes on:
        footage matters more than the page, and the log says what to fix."""
        web_settings = self.config.web
        try:
            ssl_context = None
            if web_settings.tls:
                fingerprint, made = tls.ensure_certificate(self.paths.tls_cert, self.paths.tls_key)
                if made:
                    log.warning("made a TLS certificate, SHA-256 fingerprint %s", fingerprint)
                ssl_context = tls.server_context(self.paths.tls_cert, self.paths.tls_key)
            context = WebContext(
                index=self.index,
                archive=self.archive,
                audit=self.audit,
                keys_path=self.paths.keys,
                cameras={camera.id: _camera_view(camera) for camera in self.cameras},
                sessions=self.sessions,
                throttle=LoginThrottle(),
                clips=self.clips,
                repeats=self.repeats,
                secure_cookies=web_settings.tls,
                origins=frozenset(web_settings.origins),
            )
            server = WebServer(make_app(context), web_settings.host, web_settings.port, ssl_context)
            server.start()
        except OSError as exc:  # also ssl.SSLError: a port in use, an unreadable certificate
            log.error("the web page is not served (listen = %s): %s", web_settings.listen, exc)
            return
        self.web = server
        log.info("owner page at %s", server.url)

    def _start_alerts(self) -> None:
        served = self.web.url if self.web is not None else None
        link = page_url(self.config.web.origins, served, tls.lan_addresses())
        cameras = [(CameraInfo(c.id, c.settings.name), c.is_online) for c in self.cameras]
        self.alerts.start(cameras, link)

    def _log_start(self) -> None:
        """An access-log record per start, and one more whenever the config changed."""
        digest = _config_digest(self.config)
        previous = self.index.last_audit(AuditKind.HUB_STARTED.value)
        if previous is not None and json.loads(previous.detail).get("config") != digest:
            self.audit.record(AuditKind.CONFIG_CHANGED, "system", {"config": digest})
        self.audit.record(
            AuditKind.HUB_STARTED, "system", {"config": digest, "cameras": len(self.cameras)}
        )

    def _housekeeping_loop(self) -> None:
        rounds = 0
        while not self._stopping.wait(HOUSEKEEPING_INTERVAL):
            rounds += 1
            self._end_due(time.time())
            if rounds % RETENTION_EVERY == 0:
                self._enforce_retention()
                self._seal_audit()

    def _end_due(self, now: float) -> None:
        """End expired and used-up shares (deleting their keys) and idle sessions; drop
        decrypted clips nobody asks for any more, and the owner's once no session is left."""
        for share, reason in shares_to_end(self.index, now):
            if self.index.end_share(share.id, now, reason):
                self.audit.record(
                    AuditKind.SHARE_EXPIRED, "system", {"share": share.id, "reason": reason.value}
                )
        for session, reason in self.sessions.expire(now):
            self.audit.record(
                AuditKind.SESSION_EXPIRED,
                f"owner from {session.client}",
                {"locked": True, "reason": reason},
            )
        self.audit.record_repeats(self.repeats.due(now))
        if not len(self.sessions):
            self.clips.drop(is_owner_clip)
        self.clips.evict_stale()

    def _seal_audit(self, key: X25519PrivateKey | None = None) -> None:
        """While the owner is logged in, seal what was logged since (hub/audit.py)."""
        key = key or self.sessions.any_key()
        if key is not None and not self.audit.seal(key):
            log.error("the access log does not verify; it was not sealed (see camhub audit verify)")

    def _enforce_retention(self) -> None:
        try:
            report = self.archive.enforce_retention(time.time())
        except OSError as exc:
            log.error("retention failed: %s", exc)
            return
        for line in report.lines():
            log.info("%s", line)
        if report.segments or report.snapshots or report.events:
            self.audit.record(
                AuditKind.RETENTION,
                "system",
                {
                    "segments": report.segments,
                    "snapshots": report.snapshots,
                    "events": report.events,
                    "bytes": report.bytes_freed,
                    "by_age": report.by_age,
                    "by_budget": report.by_budget,
                    "by_free_space": report.by_free_space,
                },
            )


def _camera_view(camera: Camera) -> CameraView:
    s = camera.settings

    def status() -> dict[str, object]:
        streams = camera.status
        errors = [st.last_error for st in streams if st.last_error and not st.connected]
        return {
            "connected": all(st.connected for st in streams),
            "reconnects": sum(st.reconnects for st in streams),
            "error": errors[0] if errors else None,
        }

    return CameraView(s.id, s.name, s.record, s.pre_roll, s.post_roll, camera.live, status)


def _config_digest(config: Config) -> str:
    """A fingerprint of the settings in force (passwords included, but only hashed)."""
    return hashlib.sha256(repr(config).encode() + _camera_urls(config)).hexdigest()[:16]


def _camera_urls(config: Config) -> bytes:
    """What the reprs hide: the cameras' URLs and the MQTT broker's password."""
    urls = [cam.url + " " + cam.detect_url for cam in config.cameras]
    return "\n".join([*urls, config.mqtt.password]).encode()


def run_until_signalled(hub: Hub, *, seconds: float | None = None) -> None:
    """Run until SIGTERM/SIGINT (or for `seconds`), then stop cleanly."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        hub.start()
        stop.wait(seconds)
    finally:
        hub.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
