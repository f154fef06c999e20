"""The off-site copy at run time: queues sealed files as they close, and one thread
("offsite") that uploads them, urgent first, and expires old copies.

Recording never waits for it: the Archive's hook only adds an index row and wakes the
thread. A failing bucket (down, wrong key, missing bucket) is one log line when it
starts failing and one when it works again, and a status for the page and
`camhub offsite status`; the queue waits in the index meanwhile.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from hub import vault
from hub.config import OffsiteSettings
from hub.offsite import journal, naming
from hub.offsite.bucket import Bucket, BucketError, Stopped, Stored
from hub.offsite.queue import Item, OffsiteQueue, Sent
from hub.offsite.state import CopyStatus
from hub.offsite.triage import CameraPolicy, Triage
from hub.store import EventRow, Index, SegmentRow, SegmentState, SnapshotRow
from hub.vault import FileKind

log = logging.getLogger(__name__)

BATCH = 16  # files per journal
IDLE_WAIT = 30.0  # seconds between looks at an empty queue (a new file wakes it at once)
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0  # a bucket that is down is tried at least once a minute
EXPIRY_EVERY = 3600.0
EXPIRY_PAGE = 256
DELETE_PAGE = 256
DRAIN_WAIT = 8.0  # seconds stop() lets the last files (the cameras' final segments) go
STOP_WAIT = 5.0  # then seconds it waits for an abandoned upload to end
DAY = 86400.0
LOCK_SLACK = 3600.0  # a lock counts as ended this long after its date (the store's clock)


class OffsiteCopy:
    def __init__(
        self,
        settings: OffsiteSettings,
        index: Index,
        data_dir: Path,
        keyfile: vault.KeyFile,
        cameras: Mapping[str, CameraPolicy],
    ) -> None:
        self.settings = settings
        self.queue = OffsiteQueue(data_dir / "index.sqlite3")
        self._index = index
        self._data_dir = data_dir
        self._keyfile = keyfile
        self._public_key = keyfile.public_key()
        self._tag = naming.hub_tag(keyfile.public_bytes)
        self._triage = Triage(index, cameras, everything=settings.what == "all")
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._wake = threading.Event()
        self._bucket = Bucket(settings, stop=self._stop)
        self._thread = threading.Thread(target=self._run, name="offsite", daemon=True)
        self._error: str | None = None
        self._working: bool | None = None
        self._ready = False
        self._next_expiry = 0.0
        self._key_copy_locked_until = 0.0  # with a lock: when the key copy's lock ends
        # Files of the batch being sent: uploaded (so locked) or about to be, not yet
        # confirmed. The web thread reads it when the owner deletes one.
        self._unconfirmed: set[str] = set()
        # camera id -> (pending, oldest queued), refreshed by the thread after each
        # round: the page reads it without waiting on the queue's lock (and its fsyncs).
        self._pending: dict[str, tuple[int, float]] = {}
        self._last_success = self.queue.summary().last_success

    # -- hooks for the archive and the daemon ------------------------------------------

    def file_sealed(self, kind: FileKind, file_id: str) -> None:
        """The Archive's hook: a segment or snapshot is closed and durable."""
        if kind is FileKind.SNAPSHOT:
            snapshot = self._index.get_snapshot(file_id)
            items = [Triage.snapshot(snapshot)] if snapshot is not None else []
        else:  # a row the index could not close yet comes again from Archive.settle
            segment = self._index.get_segment(file_id)
            ready = segment is not None and segment.state is not SegmentState.OPEN
            items = self._triage.segment(segment) if ready else []
        if items and self.queue.add(items, time.time()):
            self._pending = self.queue.pending_by_camera()
            self._wake.set()

    def queue_recovered(self, rows: list[SegmentRow]) -> None:
        """Segments a crash cut short, salvaged at start: footage like any other."""
        for row in rows:
            self.file_sealed(FileKind.SEGMENT, row.id)

    def owner_deleted(self, file_id: str) -> float | None:
        """The Archive's hook, before the owner's deletion of a file: never send it, and
        delete its copy from the bucket (soon, on the thread, or when its lock ends).
        None if it had no copy (nor one on its way), else when its lock ends (0.0: not
        locked). Its errors stop the owner's deletion: footage must not be gone here
        and still kept off the box."""
        now = time.time()
        locked_until = self.queue.owner_deleted(file_id, now)
        if locked_until is None:
            return None
        if file_id in self._unconfirmed and self.settings.lock != "off":
            # Sent (or being sent) in this batch, so locked from about now; `confirm`
            # writes the exact date to its deletion row.
            locked_until = now + self.settings.keep_days * DAY
        self._wake.set()
        return locked_until

    def keep(self, row: SegmentRow | SnapshotRow) -> bool:
        """Local retention's predicate: not yet off-site, so not deleted for age or budget."""
        return self.queue.is_pending(row.id)

    def camera_status(self, camera_id: str, now: float) -> dict[str, object]:
        """For the page, per camera; reads only memory (the web loop calls it)."""
        pending, oldest = self._pending.get(camera_id, (0, now))
        return {
            "working": self._working,
            "pending": pending,
            "lag_seconds": round(max(0.0, now - oldest), 1),
            "error": self._error,
        }

    def status(self) -> CopyStatus:
        """For the hub's listeners (hub/offsite/state.py); reads only memory."""
        pending = self._pending.values()
        return CopyStatus(
            self._working,
            self._error,
            sum(count for count, _ in pending),
            min((oldest for _, oldest in pending), default=None),
            self._last_success,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Send what is pending for up to DRAIN_WAIT (the cameras have just closed their
        last segments: an intruder's last seconds), then stop; anything left, an upload
        in progress included, is sent after the next start."""
        self._draining.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(DRAIN_WAIT)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT)
        self.queue.close()

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                self._pending = self.queue.pending_by_camera()
                if not self._ready:
                    self._prepare()
                self._relock_key_copy(time.time())
                busy = self._delete_for_owner()
                busy = self._send_batch() or busy
                self._expire_if_due(time.time())
            except Stopped:
                return
            except BucketError as exc:
                self._failed(str(exc))
                if self._draining.is_set():
                    return
                wait = BACKOFF_MAX if exc.config else backoff * random.uniform(0.5, 1.0)
                backoff = min(BACKOFF_MAX, backoff * 2)
                self._stop.wait(wait)
                continue
            except Exception as exc:  # a bug must not end the copy for good
                log.exception("off-site copy: unexpected failure")
                self._failed(f"unexpected failure: {exc}")
                self._stop.wait(BACKOFF_MAX)
                continue
            self._succeeded()  # every request of this round went through
            backoff = BACKOFF_FIRST
            if not busy:
                if self._draining.is_set():
                    return
                self._wake.wait(IDLE_WAIT)
                self._wake.clear()

    def _prepare(self) -> None:
        """Check the bucket, and leave a copy of the key file that only the recovery code
        opens, so a restore on a new box needs nothing that was on the old one."""
        self._bucket.check()
        self._bucket.check_lock()
        name = self._key_copy_name()
        if self.settings.lock != "off":
            self._key_copy_locked_until = self._bucket.locked_until(name) or 0.0
        elif not self._bucket.exists(name):
            self._put_key_copy()
        self._ready = True

    def _relock_key_copy(self, now: float) -> None:
        """With a lock: put the key copy again (a new version, with a new lock) once a
        day, so its newest version stays locked for about keep_days after the box is
        taken; a restore needs it as much as the footage."""
        lock_length = self.settings.keep_days * DAY
        renew_at = self._key_copy_locked_until - lock_length + min(DAY, lock_length / 2)
        if self.settings.lock == "off" or now < renew_at:
            return
        self._key_copy_locked_until = self._put_key_copy().locked_until or 0.0

    def _key_copy_name(self) -> str:
        return naming.keys_object(self.settings.prefix, self._tag)

    def _put_key_copy(self) -> Stored:
        """The key file as only the recovery code opens it."""
        data = recovery_only(self._keyfile).to_json().encode()
        return self._bucket.put_bytes(self._key_copy_name(), data)

    def _send_batch(self) -> bool:
        """Upload up to BATCH pending files, then their journal; False if none waited."""
        self._wake.clear()
        items = self.queue.next_pending(BATCH)
        if not items:
            return False
        sent: list[journal.JournalFile] = []
        confirmed: list[Sent] = []
        for item in items:
            if confirmed and not item.urgent and self._wake.is_set():
                break  # something newer may be urgent: journal what is done, look again
            row = self._row(item)
            if row is None:
                continue
            self._unconfirmed.add(item.id)
            try:
                stored = self._bucket.put_file(
                    naming.file_object(self.settings.prefix, self._tag, item.id),
                    self._data_dir / row.path,
                )
            except FileNotFoundError:
                self._lost(item)
                continue
            sent.append(journal.JournalFile(row, stored.sha256))
            confirmed.append(Sent(item, stored.size, stored.sha256, stored.locked_until))
        if confirmed:
            confirmed.append(self._send_journal(sent))
            now = time.time()
            self.queue.confirm(confirmed, now)
            self._last_success = now
        self._unconfirmed.clear()
        return True

    def _delete_for_owner(self) -> bool:
        """Delete the copies of footage the owner deleted, before sending anything new
        (a file deleted while it was being sent is among them); a locked copy waits for
        its lock to end (the loop comes by at least every IDLE_WAIT). False if none did."""
        deleted = 0
        while file_ids := self.queue.deletions(DELETE_PAGE, time.time() - LOCK_SLACK):
            for file_id in file_ids:
                name = naming.file_object(self.settings.prefix, self._tag, file_id)
                if self._deleted(file_id, name):
                    self.queue.deleted(file_id, time.time())
                    deleted += 1
        if deleted:
            log.info("off-site copy: deleted %d object(s) the owner deleted", deleted)
        return bool(deleted)

    def _send_journal(self, files: list[journal.JournalFile]) -> Sent:
        events = self._events_of(files)
        plain = journal.build(journal.Journal(self._tag, time.time(), tuple(files), events))
        sealed = vault.seal_bytes(plain, self._public_key, FileKind.JOURNAL)
        journal_id = vault.parse_header(sealed).file_id.hex()
        stored = self._bucket.put_bytes(
            naming.journal_object(self.settings.prefix, self._tag, journal_id), sealed
        )
        newest = max(_when(f.row) for f in files)
        item = Item(journal_id, "journal", None, newest, urgent=False)
        return Sent(item, stored.size, stored.sha256, stored.locked_until)

    def _events_of(self, files: list[journal.JournalFile]) -> tuple[EventRow, ...]:
        found: dict[int, EventRow] = {}
        for f in files:
            row = f.row
            if isinstance(row, SegmentRow):
                end = row.end_time if row.end_time is not None else row.start_time
                for event in self._index.events_overlapping(row.camera_id, row.start_time, end):
                    found[event.id] = event
            elif row.event_id is not None:
                event = self._index.get_event(row.event_id)
                if event is not None:
                    found[event.id] = event
        return tuple(found[k] for k in sorted(found))

    def _row(self, item: Item) -> SegmentRow | SnapshotRow | None:
        row = (
            self._index.get_segment(item.id)
            if item.kind == "segment"
            else self._index.get_snapshot(item.id)
        )
        if row is None:
            self._lost(item)
        return row

    def _lost(self, item: Item) -> None:
        if self.queue.drop(item.id):  # not one the owner deleted
            log.warning(
                "off-site copy: %s %s… was deleted locally before it was copied (the disk "
                "was full); it is not off-site",
                item.kind,
                item.id[:8],
            )

    def _expire_if_due(self, now: float) -> None:
        """Best effort: delete copies of footage older than keep_days (and journals
        whose newest file is), once their locks have ended. A bucket lifecycle rule is
        the sure way."""
        if not self.settings.keep_days or now < self._next_expiry:
            return
        cutoff = now - self.settings.keep_days * DAY
        deleted = 0
        while items := self.queue.confirmed_before(cutoff, now - LOCK_SLACK, EXPIRY_PAGE):
            for item in items:
                name = (
                    naming.journal_object(self.settings.prefix, self._tag, item.id)
                    if item.kind == "journal"
                    else naming.file_object(self.settings.prefix, self._tag, item.id)
                )
                if self._deleted(item.id, name):
                    self.queue.forget(item.id)
                    deleted += 1
        if deleted:
            log.info(
                "off-site copy: deleted %d object(s) older than %d days",
                deleted,
                self.settings.keep_days,
            )
        self._next_expiry = now + EXPIRY_EVERY

    def _deleted(self, file_id: str, name: str) -> bool:
        """Delete an object; False if the store refused for a lock the queue did not
        know of (an upload cut short before its confirmation): it waits for it."""
        locked_until = self._bucket.delete(name)
        if locked_until is None:
            return True
        log.info("off-site copy: %s… is locked until %s; deleted then", file_id[:8],
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(locked_until)))  # fmt: skip
        self.queue.still_locked(file_id, locked_until)
        return False

    def _failed(self, message: str) -> None:
        """One log line when the copy starts failing, not one per retry; the status
        keeps the latest reason."""
        if self._working is not False:
            pending = self.queue.summary().pending
            log.error(
                "off-site copy failing: %s; recording goes on, %d file(s) wait in the queue",
                message,
                pending,
            )
        if message != self._error:
            self.queue.record_error(message, time.time())
        self._error = message
        self._working = False
        self._ready = False

    def _succeeded(self) -> None:
        if self._working is False:
            log.warning("off-site copy working again")
        if self._working is not True:  # also after a restart that ended a failing run
            self.queue.clear_error()
        self._error = None
        self._working = True


def recovery_only(keyfile: vault.KeyFile) -> vault.KeyFile:
    """The key file with its password slot replaced by a copy of the recovery slot.

    It is still a valid key file (FORMAT.md §6.3): the recovery code opens it, and no
    password does (the copied slot's AAD names "recovery"), so the bucket's operator
    cannot try passwords against it, only 150-bit recovery codes.
    """
    return vault.KeyFile(keyfile.public_bytes, keyfile.recovery, keyfile.recovery)


def _when(row: SegmentRow | SnapshotRow) -> float:
    return row.start_time if isinstance(row, SegmentRow) else row.time
