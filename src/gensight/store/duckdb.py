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
import orjson
import pyarrow as pa

from gensight.records import CALL_FIELD_NAMES, CallRecord, ContentEvent, SpanRecord
from gensight.store import analysis
from gensight.store.base import CallFilters, Cursor

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

_JSON_CALL_FIELDS = ("input_messages", "output_messages", "system_instructions", "attributes")
_MESSAGE_FIELDS = ("input_messages", "output_messages", "system_instructions")
_SPAN_COLS_SQL = ", ".join(f'"{n}"' for n in _SPAN_TYPES)
_LIST_COLUMNS = [c for c in CALL_FIELD_NAMES if c not in _MESSAGE_FIELDS and c != "attributes"]


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


def _utc_naive(ts: datetime) -> datetime:
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.isoformat()


class DuckDBStore:
    """A DuckDB file; one connection, a cursor per reading thread."""

    name = "duckdb"

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
            for sql in statements:
                con.execute(sql)
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
                cols[name] = [_utc_naive(c.ts) for c in calls]
            elif name in _JSON_CALL_FIELDS:
                cols[name] = [_json(getattr(c, name)) for c in calls]
            else:
                cols[name] = [getattr(c, name) for c in calls]
        return pa.table(cols, schema=_CALL_SCHEMA)

    @staticmethod
    def _spans_table(spans: Sequence[SpanRecord]) -> pa.Table:
        cols: dict[str, list[Any]] = {}
        for name in _SPAN_TYPES:
            if name == "ts":
                cols[name] = [_utc_naive(s.ts) for s in spans]
            elif name in ("attributes", "events"):
                cols[name] = [_json(getattr(s, name)) for s in spans]
            else:
                cols[name] = [getattr(s, name) for s in spans]
        return pa.table(cols, schema=_SPAN_SCHEMA)

    @staticmethod
    def _events_table(events: Sequence[ContentEvent]) -> pa.Table:
        return pa.table(
            {
                "trace_id": [e.trace_id for e in events],
                "span_id": [e.span_id for e in events],
                "ts": [_utc_naive(e.ts) for e in events],
                "seq": [e.seq for e in events],
                "kind": [e.kind for e in events],
                "message": [_json(e.message) for e in events],
            },
            schema=_EVENT_SCHEMA,
        )

    # -- reading ------------------------------------------------------------
    @staticmethod
    def where(filters: CallFilters, alias: str = "c") -> tuple[str, list[Any]]:
        """SQL predicate and parameters for call filters (parameterized, never interpolated)."""
        clauses: list[str] = []
        params: list[Any] = []
        a = alias
        if filters.since:
            clauses.append(f"{a}.ts >= ?")
            params.append(_utc_naive(filters.since))
        if filters.until:
            clauses.append(f"{a}.ts < ?")
            params.append(_utc_naive(filters.until))
        for name in (
            "app",
            "provider",
            "status",
            "error_class",
            "user",
            "session",
            "environment",
            "operation",
            "source",
            "trace_id",
        ):
            value = getattr(filters, name)
            if value:
                clauses.append(f'{a}."{name}" = ?')
                params.append(value)
        if filters.model:
            clauses.append(f"({a}.request_model = ? OR {a}.response_model = ?)")
            params += [filters.model, filters.model]
        if filters.q:
            needle = filters.q.lower()
            clauses.append(
                f"(contains(lower(coalesce({a}.input_messages, '') || ' ' ||"
                f" coalesce({a}.output_messages, '') || ' ' ||"
                f" coalesce({a}.system_instructions, '')), ?)"
                f" OR EXISTS (SELECT 1 FROM content_events e WHERE e.trace_id = {a}.trace_id"
                f" AND e.span_id = {a}.span_id AND contains(lower(e.message), ?)))"
            )
            params += [needle, needle]
        return (" AND ".join(clauses) if clauses else "TRUE"), params

    def list_calls(
        self, filters: CallFilters, limit: int, cursor: Cursor | None
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of calls, newest first (messages and attributes left out)."""
        where, params = self.where(filters)
        if cursor is not None:
            where += " AND (c.ts < ? OR (c.ts = ? AND c.id < ?))"
            ts = _utc_naive(cursor.ts)
            params += [ts, ts, cursor.id]
        cols = ", ".join(f'c."{n}"' for n in _LIST_COLUMNS)
        sql = f"SELECT {cols} FROM calls c WHERE {where} ORDER BY c.ts DESC, c.id DESC LIMIT ?"
        cur = self._cursor()
        try:
            rows = cur.execute(sql, [*params, limit + 1]).fetchall()
        finally:
            cur.close()
        items = [self._call_row(dict(zip(_LIST_COLUMNS, r, strict=True))) for r in rows[:limit]]
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1]
            nxt = Cursor(last[_LIST_COLUMNS.index("ts")].replace(tzinfo=UTC), last[0])
        return items, nxt

    @staticmethod
    def _call_row(row: dict[str, Any]) -> dict[str, Any]:
        row["ts"] = _iso(row["ts"])
        for name in _JSON_CALL_FIELDS:
            if name in row and row[name] is not None:
                row[name] = orjson.loads(row[name])
        if row.get("finish_reasons") is None:
            row["finish_reasons"] = []
        if row.get("tags") is None:
            row["tags"] = []
        return row

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its messages, merging content that arrived as log events."""
        cols = ", ".join(f'"{n}"' for n in CALL_FIELD_NAMES)
        cur = self._cursor()
        try:
            row = cur.execute(
                f"SELECT {cols} FROM calls WHERE id = ? ORDER BY ts DESC LIMIT 1", [call_id]
            ).fetchone()
            if row is None:
                return None
            call = self._call_row(dict(zip(CALL_FIELD_NAMES, row, strict=True)))
            events = cur.execute(
                "SELECT kind, message FROM content_events WHERE trace_id = ? AND span_id = ?"
                " ORDER BY ts, seq",
                [call["trace_id"], call["span_id"]],
            ).fetchall()
        finally:
            cur.close()
        if events:
            merge_content_events(call, [(k, orjson.loads(m)) for k, m in events])
        return call

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """Spans (oldest first) and calls of a trace."""
        span_cols = list(_SPAN_TYPES)
        cur = self._cursor()
        try:
            srows = cur.execute(
                f"SELECT {_SPAN_COLS_SQL} FROM spans WHERE trace_id = ? ORDER BY ts, span_id",
                [trace_id],
            ).fetchall()
        finally:
            cur.close()
        calls, _ = self.list_calls(CallFilters(trace_id=trace_id), 10_000, None)
        if not srows and not calls:
            return None
        spans = []
        for r in srows:
            s = dict(zip(span_cols, r, strict=True))
            s["ts"] = _iso(s["ts"])
            s["attributes"] = orjson.loads(s["attributes"]) if s["attributes"] else {}
            s["events"] = orjson.loads(s["events"]) if s["events"] else []
            spans.append(s)
        calls.sort(key=lambda c: c["ts"])
        return {"trace_id": trace_id, "spans": spans, "calls": calls}

    # -- analysis -----------------------------------------------------------
    _MEASURES = """
        count(*) AS calls,
        count(*) FILTER (WHERE status = 'error') AS errors,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        sum(cost_usd) AS cost_usd,
        count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls,
        quantile_cont(duration_ms, 0.5) AS lat_p50,
        quantile_cont(duration_ms, 0.95) AS lat_p95,
        quantile_cont(duration_ms, 0.99) AS lat_p99,
        quantile_cont(ttft_ms, 0.5) AS ttft_p50,
        quantile_cont(ttft_ms, 0.95) AS ttft_p95
    """

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self._cursor()
        try:
            res = cur.execute(sql, params)
            names = [d[0] for d in res.description]
            return [dict(zip(names, r, strict=True)) for r in res.fetchall()]
        finally:
            cur.close()

    def overview(self, filters: CallFilters, interval: int, group_by: str | None) -> dict[str, Any]:
        """Totals and a time series (``filters.since``/``until`` must be set)."""
        assert filters.since is not None and filters.until is not None
        where, params = self.where(filters)
        (totals,) = self._rows(f"SELECT {self._MEASURES} FROM calls c WHERE {where}", params)
        grp = analysis.GROUP_BY[group_by] if group_by else "NULL"
        micros = interval * 1_000_000
        rows = self._rows(
            f"SELECT make_timestamp(epoch_us(ts) // {micros} * {micros}) AS bucket,"
            f" {grp} AS grp, {self._MEASURES} FROM calls c WHERE {where}"
            " GROUP BY ALL ORDER BY bucket",
            params,
        )
        return {
            "totals": analysis.totals_row(totals),
            "interval": interval,
            "since": _iso(filters.since),
            "until": _iso(filters.until),
            "group_by": group_by,
            "series": analysis.fill_series(
                rows, filters.since, filters.until, interval, group_by is not None
            ),
        }

    def latency_vs_tokens(self, filters: CallFilters, max_points: int) -> dict[str, Any]:
        """Successful calls' output tokens vs latency, and per model a least-squares fit."""
        where, params = self.where(filters)
        where += " AND c.status = 'ok' AND c.output_tokens > 0"
        model = analysis.GROUP_BY["model"]
        points = self._rows(
            f"SELECT id, {model} AS model, output_tokens, duration_ms, ttft_ms, stream"
            f" FROM calls c WHERE {where} ORDER BY ts DESC LIMIT ?",
            [*params, max_points],
        )
        fits = self._rows(
            f"SELECT {model} AS model, count(*) AS calls,"
            " regr_slope(duration_ms, output_tokens) AS slope_ms_per_token,"
            " regr_intercept(duration_ms, output_tokens) AS intercept_ms,"
            " regr_r2(duration_ms, output_tokens) AS r2"
            f" FROM calls c WHERE {where} GROUP BY ALL HAVING count(*) >= 2 ORDER BY calls DESC",
            params,
        )
        for f in fits:
            slope = f["slope_ms_per_token"]
            f["seconds_per_100_tokens"] = slope / 10.0 if slope is not None else None
        return {"points": points, "models": fits}

    def correlations(self, filters: CallFilters, target: str) -> dict[str, Any]:
        """Attribute values over-represented among slow (above p95) or failed calls."""
        where, params = self.where(filters)
        (base,) = self._rows(
            "SELECT count(*) AS total, quantile_cont(duration_ms, 0.95) AS p95,"
            " count(*) FILTER (WHERE status = 'error') AS errors"
            f" FROM calls c WHERE {where}",
            params,
        )
        if target == "slow":
            threshold = base["p95"]
            predicate = "duration_ms > ?"
            tparams: list[Any] = [threshold]
        else:
            threshold = None
            predicate = "status = 'error'"
            tparams = []
        dims = {
            k: v
            for k, v in analysis.CORRELATION_DIMENSIONS.items()
            if not (target == "error" and k == "error_class")
        }
        parts = [
            f"SELECT '{name}' AS dim, CAST({expr} AS VARCHAR) AS value,"
            f" count(*) FILTER (WHERE {predicate}) AS tcount, count(*) AS n"
            f" FROM calls c WHERE {where} GROUP BY ALL"
            for name, expr in dims.items()
        ]
        all_params: list[Any] = []
        for _ in parts:
            all_params += tparams + params
        rows = self._rows(" UNION ALL ".join(parts), all_params) if base["total"] else []
        target_total = sum(r["tcount"] for r in rows if r["dim"] == "app") if rows else 0
        counts = [(r["dim"], r["value"], r["tcount"], r["n"]) for r in rows]
        return {
            "target": target,
            "threshold_ms": threshold,
            "total": base["total"],
            "target_total": target_total,
            "items": analysis.lifts(counts, target_total, base["total"]),
        }

    _DOWNSTREAM = """coalesce(
        'db:' || json_extract_string(s.attributes, '$."db.system"'),
        'db:' || json_extract_string(s.attributes, '$."db.system.name"'),
        'http:' || json_extract_string(s.attributes, '$."server.address"'),
        'http:' || json_extract_string(s.attributes, '$."net.peer.name"'),
        'rpc:' || json_extract_string(s.attributes, '$."rpc.service"'),
        'messaging:' || json_extract_string(s.attributes, '$."messaging.system"'),
        'tool:' || json_extract_string(s.attributes, '$."gen_ai.tool.name"'),
        s.kind || ':' || s.name)"""

    def dependencies(self, filters: CallFilters) -> dict[str, Any]:
        """Where request time goes: per LLM provider/model and per non-LLM downstream."""
        where, params = self.where(filters)
        model = analysis.GROUP_BY["model"]
        llm = self._rows(
            f"SELECT 'llm' AS type, coalesce(provider, '?') || '/' || coalesce({model}, '?')"
            " AS downstream, count(*) AS calls, sum(duration_ms) AS total_ms,"
            " quantile_cont(duration_ms, 0.95) AS p95_ms,"
            " count(*) FILTER (WHERE status = 'error') / count(*) AS error_rate,"
            " count(DISTINCT trace_id) AS traces"
            f" FROM calls c WHERE {where} GROUP BY ALL",
            params,
        )
        sf = CallFilters(since=filters.since, until=filters.until, app=filters.app)
        swhere, sparams = self.where(sf, alias="s")
        other = self._rows(
            f"SELECT 'span' AS type, {self._DOWNSTREAM} AS downstream, count(*) AS calls,"
            " sum(duration_ms) AS total_ms, quantile_cont(duration_ms, 0.95) AS p95_ms,"
            " count(*) FILTER (WHERE status = 'error') / count(*) AS error_rate,"
            " count(DISTINCT trace_id) AS traces"
            f" FROM spans s WHERE {swhere} AND s.call_id IS NULL"
            " AND s.parent_span_id IS NOT NULL GROUP BY ALL",
            sparams,
        )
        (roots,) = self._rows(
            "SELECT coalesce(sum(duration_ms), 0) AS trace_ms, count(*) AS traces"
            f" FROM spans s WHERE {swhere} AND s.parent_span_id IS NULL",
            sparams,
        )
        trace_ms = roots["trace_ms"] or 0.0
        items = llm + other
        for it in items:
            it["share_of_trace_time"] = (it["total_ms"] / trace_ms) if trace_ms else None
        items.sort(key=lambda r: -(r["total_ms"] or 0))
        return {"trace_ms": trace_ms, "traces": roots["traces"], "items": items}

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


def merge_content_events(call: dict[str, Any], events: list[tuple[str, Any]]) -> None:
    """Fill a call's message fields from content events when the span carried none."""
    by_kind: dict[str, list[Any]] = {"system": [], "input": [], "output": []}
    for kind, message in events:
        by_kind.setdefault(kind, []).append(message)
    if not call.get("input_messages") and (by_kind["input"] or by_kind["system"]):
        call["input_messages"] = by_kind["system"] + by_kind["input"]
    if not call.get("output_messages") and by_kind["output"]:
        call["output_messages"] = by_kind["output"]
        if not call.get("finish_reasons"):
            call["finish_reasons"] = [
                m["finish_reason"] for m in by_kind["output"] if m.get("finish_reason")
            ]
