"""Files only for their owner: the data dir holds prompts, answers and, in the journal and
the set-aside files, payloads before redaction.

The data dir and its subdirectories are ``0700``, every file in them ``0600``
(``private_tree`` fixes an existing dir at start); ``gensight serve`` also runs with
umask ``077``, so files the store creates later (DuckDB's ``.wal``) are born private.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created when missing)."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(OSError):  # not ours to change (a shared mount): leave it
        os.chmod(path, DIR_MODE)
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """A descriptor of ``path``, created ``0600`` (and made so if it existed)."""
    fd = os.open(path, flags, FILE_MODE)
    with contextlib.suppress(OSError):
        os.fchmod(fd, FILE_MODE)
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path``'s content with ``data`` in a ``0600`` file."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def private_tree(root: Path) -> None:
    """Make ``root`` and everything under it owner-only (symlinks are not followed)."""
    private_dir(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            _chmod(Path(dirpath) / name, DIR_MODE)
        for name in filenames:
            _chmod(Path(dirpath) / name, FILE_MODE)


def private_file(path: Path) -> None:
    """Make one existing file owner-only (a store file outside the data dir)."""
    _chmod(path, FILE_MODE)


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
