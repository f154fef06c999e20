"""Shared fixtures: where the real camera clips live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = Path(
    os.environ.get("CAMHUB_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
PERSON_CLIP = DATA_DIR / "one-by-one-person-detection.mp4"
CROWD_CLIP = DATA_DIR / "crowd-720p-h264.avi"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(
            f"real camera clip missing: {path} "
            "(put shared/data beside the repo or set CAMHUB_TEST_DATA)"
        )
    return path


@pytest.fixture(scope="session")
def person_clip() -> Path:
    return _require(PERSON_CLIP)


@pytest.fixture(scope="session")
def crowd_clip() -> Path:
    return _require(CROWD_CLIP)
