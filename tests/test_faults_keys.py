"""Faults at start and stop, through the real `camhub` command: a damaged owner key
file, an old (version 1) key file, and a stop that is not clean.

Each test runs `camhub` as a subprocess on a real data directory made by `camhub init`;
the camera is the built-in synthetic one (record = continuous), so a hub that wrongly
starts records real sealed segments within a second or two.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from test_daemon import PASSWORD, Site, camhub, camhub_command, hub_processes

from hub.config import parse_config
from hub.daemon import Hub
from hub.store import Index

V1_KEYS = Path(__file__).parent / "fixtures" / "keyfile-v1"  # written by camhub before v2
REFUSAL_LIMIT = 30.0  # s: a hub that has not refused by then is recording; stop it


def new_site(root: Path) -> Site:
    """`camhub init`, and a config with one synthetic camera recording continuously."""
    root.mkdir(parents=True, exist_ok=True)
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    data = root / "data"
    done = camhub("init", "--data-dir", data, "--password-file", password_file, cwd=root)
    assert done.returncode == 0, done.stderr
    config = root / "camhub.toml"
    config.write_text(
        '[hub]\ndata_dir = "data"\n\n[web]\nlisten = "127.0.0.1:0"\ntls = false\n\n'
        "[storage]\nsegment_seconds = 1\nmin_free_gb = 0\n\n"
        '[[camera]]\nid = "porch"\nurl = "synthetic:porch"\nrecord = "continuous"\n'
    )
    return Site(root, data, config, password_file)


def run_expecting_refusal(site: Site) -> subprocess.CompletedProcess[str]:
    """`camhub run`; if it is still running after REFUSAL_LIMIT s, it did not refuse."""
    proc = subprocess.Popen(
        [*camhub_command(), "run", "--config", str(site.config)],
        cwd=site.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
    )
    try:
        out, err = proc.communicate(timeout=REFUSAL_LIMIT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        pytest.fail(
            f"camhub run did not refuse; it recorded {len(site.segments())} segment(s):\n{err}"
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], *phrases: str) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("camhub: "), line
    for phrase in phrases:
        assert phrase in line, f"{phrase!r} not in: {line}"
    return line


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- a flipped bit in the public key ---------------------------------------------------------


def flip_public_key_bit(keys: Path, bit: int) -> None:
    """One bit of the public key flipped, the file otherwise as camhub wrote it: the
    key is still a valid X25519 key, so nothing but a check can tell."""
    doc = json.loads(keys.read_text())
    raw = bytearray(base64.b64decode(doc["public_key"]))
    raw[bit // 8] ^= 1 << (bit % 8)
    doc["public_key"] = base64.b64encode(raw).decode()
    keys.write_text(json.dumps(doc, indent=2))


@pytest.mark.parametrize("bit", [0, 97])
def test_run_refuses_a_public_key_with_a_flipped_bit(tmp_path: Path, bit: int) -> None:
    site = new_site(tmp_path)
    flip_public_key_bit(site.keys, bit)
    before = tree(site.data)

    done = run_expecting_refusal(site)

    line = assert_one_line_refusal(
        done, "not recording", str(site.keys), "public_key_check", "from a backup"
    )
    assert "the recovery code, which alone cannot rebuild the file" in line
    assert site.segments() == []
    assert tree(site.data) == before, "a refused start must change nothing in the data dir"


def test_decrypt_and_passwd_refuse_a_flipped_public_key(tmp_path: Path) -> None:
    site = new_site(tmp_path)
    flip_public_key_bit(site.keys, 200)
    before = site.keys.read_bytes()
    new_password = tmp_path / "new-password"
    new_password.write_text("another long password\n")

    passwd = camhub(
        "passwd",
        "--data-dir",
        site.data,
        "--password-file",
        site.password_file,
        "--new-password-file",
        new_password,
        cwd=tmp_path,
    )
    sealed = tmp_path / "x.seg"
    sealed.write_bytes(b"\x89camhub\n")
    decrypt = camhub(
        "decrypt", sealed, "--keys", site.keys, "--out", tmp_path / "out",
        "--password-file", site.password_file, cwd=tmp_path,
    )  # fmt: skip

    for done in (passwd, decrypt):
        assert_one_line_refusal(done, str(site.keys), "public_key_check")
    assert site.keys.read_bytes() == before
    assert not (tmp_path / "out").exists()


# -- a key file that is not one ------------------------------------------------------------


def _garbage(_: bytes) -> bytes:
    return random.Random(8).randbytes(700)


def _truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


DAMAGE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "random bytes": (_garbage, "not UTF-8 text"),
    "empty": (lambda _: b"", "is damaged: empty."),
    "truncated": (_truncated, "ends early"),
    "a JSON list": (lambda _: b"[1, 2, 3]\n", "must be a JSON object"),
    "another JSON object": (lambda _: b'{"name": "camhub"}', "format must be"),
    "missing slots": (
        lambda good: json.dumps(
            {k: v for k, v in json.loads(good).items() if k != "recovery"}
        ).encode(),
        "missing recovery",
    ),
    "nested too deeply": (lambda _: b"[" * 50_000, "nested too deeply"),
    "huge": (lambda good: good + b" " * 100_000, "too large"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_run_refuses_a_damaged_key_file_in_one_line(tmp_path: Path, damage: str) -> None:
    site = new_site(tmp_path)
    make, phrase = DAMAGE[damage]
    site.keys.write_bytes(make(site.keys.read_bytes()))
    before = tree(site.data)

    done = run_expecting_refusal(site)

    assert_one_line_refusal(done, "not recording", str(site.keys), phrase, "from a backup")
    assert site.segments() == []
    assert tree(site.data) == before


def test_a_key_file_written_by_a_newer_camhub_says_so(tmp_path: Path) -> None:
    site = new_site(tmp_path)
    doc = json.loads(site.keys.read_text())
    site.keys.write_text(json.dumps({**doc, "version": 3}))

    done = run_expecting_refusal(site)

    assert_one_line_refusal(done, "unsupported version 3", "a newer camhub wrote it")
    assert site.segments() == []


def test_an_unreadable_key_file_is_one_line(tmp_path: Path) -> None:
    site = new_site(tmp_path)
    site.keys.unlink()
    site.keys.mkdir()

    done = run_expecting_refusal(site)

    assert_one_line_refusal(done, f"cannot read the owner key file {site.keys}", "directory")


# -- a version 1 key file keeps working, and is upgraded by passwd ----------------------------


def login(url: str, password: str) -> tuple[int, dict[str, object]]:
    """POST /api/login as the page does: the status and the JSON answer."""
    request = urllib.request.Request(
        url + "api/login",
        data=json.dumps({"password": password}).encode(),
        headers={"Content-Type": "application/json", "Origin": url.rstrip("/")},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_version_1_key_file_records_opens_and_is_upgraded_by_passwd(tmp_path: Path) -> None:
    site = new_site(tmp_path)
    shutil.copyfile(V1_KEYS / "keys.json", site.keys)
    v1 = json.loads(site.keys.read_text())
    assert v1["version"] == 1 and "public_key_check" not in v1
    recovery = tmp_path / "recovery"
    shutil.copyfile(V1_KEYS / "recovery-code", recovery)

    with hub_processes() as hubs:
        hub = hubs(site.config)
        hub.wait_for("owner page at", timeout=60)
        url = re.search(r"owner page at (\S+)", hub.log)[1]
        deadline = time.monotonic() + 60
        while len(site.segments()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        status, _ = login(url, PASSWORD)
        assert hub.terminate() == 0
    assert status == 200, hub.log
    assert "is a version 1 key file" in hub.log and "camhub passwd` upgrades it" in hub.log
    assert "stopped cleanly" in hub.log
    assert site.keys.read_text() == (V1_KEYS / "keys.json").read_text(), "start never writes it"
    assert site.segments(), f"nothing recorded in 60 s:\n{hub.log}"
    sealed = site.segments()[0]

    def decrypt(*secret: str | Path) -> bytes:
        out = tmp_path / "out.mp4"
        done = camhub("decrypt", sealed, "--out", out, *secret, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return out.read_bytes()

    footage = decrypt("--password-file", site.password_file)
    assert b"ftyp" in footage[:32]
    assert decrypt("--recovery-code", "--password-file", recovery) == footage

    new_password = tmp_path / "new-password"
    new_password.write_text("another long password\n")
    done = camhub(
        "passwd", "--data-dir", site.data, "--password-file", site.password_file,
        "--new-password-file", new_password, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "upgraded from version 1 to 2" in done.stdout
    v2 = json.loads(site.keys.read_text())
    assert v2["version"] == 2 and "public_key_check" in v2
    assert v2["public_key"] == v1["public_key"] and v2["recovery"] == v1["recovery"]
    assert decrypt("--password-file", new_password) == footage
    assert decrypt("--recovery-code", "--password-file", recovery) == footage


def test_a_key_file_damaged_while_running_refuses_login_without_a_traceback(
    tmp_path: Path,
) -> None:
    site = new_site(tmp_path)
    good = site.keys.read_bytes()

    with hub_processes() as hubs:
        hub = hubs(site.config)
        hub.wait_for("owner page at", timeout=60)
        url = re.search(r"owner page at (\S+)", hub.log)[1]
        flip_public_key_bit(site.keys, 12)
        damaged = login(url, PASSWORD)
        site.keys.write_bytes(good)
        restored, _ = login(url, PASSWORD)
        assert hub.terminate() == 0

    assert damaged == (503, {"error": "the owner key file cannot be used; see the hub's log"})
    assert f"login refused: {site.keys}: key file: public_key does not match" in hub.log
    assert restored == 200
    assert "Traceback" not in hub.log, hub.log


# -- the stop says "stopped cleanly" only after a clean stop ----------------------------------


def break_segments_table(index_path: Path) -> None:
    """Overwrite the segments table's root page: the index opens, its schema reads, but
    the first query of segments (crash recovery at start) fails as malformed."""
    with Index(index_path):
        pass
    conn = sqlite3.connect(index_path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'segments'").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with index_path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


def test_a_failed_start_is_not_called_a_clean_stop(tmp_path: Path) -> None:
    site = new_site(tmp_path)
    break_segments_table(site.data / "index.sqlite3")

    done = run_expecting_refusal(site)

    assert done.returncode == 1
    assert "stopped cleanly" not in done.stderr, done.stderr


def test_a_segment_left_open_is_not_a_clean_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = new_site(tmp_path)
    config = parse_config(site.config.read_text(), base_dir=site.root)
    caplog.set_level(logging.INFO, logger="hub.daemon")

    def last_hub_record() -> logging.LogRecord:
        return [r for r in caplog.records if r.name == "hub.daemon"][-1]

    clean = Hub(config)
    clean.start()
    clean.stop()
    assert last_hub_record().getMessage() == "stopped cleanly"
    caplog.clear()

    hub = Hub(config)
    hub.start()
    # A writer that never finished its segment: the row stays open at stop.
    hub.index.add_segment_open("ab" * 16, "porch", time.time(), "footage/porch/ab.seg")
    hub.stop()

    last = last_hub_record()
    assert last.levelno == logging.ERROR
    assert last.getMessage() == "stopped, not cleanly: 1 segment(s) left open"
    assert "stopped cleanly" not in caplog.text
