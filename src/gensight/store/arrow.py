"""Records as Arrow tables: the batch format every store inserts (columnar, no SQL text)."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import pyarrow as pa

from gensight.model.records import CALL_FIELD_NAMES, CallRecord, ContentEvent, SpanRecord
from gensight.store import sql
from gensight.store.common import json_text

_CALL_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "trace_id": pa.string(),
    "span_id": pa.string(),
    "ts": pa.timestamp("us"),
    "duration_ms": pa.float64(),
    "source": pa.string(),
    "producer": pa.string(),
    "parent_span_id": pa.string(),
    "ttft_ms": pa.float64(),
    "app": pa.string(),
    "environment": pa.string(),
    "provider": pa.string(),
    "operation": pa.string(),
    "request_model": pa.string(),
    "response_model": pa.string(),
    "response_id": pa.string(),
    "stream": pa.bool_(),
    "input_tokens": pa.int64(),
    "output_tokens": pa.int64(),
    "cache_read_tokens": pa.int64(),
    "cache_write_tokens": pa.int64(),
    "reasoning_tokens": pa.int64(),
    "tokens_estimated": pa.bool_(),
    "cost_usd": pa.float64(),
    "cost_source": pa.string(),
    "reported_cost_usd": pa.float64(),
    "status": pa.string(),
    "error_class": pa.string(),
    "http_status": pa.int32(),
    "error_message": pa.string(),
    "finish_reasons": pa.list_(pa.string()),
    "temperature": pa.float64(),
    "top_p": pa.float64(),
    "max_tokens": pa.int64(),
    "frequency_penalty": pa.float64(),
    "presence_penalty": pa.float64(),
    "seed": pa.int64(),
    "user": pa.string(),
    "session": pa.string(),
    "tags": pa.list_(pa.string()),
    "server_address": pa.string(),
    "attempts": pa.int32(),
    "input_messages": pa.string(),
    "output_messages": pa.string(),
    "system_instructions": pa.string(),
    "attributes": pa.string(),
}
assert tuple(_CALL_TYPES) == CALL_FIELD_NAMES, "calls schema out of step with CallRecord"

_SPAN_TYPES: dict[str, pa.DataType] = {
    "trace_id": pa.string(),
    "span_id": pa.string(),
    "parent_span_id": pa.string(),
    "name": pa.string(),
    "kind": pa.string(),
    "ts": pa.timestamp("us"),
    "duration_ms": pa.float64(),
    "status": pa.string(),
    "status_message": pa.string(),
    "app": pa.string(),
    "call_id": pa.string(),
    "attributes": pa.string(),
    "events": pa.string(),
}

_EVENT_TYPES: dict[str, pa.DataType] = {
    "trace_id": pa.string(),
    "span_id": pa.string(),
    "ts": pa.timestamp("us"),
    "seq": pa.int32(),
    "kind": pa.string(),
    "message": pa.string(),
}

assert list(_SPAN_TYPES) == sql.SPAN_COLUMNS, "spans schema out of step with the queries"


CALL_SCHEMA = pa.schema(list(_CALL_TYPES.items()))
SPAN_SCHEMA = pa.schema(list(_SPAN_TYPES.items()))
EVENT_SCHEMA = pa.schema(list(_EVENT_TYPES.items()))
assert tuple(CALL_SCHEMA.names) == CALL_FIELD_NAMES, "calls schema out of step with CallRecord"
assert SPAN_SCHEMA.names == sql.SPAN_COLUMNS, "spans schema out of step with the queries"


_TS_AWARE = pa.timestamp("us", tz="UTC")
_TS = pa.timestamp("us")


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


def calls_table(calls: Sequence[CallRecord]) -> pa.Table:
    """Calls as an Arrow table with the stores' column types."""
    return _columns([_CALL_GET(c) for c in calls], CALL_SCHEMA, _CALL_JSON)


def spans_table(spans: Sequence[SpanRecord]) -> pa.Table:
    """Spans as an Arrow table."""
    return _columns([_SPAN_GET(s) for s in spans], SPAN_SCHEMA, _SPAN_JSON)


def events_table(events: Sequence[ContentEvent]) -> pa.Table:
    """Content events as an Arrow table."""
    return _columns([_EVENT_GET(e) for e in events], EVENT_SCHEMA, _EVENT_JSON)
