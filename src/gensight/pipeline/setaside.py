"""Where records the store will not take go: files a human can read and re-import.

A record is set aside when writing it keeps failing for a reason other than an outage
(it can never be stored as it is), or when a journal entry cannot be decoded. It is
never dropped silently: each goes as one JSON line to ``DIR/<table>-<UTC date>.jsonl``
(calls, spans, events: the record's fields by name, as ``/api/import`` reads them, plus
``_set_aside`` with the reason and time), and an undecodable journal payload goes as
it was to ``DIR/entry-<seq>-<kind>.bin``. A log line names the file.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gensight.pipeline.codec import dumps, record_dict
from gensight.pipeline.files import open_private, private_dir, write_private

log = logging.getLogger("gensight.pipeline.setaside")


class SetAside:
    """Appends set-aside records and payloads under one directory; thread-safe."""

    def __init__(self, directory: Path | None) -> None:
        self.dir = Path(directory) if directory is not None else None
        self._lock = threading.Lock()
        self.records = 0  # records set aside since start
        self.payloads = 0  # journal entries set aside whole

    def add_records(self, table: str, records: list[Any], reason: str) -> Path | None:
        """Set aside records of ``table`` ("calls", "spans", "events") with the reason."""
        if not records:
            return None
        at = datetime.now(UTC)
        lines = []
        for r in records:
            d = r if isinstance(r, dict) else record_dict(r)
            d["_set_aside"] = {"reason": reason, "at": at.isoformat()}
            lines.append(dumps(d) + b"\n")
        with self._lock:
            self.records += len(records)
            if self.dir is None:
                # no directory to keep them in (no journal configured): the log keeps them
                for line in lines:
                    log.error("set aside %s record: %s", table, line.decode().rstrip())
                return None
            private_dir(self.dir)
            path = self.dir / f"{table}-{at:%Y%m%d}.jsonl"
            with os.fdopen(open_private(path), "ab") as f:
                f.writelines(lines)
        log.error("%d %s record(s) set aside in %s: %s", len(records), table, path, reason)
        return path

    def payload(self, seq: int, kind: str, payload: bytes, reason: str) -> Path | None:
        """Set aside a whole journal payload that could not be turned into records."""
        with self._lock:
            self.payloads += 1
            if self.dir is None:
                log.error("journal entry %d (%s) could not be replayed and is lost: %s",
                          seq, kind, reason)  # fmt: skip
                return None
            private_dir(self.dir)
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", kind)[:64]
            path = self.dir / f"entry-{seq}-{safe}.bin"
            write_private(path, payload)
        log.error("journal entry %d (%s) could not be replayed (%s); its payload is kept in %s",
                  seq, kind, reason, path)  # fmt: skip
        return path
