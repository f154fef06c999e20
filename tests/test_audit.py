"""The access log's hash chain, the `camhub audit` command, and the login throttle."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hub.audit import OTHER_CLIENTS, AuditKind, AuditLog, RepeatFilter, Repeats
from hub.cli import main
from hub.store import Index
from hub.web.auth import (
    FREE_FAILURES,
    GLOBAL_FAILURES,
    MAX_SESSIONS,
    LoginThrottle,
    Sessions,
    client_key,
)


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, AuditLog]:
    index = Index(tmp_path / "index.sqlite3")
    audit = AuditLog(index)
    for n in range(10):
        audit.record(AuditKind.CLIP, f"owner from 10.0.0.{n}", {"n": n})
    yield tmp_path, audit
    index.close()


def edit(root: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(root / "index.sqlite3") as db:
        db.execute(sql, params)


def test_an_intact_log_verifies(logged: tuple[Path, AuditLog]) -> None:
    _, audit = logged
    verdict = audit.verify()
    assert verdict.ok and verdict.records == 10
    assert [r.seq for r in audit.recent(0, 3)] == [10, 9, 8]
    assert [r.seq for r in audit.recent(8, 3)] == [7, 6, 5]


@pytest.mark.parametrize(
    ("sql", "params", "broken"),
    [
        ("UPDATE audit SET actor = 'someone else' WHERE seq = 4", (), 4),
        ("UPDATE audit SET detail = '{\"n\":99}' WHERE seq = 7", (), 7),
        ("UPDATE audit SET time = time + 1 WHERE seq = 1", (), 1),
        ("DELETE FROM audit WHERE seq = 5", (), 6),
        ("DELETE FROM audit WHERE seq = 1", (), 2),
        # swap two records' contents (a reordering): the first swapped one breaks
        (
            "UPDATE audit SET detail = CASE seq WHEN 2 THEN '{\"n\":2}' ELSE '{\"n\":1}' END "
            "WHERE seq IN (2, 3)",
            (),
            2,
        ),
    ],
)
def test_edits_deletions_and_reordering_are_found(
    logged: tuple[Path, AuditLog], sql: str, params: tuple, broken: int
) -> None:
    root, audit = logged
    edit(root, sql, *params)
    verdict = audit.verify()
    assert not verdict.ok and verdict.first_broken == broken and verdict.reason


def test_a_rehashed_record_still_breaks_the_next_link(logged: tuple[Path, AuditLog]) -> None:
    """Recomputing an edited record's own hash does not help: the next record's hash
    covers it."""
    from hub.audit import chain_hash

    root, audit = logged
    rows = {r.seq: r for r in audit.recent(0, 100)}
    forged = chain_hash(rows[3].hash, 4, rows[4].time, rows[4].kind, "nobody", rows[4].detail)
    edit(root, "UPDATE audit SET actor = 'nobody', hash = ? WHERE seq = 4", forged)
    assert audit.verify().first_broken == 5


def rewrite_from(root: Path, audit: AuditLog, seq: int, actor: str) -> None:
    """What someone who can write the database does: edit a record, then recompute
    every hash after it so the chain holds again."""
    from hub.audit import chain_hash

    rows = sorted(audit.recent(0, 1000), key=lambda r: r.seq)
    prev = rows[seq - 2].hash if seq > 1 else ""
    with sqlite3.connect(root / "index.sqlite3") as db:
        for row in rows[seq - 1 :]:
            who = actor if row.seq == seq else row.actor
            digest = chain_hash(prev, row.seq, row.time, row.kind, who, row.detail)
            db.execute("UPDATE audit SET actor = ?, hash = ? WHERE seq = ?", (who, digest, row.seq))
            prev = digest


def test_the_owners_seal_catches_a_recomputed_chain(logged: tuple[Path, AuditLog]) -> None:
    root, audit = logged
    owner = X25519PrivateKey.generate()
    rewrite_from(root, audit, 4, "nobody")
    assert audit.verify().ok  # the chain alone cannot tell: anyone can recompute it
    assert audit.seal(owner)
    verdict = audit.verify(owner)
    assert verdict.ok and verdict.sealed_through == 10 and verdict.seal_checked
    rewrite_from(root, audit, 6, "someone else")
    verdict = audit.verify(owner)
    assert not verdict.ok and verdict.first_broken == 10
    assert "rewritten after they were sealed" in (verdict.reason or "")
    assert not audit.seal(owner)  # a broken log is not sealed over
    assert audit.verify().sealed_through == 10


def test_the_seal_catches_records_cut_off_its_end(logged: tuple[Path, AuditLog]) -> None:
    root, audit = logged
    owner = X25519PrivateKey.generate()
    assert audit.seal(owner)
    audit.record(AuditKind.LOGOUT, "owner from 10.0.0.1")  # after the seal: not yet sealed
    verdict = audit.verify(owner)
    assert verdict.ok and (verdict.records, verdict.sealed_through) == (11, 10)
    edit(root, "DELETE FROM audit WHERE seq >= 8")
    verdict = audit.verify(owner)
    assert not verdict.ok and verdict.first_broken == 8
    assert "records 8 to 10 were cut off" in (verdict.reason or "")


def test_a_seal_made_without_the_owners_key_is_refused(logged: tuple[Path, AuditLog]) -> None:
    root, audit = logged
    owner, intruder = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    assert audit.seal(owner)
    rewrite_from(root, audit, 2, "nobody")
    edit(root, "DELETE FROM audit_seal")
    assert audit.seal(intruder)  # the intruder seals the rewritten log with their own key
    assert audit.verify().ok  # without the owner's key the MAC cannot be checked
    verdict = audit.verify(owner)
    assert not verdict.ok and "forged or replaced" in (verdict.reason or "")


def test_sealing_moves_on_only_over_new_intact_records(logged: tuple[Path, AuditLog]) -> None:
    root, audit = logged
    owner = X25519PrivateKey.generate()
    assert audit.seal(owner) and audit.seal(owner)  # nothing new: the seal stays
    first = audit.verify(owner)
    audit.record(AuditKind.LOGIN_OK, "owner from 10.0.0.1")
    assert audit.seal(owner)
    assert audit.verify(owner).sealed_through == 11 == first.sealed_through + 1
    audit.record(AuditKind.LOGOUT, "owner from 10.0.0.1")
    edit(root, "UPDATE audit SET actor = 'nobody' WHERE seq = 12")
    assert not audit.seal(owner)
    verdict = audit.verify(owner)
    assert verdict.first_broken == 12 and verdict.sealed_through == 11


def test_audit_command_reports_the_break(
    logged: tuple[Path, AuditLog], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = logged
    assert main(["audit", "verify", "--data-dir", str(root)]) == 0
    assert "10 record(s)" in capsys.readouterr().out
    edit(root, "UPDATE audit SET kind = 'nothing' WHERE seq = 6")
    assert main(["audit", "verify", "--data-dir", str(root)]) == 2
    assert "BROKEN at record 6" in capsys.readouterr().err


def test_audit_command_checks_the_seal_with_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub.cli import init_data_dir
    from hub.daemon import DataPaths
    from hub.vault import KdfParams, KeyFile, unlock

    paths = DataPaths(tmp_path)
    init_data_dir(
        paths, "correct horse battery", kdf=KdfParams(memory_kib=256, iterations=1, lanes=1)
    )
    (tmp_path / "pw").write_text("correct horse battery\n")
    owner = unlock(KeyFile.from_json(paths.keys.read_text()), "correct horse battery")
    with Index(paths.index) as index:
        audit = AuditLog(index)
        for n in range(5):
            audit.record(AuditKind.CLIP, "owner from 10.0.0.1", {"n": n})
        assert audit.seal(owner)
    verify = ["audit", "verify", "--data-dir", str(tmp_path)]
    unlocked = [*verify, "--unlock", "--password-file", str(tmp_path / "pw")]
    assert main(unlocked) == 0
    assert "its MAC checked with your key" in capsys.readouterr().out
    # an intruder rewrites the log and seals it with a key of their own
    with Index(paths.index) as index:
        audit = AuditLog(index)
        rewrite_from(tmp_path, audit, 2, "nobody")
        edit(tmp_path, "DELETE FROM audit_seal")
        assert audit.seal(X25519PrivateKey.generate())
    assert main(verify) == 0  # without the key the forged seal cannot be told apart
    assert "MAC unchecked" in capsys.readouterr().out
    assert main(unlocked) == 2
    assert "forged or replaced" in capsys.readouterr().err
    (tmp_path / "pw").write_text("wrong password here\n")
    assert main(unlocked) != 0


def test_throttle_slows_a_guessing_client_but_not_the_owner() -> None:
    throttle = LoginThrottle()
    now = 1000.0
    guesser = throttle.attempt("10.0.0.66", None)
    for _ in range(FREE_FAILURES):
        assert throttle.wait_time(guesser, now) == 0
        throttle.failed(guesser, now)
    assert throttle.wait_time(guesser, now) == pytest.approx(1.0)
    throttle.failed(guesser, now + 1)
    assert throttle.wait_time(guesser, now + 1) == pytest.approx(2.0)
    assert throttle.wait_time(throttle.attempt("10.0.0.2", None), now + 1) == 0  # elsewhere
    throttle.succeeded(guesser, "10.0.0.66", None)
    assert throttle.wait_time(throttle.attempt("10.0.0.66", None), now + 1) == 0


def test_throttle_slows_guessing_from_many_addresses() -> None:
    throttle = LoginThrottle()
    now = 1000.0
    for n in range(GLOBAL_FAILURES):
        throttle.failed(throttle.attempt(f"10.0.1.{n}", None), now)
    # every client now shares one slot every few seconds: the first takes it...
    assert throttle.wait_time(throttle.attempt("10.0.2.1", None), now) == 0
    # ...the next waits a few seconds, never hours
    assert 0 < throttle.wait_time(throttle.attempt("10.0.2.2", None), now) <= 3.0
    assert throttle.wait_time(throttle.attempt("10.0.2.2", None), now + 61) == 0  # window over


def test_ipv6_clients_count_per_64() -> None:
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1234") == "2001:db8::/64"
    assert client_key("::ffff:10.0.0.5") == "10.0.0.5"
    assert client_key("10.0.0.5") == "10.0.0.5"


def test_sessions_expire_when_idle_and_keep_only_hashes() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sessions = Sessions(idle_seconds=60)
    token = sessions.create(X25519PrivateKey.generate(), "10.0.0.1", now=0)
    assert token not in repr(sessions.__dict__)
    assert sessions.get(token, now=50) is not None
    assert sessions.get(token, now=100) is not None  # touched at 50
    assert sessions.expire(now=161) and sessions.get(token, now=161) is None
    assert sessions.get("forged", now=0) is None


def test_every_session_that_ends_unasked_is_reported_once() -> None:
    """A session found idle by a request, or pushed out by the 17th login, locks the
    vault just as housekeeping's sweep does: each must reach the access log too."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sessions = Sessions(idle_seconds=60)
    found_idle = sessions.create(X25519PrivateKey.generate(), "10.0.0.1", now=0)
    swept = sessions.create(X25519PrivateKey.generate(), "10.0.0.2", now=0)
    assert sessions.get(found_idle, now=61) is None
    for n in range(MAX_SESSIONS):
        sessions.create(X25519PrivateKey.generate(), f"10.0.1.{n}", now=62 + n)
    ended = [(s.client, why) for s, why in sessions.expire(now=100)]
    assert ended == [("10.0.0.1", "idle"), ("10.0.0.2", "too many sessions")]
    assert sessions.expire(now=100) == [] and len(sessions) == MAX_SESSIONS
    assert sessions.get(swept, now=100) is None


