"""Made-up segment rows for the recordings query, and that query as it was before it
sought to the range (SQLite window functions over the camera's whole history up to the
range's end): the tests check the new one gives the same answers, the bench how much
faster it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Parameters: now, camera, end, now, start, gap, limit.
WINDOW_QUERY = (
    "WITH s AS (SELECT start_time AS a, coalesce(end_time, max(start_time, ?)) AS b, "
    "  coalesce(size, 0) AS size FROM segments "
    "  WHERE camera_id = ? AND start_time < ? AND coalesce(end_time, ?) > ?), "
    "g AS (SELECT *, "
    "  CASE WHEN a - lag(b) OVER (ORDER BY a) <= ? THEN 0 ELSE 1 END AS brk FROM s), "
    "i AS (SELECT *, sum(brk) OVER (ORDER BY a ROWS UNBOUNDED PRECEDING) AS n FROM g) "
    "SELECT min(a), max(b), count(*), sum(size) FROM i GROUP BY n ORDER BY n LIMIT ?"
)


def window_spans(
    path: Path, camera: str, start: float, end: float, gap: float, limit: int, now: float
) -> list[tuple[float, float, int, int]]:
    """The recorded stretches by the former query, on its own connection."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(WINDOW_QUERY, (now, camera, end, now, start, gap, limit))
        return [(float(a), float(b), int(n), int(size)) for a, b, n, size in rows]


def insert_segments(
    path: Path,
    spans: list[tuple[float, float | None]],
    camera: str = "cam",
    size: int = 1,
) -> None:
    """Segment rows straight into the real index file (faster than the archive for a
    month of them): complete ones, or open where the end is None; ids and seqs unique."""
    with sqlite3.connect(path) as conn:
        base_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM segments").fetchone()[0]
        conn.executemany(
            "INSERT INTO segments (id, camera_id, start_time, end_time, path, size, frames, "
            "state, created, seq) VALUES (?, ?, ?, ?, ?, ?, 1, ?, 0, ?)",
            [
                (
                    f"{base_seq + i:032x}",
                    camera,
                    a,
                    b,
                    f"x/{base_seq + i}.seg",
                    None if b is None else size,
                    "open" if b is None else "complete",
                    base_seq + i + 1,
                )
                for i, (a, b) in enumerate(spans)
            ],
        )
