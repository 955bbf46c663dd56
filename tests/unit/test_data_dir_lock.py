"""One server per data dir: the lock's own behaviour (the two-server run is in e2e)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gensight.pipeline.lock import DataDirLock, DataDirLocked


def test_a_second_holder_is_refused_naming_the_dir_and_the_pid(tmp_path: Path):
    first = DataDirLock(tmp_path).acquire()
    with pytest.raises(DataDirLocked) as e:
        DataDirLock(tmp_path).acquire()
    assert str(tmp_path) in str(e.value) and f"pid {os.getpid()}" in str(e.value)
    first.release()
    DataDirLock(tmp_path).acquire().release()  # free again once released


def test_other_dirs_are_not_affected(tmp_path: Path):
    a = DataDirLock(tmp_path / "a").acquire()
    b = DataDirLock(tmp_path / "b").acquire()
    a.release()
    b.release()
