"""Records as Arrow tables: the batch format every store inserts (columnar, no SQL text)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from gensight.records import CALL_FIELD_NAMES, CallRecord, ContentEvent, SpanRecord
from gensight.store import sql
from gensight.store.common import json_text
from gensight.store.sql import utc_naive

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


def calls_table(calls: Sequence[CallRecord]) -> pa.Table:
    cols: dict[str, list[Any]] = {}
    for name in CALL_FIELD_NAMES:
        if name == "ts":
            cols[name] = [utc_naive(c.ts) for c in calls]
        elif name in sql.JSON_CALL_FIELDS:
            cols[name] = [json_text(getattr(c, name)) for c in calls]
        else:
            cols[name] = [getattr(c, name) for c in calls]
    return pa.table(cols, schema=CALL_SCHEMA)


def spans_table(spans: Sequence[SpanRecord]) -> pa.Table:
    cols: dict[str, list[Any]] = {}
    for name in SPAN_SCHEMA.names:
        if name == "ts":
            cols[name] = [utc_naive(s.ts) for s in spans]
        elif name in ("attributes", "events"):
            cols[name] = [json_text(getattr(s, name)) for s in spans]
        else:
            cols[name] = [getattr(s, name) for s in spans]
    return pa.table(cols, schema=SPAN_SCHEMA)


def events_table(events: Sequence[ContentEvent]) -> pa.Table:
    return pa.table(
        {
            "trace_id": [e.trace_id for e in events],
            "span_id": [e.span_id for e in events],
            "ts": [utc_naive(e.ts) for e in events],
            "seq": [e.seq for e in events],
            "kind": [e.kind for e in events],
            "message": [json_text(e.message) for e in events],
        },
        schema=EVENT_SCHEMA,
    )
