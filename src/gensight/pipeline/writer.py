"""Enrich and write: the one path from receivers to the store.

Receivers call ``Pipeline.submit`` on the request path; it appends the batch to the
write-ahead journal (``gensight.pipeline.journal``, when one is configured) and to an in-memory
queue, and never blocks on the store. A writer thread drains the queue every
``flush_interval`` seconds (or sooner when a batch is large), prices the calls, masks
secrets (and, with ``--redact pii``, personal data: ``gensight.enrich.redaction``) and writes
calls, spans and content events to the store in one batch, then marks them committed in
the journal.

A failed write is one of two things. An outage (the store unreachable: connection and
I/O errors, or whatever the store's ``is_outage`` says) is retried with backoff for as
long as it lasts, the journal holding what waits. Anything else (a record the store
cannot take, a bug raising ``AttributeError``…) is a poison batch: after
``poison_tries`` attempts it is split in halves, the halves that write are written and
the records that still fail alone are set aside (``gensight.pipeline.setaside``: files
under ``DATA_DIR/set-aside``, a log line, the ``set_aside`` counter), so one bad record
never stops the writes behind it.

When the store is down the queue keeps only the newest ``queue_size`` records in memory;
older batches stay in the journal alone (the spill) and are read back in order when the
store returns. Only a full journal (``--spill-max``) refuses new batches. ``stop()``
drains everything it can; whatever the store could not take stays in the journal and is
replayed at the next start, as is everything acknowledged before a crash.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gensight.enrich.redaction import Redactor
from gensight.enrich.templates import Templater
from gensight.model.records import CallRecord, ContentEvent, Score, SpanRecord
from gensight.pipeline import legacy
from gensight.pipeline.codec import RECORDS, DecodeResult, decode_batch, encode_batch
from gensight.pipeline.health import Conditions, cause, is_outage
from gensight.pipeline.journal import Entry, Journal, JournalDamaged, JournalFull
from gensight.pipeline.merge import CallMerger
from gensight.pipeline.prepare import prepare
from gensight.pipeline.setaside import SetAside
from gensight.pipeline.worker import Worker

Batch = tuple[list[CallRecord], list[SpanRecord], list[ContentEvent], list[Score]]
#: A decoder returns a batch; one without scores (three lists) is read as having none.
Decoder = Callable[[bytes], Any]

log = logging.getLogger("gensight.pipeline.writer")

#: Records written per store batch at most; larger batches are split.
MAX_BATCH = 20_000

#: Attempts a batch gets when it fails for a reason other than an outage, before it is
#: split to find and set aside the records that cannot be written.
POISON_TRIES = 5

#: Test hook (bench/soak.py): while the file this variable names exists, every store
#: write fails as if the store were down. Unset in production.
_FAULT_FILE = os.environ.get("GENSIGHT_FAULT_STORE_DOWN_FILE")


class Writable(Protocol):
    """The store seam the writer needs."""

    def write(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord],
        events: Sequence[ContentEvent],
        scores: Sequence[Score] = (),
    ) -> None: ...


class Enricher(Protocol):
    """Something that fills in a call's derived fields (price, estimated tokens)."""

    def price(self, call: CallRecord) -> None: ...


class Observer(Protocol):
    """Told of every batch once it is stored (metrics, OTLP forwarding); must not block."""

    def __call__(self, calls: Sequence[CallRecord], spans: Sequence[SpanRecord]) -> None: ...


#: Errors that mean "this data cannot be converted" (Arrow's ArrowInvalid/ArrowTypeError
#: subclass these): deterministic, so the batch is split at once, without more tries.
_DATA_ERRORS = (TypeError, ValueError, OverflowError)


def _size(batch: Batch) -> int:
    return sum(len(t) for t in batch)


def _batch(result: Any) -> Batch:
    """A decoder's or a caller's tables as a four-table batch (scores may be absent)."""
    calls, spans, events, *rest = result
    return (list(calls), list(spans), list(events), list(rest[0]) if rest else [])


