"""Full-text search of message content beside the DuckDB file: a tantivy index.

``q=`` on the call log used to scan every call's messages (``contains(lower(...))``):
0.6 s at 1M calls, 5-7 s at 10M. This index answers it in milliseconds: one document
per call (its prompts, completions, system instructions and error message, with the
call's time and the values the call log filters on) and one per content event (messages
that arrived as OTLP log events, with the span they belong to). The index itself filters
call documents by time, app, model, provider, status and the other equality filters,
keeps them newest first and counts them; ``gensight.store.search_calls`` combines that
with the calls found through their content events and reads only a page's rows in SQL.

What ``q`` matches: its words (tantivy's default tokenizer: split on non-alphanumerics,
lowercased) as a phrase whose last word is a prefix: ``refund pol`` finds "Refund
policy:" and ``invoice`` finds "invoices"; not a fragment inside a word.

It also keeps where each trace lies in time: a document per trace and written batch
(kind ``t``: the trace id, the earliest start and the latest end of the batch's calls
and spans of it). A trace's spans and calls are then read with their time bounded, so
the store reads the few blocks of that time instead of every trace id it holds (at 10M
calls, ~50 ms a trace).

The writer adds each batch after it is committed to the store (a call rewritten by a
merge replaces its document) and commits the index at most every ``COMMIT_EVERY``
seconds; a search first commits what was added since, so a stored call is always
searchable. ``gensight rebuild search`` (or opening a store whose index is missing or
of an older layout) builds it from the stored calls and events.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from gensight.model.records import CallRecord, ContentEvent, SpanRecord

log = logging.getLogger(__name__)

#: Message keys whose values are labels, not content.
_LABEL_KEYS = frozenset({"role", "type", "finish_reason", "id", "tool_call_id", "mime_type"})
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: The writer's indexing memory: small (lean process), one thread (the other core serves).
_HEAP = 20_000_000
#: A rebuild's: both cores, a larger buffer (fewer, larger segments to merge).
_REBUILD_HEAP, _REBUILD_THREADS = 128_000_000, 2
#: The writer commits the index at most this often (a search commits pending documents).
COMMIT_EVERY = 2.0
#: The call columns the index filters on (``CallFilters``' equality filters), and
#: ``model``: the request model, else the response model (as ``sql.where``).
FILTER_FIELDS = (
    "app", "environment", "provider", "operation", "status", "error_class", "user",
    "session", "source", "deployment", "api_version", "template_id", "trace_id",
)  # fmt: skip
#: The index's layout; an index of another one is built again at open.
_LAYOUT = "gensight-search-3"


def words(q: str) -> list[str]:
    """The words of a query as the index keeps them (lowercased alphanumeric runs)."""
    return [w.lower() for w in _WORD.findall(q) if len(w) <= 40]


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in _LABEL_KEYS:
                _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)


def text_of(*values: Any) -> str:
    """The searchable text of messages (parsed or JSON text) and plain strings."""
    out: list[str] = []
    for value in values:
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                value = orjson.loads(value)
        _strings(value, out)
    return "\n".join(out)


def us(ts: datetime) -> int:
    """Microseconds since the epoch (naive times are UTC, as the store keeps them)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1_000_000)


