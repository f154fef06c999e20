"""The running hub: opens the store, recovers after an unclean stop, runs the cameras
and retention, and shuts everything down cleanly on a signal."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub import repair, tls, vault
from hub.alerts.offsite_notice import FAILING_FOR
from hub.alerts.service import Alerts, OwnerAlerts
from hub.alerts.sink import AnnouncingEvents
from hub.alerts.topics import CameraInfo, page_url
from hub.archive import Archive, RetentionPolicy
from hub.audit import AuditKind, AuditLog, RepeatFilter, SnapshotBursts
from hub.camera import Camera, EventSink
from hub.config import CameraSettings, Config
from hub.config_file import ConfigFile
from hub.fsutil import DirectoryLock
from hub.health import DISABLED, CameraHealth, camera_health
from hub.logs import RepeatedFailure
from hub.motion import MotionEvent
from hub.offsite.state import offsite_state
from hub.offsite.triage import CameraPolicy
from hub.offsite.uploader import OffsiteCopy
from hub.shares import shares_to_end
from hub.store import DamagedIndex, Index, is_damage
from hub.web.app import CameraView, WebContext, make_app
from hub.web.auth import LoginThrottle, Sessions
from hub.web.clips import ClipCache, is_owner_clip
from hub.web.server import WebServer
from hub.web.settings_routes import HubStopping, SettingsAccess

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
    def vapid(self) -> Path:
        return self.root / "vapid.pem"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls" / "cert.pem"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls" / "key.pem"


class HubNotInitialised(Exception):
    """The data directory has no owner keys yet: `camhub init` must run first."""


class KeyFileError(Exception):
    """The owner key file cannot be read or used; the message names it and what to do."""


# The key pair never changes (a password change rewraps the same private key), so any
# copy of the file holds the right key; only its slots open it, not the code alone.
RESTORE_ADVICE = (
    "Restore keys.json from a backup: any copy works, as the owner key pair never changes "
    "(an older copy opens with the password of its day, or the recovery code, "
    "which alone cannot rebuild the file)"
)


class IndexUnusable(Exception):
    """The index is missing, empty or damaged while footage exists: the hub does not
    start on it (it would not know that footage), and `camhub repair` rebuilds it."""

    def __init__(self, problem: str, data_dir: Path) -> None:
        super().__init__(problem)
        self.data_dir = data_dir


def open_index(paths: DataPaths) -> Index:
    """The index, checked before anything trusts it.

    A missing or empty file is a new index only when there is no footage for it to
    have listed. SQLite's quick check reads every page once (0.7 s for 30 days of one
    camera at 4 s segments, a 222 MB index, on the dev machine), so a damaged page stops
    the start here instead of failing some later write.
    """
    path = paths.index
    try:
        size: int | None = path.stat().st_size
    except FileNotFoundError:
        size = None
    if not size and repair.has_sealed_files(paths.root):
        state = "missing" if size is None else "empty (0 bytes)"
        raise IndexUnusable(
            f"the index {path} is {state} but {paths.footage} holds sealed footage", paths.root
        )
    try:
        index = Index(path)
    except DamagedIndex as exc:
        raise IndexUnusable(
            f"the index {path} is not readable ({exc.reason})", paths.root
        ) from None
    try:
        verdict = index.check_integrity(quick=True)
        lists_footage = index.has_footage()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            index.close()
            raise
        verdict, lists_footage = str(exc), True
    problem = None
    if verdict != "ok":
        problem = f"the index {path} is damaged ({verdict.splitlines()[0]})"
    elif not lists_footage and repair.has_sealed_files(paths.root):
        problem = f"the index {path} lists no footage but {paths.footage} holds sealed files"
    if problem is not None:
        index.close()
        raise IndexUnusable(problem, paths.root)
    return index


def load_keyfile(paths: DataPaths) -> vault.KeyFile:
    if not paths.keys.exists():
        raise HubNotInitialised(f"no owner keys in {paths.root}: run `camhub init` first")
    return read_keyfile(paths.keys)


def read_keyfile(path: Path) -> vault.KeyFile:
    """The key file at `path`, checked (vault.KeyFile.from_json); never written here, so a
    damaged file stays as found for the owner to replace."""
    try:
        with path.open("rb") as f:
            data = f.read(vault.MAX_KEYFILE_SIZE + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read the owner key file {path}: {exc.strerror}") from None
    try:
        return vault.KeyFile.from_json(data)
    except vault.NewerKeyFile as exc:
        raise KeyFileError(f"{path}: {exc}: a newer camhub wrote it; run that one") from None
    except vault.VaultError as exc:
        what = str(exc).removeprefix("key file: ")
        raise KeyFileError(f"{path} is damaged: {what}. {RESTORE_ADVICE}") from None


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

    def __init__(self, config: Config, *, offsite_failing_for: float = FAILING_FOR) -> None:
        """`offsite_failing_for`: seconds the off-site copy fails before the owner hears
        (hub/alerts/offsite_notice.py); shorter only in tests."""
        self.config = config
        self._offsite_failing_for = offsite_failing_for
        self.paths = DataPaths(config.hub.data_dir)
        keyfile = load_keyfile(self.paths)
        if keyfile.version < vault.KEYFILE_VERSION:
            log.warning(
                "%s is a version %d key file, without a check of its public key; "
                "`camhub passwd` upgrades it",
                self.paths.keys,
                keyfile.version,
            )
        self._dir_lock = DirectoryLock(self.paths.root)
        try:
            self._open_store(keyfile)
        except BaseException:
            self._dir_lock.release()
            raise
        self.sessions = Sessions(config.web.session_idle_minutes * 60.0)
        self.clips = ClipCache()
        self.repeats = RepeatFilter()
        self.bursts = SnapshotBursts()
        self.web: WebServer | None = None
        self._failures = {
            task: RepeatedFailure(task)
            for task in ("ending shares and sessions", "retention", "sealing the access log")
        }
        self._index_failure = RepeatedFailure("the index")
        self._index_failures_seen = 0
        self._stopping = threading.Event()
        self._cameras_lock = threading.Lock()  # a camera restarted from the page, or stop()
        self._started = False  # start() ran to its end
        self._housekeeping = threading.Thread(
            target=self._housekeeping_loop, name="housekeeping", daemon=True
        )

    def _open_store(self, keyfile: vault.KeyFile) -> None:
        """The index (checked), the archive and the cameras; under the directory's lock."""
        storage = self.config.storage
        self.index = open_index(self.paths)
        self._offsite_policies: dict[str, CameraPolicy] = {}
        self.offsite = self._offsite_copy(keyfile)
        self.archive = Archive(
            self.paths.root,
            self.index,
            keyfile.public_key(),
            RetentionPolicy(
                max_age_days=storage.retention_days,
                max_footage_bytes=storage.max_footage_bytes,
                min_free_bytes=storage.min_free_bytes,
            ),
            on_sealed=self.offsite.file_sealed if self.offsite else None,
            keep=self.offsite.keep if self.offsite else None,
            on_owner_delete=self.offsite.owner_deleted if self.offsite else None,
        )
        self.audit = AuditLog(self.index)
        owner_alerts = OwnerAlerts(
            self.config.alerts, self.config.webhook, self.index, self.audit, self.paths.vapid
        )
        self.alerts = Alerts(
            self.config.mqtt, owner_alerts, offsite_failing_for=self._offsite_failing_for
        )
        self._events = AnnouncingEvents(IndexedEvents(self.index, self.archive), self.alerts.bus)
        self.cameras = [self._new_camera(cam) for cam in self.config.cameras if cam.enabled]

    def _new_camera(self, settings: CameraSettings) -> Camera:
        return Camera(settings, self.config.storage.segment_seconds, self.archive, self._events)

    def _offsite_copy(self, keyfile: vault.KeyFile) -> OffsiteCopy | None:
        """The off-site copy, if configured. Its triage reads the cameras' policies from
        `self._offsite_policies`, which a camera restarted from the page updates."""
        if self.config.offsite is None:
            return None
        self._offsite_policies.update({c.id: _offsite_policy(c) for c in self.config.cameras})
        return OffsiteCopy(
            self.config.offsite, self.index, self.paths.root, keyfile, self._offsite_policies
        )

    def start(self) -> None:
        try:
            report = self.archive.recover()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            raise IndexUnusable(
                f"the index {self.paths.index} failed during recovery ({exc})", self.paths.root
            ) from None
        for line in report.lines():
            log.warning("%s", line)
        if self.offsite is not None:
            self.offsite.queue_recovered(list(report.recovered))
            self.offsite.start()
        self._log_start()
        self._run("retention", self._enforce_retention)
        for camera in self.cameras:
            camera.start()
        self._housekeeping.start()
        log.info("recording %d camera(s) into %s", len(self.cameras), self.paths.root)
        self._start_web()
        self._start_alerts()
        self._started = True

    def stop(self) -> None:
        """Stop serving, flush every open segment and event, then close the index.

        "stopped cleanly" is said only when every step did its job; otherwise the
        last line says what did not (and a start that failed is never a clean stop).
        """
        self._stopping.set()
        owner_key = self.sessions.any_key()  # stopping the web server drops the sessions
        problems = [] if self._started else ["the start failed"]
        if self.web is not None:
            self.web.stop()
        with self._cameras_lock:
            for camera in self.cameras:
                camera.stop()
        self.alerts.stop()  # after the cameras, so that their last events are told
        if self._housekeeping.is_alive():
            self._housekeeping.join(timeout=5)
            if self._housekeeping.is_alive():
                problems.append("housekeeping still running")
        self.archive.settle()  # what a full disk cut short, closed if there is room now
        if self.offsite is not None:
            self.offsite.stop()  # what is still pending is sent after the next start
        try:
            self.audit.record_repeats(self.repeats.due(time.time(), everything=True))
            self.audit.record_bursts(self.bursts.due(time.time(), everything=True))
            self._seal_audit(owner_key)
            left_open = len(self.index.open_segments())
        except sqlite3.Error as exc:
            problems.append(f"the index failed: {exc}")
        else:
            if left_open:
                # A writer that did not finish, or a segment aborted without being closed:
                # the next start recovers it (Archive.recover).
                problems.append(f"{left_open} segment(s) left open")
        self.sessions.clear()
        self.index.close()
        self._dir_lock.release()
        if problems:
            log.error("stopped, not cleanly: %s", "; ".join(problems))
        else:
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
                cameras={camera.id: _camera_view(camera, self.offsite) for camera in self.cameras},
                sessions=self.sessions,
                throttle=LoginThrottle(),
                clips=self.clips,
                repeats=self.repeats,
                bursts=self.bursts,
                secure_cookies=web_settings.tls,
                origins=frozenset(web_settings.origins),
                listen_host=web_settings.host,
                alerts=self.alerts,
                settings=self._settings_access(),
            )
            server = WebServer(make_app(context), web_settings.host, web_settings.port, ssl_context)
            server.start()
        except OSError as exc:  # also ssl.SSLError: a port in use, an unreadable certificate
            log.error("the web page is not served (listen = %s): %s", web_settings.listen, exc)
            return
        self.web = server
        log.info("owner page at %s", server.url)

    def _settings_access(self) -> SettingsAccess:
        path = self.config.path
        return SettingsAccess(
            file=ConfigFile(path) if path is not None else None,
            current=lambda: self.config,
            restart_camera=self.restart_camera,
            set_session_idle=self.set_session_idle,
        )

    def _start_alerts(self) -> None:
        served = self.web.url if self.web is not None else None
        link = page_url(self.config.web.origins, served, tls.lan_addresses())
        # Every camera of the config, the disabled ones too: Home Assistant shows those
        # unavailable rather than forgetting them (docs/DESIGN.md §15).
        cameras = [(info, partial(self._health, info.id)) for info in self._camera_infos()]
        copy = self.offsite
        offsite = None if copy is None else lambda: offsite_state(copy.status(), time.time())
        self.alerts.start(cameras, link, offsite)

    def _camera_infos(self) -> list[CameraInfo]:
        return [CameraInfo(c.id, c.name) for c in self.config.cameras]

    def _health(self, camera_id: str) -> CameraHealth:
        """Asked of the camera running now: the page may have restarted or disabled it."""
        running = next((c for c in self.cameras if c.id == camera_id), None)
        return camera_health(running) if running is not None else DISABLED

    def restart_camera(self, settings: CameraSettings) -> CameraView | None:
        """Run camera `settings.id` with new settings, the other cameras untouched.

        Its pipeline stops as at the hub's stop (the open event ended, the open segment
        finished, sealed and indexed), then a new one starts unless the camera is now
        disabled. What the page shows of it (None: disabled) comes back. The new
        pipeline is built before the old one stops, so settings it refuses leave the
        camera running as it was.
        """
        with self._cameras_lock:
            if self._stopping.is_set():
                raise HubStopping("the hub is stopping; the new settings apply at its next start")
            started = self._new_camera(settings) if settings.enabled else None
            for camera in self.cameras:
                if camera.id == settings.id:
                    camera.stop()
            if started is not None:
                started.start()
            self.config = replace(
                self.config,
                cameras=tuple(settings if c.id == settings.id else c for c in self.config.cameras),
            )
            self._offsite_policies[settings.id] = _offsite_policy(settings)
            kept = {c.id: c for c in self.cameras if c.id != settings.id}
            if started is not None:
                kept[settings.id] = started
            self.cameras = [kept[c.id] for c in self.config.cameras if c.id in kept]
        self.alerts.cameras_changed(self._camera_infos())  # a new name; never waits
        log.info("%s: %s with its new settings", settings.id, "restarted" if started else "stopped")
        return _camera_view(started, self.offsite) if started is not None else None

    def set_session_idle(self, minutes: int) -> None:
        """A new session idle time from the page: for sessions open now too."""
        self.config = replace(
            self.config, web=replace(self.config.web, session_idle_minutes=minutes)
        )
        self.sessions.idle_seconds = minutes * 60.0

    def _log_start(self) -> None:
        """An access-log record per start, and one more whenever the config changed."""
        digest = _config_digest(self.config)
        sections = _section_digests(self.config)
        previous = self.index.last_audit(AuditKind.HUB_STARTED.value)
        before = json.loads(previous.detail) if previous is not None else {}
        if previous is not None and before.get("config") != digest:
            changed = sorted(
                k for k in sections if before.get("sections", {}).get(k) != sections[k]
            )
            self.audit.record(
                AuditKind.CONFIG_CHANGED, "system", {"config": digest, "changed": changed}
            )
        self.audit.record(
            AuditKind.HUB_STARTED,
            "system",
            {"config": digest, "cameras": len(self.cameras), "sections": sections},
        )

    def _housekeeping_loop(self) -> None:
        """Each task is retried next round whatever failed: one index error must not
        stop retention, share expiry and session expiry for good."""
        rounds = 0
        while not self._stopping.wait(HOUSEKEEPING_INTERVAL):
            rounds += 1
            self._run("ending shares and sessions", lambda: self._end_due(time.time()))
            if rounds % RETENTION_EVERY == 0:
                self._run("retention", self._enforce_retention)
                self._run("sealing the access log", self._seal_audit)
            self._watch_index()

    def _run(self, task: str, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception as exc:
            self._failures[task].failed(f"{type(exc).__name__}: {exc}", time.monotonic())
        else:
            self._failures[task].succeeded()

    def _watch_index(self) -> None:
        """Say in the log what the index's health says on the page and in /healthz."""
        health = self.index.health
        failures, self._index_failures_seen = (
            health.failures - self._index_failures_seen,
            health.failures,
        )
        problem = health.problem
        if problem is not None:
            self._index_failure.failed(problem, time.monotonic(), failures)
        elif not failures:
            self._index_failure.succeeded()

    def _end_due(self, now: float) -> None:
        """End expired and used-up shares (deleting their keys) and idle sessions; drop
        decrypted clips nobody asks for any more, and the owner's once no session is left."""
        for share, reason in shares_to_end(self.index, now):
            if self.index.end_share(share.id, now, reason):
                self.audit.record(
                    AuditKind.SHARE_EXPIRED,
                    "system",
                    {"share": share.id, "label": share.label, "reason": reason.value},
                )
        for session, reason in self.sessions.expire(now):
            self.audit.record(
                AuditKind.SESSION_EXPIRED,
                f"owner from {session.client}",
                {"locked": True, "reason": reason},
            )
        self.audit.record_repeats(self.repeats.due(now))
        self.audit.record_bursts(self.bursts.due(now))
        if not len(self.sessions):
            self.clips.drop(is_owner_clip)
        self.clips.evict_stale()

    def _seal_audit(self, key: X25519PrivateKey | None = None) -> None:
        """While the owner is logged in, seal what was logged since (hub/audit.py)."""
        key = key or self.sessions.any_key()
        if key is not None and not self.audit.seal(key):
            log.error("the access log does not verify; it was not sealed (see camhub audit verify)")

    def _enforce_retention(self) -> None:
        report = self.archive.enforce_retention(time.time())
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
                    "not_offsite": report.not_offsite,
                },
            )


