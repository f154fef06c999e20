"""The owner's footage management against a real hub on 127.0.0.1: what was recorded
when, downloads that play, deletion that shreds, storage figures.

A hub of its own (deleting changes its footage): the real person clip recorded
continuously by a file camera, and a synthetic camera recording now, so a segment is
always being written. Real HTTP, the real SQLite index, real files; ffprobe checks
that a download plays.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import av
import pytest
from hubkit import base, logged_in, make_hub, origin, running, wait_until
from recorded_spans import insert_segments, window_spans
from test_web import audit_kinds, hall_and_porch, last_seq, open_link

from hub.archive import HEADER_SIZE
from hub.audit import SnapshotBursts
from hub.daemon import Hub
from hub.store import Index, SegmentState
from hub.web import footage
from hub.web.clips import attachment

NOW = 1_800_000_000.0  # "now" for index queries on made-up footage


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, person_clip: Path) -> Iterator[Hub]:
    cameras = hall_and_porch(person_clip, "continuous")
    made = make_hub(tmp_path_factory.mktemp("footage"), cameras, storage="segment_seconds = 2")
    with running(made) as started:
        wait_until(
            lambda: started.cameras[0].status[0].finished,
            60,
            "the file camera to finish recording",
        )
        yield started


def hall_segments(hub: Hub) -> list:
    """The file camera's finished segments, oldest first."""
    rows = hub.index.segments("hall", limit=10000)
    return sorted((s for s in rows if s.end_time is not None), key=lambda s: s.start_time)


def add_event(hub: Hub, start: float, end: float, *, snapshot: bool = False) -> int:
    """An ended event over recorded footage, as the tracker logs it; with a sealed
    snapshot if asked."""
    event_id = hub.index.add_event("hall", start)
    snapshot_id = None
    if snapshot:
        snapshot_id = hub.archive.save_snapshot("hall", event_id, start + 1, b"\xff\xd8jpeg")
    hub.index.end_event(
        event_id,
        end_time=end,
        peak_score=0.2,
        peak_time=start + 1,
        bbox=None,
        snapshot_id=snapshot_id,
    )
    return event_id


def ffprobe_frames(path: Path) -> int:
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe not found: apt-get install ffmpeg")
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip())


async def test_recordings_merge_segments_into_ranges_with_event_markers(hub: Hub) -> None:
    segments = hall_segments(hub)
    first, last = segments[0].start_time, segments[-1].end_time
    event = add_event(hub, first + 4, first + 6)
    client = await logged_in(hub)
    async with client:
        url = f"{base(hub)}/api/cameras/hall/recordings"
        # The camera goes on recording meanwhile: the answer lies between the index as
        # it was just before and just after it.
        before = hub.index.segments("hall", limit=10000)
        started = time.perf_counter()
        async with client.get(url, params={"start": first - 60, "end": last + 60}) as resp:
            assert resp.status == 200, await resp.text()
            data = await resp.json()
        print(f"recordings of {len(segments)} segments: {time.perf_counter() - started:.3f} s")
        after = hub.index.segments("hall", limit=10000)
        # One continuous recording: every segment in one range (the one still open
        # too), which had motion.
        assert [r["motion"] for r in data["ranges"]] == [True]
        assert len(before) <= data["ranges"][0]["segments"] <= len(after)
        assert data["ranges"][0]["start"] == first
        sizes = [sum(s.size or 0 for s in rows) for rows in (before, after)]
        assert sizes[0] <= data["ranges"][0]["bytes"] <= sizes[1]
        # Event markers oldest first (the camera's own motion events among them), and
        # their spans merged into motion periods.
        starts = [e["start"] for e in data["events"]]
        assert event in [e["id"] for e in data["events"]] and starts == sorted(starts)
        assert data["motion"][0]["start"] == first + 4 and data["motion"][0]["end"] >= first + 6
        assert len(data["motion"]) <= len(starts)
        # A gap of 0 seconds tolerance splits wherever segments do not touch; a narrow
        # window sees only the segments in it.
        mid = segments[len(segments) // 2]
        params = {"start": mid.start_time + 0.1, "end": mid.end_time - 0.1}
        async with client.get(url, params=params) as resp:
            ranges = (await resp.json())["ranges"]
        assert [r["segments"] for r in ranges] == [1]
        for bad in (
            {"start": "1", "end": "x"},
            {"start": "0", "end": str(40 * 86400)},
            {"start": "5", "end": "5"},
            {"start": "0", "end": "10", "gap": "-1"},
            {"end": "10"},
        ):
            async with client.get(url, params=bad) as resp:
                assert resp.status == 400, bad
        async with client.get(f"{base(hub)}/api/cameras/nope/recordings?start=0&end=1") as resp:
            assert resp.status == 404
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.get(url, params={"start": 0, "end": 10}) as resp,
    ):
        assert resp.status == 401


