"""The write-ahead journal: what was acknowledged survives a store outage and a crash.

Every batch a receiver hands to the pipeline is appended here *before* the receiver
answers, as the receiver's own payload when it has one (an OTLP protobuf body costs no
re-encoding) or in the JSON record format (``gensight.pipeline.codec``: gateway calls,
imports). The writer marks batches committed once the store has them; on start, entries
after the last committed one are replayed. While the store is down the journal is the
spill: memory holds only the newest batches, older ones are read back from disk, in
order, when the store returns.

Files: ``DIR/seg-<first seq>.log`` segments, each starting with ``GSJOURN2`` and holding
entries ``[magic "\\xa7GSE"][seq u64][kind len u16][payload len u32][crc32 u32][kind]
[payload]``, the crc32 covering seq, lengths, kind and payload; and ``DIR/committed``
(the last committed sequence number). A damaged entry (a flipped byte anywhere, a bad
length) fails its checksum: it is skipped with a log line naming the segment and offset,
and reading resumes at the next valid entry (found by its magic and checksum), so one
bad byte costs one entry, never the ones after it. Segments of the previous format (no
``GSJOURN2``, no checksums: ``gensight.pipeline.legacy``) are still read, once, after an
upgrade; new entries always go to a new segment.

Entries are written without fsync: they survive the process being killed (SIGKILL, OOM),
not a power loss. Delivery is at least once: a crash between a store write and its
commit mark replays that batch again (the store's writes are idempotent by record id).
Payloads are kept as received, before redaction, only until they are stored: a segment
is deleted as soon as everything in it is committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from gensight.pipeline import legacy
from gensight.pipeline.files import open_private, private_dir, write_private

log = logging.getLogger("gensight.pipeline.journal")

SEGMENT_MAGIC = b"GSJOURN2"
ENTRY_MAGIC = b"\xa7GSE"
_FIELDS = struct.Struct(">QHI")  # seq, kind length, payload length (what the crc covers)
_HEADER = struct.Struct(">4sQHII")  # magic, seq, kind length, payload length, crc32
MAX_KIND = 64
SEGMENT_BYTES = 64 * 1024 * 1024


class JournalFull(Exception):
    """The journal holds ``max_bytes`` of unwritten batches: refuse more."""


class JournalDamaged(ValueError):
    """An entry no longer reads back as written (its message names segment and offset)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one journaled batch lives."""

    seq: int
    kind: str
    segment: Path
    offset: int
    legacy: bool = False  # written by the release before the versioned format


def _crc(seq: int, kind: bytes, payload: bytes | memoryview) -> int:
    return zlib.crc32(
        payload, zlib.crc32(kind, zlib.crc32(_FIELDS.pack(seq, len(kind), len(payload))))
    )


def _entry_at(data: bytes, pos: int) -> tuple[int, str, int] | None:
    """``(seq, kind, end)`` of a valid new-format entry starting at ``pos``, else None."""
    if pos + _HEADER.size > len(data) or data[pos : pos + 4] != ENTRY_MAGIC:
        return None
    _, seq, klen, plen, crc = _HEADER.unpack_from(data, pos)
    start = pos + _HEADER.size
    end = start + klen + plen
    if klen == 0 or klen > MAX_KIND or end > len(data):
        return None
    view = memoryview(data)
    kind = bytes(view[start : start + klen])
    if _crc(seq, kind, view[start + klen : end]) != crc:
        return None
    try:
        return seq, kind.decode("ascii"), end
    except UnicodeDecodeError:
        return None


class Journal:
    """Append-only segments plus a committed mark; thread-safe."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES):
        self.dir = private_dir(Path(directory))
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self.committed = self._read_committed()
        self.damaged = 0  # entries (or runs of bytes) skipped as unreadable at open
        self._segments: list[tuple[int, Path]] = sorted(
            (int(p.stem.split("-", 1)[1]), p) for p in self.dir.glob("seg-*.log")
        )
        self._pending_at_open: list[Entry] = []
        top = self.committed
        for first, path in self._segments:
            for entry in self._scan(first, path):
                top = max(top, entry.seq)
                if entry.seq > self.committed:
                    self._pending_at_open.append(entry)
        self.next_seq = top + 1
        self._file = None
        self._file_size = 0
        self.bytes = sum(p.stat().st_size for _, p in self._segments)

    # -- writing ------------------------------------------------------------
    def append(self, kind: str, payload: bytes) -> Entry:
        """Journal one batch; JournalFull when ``max_bytes`` of unwritten data is held."""
        k = kind.encode("ascii")
        if not 0 < len(k) <= MAX_KIND:
            raise ValueError(f"journal kind {kind!r} must be 1 to {MAX_KIND} ASCII characters")
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
            header = _HEADER.pack(ENTRY_MAGIC, seq, len(k), len(payload), _crc(seq, k, payload))
            self._file.write(header + k + payload)
            self._file.flush()  # into the OS: survives the process, not the machine
            self._file_size += size
            self.bytes += size
            return Entry(seq, kind, self._segments[-1][1], offset)

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.dir / f"seg-{self.next_seq:016d}.log"
        self._file = os.fdopen(open_private(path), "ab")  # kept open across appends
        self._file_size = path.stat().st_size
        if self._file_size == 0:
            self._file.write(SEGMENT_MAGIC)
            self._file_size = len(SEGMENT_MAGIC)
            self.bytes += len(SEGMENT_MAGIC)
        self._segments.append((self.next_seq, path))

    def commit(self, seq: int) -> None:
        """Mark everything up to ``seq`` as stored; delete segments no longer needed."""
        with self._lock:
            if seq <= self.committed:
                return
            self.committed = seq
            tmp = self.dir / "committed.tmp"
            write_private(tmp, str(seq).encode())
            os.replace(tmp, self.dir / "committed")
            # a segment is done when the next one starts at or before committed + 1
            while len(self._segments) > 1 and self._segments[1][0] <= seq + 1:
                _, path = self._segments.pop(0)
                with contextlib.suppress(OSError):
                    self.bytes -= path.stat().st_size
                    path.unlink()
            if self.next_seq == seq + 1:
                # Everything is stored: drop the segments (the last one too, and those of
                # a previous run or release). The journal holds payloads as received
                # (before redaction), so it keeps them no longer than needed.
                if self._file is not None:
                    self._file.close()
                    self._file = None
                while self._segments:
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
        """The payload of a journaled batch (JournalDamaged when it no longer checks out)."""
        try:
            ok, payload = self._read(entry)
        except struct.error:  # the file is shorter than the entry it had
            ok, payload = False, b""
        if not ok:
            raise JournalDamaged(
                f"journal entry {entry.seq} in {entry.segment} at offset {entry.offset} is damaged"
            )
        return payload

    @staticmethod
    def _read(entry: Entry) -> tuple[bool, bytes]:
        with open(entry.segment, "rb") as f:
            f.seek(entry.offset)
            if entry.legacy:
                head = f.read(legacy.HEADER.size)
                seq, klen, plen = legacy.HEADER.unpack(head)
                f.seek(klen, os.SEEK_CUR)
                payload = f.read(plen)
                ok = seq == entry.seq and len(payload) == plen
            else:
                head = f.read(_HEADER.size)
                magic, seq, klen, plen, crc = _HEADER.unpack(head)
                kind = f.read(klen)
                payload = f.read(plen)
                ok = magic == ENTRY_MAGIC and seq == entry.seq and _crc(seq, kind, payload) == crc
        return ok, payload

    def pending(self) -> list[Entry]:
        """Entries after the committed mark when the journal was opened (to replay)."""
        return list(self._pending_at_open)

    def _scan(self, first: int, path: Path) -> list[Entry]:
        data = path.read_bytes()
        if not data:
            return []
        if not data.startswith(SEGMENT_MAGIC):
            return self._scan_legacy(first, path, data)
        entries = []
        pos = len(SEGMENT_MAGIC)
        while pos < len(data):
            found = _entry_at(data, pos)
            if found is not None:
                seq, kind, end = found
                entries.append(Entry(seq, kind, path, pos))
                pos = end
                continue
            nxt = self._resync(data, pos + 1)
            self._report(path, pos, nxt, len(data), last=path == self._segments[-1][1])
            if nxt is None:
                break
            pos = nxt
        return entries

    @staticmethod
    def _resync(data: bytes, start: int) -> int | None:
        """Offset of the next valid entry at or after ``start`` (its magic and checksum)."""
        pos = data.find(ENTRY_MAGIC, start)
        while pos != -1:
            if _entry_at(data, pos) is not None:
                return pos
            pos = data.find(ENTRY_MAGIC, pos + 1)
        return None

    def _report(self, path: Path, pos: int, nxt: int | None, size: int, last: bool) -> None:
        if nxt is None and last:
            # the end of the newest segment: most likely a write a crash cut short
            log.warning(
                "journal %s: %d unreadable bytes at offset %d, at its end (a write cut short"
                " by a crash?), ignored",
                path, size - pos, pos,
            )  # fmt: skip
            self.damaged += 1
            return
        self.damaged += 1
        log.error(
            "journal %s: damaged entry at offset %d skipped (%d bytes fail their checksum)%s",
            path, pos, (nxt if nxt is not None else size) - pos,
            f"; resuming at offset {nxt}" if nxt is not None else "; nothing readable after it",
        )  # fmt: skip

    def _scan_legacy(self, first: int, path: Path, data: bytes) -> list[Entry]:
        """Entries of a segment in the previous format (no checksum: lengths and the
        contiguous sequence numbers are all there is to check)."""
        log.info("journal %s is in the previous format: replaying it once", path)
        entries = []
        pos, expect = 0, first
        last = path == self._segments[-1][1]
        while pos < len(data):
            found = self._legacy_at(data, pos, expect)
            if found is None:
                nxt = self._legacy_resync(data, pos + 1, expect)
                self._report(path, pos, nxt, len(data), last)
                if nxt is None:
                    break
                pos = nxt
                continue
            seq, kind, end = found
            if kind is None:
                self.damaged += 1
                log.error("journal %s: entry %d at offset %d has an unreadable kind; skipped",
                          path, seq, pos)  # fmt: skip
            else:
                entries.append(Entry(seq, kind, path, pos, legacy=True))
            pos, expect = end, seq + 1
        return entries

    @staticmethod
    def _legacy_at(data: bytes, pos: int, expect: int) -> tuple[int, str | None, int] | None:
        if pos + legacy.HEADER.size > len(data):
            return None
        seq, klen, plen = legacy.HEADER.unpack_from(data, pos)
        start = pos + legacy.HEADER.size
        end = start + klen + plen
        # sequence numbers in a segment are contiguous: a small forward gap at most
        if not (expect <= seq < expect + 1000) or klen > MAX_KIND or end > len(data):
            return None
        try:
            return seq, data[start : start + klen].decode("ascii"), end
        except UnicodeDecodeError:
            return seq, None, end

    @classmethod
    def _legacy_resync(cls, data: bytes, start: int, expect: int) -> int | None:
        for pos in range(start, len(data) - legacy.HEADER.size + 1):
            found = cls._legacy_at(data, pos, expect)
            if found is not None and found[1] is not None:
                return pos
        return None

    def _read_committed(self) -> int:
        try:
            return int((self.dir / "committed").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0