def _from_us(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def rebuild_calls_sql() -> str:
    """The stored calls a rebuild indexes: (id, ts, model, *FILTER_FIELDS, *texts)."""
    cols = ", ".join(f'"{c}"' for c in FILTER_FIELDS)
    return (
        f"SELECT id, ts, coalesce(request_model, response_model), {cols}, input_messages,"
        " output_messages, system_instructions, error_message FROM calls"
        " WHERE (input_messages IS NOT NULL OR output_messages IS NOT NULL"
        " OR system_instructions IS NOT NULL OR error_message IS NOT NULL)"
    )


#: A rebuild's content events: (trace_id, span_id, ts, seq, kind, message).
REBUILD_EVENTS_SQL = "SELECT trace_id, span_id, ts, seq, kind, message FROM content_events"

#: A rebuild's trace windows: (trace_id, first start µs, last end µs) of its spans and calls.
REBUILD_TRACES_SQL = (
    "SELECT trace_id, min(epoch_us(ts)), max(epoch_us(ts) + CAST(duration_ms * 1000 AS BIGINT))"
    " FROM (SELECT trace_id, ts, duration_ms FROM spans"
    " UNION ALL SELECT trace_id, ts, duration_ms FROM calls) WHERE trace_id <> ''"
    " GROUP BY trace_id"
)


def _end_us(ts: datetime, duration_ms: float | None) -> int:
    return us(ts) + int((duration_ms or 0) * 1000)


def trace_windows(
    *records: Iterable[Any], into: dict[str, tuple[int, int]] | None = None
) -> dict[str, tuple[int, int]]:
    """Per trace id of these calls and spans: (first start, last end) in µs, widening
    the windows of ``into`` when given."""
    out: dict[str, tuple[int, int]] = {} if into is None else into
    for group in records:
        for r in group:
            if not r.trace_id:
                continue
            lo, hi = us(r.ts), _end_us(r.ts, r.duration_ms)
            had = out.get(r.trace_id)
            out[r.trace_id] = (min(lo, had[0]), max(hi, had[1])) if had else (lo, hi)
    return out


def _event_key(trace_id: str, span_id: str, ts: datetime, seq: int, kind: str) -> str:
    return f"e:{trace_id}:{span_id}:{us(ts)}:{seq}:{kind}"


class Backlog:
    """What the writer wrote while a rebuild ran: call ids, content events' spans, trace
    windows and a retention cut, to be indexed (or applied) again after it."""

    def __init__(self) -> None:
        self.calls: set[str] = set()
        self.spans: set[tuple[str, str]] = set()
        self.traces: dict[str, tuple[int, int]] = {}
        self.cutoff: datetime | None = None

    def note(
        self, calls: Sequence[CallRecord], events: Sequence[ContentEvent], spans: Sequence[Any]
    ) -> None:
        self.calls.update(c.id for c in calls)
        self.spans.update((e.trace_id, e.span_id) for e in events)
        trace_windows(calls, spans, into=self.traces)


class SearchIndex:
    """A tantivy index in ``path`` (None: in memory)."""

    def __init__(self, path: str | None) -> None:
        import tantivy

        self._t = tantivy
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("doc", stored=False, tokenizer_name="raw")  # unique per document
        sb.add_text_field("kind", stored=False, tokenizer_name="raw")  # "c" call, "e" event
        sb.add_text_field("call", stored=True, tokenizer_name="raw")  # call id, or ""
        sb.add_text_field("span", stored=True, tokenizer_name="raw")  # span id of an event
        sb.add_integer_field("ts", stored=False, indexed=True, fast=True)
        # a trace document's window (µs): not "ts", which retention's cut reads
        sb.add_integer_field("t0", stored=False, indexed=False, fast=True)
        sb.add_integer_field("t1", stored=False, indexed=True, fast=True)
        # a call's text, and an event's: apart, so a call query needs no "kind" clause
        # (intersecting every hit with it took half of a common word's count)
        sb.add_text_field("text", stored=False, index_option="position")
        sb.add_text_field("etext", stored=False, index_option="position")
        for name in ("model", *FILTER_FIELDS):
            sb.add_text_field(name, stored=False, tokenizer_name="raw", index_option="basic")
        self.schema = sb.build()
        self.path = path
        self.created = True
        if path is None:
            self.index = tantivy.Index(self.schema)
        else:
            p = Path(path)
            marker = p / _LAYOUT
            self.created = not (p.exists() and marker.exists() and tantivy.Index.exists(str(p)))
            index = None
            if not self.created:
                try:
                    index = tantivy.Index(self.schema, path=str(p), reuse=True)
                except ValueError:  # another schema under this layout's name: built again
                    self.created = True
            if index is None:
                shutil.rmtree(p, ignore_errors=True)
                p.mkdir(parents=True)
                index = tantivy.Index(self.schema, path=str(p), reuse=False)
            self.index = index
            if not self.created:
                marker.touch()
        self._marker = None if path is None else Path(path) / _LAYOUT
        self._writer: Any = None
        self._writer_opts = (_HEAP, 1)
        self._lock = threading.Lock()
        #: False while a rebuild of a store with rows runs (the store's queries scan)
        self.ready = True
        #: While a rebuild runs: what the writer wrote meanwhile, added again after it
        self._backlog: Backlog | None = None
        self._abort = threading.Event()
        self._pending = 0  # documents added or deleted since the last commit
        self._committed = time.monotonic()

    def _w(self) -> Any:
        if self._writer is None:
            heap, threads = self._writer_opts
            self._writer = self.index.writer(heap_size=heap, num_threads=threads)
        return self._writer

    def _commit(self) -> None:
        """Commit pending changes and let searches see them (under ``_lock``)."""
        if self._pending:
            self._w().commit()
            self.index.reload()
            self._pending = 0
        self._committed = time.monotonic()

    # -- writing (the store's writer thread) -------------------------------------
    # documents go in as JSON text: half the cost of building tantivy Documents in Python
    @staticmethod
    def _call_doc(cid: str, ts: datetime, text: str, model: Any, values: Iterable[Any]) -> str:
        fields: dict[str, Any] = {"doc": f"c:{cid}", "kind": "c", "call": cid, "span": "",
                                  "ts": us(ts), "text": text}  # fmt: skip
        if model:
            fields["model"] = model
        for name, value in zip(FILTER_FIELDS, values, strict=True):
            if value:
                fields[name] = str(value)
        return orjson.dumps(fields).decode()

    @staticmethod
    def _event_doc(key: str, span_id: str, ts: datetime, text: str) -> str:
        fields = {"doc": key, "kind": "e", "call": "", "span": span_id, "ts": us(ts), "etext": text}
        return orjson.dumps(fields).decode()

    @staticmethod
    def _trace_doc(trace_id: str, t0: int, t1: int) -> str:
        return orjson.dumps({"kind": "t", "trace_id": trace_id, "t0": t0, "t1": t1}).decode()

    def add(
        self,
        calls: Sequence[CallRecord],
        events: Sequence[ContentEvent],
        spans: Sequence[SpanRecord] = (),
    ) -> None:
        """Index a written batch: a call replaces its document; events are kept once; a
        trace document per trace of the batch (a replay adds one more of the same window,
        which changes no answer)."""
        with self._lock:
            if self._noted(calls, events, spans):  # no documents to build meanwhile
                return
        docs: list[tuple[str | None, str | None]] = []
        for c in calls:
            text = text_of(c.input_messages, c.output_messages, c.system_instructions,
                           c.error_message)  # fmt: skip
            model = c.request_model or c.response_model
            values = [getattr(c, name) for name in FILTER_FIELDS]
            # a call without text has no document (a merge never drops a call's text)
            docs.append(
                (f"c:{c.id}", self._call_doc(c.id, c.ts, text, model, values) if text else None)
            )
        for e in events:
            text = text_of(e.message)
            key = _event_key(e.trace_id, e.span_id, e.ts, e.seq, e.kind)
            docs.append((key, self._event_doc(key, e.span_id, e.ts, text) if text else None))
        for trace_id, (t0, t1) in trace_windows(calls, spans).items():
            docs.append((None, self._trace_doc(trace_id, t0, t1)))
        if not docs:
            return
        with self._lock:
            if self._noted(calls, events, spans):  # a rebuild began since
                return
            w = self._w()
            for key, doc in docs:
                if key is not None:
                    w.delete_documents_by_term("doc", key)
                if doc is not None:
                    w.add_json(doc)
            self._pending += len(docs)
            if time.monotonic() - self._committed >= COMMIT_EVERY:
                self._commit()

    def _noted(
        self, calls: Sequence[CallRecord], events: Sequence[ContentEvent], spans: Sequence[Any]
    ) -> bool:
        """While a rebuild runs (its snapshot may not hold them): note these in its
        backlog instead of indexing them. Under ``_lock``."""
        if self._backlog is None:
            return False
        self._backlog.note(calls, events, spans)
        return True

    def forget_before(self, cutoff: datetime) -> None:
        """Drop the documents of calls and events older than ``cutoff`` (retention), and
        of traces that ended before it."""
        t = self._t
        with self._lock:
            if self._backlog is not None:
                self._backlog.cutoff = max(self._backlog.cutoff or cutoff, cutoff)
                return
            for field in ("ts", "t1"):
                query = t.Query.range_query(
                    self.schema, field, t.FieldType.Integer, None, us(cutoff), include_upper=False
                )
                self._w().delete_documents_by_query(query)
            self._pending += 1
            self._commit()

    def rebuild(self, read: Callable[[], tuple[Iterable[Any], ...]]) -> Backlog:
        """Index everything again: ``read()`` opens one snapshot of the store and gives
        its ``rebuild_calls_sql()``, ``REBUILD_EVENTS_SQL`` and ``REBUILD_TRACES_SQL``
        rows. What the writer adds from before that snapshot on is not written but noted:
        the returned ``Backlog``, for ``add_rows`` once read again. The layout's marker is
        written when the build is complete (an interrupted one is built again at the
        next open). ``abort()`` stops it."""
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()
            self._writer = None
            self._writer_opts = (_REBUILD_HEAP, _REBUILD_THREADS)
            self._backlog = Backlog()
            self._pending = 0  # what the dropped writer held is in the snapshot
            w = self._w()
        try:
            calls, events, traces = read()
            w.delete_all_documents()
            self._add_rows(w, calls, events, traces, replace=False)
            self._check(0)  # stopped: not committed, nor marked complete
            w.commit()
            w.wait_merging_threads()
        finally:
            with self._lock:
                self._writer = None  # the rebuild's writer goes before the next is made
                del w
                self._writer_opts = (_HEAP, 1)
                backlog, self._backlog = self._backlog, None
        self.index.reload()
        if self._marker is not None:
            self._marker.touch()
        return backlog

    def add_rows(
        self,
        calls: Iterable[tuple[Any, ...]],
        events: Iterable[tuple[Any, ...]],
        traces: Iterable[tuple[str, int, int]] = (),
    ) -> None:
        """Index rows as a rebuild reads them, replacing the documents of the same calls
        and events (a rebuild's backlog, read again from the store)."""
        with self._lock:
            self._add_rows(self._w(), calls, events, traces, replace=True)
            self._pending += 1
            self._commit()

    def _add_rows(self, w: Any, calls: Iterable[tuple[Any, ...]],
                  events: Iterable[tuple[Any, ...]], traces: Iterable[tuple[str, int, int]],
                  replace: bool) -> None:  # fmt: skip
        n_filters, n = len(FILTER_FIELDS), 0
        for cid, ts, model, *rest in calls:
            if replace:
                w.delete_documents_by_term("doc", f"c:{cid}")
            text = text_of(*rest[n_filters:])
            if text:
                w.add_json(self._call_doc(cid, ts, text, model, rest[:n_filters]))
                n += 1
            self._check(n)
        for trace_id, span_id, ts, seq, kind, message in events:
            key = _event_key(trace_id, span_id, ts, seq, kind)
            if replace:
                w.delete_documents_by_term("doc", key)
            text = text_of(message)
            if text:
                w.add_json(self._event_doc(key, span_id, ts, text))
                n += 1
            self._check(n)
        for trace_id, t0, t1 in traces:
            w.add_json(self._trace_doc(trace_id, int(t0), int(t1)))
            n += 1
            self._check(n)

    def _check(self, n: int) -> None:
        if not n % 10_000 and self._abort.is_set():
            raise RuntimeError("search index build stopped")

    def abort(self) -> None:
        """Stop a rebuild that runs (it raises; the index is built again at next open)."""
        self._abort.set()

    @property
    def stopping(self) -> bool:
        return self._abort.is_set()

    # -- reading ---------------------------------------------------------------
    def searcher(self) -> Any:
        """A searcher that sees every document added so far."""
        if self._pending:
            with self._lock:
                self._commit()
        return self.index.searcher()

    def trace_window(self, trace_id: str) -> tuple[datetime, datetime] | None:
        """From the first start to the last end of a trace's stored spans and calls;
        None when the index holds no document of it."""
        t = self._t
        query = t.Query.boolean_query([
            (t.Occur.Must, t.Query.term_query(self.schema, "trace_id", trace_id)),
            (t.Occur.Must, t.Query.term_query(self.schema, "kind", "t")),
        ])  # fmt: skip
        searcher = self.searcher()
        first = searcher.search(query, 1, count=False, order_by_field="t0", order=t.Order.Asc)
        if not first.hits:
            return None
        last = searcher.search(query, 1, count=False, order_by_field="t1", order=t.Order.Desc)
        lo, hi = int(first.hits[0][0]), int(last.hits[0][0])
        return _from_us(lo), _from_us(hi)

    def close(self) -> None:
        self.abort()
        with self._lock:
            if self._writer is not None:
                self._commit()
                self._writer.wait_merging_threads()
                self._writer = None