async def test_clip_span_says_where_the_clip_of_a_range_starts(hub: Hub) -> None:
    """From inside a segment, the clip starts at that segment's start and ends where the
    last one it plays ends: the clip itself (decoded) is that long."""
    segments = hall_segments(hub)
    first, last = segments[1], segments[3]
    start, end = first.start_time + 0.7, last.start_time + 0.2
    client = await logged_in(hub)
    async with client:
        url = f"{base(hub)}/api/cameras/hall/clip-span"
        async with client.get(url, params={"start": start, "end": end}) as resp:
            assert resp.status == 200, await resp.text()
            span = await resp.json()
        assert span == {"camera": "hall", "start": first.start_time, "end": last.end_time}
        clip = f"{base(hub)}/api/cameras/hall/clip.mp4"
        async with client.get(clip, params={"start": start, "end": end}) as resp:
            assert resp.status == 200
            body = await resp.read()
        with av.open(io.BytesIO(body)) as container:
            stream = container.streams.video[0]
            assert stream.duration is not None and stream.time_base is not None
            length = float(stream.duration * stream.time_base)
        assert abs(length - (span["end"] - span["start"])) < 0.5, (length, span)
        after = segments[-1].end_time + 3600
        for params, status in (
            ({"start": after, "end": after + 10}, 404),  # no footage there
            ({"start": start, "end": start + 6 * 3600 + 1}, 400),  # longer than a clip
            ({"start": start}, 400),
            ({"start": "x", "end": end}, 400),
        ):
            async with client.get(url, params=params) as resp:
                assert resp.status == status, (params, await resp.text())
        async with client.get(f"{base(hub)}/api/cameras/nope/clip-span?start=0&end=1") as resp:
            assert resp.status == 404
    async with aiohttp.ClientSession() as stranger, stranger.get(url, params=params) as resp:
        assert resp.status == 401


def test_recorded_spans_split_at_gaps_on_a_real_index(tmp_path: Path) -> None:
    """Three stretches, a gap tolerance, a result bound, a range that starts inside a
    segment; a day at the end of a month of 4 s segments is found by its own rows."""
    with Index(tmp_path / "index.db") as index:
        t0 = 1_700_000_000.0
        rows: list[tuple[float, float | None]] = [(t0 + 4 * i, t0 + 4 * i + 4) for i in range(100)]
        rows += [(t0 + 1000 + 4 * i, t0 + 1000 + 4 * i + 3.5) for i in range(10)]  # 0.5 s gaps
        rows += [(t0 + 2000, t0 + 2004)]
        insert_segments(tmp_path / "index.db", rows)
        assert index.recorded_spans("cam", t0, t0 + 3000, 1.0, 100, NOW) == [
            (t0, t0 + 400, 100, 100),
            (t0 + 1000, t0 + 1039.5, 10, 10),
            (t0 + 2000, t0 + 2004, 1, 1),
        ]
        assert len(index.recorded_spans("cam", t0, t0 + 3000, 0.1, 100, NOW)) == 12
        assert len(index.recorded_spans("cam", t0, t0 + 3000, 1.0, 2, NOW)) == 2
        # From the middle of a segment: it is included whole.
        assert index.recorded_spans("cam", t0 + 2, t0 + 5, 1.0, 10, NOW) == [(t0, t0 + 8, 2, 2)]
        month = 31 * 86400 // 4
        t1 = t0 + 10**6
        insert_segments(tmp_path / "index.db", [(t1 + 4 * i, t1 + 4 * i + 4) for i in range(month)])
        last_day = t1 + 30 * 86400
        assert index.recorded_spans("cam", last_day, last_day + 86400, 2.0, 2001, NOW) == [
            (last_day, last_day + 86400, 21600, 21600)
        ]


