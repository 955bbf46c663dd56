"""The write-ahead journal: what was acknowledged survives a store outage and a crash.

Every batch a receiver hands to the pipeline is appended here *before* the receiver
answers, as the receiver's own payload when it has one (an OTLP protobuf body costs no
re-encoding) or as pickled records (gateway calls, imports). The writer marks batches
committed once the store has them; on start, entries after the last committed one are
replayed. While the store is down the journal is the spill: memory holds only the newest
batches, older ones are read back from disk, in order, when the store returns.

Files: ``DIR/seg-<first seq>.log`` segments of entries ``[seq u64][kind u16][len u32]
[kind][payload]`` and ``DIR/committed`` (the last committed sequence number). Entries
are written without fsync: they survive the process being killed (SIGKILL, OOM), not a
power loss. A torn entry at the end of the last segment (a crash mid-write) is ignored.
Delivery is at least once: a crash between a store write and its commit mark replays
that batch again. Payloads are kept as received, before redaction, only until they are
stored: a segment is deleted as soon as everything in it is committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("gensight.pipeline.journal")

_HEADER = struct.Struct(">QHI")
SEGMENT_BYTES = 64 * 1024 * 1024


class JournalFull(Exception):
    """The journal holds ``max_bytes`` of unwritten batches: refuse more."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one journaled batch lives."""

    seq: int
    kind: str
    segment: Path
    offset: int


class Journal:
    """Append-only segments plus a committed mark; thread-safe."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self.committed = self._read_committed()
        self._segments: list[tuple[int, Path]] = sorted(
            (int(p.stem.split("-", 1)[1]), p) for p in self.dir.glob("seg-*.log")
        )
        self._pending_at_open = list(self._scan())
        self.next_seq = max([self.committed, *(e.seq for e in self._pending_at_open)]) + 1
        if self._segments:
            last = self._segments[-1][1]
            end = self._valid_end(last)
            with open(last, "r+b") as f:  # drop a torn tail so appends start clean
                f.truncate(end)
        self._file = None
        self._file_size = 0
        self.bytes = sum(p.stat().st_size for _, p in self._segments)

    # -- writing ------------------------------------------------------------
    def append(self, kind: str, payload: bytes) -> Entry:
        """Journal one batch; JournalFull when ``max_bytes`` of unwritten data is held."""
        k = kind.encode()
        size = _HEADER.size + len(k) + len(payload)
        with self._lock:
            if self.bytes + size > self.max_bytes:
                raise JournalFull(f"journal holds {self.bytes} bytes (limit {self.max_bytes})")
            if self._file is None or self._file_size + size > self.segment_bytes:
                self._rotate()
            assert self._file is not None
            seq = self.next_seq
            self.next_seq += 1
            offset = self._file_size
            self._file.write(_HEADER.pack(seq, len(k), len(payload)) + k + payload)
            self._file.flush()  # into the OS: survives the process, not the machine
            self._file_size += size
            self.bytes += size
            return Entry(seq, kind, self._segments[-1][1], offset)

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.dir / f"seg-{self.next_seq:016d}.log"
        self._file = open(path, "ab")  # noqa: SIM115 - kept open across appends
        self._file_size = path.stat().st_size
        self._segments.append((self.next_seq, path))

    def commit(self, seq: int) -> None:
        """Mark everything up to ``seq`` as stored; delete segments no longer needed."""
        with self._lock:
            if seq <= self.committed:
                return
            self.committed = seq
            tmp = self.dir / "committed.tmp"
            tmp.write_text(str(seq))
            os.replace(tmp, self.dir / "committed")
            # a segment is done when the next one starts at or before committed + 1
            while len(self._segments) > 1 and self._segments[1][0] <= seq + 1:
                _, path = self._segments.pop(0)
                with contextlib.suppress(OSError):
                    self.bytes -= path.stat().st_size
                    path.unlink()
            if self._segments and self.next_seq == seq + 1 and self._file is not None:
                # Everything is stored: drop the segment. The journal holds payloads as
                # received (before redaction), so it keeps them no longer than needed.
                self._file.close()
                self._file = None
                _, path = self._segments.pop()
                with contextlib.suppress(OSError):
                    self.bytes -= path.stat().st_size
                    path.unlink()

    def close(self) -> None:
        """Close the open segment."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- reading ------------------------------------------------------------
    def read(self, entry: Entry) -> bytes:
        """The payload of a journaled batch."""
        with open(entry.segment, "rb") as f:
            f.seek(entry.offset)
            seq, klen, plen = _HEADER.unpack(f.read(_HEADER.size))
            f.seek(klen, os.SEEK_CUR)
            payload = f.read(plen)
        if seq != entry.seq or len(payload) != plen:
            raise ValueError(f"journal entry {entry.seq} is damaged")
        return payload

    def pending(self) -> list[Entry]:
        """Entries after the committed mark when the journal was opened (to replay)."""
        return list(self._pending_at_open)

    def _scan(self) -> Iterator[Entry]:
        for _, path in self._segments:
            with open(path, "rb") as f:
                data = f.read()
            pos = 0
            while pos + _HEADER.size <= len(data):
                seq, klen, plen = _HEADER.unpack_from(data, pos)
                end = pos + _HEADER.size + klen + plen
                if end > len(data):
                    break  # torn tail
                kind = data[pos + _HEADER.size : pos + _HEADER.size + klen].decode()
                if seq > self.committed:
                    yield Entry(seq, kind, path, pos)
                pos = end

    @staticmethod
    def _valid_end(path: Path) -> int:
        data = path.read_bytes()
        pos = 0
        while pos + _HEADER.size <= len(data):
            _, klen, plen = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + klen + plen
            if end > len(data):
                break
            pos = end
        return pos

    def _read_committed(self) -> int:
        try:
            return int((self.dir / "committed").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0
