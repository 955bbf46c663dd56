"""One server per data dir: an exclusive ``flock`` on ``DIR/.lock`` while it runs.

Two servers on one data dir would share one journal (each replaying and deleting the
other's acknowledged batches) whatever their stores, so the second one must not start.
The lock is advisory and held by the open file: the kernel releases it when the process
exits, however it exits (SIGKILL included), so a stale lock never needs cleaning up.
The file holds the holder's pid, for the message the next one prints.
"""

from __future__ import annotations

import os
from pathlib import Path

from gensight.pipeline.files import open_private, private_dir

try:
    import fcntl
except ImportError:  # Windows: no flock; one server per dir is then the user's care
    fcntl = None  # type: ignore[assignment]


class DataDirLocked(RuntimeError):
    """Another server holds the data dir; the message names the dir and its pid."""


class DataDirLock:
    """The held lock on one data dir; ``release()`` (or process exit) lets it go."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        """Take the lock or raise DataDirLocked at once (never waits)."""
        private_dir(self.dir)
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise DataDirLocked(
                    f"data dir {self.dir} is in use by another gensight server (pid {holder});"
                    " stop it or choose another --data-dir"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the dir go (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:
        self.release()