def test_recorded_spans_answer_as_the_former_window_query(tmp_path: Path) -> None:
    """The query that seeks to the range and folds rows as it reads them gives exactly
    the former window-function query's answers: on random footage of two cameras with
    gaps of every size, overlapping and open segments, for random ranges, gap
    tolerances and bounds."""
    path = tmp_path / "index.db"
    rng = random.Random(11)
    t0 = 1_700_000_000.0
    with Index(path) as index:
        for camera in ("cam", "other"):
            spans: list[tuple[float, float | None]] = []
            t = t0
            for _ in range(3000):
                t += rng.choice([0.0, 0.0, 0.0, 0.3, 1.5, 2.0, 2.5, 40.0, 900.0]) - (
                    0.2 if rng.random() < 0.05 else 0.0  # now and then overlapping
                )
                length = rng.uniform(0.5, 6.0)
                spans.append((t, t + length))
                t += length
            spans.append((t + 1, None))  # being written
            insert_segments(path, spans, camera, size=rng.randrange(1, 10**6))
        end_of_all = t + 1
        now = end_of_all + 30
        cases = [(t0 - 100, end_of_all + 100, 2.0, 2001), (t0, t0 + 1, 0.0, 10)]
        for _ in range(300):
            a = rng.uniform(t0 - 50, end_of_all + 50)
            b = a + rng.choice([0.5, 10.0, 600.0, 3600.0, 86400.0])
            cases.append(
                (a, b, rng.choice([0.0, 0.5, 2.0, 60.0, 3600.0]), rng.choice([1, 3, 2001]))
            )
        for a, b, gap, limit in cases:
            for camera in ("cam", "other"):
                assert index.recorded_spans(camera, a, b, gap, limit, now) == window_spans(
                    path, camera, a, b, gap, limit, now
                ), (camera, a, b, gap, limit)


async def test_a_download_names_the_camera_and_time_plays_and_is_logged(
    hub: Hub, tmp_path: Path
) -> None:
    segments = hall_segments(hub)
    since = last_seq(hub)
    start, end = segments[2].start_time, segments[6].end_time
    client = await logged_in(hub)
    async with client:
        url = f"{base(hub)}/api/cameras/hall/clip.mp4"
        params = {"start": start, "end": end, "download": "1"}
        async with client.get(url, params=params) as resp:
            assert resp.status == 200
            disposition = resp.headers["Content-Disposition"]
            body = await resp.read()
        async with client.get(url, params={"start": start, "end": end}) as resp:
            assert "Content-Disposition" not in resp.headers
    assert disposition == attachment("hall", start)
    assert disposition.startswith('attachment; filename="hall-') and "filename*" not in disposition
    saved = tmp_path / "clip.mp4"
    saved.write_bytes(body)
    assert ffprobe_frames(saved) > 10 * 5  # ~10 s at 10 fps, whole segments
    kinds = [(k, d) for k, _, d in audit_kinds(hub, since) if k.startswith("clip")]
    assert [k for k, _ in kinds] == ["clip downloaded", "clip served"]
    assert kinds[0][1]["camera"] == "hall"


def test_a_download_name_is_plain_ascii_with_the_real_name_beside_it() -> None:
    header = attachment('Entrée "front"/door', 1_700_000_000.0)
    plain, _, extended = header.partition("; filename*=UTF-8''")
    assert plain.isascii() and '"front"' not in plain and "/" not in plain
    assert plain.startswith('attachment; filename="Entr_e_front_door-20')
    assert extended.startswith("Entr%C3%A9e%20%22front%22%2Fdoor-20") and extended.endswith(".mp4")