def _offsite_policy(camera: CameraSettings) -> CameraPolicy:
    return CameraPolicy(camera.record, camera.pre_roll, camera.post_roll)


def _camera_view(camera: Camera, offsite: OffsiteCopy | None = None) -> CameraView:
    s = camera.settings

    def status() -> dict[str, object]:
        health = camera_health(camera)
        shown: dict[str, object] = {
            "connected": health.online,
            "reconnects": health.reconnects,
            "error": health.reason,
            "fps": None if health.fps is None else round(health.fps, 1),
            "kbit_s": None if health.kbit_s is None else round(health.kbit_s),
            "width": health.width,
            "height": health.height,
            "last_frame": health.last_frame,
        }
        if offsite is not None:
            shown["offsite"] = offsite.camera_status(camera.id, time.time())
        return shown

    return CameraView(
        s.id, s.name, s.record, s.pre_roll, s.post_roll, camera.live, status, camera.streams
    )


def _config_digest(config: Config) -> str:
    """A fingerprint of the settings in force (passwords included, but only hashed)."""
    return hashlib.sha256(repr(config).encode() + _camera_urls(config)).hexdigest()[:16]


def _camera_urls(config: Config) -> bytes:
    """What the reprs hide: the cameras' URLs, the MQTT broker's password, the webhook's
    URL and secret, the off-site keys."""
    return "\n".join(_hidden(config).values()).encode()


def _section_digests(config: Config) -> dict[str, str]:
    """A fingerprint per config table ([offsite], the cameras...), so a change says where."""
    hidden = _hidden(config)
    return {
        f.name: hashlib.sha256(
            repr(getattr(config, f.name)).encode() + hidden.get(f.name, "").encode()
        ).hexdigest()[:16]
        for f in fields(config)
        if f.name != "path"
    }


def _hidden(config: Config) -> dict[str, str]:
    """What the reprs hide, by config table (camera URLs may carry passwords)."""
    hidden = {
        "cameras": "\n".join(cam.url + " " + cam.detect_url for cam in config.cameras),
        "mqtt": config.mqtt.password,
        "webhook": f"{config.webhook.url} {config.webhook.secret}",
    }
    if config.offsite is not None:
        hidden["offsite"] = f"{config.offsite.access_key} {config.offsite.secret_key}"
    return hidden


def run_until_signalled(
    hub: Hub, *, seconds: float | None = None, started: Callable[[], None] | None = None
) -> None:
    """Run until SIGTERM/SIGINT (or for `seconds`), then stop cleanly; `started` runs
    once the hub (and its web server) is up."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        hub.start()
        if started is not None:
            started()
        stop.wait(seconds)
    finally:
        hub.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
