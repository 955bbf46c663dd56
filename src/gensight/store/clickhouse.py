"""The scale-out store: ClickHouse, through clickhouse-connect.

``--store clickhouse://user:pass@host:8123/db`` speaks to a server over HTTP;
``--store chdb:///path`` runs the same engine in-process through chDB (which
registers itself as a clickhouse-connect backend), the CI vehicle for this SQL.

Tables are MergeTree, partitioned by day, ordered for the dashboard's filters (hour,
app, model, time), with ``LowCardinality`` for the small vocabularies and a TTL when
``--retention`` is set. Batches are inserted as Arrow tables. Migrations are versioned
in ``schema_migrations`` and idempotent (``IF NOT EXISTS``), so replicas starting
together converge.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlparse

from gensight.model.records import CallRecord, ContentEvent, SpanRecord
from gensight.store import arrow, sql
from gensight.store.common import SQLStore

_S = "String"
_NS = "Nullable(String)"
_LC = "LowCardinality(String)"
_LNS = "LowCardinality(Nullable(String))"
_NF = "Nullable(Float64)"
_NI = "Nullable(Int64)"

_CALL_COLUMNS: dict[str, str] = {
    "id": _S,
    "trace_id": _S,
    "span_id": _S,
    "ts": "DateTime64(6, 'UTC')",
    "duration_ms": "Float64",
    "source": _LC,
    "producer": _LNS,
    "parent_span_id": _NS,
    "ttft_ms": _NF,
    "app": _LNS,
    "environment": _LNS,
    "provider": _LNS,
    "operation": _LNS,
    "request_model": _LNS,
    "response_model": _LNS,
    "response_id": _NS,
    "stream": "Bool",
    "input_tokens": _NI,
    "output_tokens": _NI,
    "cache_read_tokens": _NI,
    "cache_write_tokens": _NI,
    "reasoning_tokens": _NI,
    "tokens_estimated": "Bool",
    "cost_usd": _NF,
    "cost_source": _LC,
    "reported_cost_usd": _NF,
    "status": _LC,
    "error_class": _LNS,
    "http_status": "Nullable(Int32)",
    "error_message": _NS,
    "finish_reasons": "Array(String)",
    "temperature": _NF,
    "top_p": _NF,
    "max_tokens": _NI,
    "frequency_penalty": _NF,
    "presence_penalty": _NF,
    "seed": _NI,
    "user": _NS,
    "session": _NS,
    "tags": "Array(String)",
    "server_address": _LNS,
    "attempts": "Int32",
    "input_messages": _NS,
    "output_messages": _NS,
    "system_instructions": _NS,
    "attributes": _NS,
}

_SPAN_COLUMNS: dict[str, str] = {
    "trace_id": _S,
    "span_id": _S,
    "parent_span_id": _NS,
    "name": _S,
    "kind": _LC,
    "ts": "DateTime64(6, 'UTC')",
    "duration_ms": "Float64",
    "status": _LC,
    "status_message": _NS,
    "app": _LNS,
    "call_id": _NS,
    "attributes": _NS,
    "events": _NS,
}

_EVENT_COLUMNS: dict[str, str] = {
    "trace_id": _S,
    "span_id": _S,
    "ts": "DateTime64(6, 'UTC')",
    "seq": "Int32",
    "kind": _LC,
    "message": _S,
}


def _table(name: str, columns: dict[str, str], order_by: str) -> str:
    cols = ", ".join(f"`{c}` {t}" for c, t in columns.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({cols}) ENGINE = MergeTree"
        f" PARTITION BY toDate(ts) ORDER BY ({order_by})"
        " SETTINGS index_granularity = 8192"
    )


#: Versioned schema steps, in order; never edit a released one.
MIGRATIONS: list[list[str]] = [
    [
        _table(
            "calls",
            _CALL_COLUMNS,
            "toStartOfHour(ts), ifNull(app, ''), ifNull(request_model, ''), ts",
        ),
        "ALTER TABLE calls ADD INDEX IF NOT EXISTS idx_trace trace_id"
        " TYPE bloom_filter GRANULARITY 4",
        "ALTER TABLE calls ADD INDEX IF NOT EXISTS idx_id id TYPE bloom_filter GRANULARITY 4",
        _table("spans", _SPAN_COLUMNS, "trace_id, ts"),
        _table("content_events", _EVENT_COLUMNS, "trace_id, span_id, ts"),
    ],
    [  # 2: alert rules (shared by every replica) and their transitions
        "CREATE TABLE IF NOT EXISTS alert_rules (id String, created_at DateTime64(6, 'UTC'),"
        " source LowCardinality(String), rule String) ENGINE = MergeTree ORDER BY id",
        "CREATE TABLE IF NOT EXISTS alert_events (ts DateTime64(6, 'UTC'), rule_id String,"
        " name String, state LowCardinality(String), value Nullable(Float64),"
        " threshold Float64, detail String) ENGINE = MergeTree ORDER BY (rule_id, ts)",
    ],
    [  # 3: leases, so that one replica of many runs a singleton job (alert notifications)
        "CREATE TABLE IF NOT EXISTS leases (name String, holder String,"
        " expires_at DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY (name, expires_at)"
        " TTL toDateTime(expires_at) + INTERVAL 1 HOUR",
    ],
]

#: Tables whose rows expire with ``--retention``.
DATA_TABLES = ("calls", "spans", "content_events")


assert list(_CALL_COLUMNS) == arrow.CALL_SCHEMA.names
assert list(_SPAN_COLUMNS) == sql.SPAN_COLUMNS


class ClickHouseStore(SQLStore):
    """ClickHouse server or chDB behind the store seam."""

    name = "clickhouse"
    dialect = sql.ClickHouseDialect()

    def __init__(self, client: Any, *, label: str, retention: timedelta | None = None) -> None:
        self.client = client
        self.label = label
        self.retention = retention
        # chDB is one engine per process and its client is not safe across threads
        self._lock = threading.RLock()
        self._migrate()
        self._apply_ttl()

    @classmethod
    def from_url(cls, url: str, retention: timedelta | None = None) -> ClickHouseStore:
        """``clickhouse://user:pass@host:8123/db`` (``clickhouses://`` for TLS) or
        ``chdb:///path``."""
        import clickhouse_connect

        if url.startswith("chdb://"):
            client = clickhouse_connect.get_client(dsn=url)
            return cls(client, label=url, retention=retention)
        u = urlparse(url)
        database = u.path.strip("/") or "default"
        secure = u.scheme == "clickhouses"
        kwargs: dict[str, Any] = {
            "host": u.hostname or "localhost",
            "port": u.port or (8443 if secure else 8123),
            "username": unquote(u.username or "default"),
            "password": unquote(u.password or ""),
            "secure": secure,
        }
        admin = clickhouse_connect.get_client(**kwargs)
        admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        client = clickhouse_connect.get_client(database=database, **kwargs)
        label = f"{u.scheme}://{u.hostname}:{kwargs['port']}/{database}"  # no credentials
        return cls(client, label=label, retention=retention)

    def _migrate(self) -> None:
        with self._lock:
            c = self.client
            c.command(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32,"
                " applied_at DateTime) ENGINE = MergeTree ORDER BY version"
            )
            current = c.query("SELECT max(version) FROM schema_migrations").result_rows[0][0]
            for version, statements in enumerate(MIGRATIONS, start=1):
                if current and version <= current:
                    continue
                for statement in statements:
                    c.command(statement)
                c.insert(
                    "schema_migrations",
                    [[version, datetime.now(UTC).replace(tzinfo=None)]],
                    column_names=["version", "applied_at"],
                )

    def _apply_ttl(self) -> None:
        """Retention as a table TTL: ClickHouse drops expired rows in the background."""
        with self._lock:
            for table in DATA_TABLES:
                if self.retention:
                    seconds = int(self.retention.total_seconds())
                    self.client.command(
                        f"ALTER TABLE {table} MODIFY TTL toDateTime(ts) + INTERVAL {seconds} SECOND"
                    )
                else:
                    ddl = self.client.command(f"SHOW CREATE TABLE {table}")
                    if " TTL " in str(ddl):
                        self.client.command(f"ALTER TABLE {table} REMOVE TTL")

    def apply_retention(self) -> int:
        """Nothing to do by hand: the TTL expires rows (returns 0 deleted here)."""
        return 0

    @property
    def schema_version(self) -> int:
        """The highest applied migration."""
        with self._lock:
            return int(
                self.client.query("SELECT max(version) FROM schema_migrations").result_rows[0][0]
            )

    def write(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord],
        events: Sequence[ContentEvent],
    ) -> None:
        """Insert one batch as Arrow tables (calls last: a call is visible once its
        spans and content are)."""
        with self._lock:
            if spans:
                self.client.insert_arrow("spans", arrow.spans_table(spans))
            if events:
                self.client.insert_arrow("content_events", arrow.events_table(events))
            if calls:
                self.client.insert_arrow("calls", arrow.calls_table(calls))

    def _rows(self, q: sql.Query) -> list[dict[str, Any]]:
        with self._lock:
            res = self.client.query(q.sql, parameters=q.params)
        names = res.column_names
        return [dict(zip(names, r, strict=True)) for r in res.result_rows]

    def _exec(self, q: sql.Query) -> None:
        with self._lock:
            self.client.command(q.sql, parameters=q.params)

    def health(self) -> dict[str, Any]:
        """Reachability and row counts."""
        with self._lock:
            calls = self.client.query("SELECT count() FROM calls").result_rows[0][0]
            spans = self.client.query("SELECT count() FROM spans").result_rows[0][0]
        return {
            "backend": self.name,
            "url": self.label,
            "ok": True,
            "calls": int(calls),
            "spans": int(spans),
            "schema_version": self.schema_version,
        }

    def close(self) -> None:
        """Close the client."""
        with self._lock:
            self.client.close()