async def test_deleting_an_event_shreds_its_files_rows_and_share_keys_and_is_logged(
    hub: Hub,
) -> None:
    segments = hall_segments(hub)
    event = add_event(
        hub, segments[10].start_time + 0.5, segments[11].end_time - 0.5, snapshot=True
    )
    snapshot = hub.index.get_snapshot(hub.index.get_event(event).snapshot_id)
    client = await logged_in(hub)
    async with client:
        async with client.get(f"{base(hub)}/api/events/{event}") as resp:
            shown = await resp.json()
        doomed = hub.index.segments_overlapping("hall", shown["clip_start"], shown["clip_end"])
        assert len(doomed) >= 2
        async with client.post(
            base(hub) + "/api/shares",
            json={"event_id": event, "expires_in": 3600, "label": "for the insurer"},
            headers=origin(hub),
        ) as resp:
            share = await resp.json()
        # Hold each file open: after the deletion its header must read as zeroes.
        held = [os.open(hub.archive.data_dir / row.path, os.O_RDONLY) for row in doomed]
        held.append(os.open(hub.archive.data_dir / snapshot.path, os.O_RDONLY))
        try:
            # A state change from another site is refused; nothing is deleted.
            async with client.delete(
                f"{base(hub)}/api/events/{event}", headers={"Origin": "https://evil.example"}
            ) as resp:
                assert resp.status == 403
            assert hub.index.get_event(event) is not None
            since = last_seq(hub)
            started = time.perf_counter()
            async with client.delete(
                f"{base(hub)}/api/events/{event}", headers=origin(hub)
            ) as resp:
                assert resp.status == 200, await resp.text()
                result = await resp.json()
            took = time.perf_counter() - started
            print(f"deleting an event: {len(held)} files shredded in {took * 1000:.0f} ms")
            headers = [os.pread(fd, HEADER_SIZE, 0) for fd in held]
        finally:
            for fd in held:
                os.close(fd)
        assert all(h == bytes(HEADER_SIZE) for h in headers)
        assert result["segments"] == len(doomed) and result["snapshots"] == 1
        assert result["events"] == 1 and result["recording"] == 0
        assert result["bytes_freed"] == sum(r.size for r in doomed) + snapshot.size
        for row in doomed:
            assert not (hub.archive.data_dir / row.path).exists()
            assert hub.index.get_segment(row.id) is None
        assert not (hub.archive.data_dir / snapshot.path).exists()
        assert hub.index.get_snapshot(snapshot.id) is None and hub.index.get_event(event) is None
        with sqlite3.connect(hub.paths.index) as conn:
            keys = conn.execute(
                "SELECT count(*) FROM share_keys WHERE share_id = ?", (share["id"],)
            ).fetchone()[0]
        assert keys == 0
        _, visitor = await open_link(hub, share["link"])
        async with visitor, visitor.get(f"{base(hub)}/share/{share['id']}/clip.mp4") as resp:
            assert resp.status == 403  # the shared footage is gone with its keys
        async with client.delete(f"{base(hub)}/api/events/{event}", headers=origin(hub)) as resp:
            assert resp.status == 404
    logged = [(k, a, d) for k, a, d in audit_kinds(hub, since) if k.startswith("footage deleted")]
    assert len(logged) == 1
    _kind, who, detail = logged[0]
    assert who.startswith("owner from ")
    assert detail["event"] == event and detail["camera"] == "hall"
    assert detail["files"] == len(doomed) + 1 and detail["bytes"] == result["bytes_freed"]
    cam = next(c for c in hub.config.cameras if c.id == "hall")
    assert detail["start"] == round(shown["start"] - cam.pre_roll, 3)  # the event's window


