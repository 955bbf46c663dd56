"""The embedded store: one DuckDB file, written in Arrow batches by the pipeline's writer.

Columns are the ``CallRecord``/``SpanRecord`` field names. Lists are ``VARCHAR[]``;
messages and attributes are JSON text. Times are UTC ``TIMESTAMP``s. The schema is
versioned (``schema_migrations``); migrations run at open. Message content that arrived
as OTLP log events sits in ``content_events`` and is joined to its call when read, so it
may arrive before or after its span.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from gensight.records import CALL_FIELD_NAMES, CallRecord, ContentEvent, SpanRecord
from gensight.store import sql
from gensight.store.common import SQLStore, json_text
from gensight.store.sql import utc_naive

_CALL_TYPES: dict[str, tuple[str, pa.DataType]] = {
    "id": ("VARCHAR", pa.string()),
    "trace_id": ("VARCHAR", pa.string()),
    "span_id": ("VARCHAR", pa.string()),
    "ts": ("TIMESTAMP", pa.timestamp("us")),
    "duration_ms": ("DOUBLE", pa.float64()),
    "source": ("VARCHAR", pa.string()),
    "producer": ("VARCHAR", pa.string()),
    "parent_span_id": ("VARCHAR", pa.string()),
    "ttft_ms": ("DOUBLE", pa.float64()),
    "app": ("VARCHAR", pa.string()),
    "environment": ("VARCHAR", pa.string()),
    "provider": ("VARCHAR", pa.string()),
    "operation": ("VARCHAR", pa.string()),
    "request_model": ("VARCHAR", pa.string()),
    "response_model": ("VARCHAR", pa.string()),
    "response_id": ("VARCHAR", pa.string()),
    "stream": ("BOOLEAN", pa.bool_()),
    "input_tokens": ("BIGINT", pa.int64()),
    "output_tokens": ("BIGINT", pa.int64()),
    "cache_read_tokens": ("BIGINT", pa.int64()),
    "cache_write_tokens": ("BIGINT", pa.int64()),
    "reasoning_tokens": ("BIGINT", pa.int64()),
    "tokens_estimated": ("BOOLEAN", pa.bool_()),
    "cost_usd": ("DOUBLE", pa.float64()),
    "cost_source": ("VARCHAR", pa.string()),
    "reported_cost_usd": ("DOUBLE", pa.float64()),
    "status": ("VARCHAR", pa.string()),
    "error_class": ("VARCHAR", pa.string()),
    "http_status": ("INTEGER", pa.int32()),
    "error_message": ("VARCHAR", pa.string()),
    "finish_reasons": ("VARCHAR[]", pa.list_(pa.string())),
    "temperature": ("DOUBLE", pa.float64()),
    "top_p": ("DOUBLE", pa.float64()),
    "max_tokens": ("BIGINT", pa.int64()),
    "frequency_penalty": ("DOUBLE", pa.float64()),
    "presence_penalty": ("DOUBLE", pa.float64()),
    "seed": ("BIGINT", pa.int64()),
    "user": ("VARCHAR", pa.string()),
    "session": ("VARCHAR", pa.string()),
    "tags": ("VARCHAR[]", pa.list_(pa.string())),
    "server_address": ("VARCHAR", pa.string()),
    "attempts": ("INTEGER", pa.int32()),
    "input_messages": ("VARCHAR", pa.string()),
    "output_messages": ("VARCHAR", pa.string()),
    "system_instructions": ("VARCHAR", pa.string()),
    "attributes": ("VARCHAR", pa.string()),
}
assert tuple(_CALL_TYPES) == CALL_FIELD_NAMES, "calls schema out of step with CallRecord"

_SPAN_TYPES: dict[str, tuple[str, pa.DataType]] = {
    "trace_id": ("VARCHAR", pa.string()),
    "span_id": ("VARCHAR", pa.string()),
    "parent_span_id": ("VARCHAR", pa.string()),
    "name": ("VARCHAR", pa.string()),
    "kind": ("VARCHAR", pa.string()),
    "ts": ("TIMESTAMP", pa.timestamp("us")),
    "duration_ms": ("DOUBLE", pa.float64()),
    "status": ("VARCHAR", pa.string()),
    "status_message": ("VARCHAR", pa.string()),
    "app": ("VARCHAR", pa.string()),
    "call_id": ("VARCHAR", pa.string()),
    "attributes": ("VARCHAR", pa.string()),
    "events": ("VARCHAR", pa.string()),
}

_EVENT_TYPES: dict[str, tuple[str, pa.DataType]] = {
    "trace_id": ("VARCHAR", pa.string()),
    "span_id": ("VARCHAR", pa.string()),
    "ts": ("TIMESTAMP", pa.timestamp("us")),
    "seq": ("INTEGER", pa.int32()),
    "kind": ("VARCHAR", pa.string()),
    "message": ("VARCHAR", pa.string()),
}

assert list(_SPAN_TYPES) == sql.SPAN_COLUMNS, "spans schema out of step with the queries"


def _ddl(table: str, types: dict[str, tuple[str, pa.DataType]]) -> str:
    cols = ", ".join(f'"{name}" {sql}' for name, (sql, _) in types.items())
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


#: Versioned migrations, applied in order at open; never edit a released one.
MIGRATIONS: list[list[str]] = [
    [
        _ddl("calls", _CALL_TYPES),
        _ddl("spans", _SPAN_TYPES),
        _ddl("content_events", _EVENT_TYPES),
    ],
]


def _schema(types: dict[str, tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema([(name, t) for name, (_, t) in types.items()])


_CALL_SCHEMA = _schema(_CALL_TYPES)
_SPAN_SCHEMA = _schema(_SPAN_TYPES)
_EVENT_SCHEMA = _schema(_EVENT_TYPES)


class DuckDBStore(SQLStore):
    """A DuckDB file; one connection, a cursor per reading thread."""

    name = "duckdb"
    dialect = sql.DuckDBDialect()

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(self.path)
        self._write_lock = threading.Lock()
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> DuckDBStore:
        """``duckdb:///abs/path.db`` or ``duckdb://rel/path.db`` or ``duckdb://:memory:``."""
        path = url.removeprefix("duckdb://")
        if path.startswith("//"):  # duckdb:////abs/path written with one slash too many
            path = path[1:]
        return cls(path or ":memory:")

    def _migrate(self) -> None:
        con = self._con
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER, applied_at TIMESTAMP)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = row[0] if row else 0
        for version, statements in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            con.execute("BEGIN")
            for statement in statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)",
                [version, datetime.now(UTC).replace(tzinfo=None)],
            )
            con.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The highest applied migration."""
        row = self._cursor().execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    # -- writing ------------------------------------------------------------
    def write(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord],
        events: Sequence[ContentEvent],
    ) -> None:
        """Insert one batch in one transaction, via Arrow tables."""
        tables: list[tuple[str, pa.Table]] = []
        if calls:
            tables.append(("calls", self._calls_table(calls)))
        if spans:
            tables.append(("spans", self._spans_table(spans)))
        if events:
            tables.append(("content_events", self._events_table(events)))
        if not tables:
            return
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for name, table in tables:
                    con.register("_gensight_batch", table)
                    try:
                        con.execute(f"INSERT INTO {name} SELECT * FROM _gensight_batch")
                    finally:
                        con.unregister("_gensight_batch")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    @staticmethod
    def _calls_table(calls: Sequence[CallRecord]) -> pa.Table:
        cols: dict[str, list[Any]] = {}
        for name in CALL_FIELD_NAMES:
            if name == "ts":
                cols[name] = [utc_naive(c.ts) for c in calls]
            elif name in sql.JSON_CALL_FIELDS:
                cols[name] = [json_text(getattr(c, name)) for c in calls]
            else:
                cols[name] = [getattr(c, name) for c in calls]
        return pa.table(cols, schema=_CALL_SCHEMA)

    @staticmethod
    def _spans_table(spans: Sequence[SpanRecord]) -> pa.Table:
        cols: dict[str, list[Any]] = {}
        for name in _SPAN_TYPES:
            if name == "ts":
                cols[name] = [utc_naive(s.ts) for s in spans]
            elif name in ("attributes", "events"):
                cols[name] = [json_text(getattr(s, name)) for s in spans]
            else:
                cols[name] = [getattr(s, name) for s in spans]
        return pa.table(cols, schema=_SPAN_SCHEMA)

    @staticmethod
    def _events_table(events: Sequence[ContentEvent]) -> pa.Table:
        return pa.table(
            {
                "trace_id": [e.trace_id for e in events],
                "span_id": [e.span_id for e in events],
                "ts": [utc_naive(e.ts) for e in events],
                "seq": [e.seq for e in events],
                "kind": [e.kind for e in events],
                "message": [json_text(e.message) for e in events],
            },
            schema=_EVENT_SCHEMA,
        )

    # -- reading ------------------------------------------------------------
    def _rows(self, q: sql.Query) -> list[dict[str, Any]]:
        cur = self._cursor()
        try:
            res = cur.execute(q.sql, q.params)
            names = [d[0] for d in res.description]
            return [dict(zip(names, r, strict=True)) for r in res.fetchall()]
        finally:
            cur.close()

    def health(self) -> dict[str, Any]:
        """Reachability and row counts."""
        cur = self._cursor()
        try:
            calls = cur.execute("SELECT count(*) FROM calls").fetchone()
            spans = cur.execute("SELECT count(*) FROM spans").fetchone()
        finally:
            cur.close()
        return {
            "backend": self.name,
            "path": self.path,
            "ok": True,
            "calls": calls[0] if calls else 0,
            "spans": spans[0] if spans else 0,
            "schema_version": self.schema_version,
        }

    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._write_lock:
            try:
                self._con.execute("CHECKPOINT")
            finally:
                self._con.close()
