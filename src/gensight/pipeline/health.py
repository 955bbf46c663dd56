"""What keeps the pipeline from doing its job right now, in words an operator acts on.

Two parts can be unwell: ``ingest`` (batches refused: the journal is full or its disk
cannot be written) and ``writer`` (the store refuses writes: unreachable, disk full,
read-only). Each change is logged once (not once per retry) and clears, with a log line,
when the part recovers; ``/api/health`` reports ``degraded`` with the reason while any is
set, and OTLP's 503 answers name it.
"""

from __future__ import annotations

import errno
import logging
import threading

log = logging.getLogger("gensight.pipeline.health")

_NO_SPACE = ("no space left", "disk full", "not enough space", "quota exceeded")
_READ_ONLY = ("read-only file system", "read-only", "readonly", "read only")


#: Exception class names (anywhere in the class's MRO) of store drivers that mean the
#: store is unreachable, not that the data is bad: DuckDB's IOException and
#: ConnectionException, clickhouse-connect's OperationalError (connection, timeout).
#: By name, because this stage does not import the store drivers.
_OUTAGE_NAMES = frozenset({"IOException", "ConnectionException", "OperationalError"})


def is_outage(e: BaseException) -> bool:
    """Whether a store error means "unreachable, retry for as long as it lasts"."""
    if isinstance(e, OSError):  # ConnectionError, TimeoutError, socket and disk errors
        return True
    return any(c.__name__ in _OUTAGE_NAMES for c in type(e).__mro__)


def cause(e: BaseException, outage: bool = False) -> str:
    """The cause of a failure, named: disk full, read-only, permission denied, journal
    full, store unreachable (``outage``), else the error's type."""
    code = getattr(e, "errno", None)
    text = str(e).lower()
    if type(e).__name__ == "JournalFull":
        return "journal full"
    if code in (errno.ENOSPC, errno.EDQUOT) or any(s in text for s in _NO_SPACE):
        return "disk full"
    if code == errno.EROFS or any(s in text for s in _READ_ONLY):
        return "read-only file system"
    if code in (errno.EACCES, errno.EPERM) or "permission denied" in text:
        return "permission denied"
    if outage:
        return "store unreachable"
    return f"store write failing ({type(e).__name__})"


class Conditions:
    """The current problem of each part (``ingest``, ``writer``); thread-safe."""

    def __init__(self) -> None:
        self._now: dict[str, str] = {}
        self._lock = threading.Lock()

    def set(self, part: str, reason: str, detail: str = "") -> None:
        """``part`` is unwell for ``reason`` (logged when the reason changes)."""
        with self._lock:
            if self._now.get(part) == reason:
                return
            self._now[part] = reason
        log.error("%s degraded: %s%s", part, reason, f" ({detail})" if detail else "")

    def clear(self, part: str) -> bool:
        """``part`` works again; True when it had a problem (logged once)."""
        if part not in self._now:  # the common case, without the lock
            return False
        with self._lock:
            reason = self._now.pop(part, None)
        if reason is None:
            return False
        log.warning("%s recovered (was: %s)", part, reason)
        return True

    def reason(self) -> str | None:
        """Every current problem, ``"writer: disk full; ingest: journal full"``, or None."""
        with self._lock:
            return "; ".join(f"{p}: {r}" for p, r in sorted(self._now.items())) or None