async def test_deleting_a_range_keeps_the_segment_being_recorded(hub: Hub) -> None:
    def porch_open() -> list:
        return [s for s in hub.index.segments("porch", limit=1000) if s.state is SegmentState.OPEN]

    deadline = time.monotonic() + 30
    while not porch_open() or len(hub.index.segments("porch", limit=1000)) < 3:
        if time.monotonic() > deadline:
            pytest.fail("the synthetic camera recorded no segments within 30 s")
        time.sleep(0.2)
    since = last_seq(hub)
    client = await logged_in(hub)
    now = time.time()
    async with client:
        url = f"{base(hub)}/api/cameras/porch/footage"
        async with client.delete(
            url,
            params={"start": now - 3600, "end": now + 60},
            headers={"Origin": "https://evil.example"},
        ) as resp:
            assert resp.status == 403
        async with client.delete(
            url, params={"start": now - 3600, "end": now + 60}, headers=origin(hub)
        ) as resp:
            assert resp.status == 200, await resp.text()
            result = await resp.json()
        for bad in ({"start": now, "end": now + 2 * 86400}, {"start": now}, {"start": "a"}):
            async with client.delete(url, params=bad, headers=origin(hub)) as resp:
                assert resp.status == 400, bad
    assert result["segments"] >= 1 and result["recording"] >= 1
    left = hub.index.segments("porch", limit=1000)
    # What is left was being written during the deletion; its file is still there.
    assert left and all(s.state is SegmentState.OPEN or s.start_time >= now - 5 for s in left), left
    for row in left:
        if row.state is SegmentState.OPEN:
            assert (hub.archive.data_dir / row.path).exists()
    logged = [d for k, _, d in audit_kinds(hub, since) if k.startswith("footage deleted")]
    assert len(logged) == 1 and logged[0]["recording"] == result["recording"]


async def test_storage_counts_footage_per_camera_and_the_days_kept(hub: Hub) -> None:
    client = await logged_in(hub)
    async with client, client.get(f"{base(hub)}/api/storage") as resp:
        assert resp.status == 200
        data = await resp.json()
    hall = next(c for c in data["cameras"] if c["id"] == "hall")
    segments = hub.index.segments("hall", limit=10000)
    with sqlite3.connect(hub.paths.index) as conn:
        snaps = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM snapshots WHERE camera_id = 'hall'"
        ).fetchone()
    assert hall["files"] == len(segments) + snaps[0]
    assert hall["bytes"] == sum(s.size or 0 for s in segments) + snaps[1]
    assert data["footage_bytes"] == sum(c["bytes"] for c in data["cameras"])
    assert 0 < data["free_bytes"] <= data["disk_bytes"]
    assert data["oldest"] == min(c["oldest"] for c in data["cameras"])
    assert 0 <= data["kept_days"] < 1
    assert json.dumps(data).count("hall") >= 1


async def test_event_json_gives_the_clips_real_span(hub: Hub) -> None:
    """What the clip plays: the whole segments covering pre-roll, motion, post-roll."""
    segments = hall_segments(hub)
    event = add_event(hub, segments[3].start_time + 0.5, segments[3].start_time + 3)
    gone = hub.index.add_event("hall", segments[0].start_time - 3600)  # no footage left
    hub.index.end_event(
        gone, end_time=segments[0].start_time - 3590, peak_score=0.1, peak_time=None, bbox=None
    )
    cam = next(c for c in hub.config.cameras if c.id == "hall")
    covering = hub.index.segments_overlapping(
        "hall",
        segments[3].start_time + 0.5 - cam.pre_roll,
        segments[3].start_time + 3 + cam.post_roll,
    )
    client = await logged_in(hub)
    async with client:
        async with client.get(f"{base(hub)}/api/events/{event}") as resp:
            data = await resp.json()
        async with client.get(f"{base(hub)}/api/events/{gone}") as resp:
            none_left = await resp.json()
        async with client.get(f"{base(hub)}/api/events", params={"limit": 500}) as resp:
            listed = next(e for e in (await resp.json())["events"] if e["id"] == event)
        url = f"{base(hub)}/api/events/{event}/clip.mp4"
        async with client.get(url) as resp:
            clip = await resp.read()
        async with client.post(
            base(hub) + "/api/shares",
            json={"event_id": event, "expires_in": 3600},
            headers=origin(hub),
        ) as resp:
            share = await resp.json()
    assert data["clip_start"] == covering[0].start_time
    assert data["clip_end"] == covering[-1].end_time
    assert data["clip_start"] <= data["start"] - cam.pre_roll
    assert data["motion_offset"] == data["start"] - data["clip_start"]
    assert listed == data  # the list and the event say the same
    path, _, secret = share["link"].partition("#")
    async with (
        aiohttp.ClientSession() as visitor,
        visitor.post(
            base(hub) + path + "open", json={"secret": secret}, headers=origin(hub)
        ) as resp,
    ):
        recipient = await resp.json()
    # The recipient's page says the same start and end as the owner's.
    assert (recipient["start"], recipient["end"]) == (data["clip_start"], data["clip_end"])
    assert none_left["clip_start"] is None and none_left["motion_offset"] is None
    # The clip really lasts that long (within a frame or two of rounding).
    with av.open(io.BytesIO(clip)) as container:
        seconds = float(container.duration) / av.time_base
    assert abs(seconds - (data["clip_end"] - data["clip_start"])) < 0.5


