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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from gensight.model.records import CallRecord, ContentEvent, SpanRecord
from gensight.store import arrow, sql
from gensight.store.common import SQLStore

_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.timestamp("us"): "TIMESTAMP",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.list_(pa.string()): "VARCHAR[]",
}


def _ddl(table: str, schema: pa.Schema) -> str:
    cols = ", ".join(f'"{f.name}" {_SQL_TYPES[f.type]}' for f in schema)
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


#: Versioned migrations, applied in order at open; never edit a released one.
MIGRATIONS: list[list[str]] = [
    [
        _ddl("calls", arrow.CALL_SCHEMA),
        _ddl("spans", arrow.SPAN_SCHEMA),
        _ddl("content_events", arrow.EVENT_SCHEMA),
    ],
    [  # 2: alert rules (shared by every server on the store) and their transitions
        "CREATE TABLE IF NOT EXISTS alert_rules"
        " (id VARCHAR, created_at TIMESTAMP, source VARCHAR, rule VARCHAR)",
        "CREATE TABLE IF NOT EXISTS alert_events (ts TIMESTAMP, rule_id VARCHAR, name VARCHAR,"
        " state VARCHAR, value DOUBLE, threshold DOUBLE, detail VARCHAR)",
    ],
    [  # 3: a trace is a point lookup, not a scan of every span (1.5 s → 28 ms at 10M)
        "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id)",
    ],
    [  # 4: leases (one process owns a DuckDB file, but the code is the same for replicas)
        "CREATE TABLE IF NOT EXISTS leases (name VARCHAR, holder VARCHAR, expires_at TIMESTAMP)",
    ],
]


class DuckDBStore(SQLStore):
    """A DuckDB file; one connection, a cursor per reading thread."""

    name = "duckdb"
    dialect = sql.DuckDBDialect()

    def __init__(
        self, path: str | Path, retention: timedelta | None = None, memory_limit_mb: int = 512
    ) -> None:
        self.path = str(path)
        self.retention = retention
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(self.path)
        self._write_lock = threading.Lock()
        self._migrate()
        # Bounded memory (DuckDB's default is 80% of RAM) and fewer, larger checkpoints:
        # with the default 16 MB threshold every commit of a growing table checkpoints.
        self._con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        self._con.execute("SET checkpoint_threshold = '256MB'")
        pa.array([0])  # pyarrow's one-time setup, here rather than in the first write

    @classmethod
    def from_url(cls, url: str, retention: timedelta | None = None) -> DuckDBStore:
        """``duckdb:///abs/path.db`` or ``duckdb://rel/path.db`` or ``duckdb://:memory:``."""
        path = url.removeprefix("duckdb://")
        if path.startswith("//"):  # duckdb:////abs/path written with one slash too many
            path = path[1:]
        return cls(path or ":memory:", retention)

    def _migrate(self) -> None:
        con = self._con
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER, applied_at TIMESTAMP)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = row[0] if row else 0
        if current < len(MIGRATIONS):
            # building an index over a large existing table needs more than the usual limit
            con.execute("SET memory_limit = '4GB'")
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
            tables.append(("calls", arrow.calls_table(calls)))
        if spans:
            tables.append(("spans", arrow.spans_table(spans)))
        if events:
            tables.append(("content_events", arrow.events_table(events)))
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

    def apply_retention(self) -> int:
        """Delete rows older than ``--retention`` (the pipeline calls this hourly)."""
        if not self.retention:
            return 0
        cutoff = datetime.now(UTC).replace(tzinfo=None) - self.retention
        deleted = 0
        with self._write_lock:
            for table in ("content_events", "spans", "calls"):
                row = self._con.execute(f"DELETE FROM {table} WHERE ts < ?", [cutoff]).fetchone()
                deleted += int(row[0]) if row else 0
        return deleted

    # -- reading ------------------------------------------------------------
    def _rows(self, q: sql.Query) -> list[dict[str, Any]]:
        cur = self._cursor()
        try:
            res = cur.execute(q.sql, q.params)
            names = [d[0] for d in res.description]
            return [dict(zip(names, r, strict=True)) for r in res.fetchall()]
        finally:
            cur.close()

    def _exec(self, q: sql.Query) -> None:
        with self._write_lock:
            self._con.execute(q.sql, q.params)

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