def test_repeated_refusals_are_summed_per_client_kind_and_reason() -> None:
    gate = RepeatFilter(window=60.0, max_clients=4)
    refused = AuditKind.SHARE_REFUSED
    assert gate.admit(refused, "10.0.0.5", "share a from 10.0.0.5", 0.0, "wrong secret")
    for t in range(1, 30):
        assert not gate.admit(refused, "10.0.0.5", "share a from 10.0.0.5", t, "wrong secret")
    # another reason, another kind, another client: each recorded the first time
    assert gate.admit(refused, "10.0.0.5", "share b from 10.0.0.5", 5.0, "share revoked")
    assert gate.admit(AuditKind.LOGIN_THROTTLED, "10.0.0.5", "client 10.0.0.5", 5.0)
    assert gate.admit(refused, "10.0.0.6", "share a from 10.0.0.6", 6.0, "wrong secret")
    # past max_clients runs, everyone else shares one
    assert gate.admit(refused, "10.0.0.7", "share a from 10.0.0.7", 7.0, "wrong secret")
    assert not gate.admit(refused, "10.0.0.8", "share a from 10.0.0.8", 7.0, "no such share")
    assert gate.due(59.0) == []  # no window is over yet
    assert gate.due(61.0) == [Repeats(refused, "share a from 10.0.0.5", 29, 61.0)]
    assert gate.due(68.0) == [Repeats(refused, OTHER_CLIENTS, 1, 61.0)]
    # the window over, the next refusal is recorded again
    assert gate.admit(refused, "10.0.0.5", "share a from 10.0.0.5", 69.0, "wrong secret")
    assert not gate.admit(refused, "10.0.0.5", "share a from 10.0.0.5", 70.0, "wrong secret")
    assert gate.due(71.0, everything=True) == [Repeats(refused, "share a from 10.0.0.5", 1, 2.0)]


def test_summaries_are_chained_records(logged: tuple[Path, AuditLog]) -> None:
    _, audit = logged
    audit.record_repeats([Repeats(AuditKind.LOGIN_THROTTLED, "client 10.0.0.9", 41, 60.5)])
    newest = audit.recent(0, 1)[0]
    assert (newest.kind, newest.actor) == ("login throttled", "client 10.0.0.9")
    assert newest.detail == '{"repeats":41,"seconds":60.5}'
    assert audit.verify().ok