async def test_a_used_up_share_in_its_grace_time_says_so(hub: Hub) -> None:
    segments = hall_segments(hub)
    event = add_event(hub, segments[14].start_time, segments[15].end_time)
    client = await logged_in(hub)
    async with client:
        async with client.post(
            base(hub) + "/api/shares",
            json={"event_id": event, "expires_in": 3600, "max_views": 1},
            headers=origin(hub),
        ) as resp:
            share = await resp.json()
        status, visitor = await open_link(hub, share["link"])
        await visitor.close()
        assert status == 200
        async with client.get(base(hub) + "/api/shares") as resp:
            listed = next(s for s in await resp.json() if s["id"] == share["id"])
    assert listed["state"] == "used up" and listed["revocable"] is True
    assert listed["grace_until"] == pytest.approx(listed["last_used"] + 15 * 60)


async def test_an_events_page_of_snapshots_is_one_record_listing_them(hub: Hub) -> None:
    segments = hall_segments(hub)
    events = [
        add_event(hub, segments[20 + n].start_time, segments[20 + n].end_time, snapshot=True)
        for n in range(5)
    ]
    hub.audit.record_bursts(hub.bursts.due(time.time(), everything=True))  # none before
    since = last_seq(hub)
    client = await logged_in(hub)
    async with client:
        for event in events:  # what the Events page does for its thumbnails
            async with client.get(f"{base(hub)}/api/events/{event}/snapshot.jpg") as resp:
                assert resp.status == 200 and await resp.read() == b"\xff\xd8jpeg"
    hub.audit.record_bursts(hub.bursts.due(time.time(), everything=True))  # housekeeping
    looks = [(k, d) for k, _, d in audit_kinds(hub, since) if k.startswith("snapshot")]
    # The first is on record before it leaves; then one record for the page view.
    assert looks == [
        ("snapshot served", {"camera": "hall", "event": events[0]}),
        (
            "snapshots served",
            {"count": 5, "cameras": ["hall"], "events": events, "seconds": looks[1][1]["seconds"]},
        ),
    ]


def test_snapshot_bursts_end_on_a_pause_and_keep_sessions_apart() -> None:
    bursts = SnapshotBursts(quiet=5.0, longest=60.0, most=3)
    assert bursts.admit("a", "owner from A", "hall", 1, 100.0)
    assert not bursts.admit("a", "owner from A", "hall", 2, 101.0)
    assert bursts.admit("b", "owner from B", "porch", 9, 101.5)  # another session
    assert bursts.admit("a", "owner from A", "porch", 3, 107.0)  # after a pause: new view
    assert not bursts.admit("a", "owner from A", "hall", 4, 108.0)
    assert not bursts.admit("a", "owner from A", "hall", 5, 109.0)
    assert bursts.admit("a", "owner from A", "hall", 6, 110.0)  # `most` reached
    ended = bursts.due(111.0, everything=True)
    assert [(b.actor, b.shown) for b in ended] == [
        ("owner from A", [("hall", 1), ("hall", 2)]),
        ("owner from A", [("porch", 3), ("hall", 4), ("hall", 5)]),
    ]  # single looks (b, and a's last) are on record already, nothing more to list


