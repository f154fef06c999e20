"""Settings changes on the config file's text (hub/settings.py) and their write
(hub/config_file.py): real files in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.config import CameraMotion, load_config
from hub.config_file import ConfigFile, ConfigFileBroken
from hub.settings import (
    SENSITIVITY,
    SettingsRefused,
    edit_camera,
    edit_session_idle,
    sensitivity_of,
)

CONFIG = """\
# My house. Keep this comment.
[hub]
data_dir = "data"   # beside this file

[[camera]]
id = "porch"        # the front door
name = "Front porch"
url = "synthetic:porch"

# The hallway camera, on the old NVR's substream.
[[camera]]
id = "hall"
url = "rtsp://admin:s3cret-pw@127.0.0.1:1/stream"
enabled = false

[camera.motion]
threshold = 30      # tuned by hand
"""
BASE = Path("/nowhere")


def test_an_edit_keeps_the_owners_comments_and_layout() -> None:
    edited = edit_camera(CONFIG, BASE, "hall", {"pre_roll": 3, "sensitivity": 4})
    assert edited.text.startswith("# My house. Keep this comment.\n[hub]\n")
    for line in (
        'data_dir = "data"   # beside this file',
        'id = "porch"        # the front door',
        "# The hallway camera, on the old NVR's substream.",
        "threshold = 18      # tuned by hand",
    ):
        assert line in edited.text
    hall = edited.config.cameras[1]
    assert (hall.pre_roll, hall.motion.threshold, hall.motion.min_area) == (3.0, 18, 0.001)
    assert edited.config.cameras[0] == edit_camera(CONFIG, BASE, "porch", {}).config.cameras[0]
    assert [c.as_json() for c in edited.changes] == [
        {"key": "camera[1].pre_roll", "old": 5.0, "new": 3},
        {"key": "camera[1].motion.threshold", "old": 30, "new": 18},
        {"key": "camera[1].motion.min_area", "old": 0.002, "new": 0.001},
    ]


def test_masks_go_in_the_configs_own_form_one_polygon_a_line() -> None:
    square = [[0.1, 0.2], [0.5, 0.2], [0.5, 0.6], [0.1, 0.6]]
    triangle = [[0.6, 0.1], [0.9, 0.1], [0.75, 0.4]]
    edited = edit_camera(CONFIG, BASE, "porch", {"masks": [square, triangle]})
    assert edited.config.cameras[0].motion.masks == (
        tuple(tuple(p) for p in square),
        tuple(tuple(p) for p in triangle),
    )
    assert "[[0.1, 0.2], [0.5, 0.2], [0.5, 0.6], [0.1, 0.6]],\n" in edited.text
    assert [c.as_json() for c in edited.changes] == [
        {"key": "camera[0].motion.masks", "old": "0 masks", "new": "2 masks"}
    ]
    cleared = edit_camera(edited.text, BASE, "porch", {"masks": []})
    assert cleared.config.cameras[0].motion.masks == ()


def test_a_url_change_is_logged_without_the_url() -> None:
    edited = edit_camera(CONFIG, BASE, "hall", {"url": "rtsp://admin:n3w-pw@127.0.0.1:1/stream"})
    assert edited.config.cameras[1].url == "rtsp://admin:n3w-pw@127.0.0.1:1/stream"
    assert [c.as_json() for c in edited.changes] == [
        {"key": "camera[1].url", "old": "(hidden)", "new": "(hidden)"}
    ]


@pytest.mark.parametrize(
    ("camera", "wanted", "problem"),
    [
        ("porch", {"motion": {}}, "motion: not a setting the page can change"),
        ("porch", {"pre_roll": 99}, "camera[0].pre_roll: must be 0..30, got 99"),
        (
            "hall",
            {"detect_fps": "fast"},
            'camera[1].motion.detect_fps: must be a number, got "fast"',
        ),
        ("porch", {"record": "always"}, "camera[0].record: must be one of"),
        ("porch", {"enabled": None}, "camera[0].enabled: a value is required, got null"),
        ("porch", {"enabled": 1}, "camera[0].enabled: must be true or false, got 1"),
        ("porch", {"sensitivity": 6}, "camera[0].sensitivity: must be one of 1..5, got 6"),
        ("porch", {"sensitivity": True}, "camera[0].sensitivity: must be one of 1..5"),
        (
            "porch",
            {"masks": [[[0, 0], [1, 1]]]},
            "camera[0].motion.masks[0]: a polygon needs 3..64 [x, y] points, got 2",
        ),
        (
            "porch",
            {"masks": [[[0, 0], [1, 0], [0.5, 1.5]]]},
            "camera[0].motion.masks[0][2][1]: must be 0..1",
        ),
        (
            "porch",
            {"masks": [[[0, 0], [1, 0], None]]},
            "camera[0].motion.masks: must not hold null",
        ),
        ("porch", {"url": "ftp://camera/x"}, 'camera[0].url: scheme "ftp" is not supported'),
        ("nobody", {"pre_roll": 1}, "camera 'nobody' is not in the config file"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(camera: str, wanted: dict, problem: str) -> None:
    with pytest.raises(SettingsRefused) as refused:
        edit_camera(CONFIG, BASE, camera, wanted)
    assert problem in str(refused.value)


def test_a_url_is_never_echoed_in_a_refusal() -> None:
    with pytest.raises(SettingsRefused) as refused:
        edit_camera(CONFIG, BASE, "hall", {"url": "rtsp://admin:n3w-pw@127.0.0.1:99999/x"})
    assert "n3w-pw" not in str(refused.value)
    assert "camera[1].url: has a bad port" in str(refused.value)


def test_session_idle_minutes_goes_in_a_new_web_table() -> None:
    edited = edit_session_idle(CONFIG, BASE, 45)
    assert edited.config.web.session_idle_minutes == 45
    assert edited.text.startswith(CONFIG)
    with pytest.raises(
        SettingsRefused, match=r"web\.session_idle_minutes: must be 1\.\.1440, got 0"
    ):
        edit_session_idle(CONFIG, BASE, 0)


def test_the_sensitivity_levels_map_to_the_motion_keys_and_back() -> None:
    for level in SENSITIVITY:
        edited = edit_camera(CONFIG, BASE, "porch", {"sensitivity": level})
        assert sensitivity_of(edited.config.cameras[0].motion) == level
    assert sensitivity_of(load_motion(threshold=30)) is None  # set by hand: shown as is
    assert sensitivity_of(load_motion()) == 3  # the defaults are the middle level


def load_motion(**motion: object) -> CameraMotion:
    extra = "".join(f"{k} = {v}\n" for k, v in motion.items())
    text = f'[[camera]]\nid = "a"\nurl = "synthetic:porch"\n[camera.motion]\n{extra}'
    return edit_camera(text, BASE, "a", {}).config.cameras[0].motion


# -- the file ------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> ConfigFile:
    path = tmp_path / "camhub.toml"
    path.write_text(CONFIG)
    os.chmod(path, 0o640)
    return ConfigFile(path)


def test_the_file_is_replaced_whole_after_a_backup_of_the_previous_one(
    config_file: ConfigFile,
) -> None:
    path = config_file.path
    inode = path.stat().st_ino
    edited = config_file.update(
        lambda text, base: edit_camera(text, base, "porch", {"post_roll": 20})
    )
    assert path.read_text() == edited.text
    assert config_file.backup == path.with_name("camhub.toml.bak")
    assert config_file.backup.read_text() == CONFIG
    assert path.stat().st_ino != inode  # a new file renamed over the old, not rewritten in place
    assert {p.name for p in path.parent.iterdir()} == {"camhub.toml", "camhub.toml.bak"}
    assert (path.stat().st_mode & 0o777, config_file.backup.stat().st_mode & 0o777) == (0o640,) * 2
    assert load_config(path).cameras[0].post_roll == 20.0  # what `camhub run` will read
    second = config_file.update(
        lambda text, base: edit_camera(text, base, "porch", {"post_roll": 30})
    )
    assert config_file.backup.read_text() == edited.text  # the previous file, not the first
    assert path.read_text() == second.text


def test_a_refused_or_empty_change_writes_nothing(config_file: ConfigFile) -> None:
    with pytest.raises(SettingsRefused):
        config_file.update(lambda text, base: edit_camera(text, base, "porch", {"post_roll": -1}))
    unchanged = config_file.update(
        lambda text, base: edit_camera(text, base, "porch", {"post_roll": 10})
    )
    assert unchanged.changes == ()  # 10 is the default, absent from the file
    assert config_file.path.read_text() == CONFIG
    assert not config_file.backup.exists()


def test_a_file_broken_by_hand_is_not_built_on(config_file: ConfigFile) -> None:
    config_file.path.write_text(CONFIG + "\n[storage]\nsegment_seconds = 0\n")
    with pytest.raises(ConfigFileBroken, match=r"storage\.segment_seconds: must be 1\.\.60, got 0"):
        config_file.update(lambda text, base: edit_camera(text, base, "porch", {"post_roll": 20}))
    assert not config_file.backup.exists()


def test_a_symlinked_config_is_written_where_it_really_is(tmp_path: Path) -> None:
    real = tmp_path / "kept" / "camhub.toml"
    real.parent.mkdir()
    real.write_text(CONFIG)
    link = tmp_path / "camhub.toml"
    link.symlink_to(real)
    ConfigFile(link).update(lambda text, base: edit_camera(text, base, "porch", {"post_roll": 20}))
    assert link.is_symlink() and link.resolve() == real
    assert load_config(link).cameras[0].post_roll == 20.0
    assert (real.parent / "camhub.toml.bak").read_text() == CONFIG
