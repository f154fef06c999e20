"""The running hub: opens the store, recovers after an unclean stop, runs the cameras
and retention, and shuts everything down cleanly on a signal."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hub import vault
from hub.archive import Archive, RetentionPolicy
from hub.camera import Camera, EventSink
from hub.config import Config
from hub.motion import MotionEvent
from hub.store import Index

log = logging.getLogger(__name__)

RETENTION_INTERVAL = 60.0


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
        events = IndexedEvents(self.index, self.archive)
        self.cameras = [
            Camera(cam, storage.segment_seconds, self.archive, events)
            for cam in config.cameras
            if cam.enabled
        ]
        self._stopping = threading.Event()
        self._retention = threading.Thread(
            target=self._retention_loop, name="retention", daemon=True
        )

    def start(self) -> None:
        report = self.archive.recover()
        for line in report.lines():
            log.warning("%s", line)
        self._enforce_retention()
        for camera in self.cameras:
            camera.start()
        self._retention.start()
        log.info("recording %d camera(s) into %s", len(self.cameras), self.paths.root)

    def stop(self) -> None:
        """Flush every open segment and event, then close the index."""
        self._stopping.set()
        for camera in self.cameras:
            camera.stop()
        if self._retention.is_alive():
            self._retention.join(timeout=5)
        self.index.close()
        log.info("stopped cleanly")

    def _retention_loop(self) -> None:
        while not self._stopping.wait(RETENTION_INTERVAL):
            self._enforce_retention()

    def _enforce_retention(self) -> None:
        try:
            report = self.archive.enforce_retention(time.time())
        except OSError as exc:
            log.error("retention failed: %s", exc)
            return
        for line in report.lines():
            log.info("%s", line)


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
