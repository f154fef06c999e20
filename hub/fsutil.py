"""Small durable writes (keys, certificates, the config file), and the data directory's lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "camhub.lock"


def write_private(path: Path, data: bytes) -> None:
    """Write a small file atomically, readable by its owner only, and make it durable:
    a crash leaves the old file or the new one, never half of either."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_durably(path, data, 0o600)


def write_durably(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` atomically with `data` (a temp file beside it, fsynced, renamed
    over it, the directory fsynced), with exactly these permission bits."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DirectoryBusy(Exception):
    """Another camhub process (a running hub, or `camhub repair`) holds the directory."""


class DirectoryLock:
    """An exclusive hold on a data directory for as long as this process keeps it.

    A repair that rebuilds the index while a hub records into it would race the hub's
    own inserts (a snapshot whose row fails is removed again), and two hubs on one
    directory would each take the other's files for orphans. flock() is dropped by the
    kernel when the process dies, so a kill -9 never leaves a stale lock behind.
    """

    def __init__(self, directory: Path) -> None:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryBusy(
                f"{directory} is in use by another camhub process (a running hub or "
                "`camhub repair`); stop it first"
            ) from None
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
