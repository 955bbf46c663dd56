"""Records as Arrow tables: the batch format every store inserts (columnar, no SQL text).

The schemas come from the one table definition, ``gensight.store.schema``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from operator import attrgetter
from typing import Any

import pyarrow as pa

from gensight.model.records import CALL_FIELD_NAMES, CallRecord, ContentEvent, Score, SpanRecord
from gensight.store import schema, sql
from gensight.store.common import json_text

CALL_SCHEMA = schema.arrow_schema(schema.CALLS)
SPAN_SCHEMA = schema.arrow_schema(schema.SPANS)
EVENT_SCHEMA = schema.arrow_schema(schema.CONTENT_EVENTS)
SCORE_SCHEMA = schema.arrow_schema(schema.SCORES)


_TS_AWARE = pa.timestamp("us", tz="UTC")
_TS = pa.timestamp("us")


_SET_UP = False


class _NoPandasHere(MetaPathFinder):
    """Answers ``import pandas`` with ImportError, in one thread only."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if threading.get_ident() == self.thread and name.partition(".")[0] == "pandas":
            raise ImportError("pandas is not used by this store")


def setup_without_pandas() -> None:
    """Run pyarrow's one-time setup without importing pandas (~60 MB never used).

    pyarrow's first ``pa.array`` asks whether pandas is installed, to recognise a
    ``Series``, and imports it if so; pandas is there whenever chDB is (its dependency),
    though the DuckDB store never hands pyarrow a pandas object. Answered "no" once (in
    this thread; other threads import as usual), pyarrow keeps that answer for its
    array-like check only: its pandas functions (``to_pandas``…) still import pandas
    when called. A no-op once pandas is imported.
    """
    global _SET_UP
    if _SET_UP or "pandas" in sys.modules:
        return
    finder = _NoPandasHere()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
        _SET_UP = True
    finally:
        sys.meta_path.remove(finder)


def _dumps(value: Any) -> str | None:
    return None if value is None else json_text(value)


def _columns(rows: list[tuple[Any, ...]], schema: pa.Schema, json_cols: frozenset[str]) -> pa.Table:
    """Transposed record tuples as an Arrow table of ``schema`` (one C-level pass per column)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if field.name in json_cols:
            values = [_dumps(v) for v in values]
        if field.type == _TS:
            # aware datetimes convert to UTC exactly; the stores keep naive UTC
            arrays.append(pa.array(values, type=_TS_AWARE).cast(_TS))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


_CALL_GET = attrgetter(*CALL_FIELD_NAMES)
_CALL_JSON = frozenset(sql.JSON_CALL_FIELDS)
_SPAN_GET = attrgetter(*sql.SPAN_COLUMNS)
_SPAN_JSON = frozenset({"attributes", "events"})
_EVENT_GET = attrgetter(*EVENT_SCHEMA.names)
_EVENT_JSON = frozenset({"message"})
_SCORE_GET = attrgetter(*SCORE_SCHEMA.names)


def calls_table(calls: Sequence[CallRecord]) -> pa.Table:
    """Calls as an Arrow table with the stores' column types."""
    return _columns([_CALL_GET(c) for c in calls], CALL_SCHEMA, _CALL_JSON)


def spans_table(spans: Sequence[SpanRecord]) -> pa.Table:
    """Spans as an Arrow table."""
    return _columns([_SPAN_GET(s) for s in spans], SPAN_SCHEMA, _SPAN_JSON)


def events_table(events: Sequence[ContentEvent]) -> pa.Table:
    """Content events as an Arrow table."""
    return _columns([_EVENT_GET(e) for e in events], EVENT_SCHEMA, _EVENT_JSON)


def scores_table(scores: Sequence[Score]) -> pa.Table:
    """Scores as an Arrow table."""
    return _columns([_SCORE_GET(s) for s in scores], SCORE_SCHEMA, frozenset())
