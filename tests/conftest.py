"""Shared fixtures: where the real camera clips live."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
PERSON_CLIP = DATA_DIR / "one-by-one-person-detection.mp4"
CROWD_CLIP = DATA_DIR / "crowd-720p-h264.avi"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"real camera clip missing: {path} (shared/data must sit beside the repo)")
    return path


@pytest.fixture(scope="session")
def person_clip() -> Path:
    return _require(PERSON_CLIP)


@pytest.fixture(scope="session")
def crowd_clip() -> Path:
    return _require(CROWD_CLIP)