def _halves(calls: list, spans: list, events: list, scores: list) -> list[Batch]:
    """A batch split in two, each table by half (for isolating a bad record)."""

    def cut(xs: list) -> tuple[list, list]:
        return xs[: len(xs) // 2], xs[len(xs) // 2 :]

    (c1, c2), (s1, s2), (e1, e2), (r1, r2) = cut(calls), cut(spans), cut(events), cut(scores)
    if len(calls) <= 1 and len(spans) <= 1 and len(events) <= 1 and len(scores) <= 1:
        # one record per table: try them one by one
        return [
            ([*calls], [], [], []),
            ([], [*spans], [], []),
            ([], [], [*events], []),
            ([], [], [], [*scores]),
        ]
    return [(c1, s1, e1, r1), (c2, s2, e2, r2)]


class Pipeline(Worker):
    """Bounded queue + background writer thread."""

    thread_name = "gensight-writer"

    def __init__(
        self,
        store: Writable,
        pricer: Enricher | None = None,
        *,
        queue_size: int = 50_000,
        flush_interval: float = 0.5,
        maintenance_interval: float = 3600.0,
        journal: Journal | None = None,
        redactor: Redactor | None = None,
        set_aside: SetAside | None = None,
        poison_tries: int = POISON_TRIES,
        templater: Templater | None = None,
    ) -> None:
        self.store = store
        self.pricer = pricer
        # secrets are masked whatever the caller asked: there is no way around this step
        self.redactor = redactor if redactor is not None else Redactor()
        self.templater = templater
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.journal = journal
        self._decoders: dict[str, Callable[[bytes], Any]] = {RECORDS: decode_batch}
        if set_aside is None:
            set_aside = SetAside(journal.dir / "set-aside" if journal is not None else None)
        self.set_aside = set_aside
        self.poison_tries = max(1, poison_tries)
        # items: (journal entry or None, the batch or None when it lives only on disk)
        self._queue: deque[tuple[Entry | None, Batch | None]] = deque()
        self._queued = 0  # records held in memory
        self._on_disk = 0  # batches held only in the journal
        self.replayed = 0
        self.damaged = 0  # journal entries that no longer read back (checksum) at replay
        super().__init__()
        self._inflight = 0
        self.accepted = 0
        self.written = 0
        self.conditions = Conditions()  # what is unwell now, for /api/health
        self._written_now = 0  # of the batch being written: counted once it is committed
        self.dropped = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.last_write_at: float | None = None
        self.maintenance_interval = maintenance_interval
        self._observers: list[Observer] = []
        self._score_observers: list[Callable[[Sequence[Score]], None]] = []
        self._next_maintenance = time.monotonic() + 5.0
        self.expired = 0
        # one record per call, however often it arrives; self-hosted by the pricer's rule
        self._merger = CallMerger(getattr(pricer, "self_hosted", None))

    # -- request path -------------------------------------------------------
    def submit(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord] = (),
        events: Sequence[ContentEvent] = (),
        raw: tuple[str, bytes] | None = None,
        scores: Sequence[Score] = (),
    ) -> bool:
        """Accept records for writing; False (counted as dropped) when they cannot be kept.

        ``raw`` is the receiver's own encoding of the same batch (e.g. ``("otlp-traces",
        protobuf)``) for the journal, decoded again by ``register_decoder``'s function on
        replay; without it the records are journaled in the JSON record format.
        """
        n = len(calls) + len(spans) + len(events) + len(scores)
        if n == 0:
            return True
        batch: Batch = (list(calls), list(spans), list(events), list(scores))
        if self.journal is not None:  # encoded before the lock is taken
            kind, payload = raw or (RECORDS, encode_batch(*batch))
        with self._cond:
            # The journal entry and the batch's place in the queue are taken together: the
            # queue is then in journal order, so the writer's commit mark (everything up to
            # the last seq it wrote) never passes a batch that has its seq but is not yet
            # queued by another receiver's thread; a crash then would lose that batch.
            entry = None
            if self.journal is not None:
                try:
                    entry = self.journal.append(kind, payload)
                except (JournalFull, OSError) as e:
                    self.dropped += n
                    self.last_error = f"journal: {e}"
                    self.conditions.set("ingest", cause(e), str(e))
                    return False
                if self.conditions.clear("ingest") and self.conditions.reason() is None:
                    self.last_error = None  # recovered: what failed before is no longer news
            if self._stopping and entry is None:
                self.dropped += n
                return False
            if self._queued + n > self.queue_size:
                if entry is None:
                    self.dropped += n
                    return False
                # memory is full (the store is slow or down): keep this one on disk only
                self._queue.append((entry, None))
                self._on_disk += 1
            else:
                self._queue.append((entry, batch))
                self._queued += n
            self.accepted += n
            if self._queued >= MAX_BATCH // 2:
                self._cond.notify()
        return True

    def register_decoder(self, kind: str, decode: Decoder) -> None:
        """How to turn a journaled payload of ``kind`` back into records (for replay)."""
        self._decoders[kind] = decode

    # -- writer -------------------------------------------------------------
    def start(self) -> None:
        """Queue what the journal holds from before (a crash, an outage at shutdown), then
        start the writer thread (idempotent)."""
        if self._thread is None and self.journal is not None and not self._queue:
            pending = self.journal.pending()
            with self._cond:
                for entry in pending:
                    self._queue.append((entry, None))
                self._on_disk += len(pending)
            if pending:
                log.info("replaying %d journaled batches", len(pending))
        super().start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the writer."""
        super().stop(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify()
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue and self._inflight == 0:
                    return True
            time.sleep(0.005)
        return False

    def _take(self) -> tuple[Batch, int | None]:
        """Up to MAX_BATCH records from the queue (journal-only entries only while fewer
        than ``queue_size`` are taken), and the last journal seq among them."""
        calls: list[CallRecord] = []
        spans: list[SpanRecord] = []
        events: list[ContentEvent] = []
        scores: list[Score] = []
        n = 0
        last_seq = None
        while self._queue and n < MAX_BATCH:
            entry, batch = self._queue[0]
            if batch is None and n >= self.queue_size:
                # what waits on disk stays there: reading it all back into one batch
                # while the store is down would hold the whole spill in memory
                break
            if batch is None:
                assert entry is not None
                batch = self._from_journal(entry)
                self._on_disk -= 1
                self.replayed += 1
                counted = 0
            else:
                counted = _size(batch)
            self._queue.popleft()
            c, s, e, r = batch
            calls += c
            spans += s
            events += e
            scores += r
            n += len(c) + len(s) + len(e) + len(r)
            self._queued -= counted
            if entry is not None:
                last_seq = entry.seq
        self._inflight = n
        return (calls, spans, events, scores), last_seq

    def _from_journal(self, entry: Entry) -> Batch:
        """A journaled batch's records; what cannot be decoded is set aside, never raised
        (one bad entry must not stop the ones after it)."""
        assert self.journal is not None
        try:
            payload = self.journal.read(entry)
        except (JournalDamaged, OSError) as e:  # damaged since open, or the file gone
            self.damaged += 1
            log.error("journal entry %d (%s) skipped: %s", entry.seq, entry.kind, e)
            return [], [], [], []
        if entry.legacy and entry.kind == legacy.PICKLED:
            decode: Callable[[bytes], Any] | None = _decode_legacy
        else:
            decode = self._decoders.get(entry.kind)
        if decode is None:
            self.set_aside.payload(entry.seq, entry.kind, payload, "no decoder for this kind")
            return [], [], [], []
        try:
            result = decode(payload)
        except Exception as e:  # any decoder failure: keep the payload for a human
            self.set_aside.payload(entry.seq, entry.kind, payload, f"{type(e).__name__}: {e}")
            return [], [], [], []
        if isinstance(result, DecodeResult):
            for table, record, why in result.unreadable:
                self.set_aside.add_records(table, [record], f"unreadable from the journal: {why}")
            return _batch(result.batch)
        return _batch(result)

    def _run(self) -> None:
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
                batch, last_seq = self._take()
            ok = self._write_batch(batch)
            if ok and last_seq is not None and self.journal is not None:
                # commit (and delete the segments it empties: they hold payloads before
                # redaction) before the records count as written, so a reader that sees
                # them written sees the journal without them
                self.journal.commit(last_seq)
            self.written += self._written_now
            self._written_now = 0
            if not ok:
                return  # store down at shutdown: the journal keeps the rest
            with self._cond:
                self._inflight = 0

    def _write_batch(self, batch: Batch) -> bool:
        """Write a batch until every record is stored or set aside; False when the store
        stayed down through shutdown (the batch stays in the journal, uncommitted).

        ``parts`` is what is left to write, last first: the batch itself, then, once it
        has failed ``poison_tries`` times for a reason other than an outage, its halves,
        recursively, down to single records, which are set aside. An outage pauses this
        where it is (already written parts are not written again) and retries with
        backoff for as long as it lasts."""
        parts: list[tuple[Batch, bool]] = [(batch, True)]  # (part, is the whole batch)
        tries = 0
        backoff = 0.1
        while parts:
            part, whole = parts[-1]
            try:
                self._write(*part)
            except Exception as e:  # every class: an unforeseen one must not stop writes
                self.write_errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if is_outage(e) or self._store_says_outage(e):
                    self.conditions.set("writer", cause(e, outage=True), str(e))
                    log.info("store unavailable (%s); retrying in %.1fs", e, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    if self._stopping and backoff >= 5.0:
                        return self._give_up_at_shutdown(parts)
                    continue
                tries += 1
                limit = self.poison_tries if whole and not isinstance(e, _DATA_ERRORS) else 1
                if tries < limit:
                    log.warning(
                        "store write failed (%s: %s), try %d of %d",
                        type(e).__name__,
                        e,
                        tries,
                        limit,
                    )
                    time.sleep(min(0.1 * 2 ** (tries - 1), 2.0))
                    continue
                parts.pop()
                tries = 0
                if _size(part) <= 1:
                    self._set_aside_part(part, f"{type(e).__name__}: {e}")
                else:
                    parts += [(h, False) for h in reversed(_halves(*part))]
                continue
            parts.pop()
            tries = 0
            backoff = 0.1
            if self.conditions.clear("writer") and self.conditions.reason() is None:
                self.last_error = None
        return True

    def _store_says_outage(self, e: Exception) -> bool:
        judge = getattr(self.store, "is_outage", None)
        if judge is None:
            return False
        try:
            return bool(judge(e))
        except Exception:  # the store's own judgement failing: treat as not an outage
            return False

    def _give_up_at_shutdown(self, parts: list[tuple[Batch, bool]]) -> bool:
        left = sum(_size(p) for p, _ in parts)
        if self.journal is not None:
            log.error(
                "store unavailable at shutdown: %d batches stay in the journal for the next start",
                len(self._queue) + 1,
            )
            with self._cond:
                self._inflight = 0
            return False
        log.error("store unavailable at shutdown; %d records lost", left)
        self.dropped += left
        return True

    def _set_aside_part(self, part: Batch, reason: str) -> None:
        """Keep a record the store will not take where a human can find it."""
        self.last_error = f"record set aside: {reason}"
        for table, records in zip(("calls", "spans", "events", "scores"), part, strict=True):
            try:
                self.set_aside.add_records(table, list(records), reason)
            except Exception as e:  # even the set-aside file failing must not stop writes
                log.error("could not set aside %d %s record(s) (%s): %r", len(records), table, e,
                          records)  # fmt: skip

    def _maintain(self) -> None:
        """Retention and rollup upkeep, on the writer thread (the only one that changes
        the store)."""
        self._next_maintenance = time.monotonic() + self.maintenance_interval
        compact = getattr(self.store, "compact_rollups", None)
        if compact is not None:
            try:
                compact()
            except Exception as e:  # upkeep failing must not stop ingest
                log.warning("rollup compaction failed: %s", e)
        apply = getattr(self.store, "apply_retention", None)
        if apply is None:
            return
        try:
            self.expired += apply()
        except Exception as e:  # retention failing must not stop ingest
            log.warning("retention failed: %s", e)

    def _write(
        self,
        calls: list[CallRecord],
        spans: list[SpanRecord],
        events: list[ContentEvent],
        scores: list[Score],
    ) -> None:
        if _FAULT_FILE and os.path.exists(_FAULT_FILE):
            raise ConnectionError(f"store unavailable (test fault: {_FAULT_FILE} exists)")
        n = len(calls) + len(spans) + len(events) + len(scores)
        # the same call reported twice, resent or replayed becomes one record: only new
        # or changed calls are written, only calls not counted before reach observers
        lookup = getattr(self.store, "stored_calls", None)
        calls, spans, counted = self._merger.resolve(calls, spans, lookup)
        prepare(calls, spans, events, self.pricer, self.redactor, self.templater)
        if scores:
            self.store.write(calls, spans, events, scores)
        else:  # a store written before scores existed (tests' doubles) takes three
            self.store.write(calls, spans, events)
        self._written_now += n
        self.last_write_at = time.time()
        self._merger.told(counted)
        for observe in self._observers:
            try:
                observe(counted, spans)
            except Exception as e:  # an observer's failure is its own, never the write's
                log.warning("observer %r failed: %s", observe, e)
        for observe_scores in self._score_observers if scores else ():
            try:
                observe_scores(scores)
            except Exception as e:
                log.warning("score observer %r failed: %s", observe_scores, e)

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(calls, spans)`` after each stored batch, on the writer thread."""
        self._observers.append(observer)

    def add_score_observer(self, observer: Callable[[Sequence[Score]], None]) -> None:
        """Call ``observer(scores)`` with the scores of each stored batch (writer thread)."""
        self._score_observers.append(observer)

    def stats(self) -> dict[str, Any]:
        """Queue and writer counters for /api/health and /metrics."""
        return {
            "depth": self._queued,
            "capacity": self.queue_size,
            "spilled_batches": self._on_disk,
            "spill_bytes": self.journal.bytes if self.journal is not None else 0,
            "replayed_batches": self.replayed,
            "set_aside": self.set_aside.records,
            "set_aside_entries": self.set_aside.payloads,
            "journal_damaged": self.damaged
            + (self.journal.damaged if self.journal is not None else 0),
            "accepted": self.accepted,
            "written": self.written,
            "dropped": self.dropped,
            "write_errors": self.write_errors,
            "last_error": self.last_error,
            "expired": self.expired,
        }


def _decode_legacy(payload: bytes) -> DecodeResult:
    """A pickled batch from the previous release's journal (one-time upgrade path)."""
    return legacy.decode_pickled(payload, (CallRecord, SpanRecord, ContentEvent))
