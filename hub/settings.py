"""Settings the owner changes from the page, written into the config file's own text.

The file stays the one source of truth: a change is made on its TOML document (tomlkit
keeps the owner's comments and layout), and the new text must pass `parse_config`,
the check `camhub check-config` makes, before anything is written or applied. Pure:
the file's reading and writing is hub/config_file.py, the routes hub/web/settings_routes.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ConvertError
from tomlkit.items import AoT, InlineTable, Table

from hub.config import (
    CameraMotion,
    CameraSettings,
    Config,
    ConfigError,
    WebSettings,
    parse_config,
    redact_url,
)

# Motion sensitivity as the page offers it: level -> (threshold, min_area). The middle
# level is the detector's default (tuned on the real clips); lower levels want a bigger
# and stronger change, higher ones see a cat at the far end of the garden.
SENSITIVITY: dict[int, tuple[int, float]] = {
    1: (40, 0.01),
    2: (32, 0.005),
    3: (25, 0.002),
    4: (18, 0.001),
    5: (12, 0.0005),
}
SENSITIVITY_NAMES = {1: "Lowest", 2: "Low", 3: "Normal", 4: "High", 5: "Highest"}

# What the page may set on a camera: its name there -> the key path under [[camera]].
CAMERA_KEYS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "enabled": ("enabled",),
    "record": ("record",),
    "pre_roll": ("pre_roll",),
    "post_roll": ("post_roll",),
    "detect_fps": ("motion", "detect_fps"),
    "masks": ("motion", "masks"),
    "url": ("url",),
    "detect_url": ("detect_url",),
}
SECRET_KEYS = frozenset({"url", "detect_url"})  # may hold a password: never shown back
HIDDEN = "(hidden)"


class SettingsRefused(Exception):
    """A change that would make a config `check-config` refuses, or one that names no
    setting: one line per problem, each naming its key path; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


@dataclass(frozen=True, slots=True)
class Change:
    """One key changed, as the access log keeps it: never a URL or a secret."""

    key: str  # e.g. "camera[1].motion.threshold"
    old: object
    new: object

    def as_json(self) -> dict[str, object]:
        return {"key": self.key, "old": self.old, "new": self.new}

    def as_text(self) -> str:
        """The change as the access log shows it: `5.0 → 2`."""
        return f"{_text(self.old)} → {_text(self.new)}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True, slots=True)
class Edited:
    """The config's new text, what it changed, and the config it reads as."""

    text: str
    changes: tuple[Change, ...]
    config: Config


# -- the page's view ----------------------------------------------------------------------


def sensitivity_of(motion: CameraMotion) -> int | None:
    """The page's level for these motion settings; None when set by hand to others."""
    for level, (threshold, min_area) in SENSITIVITY.items():
        if motion.threshold == threshold and abs(motion.min_area - min_area) < 1e-12:
            return level
    return None


def camera_view(camera: CameraSettings) -> dict[str, Any]:
    """One camera's settings for the page: URLs with any password replaced by ***."""
    motion = camera.motion
    return {
        "id": camera.id,
        "name": camera.name,
        "enabled": camera.enabled,
        "record": camera.record,
        "pre_roll": camera.pre_roll,
        "post_roll": camera.post_roll,
        "detect_fps": motion.detect_fps,
        "sensitivity": sensitivity_of(motion),
        "threshold": motion.threshold,
        "min_area": motion.min_area,
        "masks": [[list(point) for point in polygon] for polygon in motion.masks],
        "url": redact_url(camera.url),
        "detect_url": redact_url(camera.detect_url),
    }


def levels_view() -> list[dict[str, Any]]:
    return [
        {"level": level, "name": SENSITIVITY_NAMES[level], "threshold": t, "min_area": a}
        for level, (t, a) in SENSITIVITY.items()
    ]


# -- changes ------------------------------------------------------------------------------


def edit_camera(text: str, base_dir: Path, camera_id: str, wanted: Mapping[str, object]) -> Edited:
    """The config with camera `camera_id`'s settings changed as the page asked.

    `wanted` holds page names (CAMERA_KEYS, and "sensitivity" for the motion threshold
    and min_area together); `text` must already be a good config.
    """
    doc = tomlkit.parse(text)
    index, table = _camera_table(doc, camera_id)
    where = f"camera[{index}]"
    changes = [
        change
        for keys, value in _camera_values(wanted, where).items()
        if (change := _set(table, keys, value, where, _settings_of(keys))) is not None
    ]
    return _checked(doc, changes, base_dir)