async def test_share_records_name_the_share_by_its_label(hub: Hub) -> None:
    segments = hall_segments(hub)
    event = add_event(hub, segments[30].start_time, segments[31].end_time)
    since = last_seq(hub)
    client = await logged_in(hub)
    async with client:
        async with client.post(
            base(hub) + "/api/shares",
            json={"event_id": event, "expires_in": 3600, "label": "for the neighbour"},
            headers=origin(hub),
        ) as resp:
            share = await resp.json()
        status, visitor = await open_link(hub, share["link"])
        async with visitor:
            assert status == 200
        async with client.delete(
            f"{base(hub)}/api/shares/{share['id']}", headers=origin(hub)
        ) as resp:
            assert resp.status == 204
    about = [(k, a, d) for k, a, d in audit_kinds(hub, since) if k.startswith("share")]
    assert [k for k, _, _ in about] == ["share created", "share used", "share revoked"]
    for _kind, who, detail in about:  # the id (in the detail or the actor) and the label
        assert share["id"] in (detail.get("share", ""), who.split()[1]), (who, detail)
        assert detail["label"] == "for the neighbour"


async def test_a_deletion_stopped_part_way_is_a_clear_503_logged_and_can_be_redone(
    hub: Hub,
) -> None:
    """A file that cannot be deleted (made immutable: even root cannot write or unlink
    it) stops the deletion: what went before is gone, that file and its row stay
    intact, the owner gets a 503 that says so, the access log records the failure, and
    deleting again once the file can go finishes the job."""
    if shutil.which("chattr") is None:
        pytest.fail("chattr not found: apt-get install e2fsprogs")
    segments = hall_segments(hub)
    event = add_event(hub, segments[40].start_time + 0.5, segments[41].end_time - 0.5)
    cam = next(c for c in hub.config.cameras if c.id == "hall")
    row = hub.index.get_event(event)
    covering = hub.index.segments_overlapping(
        "hall", row.start_time - cam.pre_roll, row.end_time + cam.post_roll
    )
    stuck = covering[len(covering) // 2]
    stuck_path = hub.archive.data_dir / stuck.path
    before = stuck_path.read_bytes()
    subprocess.run(["chattr", "+i", str(stuck_path)], check=True)
    since = last_seq(hub)
    client = await logged_in(hub)
    try:
        async with client:
            url = f"{base(hub)}/api/events/{event}"
            async with client.delete(url, headers=origin(hub)) as resp:
                assert resp.status == 503
                assert "stopped part-way" in (await resp.json())["error"]
            assert stuck_path.read_bytes() == before and hub.index.get_segment(stuck.id)
            assert hub.index.get_segment(covering[0].id) is None  # went before it
            assert hub.index.get_event(event) is not None
            subprocess.run(["chattr", "-i", str(stuck_path)], check=True)
            async with client.delete(url, headers=origin(hub)) as resp:
                assert resp.status == 200
                assert (await resp.json())["segments"] == len(covering) - covering.index(stuck)
    finally:
        subprocess.run(["chattr", "-i", str(stuck_path)], check=False)
    logged = [d for k, _, d in audit_kinds(hub, since) if k.startswith("footage deleted")]
    assert len(logged) == 2 and "failed" in logged[0] and logged[0]["event"] == event
    assert "failed" not in logged[1] and logged[1]["events"] == 1
    assert all(hub.index.get_segment(s.id) is None for s in covering)


def test_ranges_are_marked_where_motion_meets_them() -> None:
    motion = [(10.0, 20.0), (30.0, 31.0)]
    ends = [b for _a, b in motion]
    assert [
        footage._overlaps(a, b, motion, ends)
        for a, b in ((0, 10), (0, 10.5), (20, 30), (19, 19.5), (25, 40), (31, 50), (40, 50))
    ] == [False, True, False, True, True, False, False]
