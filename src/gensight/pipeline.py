"""Enrich and write: the one path from receivers to the store.

Receivers call ``Pipeline.submit`` on the request path; it only appends to a bounded
in-memory queue (never blocks, never raises). A writer thread drains the queue every
``flush_interval`` seconds (or sooner when a batch is large), prices the calls and writes
calls, spans and content events to the store in one batch. A failed write is retried with
backoff and its records kept; ``stop()`` drains everything before returning, so SIGTERM
loses nothing that was accepted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from gensight.records import CallRecord, ContentEvent, SpanRecord

log = logging.getLogger("gensight.pipeline")

#: Records written per store batch at most; larger batches are split.
MAX_BATCH = 20_000


class Writable(Protocol):
    """The store seam the writer needs."""

    def write(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord],
        events: Sequence[ContentEvent],
    ) -> None: ...


class Enricher(Protocol):
    """Something that fills in a call's derived fields (price, estimated tokens)."""

    def price(self, call: CallRecord) -> None: ...


class Observer(Protocol):
    """Told of every batch once it is stored (metrics, OTLP forwarding); must not block."""

    def __call__(self, calls: Sequence[CallRecord], spans: Sequence[SpanRecord]) -> None: ...


class Pipeline:
    """Bounded queue + background writer thread."""

    def __init__(
        self,
        store: Writable,
        pricer: Enricher | None = None,
        *,
        queue_size: int = 50_000,
        flush_interval: float = 0.2,
        maintenance_interval: float = 3600.0,
    ) -> None:
        self.store = store
        self.pricer = pricer
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self._queue: deque[tuple[list[CallRecord], list[SpanRecord], list[ContentEvent]]] = deque()
        self._queued = 0  # records in the queue
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._inflight = 0
        self.accepted = 0
        self.written = 0
        self.dropped = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.last_write_at: float | None = None
        self.maintenance_interval = maintenance_interval
        self._observers: list[Observer] = []
        self._next_maintenance = time.monotonic() + 5.0
        self.expired = 0

    # -- request path -------------------------------------------------------
    def submit(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord] = (),
        events: Sequence[ContentEvent] = (),
    ) -> bool:
        """Queue records for writing; False (and counted as dropped) when the queue is full."""
        n = len(calls) + len(spans) + len(events)
        if n == 0:
            return True
        with self._cond:
            if self._queued + n > self.queue_size or self._stopping:
                self.dropped += n
                return False
            self._queue.append((list(calls), list(spans), list(events)))
            self._queued += n
            self.accepted += n
            if self._queued >= MAX_BATCH // 2:
                self._cond.notify()
        return True

    # -- writer -------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="gensight-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the writer."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify()
        while time.monotonic() < deadline:
            with self._cond:
                if self._queued == 0 and self._inflight == 0:
                    return True
            time.sleep(0.005)
        return False

    def _take(self) -> tuple[list[CallRecord], list[SpanRecord], list[ContentEvent]]:
        calls: list[CallRecord] = []
        spans: list[SpanRecord] = []
        events: list[ContentEvent] = []
        n = 0
        while self._queue and n < MAX_BATCH:
            c, s, e = self._queue.popleft()
            calls += c
            spans += s
            events += e
            n += len(c) + len(s) + len(e)
        self._queued -= n
        self._inflight = n
        return calls, spans, events

    def _run(self) -> None:
        backoff = 0.1
        while True:
            if time.monotonic() >= self._next_maintenance:
                self._maintain()
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(self.flush_interval)
                if not self._queue:
                    if self._stopping:
                        return
                    continue
                batch = self._take()
            while True:
                try:
                    self._write(*batch)
                    backoff = 0.1
                    break
                except Exception as e:  # keep the batch; the store may come back
                    self.write_errors += 1
                    self.last_error = f"{type(e).__name__}: {e}"
                    log.warning("store write failed (%s); retrying in %.1fs", e, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    if self._stopping and backoff >= 5.0:
                        log.error("store unavailable at shutdown; %d records lost", self._inflight)
                        self.dropped += self._inflight
                        break
            with self._cond:
                self._inflight = 0

    def _maintain(self) -> None:
        """Retention, on the writer thread (the only one that changes the store)."""
        self._next_maintenance = time.monotonic() + self.maintenance_interval
        apply = getattr(self.store, "apply_retention", None)
        if apply is None:
            return
        try:
            self.expired += apply()
        except Exception as e:  # retention failing must not stop ingest
            log.warning("retention failed: %s", e)

    def _write(
        self, calls: list[CallRecord], spans: list[SpanRecord], events: list[ContentEvent]
    ) -> None:
        if self.pricer is not None:
            for call in calls:
                if call.cost_source == "unknown" and call.cost_usd is None:
                    try:
                        self.pricer.price(call)
                    except Exception as e:  # pricing must never cost the record
                        log.debug("pricing failed for %s: %s", call.request_model, e)
        self.store.write(calls, spans, events)
        self.written += len(calls) + len(spans) + len(events)
        self.last_write_at = time.time()
        for observe in self._observers:
            try:
                observe(calls, spans)
            except Exception as e:  # an observer's failure is its own, never the write's
                log.warning("observer %r failed: %s", observe, e)

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(calls, spans)`` after each stored batch, on the writer thread."""
        self._observers.append(observer)

    def stats(self) -> dict[str, Any]:
        """Queue and writer counters for /api/health and /metrics."""
        return {
            "depth": self._queued,
            "capacity": self.queue_size,
            "accepted": self.accepted,
            "written": self.written,
            "dropped": self.dropped,
            "write_errors": self.write_errors,
            "last_error": self.last_error,
            "expired": self.expired,
        }
