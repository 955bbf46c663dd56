"""Full-text search of message content beside the DuckDB file: a tantivy index.

``q=`` on the call log used to scan every call's messages (``contains(lower(...))``):
0.6 s at 1M calls, 5-7 s at 10M. This index answers it in milliseconds: one document
per call (its prompts, completions, system instructions and error message) and one per
content event (messages that arrived as OTLP log events), each with the time it
happened, so hits come newest first. The store then reads only the hit calls, with the
other filters, in SQL (``DuckDBStore`` combines the two).

What ``q`` matches: its words (tantivy's default tokenizer: split on non-alphanumerics,
lowercased) as a phrase whose last word is a prefix: ``refund pol`` finds "Refund
policy:" and ``invoice`` finds "invoices"; not a fragment inside a word.

The writer keeps it in step after each batch is committed to the store (a call
rewritten by a merge replaces its document); ``gensight rebuild search`` (or opening a
store whose index is missing) builds it from the stored calls and events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import shutil
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from gensight.model.records import CallRecord, ContentEvent
from gensight.store import sql
from gensight.store.base import CallFilters, Cursor

log = logging.getLogger(__name__)

#: Message keys whose values are labels, not content.
_LABEL_KEYS = frozenset({"role", "type", "finish_reason", "id", "tool_call_id", "mime_type"})
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: The writer's indexing memory: small (lean process), one thread (the other core serves).
_HEAP = 20_000_000


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


def _us(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1_000_000)


class SearchIndex:
    """A tantivy index in ``path`` (None: in memory)."""

    def __init__(self, path: str | None) -> None:
        import tantivy

        self._t = tantivy
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("doc", stored=False, tokenizer_name="raw")  # unique per document
        sb.add_text_field("call", stored=True, tokenizer_name="raw")  # call id, or ""
        sb.add_text_field("span", stored=True, tokenizer_name="raw")  # span id of an event
        sb.add_integer_field("ts", stored=False, indexed=True, fast=True)
        sb.add_text_field("text", stored=False, index_option="position")
        self.schema = sb.build()
        self.path = path
        self.created = True
        if path is None:
            self.index = tantivy.Index(self.schema)
        else:
            p = Path(path)
            self.created = not (p.exists() and tantivy.Index.exists(str(p)))
            if self.created:
                shutil.rmtree(p, ignore_errors=True)
                p.mkdir(parents=True)
            self.index = tantivy.Index(self.schema, path=str(p), reuse=not self.created)
        self._writer: Any = None
        self._lock = threading.Lock()

    def _w(self) -> Any:
        if self._writer is None:
            self._writer = self.index.writer(heap_size=_HEAP, num_threads=1)
        return self._writer

    # -- writing (the store's writer thread) -------------------------------------
    def add(self, calls: Sequence[CallRecord], events: Sequence[ContentEvent]) -> None:
        """Index a written batch: a call replaces its document; events are kept once."""
        docs = []
        for c in calls:
            text = text_of(c.input_messages, c.output_messages, c.system_instructions,
                           c.error_message)  # fmt: skip
            docs.append((f"c:{c.id}", c.id, "", c.ts, text))
        for e in events:
            key = f"e:{e.trace_id}:{e.span_id}:{_us(e.ts)}:{e.seq}:{e.kind}"
            docs.append((key, "", e.span_id, e.ts, text_of(e.message)))
        # a call without text has no document (a merge never drops a call's text)
        docs = [d for d in docs if d[4]]
        if docs:
            self._add(docs, replace=True)

    def _add(self, docs: Iterable[tuple[str, str, str, datetime, str]], replace: bool) -> None:
        n = 0
        with self._lock:
            w = self._w()
            for key, call, span, ts, text in docs:
                if replace:
                    w.delete_documents_by_term("doc", key)
                if not text:
                    continue
                w.add_document(
                    self._t.Document(doc=key, call=call, span=span, ts=_us(ts), text=text)
                )
                n += 1
            w.commit()
        self.index.reload()

    def rebuild(self, calls: Iterable[tuple[Any, ...]], events: Iterable[tuple[Any, ...]]) -> None:
        """Index everything again: ``calls`` as (id, ts, input, output, system, error),
        ``events`` as (trace_id, span_id, ts, seq, kind, message) rows."""
        with self._lock:
            self._w().delete_all_documents()
            self._w().commit()

        def docs() -> Iterable[tuple[str, str, str, datetime, str]]:
            for cid, ts, *texts in calls:
                yield f"c:{cid}", cid, "", ts, text_of(*texts)
            for trace_id, span_id, ts, seq, kind, message in events:
                yield (
                    f"e:{trace_id}:{span_id}:{_us(ts)}:{seq}:{kind}",
                    "",
                    span_id,
                    ts,
                    text_of(message),
                )

        self._add(docs(), replace=False)

    # -- reading ---------------------------------------------------------------
    def search(
        self,
        q: str,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        offset: int = 0,
    ) -> tuple[list[tuple[int, str, str]], int] | None:
        """Hits newest first as (ts µs, call id or "", span id or ""), and how many match;
        None when ``q`` has no words (the store then searches as before)."""
        ws = words(q)
        if not ws:
            return None
        t, schema = self._t, self.schema
        parts = [(t.Occur.Must, t.Query.phrase_prefix_query(schema, "text", ws))]
        if since is not None or until is not None:
            lo = _us(since) if since is not None else None
            hi = _us(until) if until is not None else None
            parts.append(
                (
                    t.Occur.Must,
                    t.Query.range_query(
                        schema, "ts", t.FieldType.Integer, lo, hi, include_upper=hi is None
                    ),
                )
            )
        query = t.Query.boolean_query(parts)
        searcher = self.index.searcher()
        result = searcher.search(query, limit, count=True, order_by_field="ts", offset=offset)
        hits = []
        for ts, addr in result.hits:
            d = searcher.doc(addr)
            hits.append((int(ts), d["call"][0], d["span"][0]))
        return hits, int(result.count or 0)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()
                self._writer = None


#: How far a content event's time may lie from its call's (the index ranges by the
#: event's, the store filters by the call's).
_EVENT_SLACK = timedelta(hours=1)


#: ``q=``'s total counts the hit calls in SQL up to this many hits (else it scans).
MAX_COUNTED_HITS = 20_000


def _hit_calls(
    filters: CallFilters, hits: list[tuple[int, str, str]]
) -> tuple[list[str], list[str], CallFilters]:
    """The hits' call ids and span ids, and ``filters`` narrowed to the hits' times (so
    the store reads only the blocks holding them, not every call). Only a call's own
    document carries the call's time: a content event's time is the producer's (a log
    record may be stamped long before or after its span), so a page with event hits is
    not narrowed."""
    ids = sorted({h[1] for h in hits if h[1]})
    spans = sorted({h[2] for h in hits if h[2]})
    if spans:
        return ids, spans, filters
    lo = datetime.fromtimestamp(min(h[0] for h in hits) / 1e6, UTC)
    hi = datetime.fromtimestamp(max(h[0] for h in hits) / 1e6, UTC)
    hi += timedelta(microseconds=1)
    since = max(filters.since, lo) if filters.since else lo
    until = min(filters.until, hi) if filters.until else hi
    return ids, spans, dataclasses.replace(filters, since=since, until=until)


def count(store: Any, index: SearchIndex, filters: CallFilters) -> int | None:
    """How many calls match ``filters`` with ``q`` from the index's hits (the other
    filters in SQL on the hit calls); None when ``q`` has no words or has more than
    ``MAX_COUNTED_HITS`` hits (the store then counts by scanning)."""
    assert filters.q
    since = filters.since - _EVENT_SLACK if filters.since else None
    until = filters.until + _EVENT_SLACK if filters.until else None
    answer = index.search(filters.q, since, until, 1)
    if answer is None or answer[1] > MAX_COUNTED_HITS:
        return None
    if answer[1] == 0:
        return 0
    hits, _ = index.search(filters.q, since, until, answer[1]) or ([], 0)
    # by id, without the hits' time range (faster here: the primary key's index)
    rest = dataclasses.replace(filters, q=None)
    ids, spans, _ = _hit_calls(rest, hits)
    (row,) = store._rows(sql.count_calls(store.dialect, rest, only=(ids, spans)))
    return int(row["n"])


def list_rows(
    store: Any,
    index: SearchIndex,
    filters: CallFilters,
    limit: int,
    cursor: Cursor | None,
    full: bool,
) -> list[dict[str, Any]] | None:
    """The call log's rows for ``filters.q`` from the index's hits, newest first, with
    the other filters applied in SQL to the hit calls only; None when ``q`` has no
    words. Hits are read in growing chunks until a page is full or none are left."""
    assert filters.q
    since = filters.since - _EVENT_SLACK if filters.since else None
    until = filters.until + _EVENT_SLACK if filters.until else None
    if cursor is not None:
        top = cursor.ts + timedelta(microseconds=1) + _EVENT_SLACK
        until = min(until, top) if until else top
    rest = dataclasses.replace(filters, q=None)
    # a page's worth of hits first (each hit is one id looked up), more when filtered out
    chunk, offset = 2 * (limit + 1), 0
    found: dict[str, dict[str, Any]] = {}
    while True:
        answer = index.search(filters.q, since, until, chunk, offset)
        if answer is None:
            return None
        hits, total = answer
        if not hits:
            break
        ids, spans, near = _hit_calls(rest, hits)
        q = sql.list_calls(store.dialect, near, limit, cursor, full, only=(ids, spans))
        for row in store._rows(q):
            found.setdefault(row["id"], row)
        offset += len(hits)
        # a full page from hits newer than every hit still unread (events aside) is final
        if len(found) > limit or offset >= total:
            break
        chunk *= 2
    rows = sorted(found.values(), key=lambda r: (r["ts"], r["id"]), reverse=True)
    return rows[: limit + 1]
