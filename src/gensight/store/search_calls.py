"""The call log's ``q=`` from the search index (``gensight.store.search``), exact.

A call matches ``q`` through its own document or through a content event of its span.
Call documents carry the call's time and filter values, so the index itself answers
the common case: the newest ``limit + 1`` matching calls (ties by id, as SQL orders
them) and their exact number (its count collector); SQL then reads only that page's
rows by id. Calls matched only through content events (OTLP log events: their time is
the producer's, so they are found without any time narrowing) are resolved by span id
in SQL with the filters and merged in; a call matched both ways is counted once.

A ``score`` filter lives in another table: then the index's filtered hits are joined in
SQL (up to ``MAX_JOINED_HITS``). Beyond ``MAX_EVENT_HITS`` content-event hits or
``MAX_JOINED_HITS`` joined hits the store scans the messages instead (None here).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from gensight.store import sql
from gensight.store.base import CallFilters, Cursor
from gensight.store.search import FILTER_FIELDS, SearchIndex, us, words

#: Content events matching ``q`` resolved by span id; more: the store scans.
MAX_EVENT_HITS = 20_000
#: Hits joined in SQL for filters the index does not hold (``score``); more: it scans.
MAX_JOINED_HITS = 20_000
#: The newest hits are looked for in this span first (µs), then in 16x longer ones.
_FIRST_SPAN = 3600 * 1_000_000


def _call_query(index: SearchIndex, ws: list[str], f: CallFilters, *extra: Any) -> Any:
    t, schema = index._t, index.schema
    parts = [(t.Occur.Must, t.Query.phrase_prefix_query(schema, "text", ws))]  # calls' only
    if f.since is not None or f.until is not None:
        lo = us(f.since) if f.since is not None else None
        hi = us(f.until) if f.until is not None else None
        rq = t.Query.range_query(
            schema, "ts", t.FieldType.Integer, lo, hi, include_upper=hi is None
        )
        parts.append((t.Occur.Must, rq))
    for name in (*FILTER_FIELDS, "model"):
        value = getattr(f, name)
        if value:
            parts.append((t.Occur.Must, t.Query.term_query(schema, name, str(value))))
    parts += [(t.Occur.Must, q) for q in extra]
    return t.Query.boolean_query(parts)


def _ts_range(index: SearchIndex, lo: int | None, hi: int | None) -> Any:
    t = index._t
    return t.Query.range_query(index.schema, "ts", t.FieldType.Integer, lo, hi,
                               include_lower=True, include_upper=True)  # fmt: skip


def _both(index: SearchIndex, a: Any, b: Any) -> Any:
    must = index._t.Occur.Must
    return index._t.Query.boolean_query([(must, a), (must, b)])


def _count(searcher: Any, query: Any) -> int:
    return int(searcher.search(query, 1, count=True).count or 0)


def _keys(searcher: Any, query: Any, n: int) -> list[tuple[int, str]]:
    """The ``n`` newest call documents of ``query`` as (ts µs, call id)."""
    result = searcher.search(query, n, count=False, order_by_field="ts")
    return [(int(ts), searcher.doc(addr)["call"][0]) for ts, addr in result.hits]


def _newest(
    index: SearchIndex, searcher: Any, query: Any, n: int, upper: int | None, lower: int | None
) -> list[tuple[int, str]]:
    """``_keys`` of ``query`` (whose hits lie in [``lower``, ``upper``] µs, either end
    open), looked for in the newest hour first, then in 16x longer spans: when a span
    holds ``n`` hits they are the newest of all, found without ordering every hit (a
    common word's millions took ~150 ms at 10M calls, its newest hour's ~1 ms)."""
    anchor = upper if upper is not None else us(datetime.now(UTC))
    span, floor = _FIRST_SPAN, lower if lower is not None else 0
    while anchor - span > floor:
        recent = _both(index, query, _ts_range(index, anchor - span, None))
        keys = _keys(searcher, recent, n)
        if len(keys) == n:
            return keys
        span *= 16
    return _keys(searcher, query, n)


def _top(
    index: SearchIndex, searcher: Any, query: Any, n: int, cursor: Cursor | None,
    lower: int | None = None, upper: int | None = None,
) -> list[tuple[int, str]]:  # fmt: skip
    """The ``n`` newest (ts µs, call id) of ``query`` (within [``lower``, ``upper``] µs)
    after ``cursor``, ties by id descending (the index orders by time only, so a tie at
    an edge is read whole)."""
    after: tuple[int, str] | None = None
    k = n
    if cursor is not None:
        after = (us(cursor.ts), cursor.id)
        k += _count(searcher, _both(index, query, _ts_range(index, after[0], after[0])))
        query = _both(index, query, _ts_range(index, None, after[0]))
        upper = after[0] if upper is None else min(upper, after[0])
    raw = _newest(index, searcher, query, k, upper, lower)
    found = set(raw)
    if len(raw) == k and raw:  # more may share the oldest time read: read them all
        edge = raw[-1][0]
        tied = _both(index, query, _ts_range(index, edge, edge))
        found.update(_keys(searcher, tied, _count(searcher, tied)))
    keys = sorted((h for h in found if after is None or h < after), reverse=True)
    return keys[:n]


def _event_spans(index: SearchIndex, searcher: Any, ws: list[str]) -> list[str] | None:
    """The span ids of content events matching ``ws`` (any time); None: too many."""
    query = index._t.Query.phrase_prefix_query(index.schema, "etext", ws)  # events' only
    n = _count(searcher, query)
    if n > MAX_EVENT_HITS:
        return None
    if n == 0:
        return []
    hits = searcher.search(query, n).hits
    return sorted({searcher.doc(addr)["span"][0] for _, addr in hits})


def _event_calls(
    store: Any, index: SearchIndex, searcher: Any, ws: list[str], f: CallFilters,
    spans: list[str],
) -> dict[str, int]:  # fmt: skip
    """Calls matching ``f`` through content events of ``spans`` only (not through their
    own text, which the index counts already): call id -> ts µs."""
    if not spans:
        return {}
    rows = store._rows(sql.call_keys(store.dialect, dataclasses.replace(f, q=None), spans))
    if not rows:
        return {}
    t = index._t
    own = t.Query.term_set_query(index.schema, "doc", [f"c:{r['id']}" for r in rows])
    counted = {cid for _, cid in _keys(searcher, _call_query(index, ws, f, own), len(rows))}
    return {r["id"]: us(r["ts"]) for r in rows if r["id"] not in counted}


def _joined_ids(
    index: SearchIndex, searcher: Any, ws: list[str], f: CallFilters
) -> list[str] | None:
    """Every call id the index finds for ``f`` (without ``score``); None: too many."""
    query = _call_query(index, ws, f)
    n = _count(searcher, query)
    if n > MAX_JOINED_HITS:
        return None
    return [cid for _, cid in _keys(searcher, query, n)] if n else []


def _open(index: SearchIndex, filters: CallFilters) -> tuple[Any, list[str], Any] | None:
    """A searcher, the words of ``filters.q`` and the spans its content events hit; None
    when ``q`` has no words or the event hits are too many to resolve."""
    assert filters.q
    ws = words(filters.q)
    if not ws:
        return None
    searcher = index.searcher()
    spans = _event_spans(index, searcher, ws)
    if spans is None:
        return None
    return searcher, ws, spans


def count(store: Any, index: SearchIndex, filters: CallFilters) -> int | None:
    """How many calls match ``filters`` with ``q``; None when ``q`` has no words or
    there are too many hits to resolve (the store then counts by scanning)."""
    opened = _open(index, filters)
    if opened is None:
        return None
    searcher, ws, spans = opened
    if filters.score:
        ids = _joined_ids(index, searcher, ws, filters)
        if ids is None:
            return None
        if not ids and not spans:
            return 0
        rest = dataclasses.replace(filters, q=None)
        (row,) = store._rows(sql.count_calls(store.dialect, rest, only=(ids, spans)))
        return int(row["n"])
    n = _count(searcher, _call_query(index, ws, filters))
    return n + len(_event_calls(store, index, searcher, ws, filters, spans))


def list_rows(
    store: Any,
    index: SearchIndex,
    filters: CallFilters,
    limit: int,
    cursor: Cursor | None,
    full: bool,
) -> list[dict[str, Any]] | None:
    """Up to ``limit + 1`` call rows for ``filters.q``, newest first (ties by id); None
    when ``q`` has no words or too many hits to resolve (the store then scans)."""
    opened = _open(index, filters)
    if opened is None:
        return None
    searcher, ws, spans = opened
    if filters.score:
        ids = _joined_ids(index, searcher, ws, filters)
        if ids is None:
            return None
        if not ids and not spans:
            return []
        rest = dataclasses.replace(filters, q=None)
        return store._rows(
            sql.list_calls(store.dialect, rest, limit, cursor, full, only=(ids, spans))
        )
    keys = _top(
        index, searcher, _call_query(index, ws, filters), limit + 1, cursor,
        us(filters.since) if filters.since is not None else None,
        us(filters.until) if filters.until is not None else None,
    )  # fmt: skip
    extra = _event_calls(store, index, searcher, ws, filters, spans)
    if extra:
        after = (us(cursor.ts), cursor.id) if cursor is not None else None
        more = [(ts, cid) for cid, ts in extra.items() if after is None or (ts, cid) < after]
        keys = sorted({*keys, *more}, reverse=True)[: limit + 1]
    if not keys:
        return []
    rows = store._rows(sql.calls_by_id(store.dialect, [cid for _, cid in keys], full))
    return sorted(rows, key=lambda r: (us(r["ts"]), r["id"]), reverse=True)
