"""The config file as the page changes it: read afresh, edited, checked, and written
atomically after a copy of the previous file is kept beside it (camhub.toml.bak).

A crash at any point leaves the old file or the new one whole (hub/fsutil.py), and the
backup is written first, so the previous settings are never lost with the new ones.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from hub.config import ConfigError, parse_config
from hub.fsutil import write_durably
from hub.settings import Edited

BACKUP_SUFFIX = ".bak"

Edit = Callable[[str, Path], Edited]  # (the file's text, its directory) -> the edit


class ConfigFileBroken(Exception):
    """The file on disk no longer reads as a good config (edited by hand since): the
    page does not build on it; the owner fixes it first."""


class ConfigFile:
    """One config file the hub was started from."""

    def __init__(self, path: Path) -> None:
        # A symlinked config (/etc/camhub/camhub.toml -> a file kept elsewhere) is
        # written where it really is: renaming over the link would replace the link.
        self.path = path.resolve()

    @property
    def backup(self) -> Path:
        return self.path.with_name(self.path.name + BACKUP_SUFFIX)

    def not_writable(self) -> str | None:
        """Why the hub cannot change this file (for the page to say), or None. It
        writes a temp file and the backup beside the file, so it needs the directory."""
        folder = self.path.parent
        try:
            read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except OSError as exc:
            return f"cannot look at {folder}: {exc.strerror}"
        if read_only:
            return (
                f"{folder} is read-only to the hub (the systemd unit keeps /etc so; "
                "README, 'Settings from the page', says how to allow it)"
            )
        if not os.access(self.path, os.R_OK | os.W_OK):
            return f"the hub's user may not write {self.path}"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"the hub's user may not create files in {folder}"
        return None

    def update(self, edit: Edit) -> Edited:
        """Apply `edit` to the file as it is now; written only if it changed something
        and `check-config` would take the result (else hub.settings.SettingsRefused)."""
        data = self.path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
            parse_config(text, base_dir=self.path.parent)
        except UnicodeDecodeError:
            raise ConfigFileBroken(f"{self.path} is not UTF-8 text any more") from None
        except ConfigError as exc:
            raise ConfigFileBroken(
                f"{self.path} has problems now; fix them by hand first: {'; '.join(exc.problems)}"
            ) from None
        edited = edit(text, self.path.parent)
        if edited.changes:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            write_durably(self.backup, data, mode)
            write_durably(self.path, edited.text.encode(), mode)
        return edited