def edit_session_idle(text: str, base_dir: Path, minutes: object) -> Edited:
    doc = tomlkit.parse(text)
    web = doc.get("web")
    if web is None:
        web = tomlkit.table()
        doc["web"] = web
    value = _value(minutes, "web.session_idle_minutes")
    change = _set(web, ("session_idle_minutes",), value, "web", WebSettings)
    return _checked(doc, [change] if change is not None else [], base_dir)


def _camera_values(wanted: Mapping[str, object], where: str) -> dict[tuple[str, ...], object]:
    unknown = [name for name in wanted if name not in CAMERA_KEYS and name != "sensitivity"]
    if unknown:
        known = ", ".join([*CAMERA_KEYS, "sensitivity"])
        raise SettingsRefused(
            [f"{name}: not a setting the page can change ({known})" for name in unknown]
        )
    values: dict[tuple[str, ...], object] = {}
    for name, value in wanted.items():
        if name == "sensitivity":
            if isinstance(value, bool) or not isinstance(value, int) or value not in SENSITIVITY:
                raise SettingsRefused(
                    [f"{where}.sensitivity: must be one of 1..{len(SENSITIVITY)}, got {value!r}"]
                )
            values[("motion", "threshold")], values[("motion", "min_area")] = SENSITIVITY[value]
        else:
            keys = CAMERA_KEYS[name]
            values[keys] = _value(value, f"{where}.{'.'.join(keys)}")
    return values


def _settings_of(keys: tuple[str, ...]) -> type:
    return CameraMotion if keys[0] == "motion" else CameraSettings


def _value(value: object, path: str) -> object:
    """A JSON value as TOML can hold it (its type and range are parse_config's to check)."""
    if value is None:
        raise SettingsRefused([f"{path}: a value is required, got null"])
    return value


def _camera_table(doc: tomlkit.TOMLDocument, camera_id: str) -> tuple[int, Table | InlineTable]:
    cameras = doc.get("camera")
    if isinstance(cameras, AoT | list):
        for index, table in enumerate(cameras):
            if isinstance(table, Table | InlineTable) and table.get("id") == camera_id:
                return index, table
    raise SettingsRefused(
        [f"camera {camera_id!r} is not in the config file (was it edited by hand? restart the hub)"]
    )


def _set(
    table: Table | InlineTable, keys: tuple[str, ...], value: object, where: str, defaults: type
) -> Change | None:
    """Set table[keys...] = value, making sub-tables as needed; the change, or None if
    the value was already that. `defaults`: the settings class whose default an absent
    key means."""
    parent: Any = table
    for key in keys[:-1]:
        if key not in parent:
            inline = isinstance(parent, InlineTable)
            parent[key] = tomlkit.inline_table() if inline else tomlkit.table()
        parent = parent[key]
    key = keys[-1]
    old = parent[key] if key in parent else _field_default(defaults, key)
    old = old.unwrap() if hasattr(old, "unwrap") else old  # tomlkit gives bools bare
    if _same(old, value):
        return None
    path = f"{where}.{'.'.join(keys)}"
    try:
        if key == "masks" and isinstance(value, list):
            array = tomlkit.array()
            array.extend(value)
            array.multiline(True)  # a polygon a line
            parent[key] = array
        else:
            parent[key] = value
    except ConvertError:  # a null inside a list: JSON has it, TOML does not
        raise SettingsRefused([f"{path}: must not hold null"]) from None
    return Change(path, *_shown(key, old, value))


def _same(old: object, new: object) -> bool:
    """Equal, and not a bool against a number (true is not 1 here)."""
    return old == new and isinstance(old, bool) == isinstance(new, bool)


def _field_default(settings: type, name: str) -> object:
    """What a key absent from the file means: the settings' default, as JSON has it."""
    for f in fields(settings):
        if f.name == name:
            return list(f.default) if isinstance(f.default, tuple) else f.default
    return None


def _shown(key: str, old: object, new: object) -> tuple[object, object]:
    """The change as the access log may keep it: URLs hidden, masks counted."""
    if key in SECRET_KEYS:
        return HIDDEN, HIDDEN
    if key == "masks":
        return _count(old), _count(new)
    return old, new


def _count(masks: object) -> str:
    n = len(masks) if isinstance(masks, list | tuple) else 0
    return f"{n} mask{'s' if n != 1 else ''}"


def _checked(doc: tomlkit.TOMLDocument, changes: list[Change], base_dir: Path) -> Edited:
    """The edited document as text, refused whole unless parse_config takes it."""
    text = tomlkit.dumps(doc)
    try:
        config = parse_config(text, base_dir=base_dir)
    except ConfigError as exc:
        raise SettingsRefused(exc.problems) from None
    return Edited(text, tuple(changes), config)
