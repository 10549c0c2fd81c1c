"""Reading the files a targets file points at, without letting it point anywhere.

``file:`` credential references and ``source: file`` secrets are read from one credentials
directory (``ROTATOR_CREDENTIALS_DIR``, default: the targets file's folder). Otherwise a single
targets-file edit (``client_secret: file:/proc/self/environ``) would send the process
environment, master and audit keys included, to a provider as a credential. So a path:

* resolves (relative paths against the directory, symlinks followed) to a real path inside the
  credentials directory: ``..`` and symlinks pointing out of it are refused;
* is never under ``/proc``, ``/sys`` or ``/dev``, even if the directory is set to ``/``;
* is a regular file (no device, FIFO or socket: a FIFO would block the reader forever) of at
  most ``MAX_FILE_BYTES``; it is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked again on the
  open descriptor, so swapping the file for a symlink or FIFO after the check does not help.

Errors name the path and the reason, never file content.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from rotator.errors import FileRefused

MAX_FILE_BYTES = 64 * 1024  # credentials and secret files are small; this is 100x any real one
_SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))


def locate(path: str, root: Path) -> Path:
    """The real path of ``path`` (relative: against ``root``) if it lies inside ``root``."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    real = Path(os.path.realpath(candidate))
    real_root = Path(os.path.realpath(root))
    for tree in _SYSTEM_TREES:
        if real == tree or real.is_relative_to(tree):
            raise FileRefused(f"{path}: files under {tree} are never read")
    if not real.is_relative_to(real_root):
        raise FileRefused(f"{path}: resolves outside the credentials directory {real_root}")
    return real


def _check_stat(path: str, info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"{path}: not a regular file (devices, FIFOs and sockets are refused)")
    if info.st_size > limit:
        raise FileRefused(f"{path}: larger than {limit} bytes")


def inspect(path: str, root: Path, limit: int = MAX_FILE_BYTES) -> str | None:
    """Why ``path`` would be refused, for ``config check``; None if it may be read. A file
    that does not exist yet is not a violation (it may be written before the first rotation)."""
    try:
        real = locate(path, root)
        try:
            info = os.stat(real)
        except FileNotFoundError:
            return None
        _check_stat(path, info, limit)
    except FileRefused as exc:
        return str(exc)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    return None


def read_bytes(path: str, root: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The content of ``path`` under the rules above; FileRefused or OSError otherwise."""
    real = locate(path, root)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component became a symlink after locate()
            raise FileRefused(f"{path}: is a symbolic link that changed while reading") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        _check_stat(path, os.fstat(handle.fileno()), limit)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"{path}: larger than {limit} bytes")
    return data


__all__ = ["MAX_FILE_BYTES", "FileRefused", "inspect", "locate", "read_bytes"]
