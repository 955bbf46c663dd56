"""The scale-out store: ClickHouse, through clickhouse-connect.

``--store clickhouse://user:pass@host:8123/db`` speaks to a server over HTTP;
``--store chdb:///path`` runs the same engine in-process through chDB (which
registers itself as a clickhouse-connect backend), the CI vehicle for this SQL.

Record tables (``gensight.store.schema``) are ReplacingMergeTrees partitioned by day and
sorted by their natural key (a call by hour and id, a span by trace and span id), with
``LowCardinality`` for the small vocabularies and a TTL when ``--retention`` is set.
Batches are inserted as Arrow tables. Writing a record twice leaves two rows until a
background merge folds them; every query reads ``FINAL`` so it counts one. Calls carry
a ``_version`` (insert time): a merged record written later replaces the stored one.

FINAL rather than an ``argMax`` per column (bench/clickhouse_final.py, chDB, 300,000
calls with 5% written twice, 2 busy cores, load 5-6): overview totals 232-405 ms with
FINAL, 749-883 ms with a ``GROUP BY id`` of ``argMax`` columns, 86-211 ms plain (which
counts the repeats); the call-log page 145-298 / 290-576 / 88-102 ms. FINAL is also the
only one that needs no rewrite of each query's columns.

Migrations are versioned in ``schema_migrations``: a fresh store is created from the
schema definition, an older one runs the frozen steps it lacks.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlparse

from gensight.model.records import CallRecord, ContentEvent, Score, SpanRecord
from gensight.store import arrow, migrations, schema
from gensight.store.common import SQLStore, unique
from gensight.store.dialect import ClickHouseDialect, Query

#: The frozen migrations (``gensight.store.migrations``); their count is the latest version.
MIGRATIONS: list[list[str]] = migrations.CLICKHOUSE

#: Tables whose rows expire with ``--retention``.
DATA_TABLES = tuple(t.name for t in schema.RECORD_TABLES)


class ClickHouseStore(SQLStore):
    """ClickHouse server or chDB behind the store seam."""

    name = "clickhouse"
    dialect = ClickHouseDialect()

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
        """Create a fresh store from the schema definition, or run the frozen migrations
        an older one lacks."""
        with self._lock:
            c = self.client
            c.command(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32,"
                " applied_at DateTime) ENGINE = MergeTree ORDER BY version"
            )
            current = int(c.query("SELECT max(version) FROM schema_migrations").result_rows[0][0])
            if current >= len(MIGRATIONS):
                return
            steps = (
                [(len(MIGRATIONS), schema.clickhouse_create())]
                if current == 0
                else [(v, st) for v, st in enumerate(MIGRATIONS, start=1) if v > current]
            )
            for version, statements in steps:
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
                    # the DDL comes back with its line breaks escaped ("…\\nTTL …"): the
                    # table-level clause is a line of its own once they are undone
                    if re.search(r"^TTL\b", str(ddl).replace("\\n", "\n"), re.MULTILINE):
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
        scores: Sequence[Score] = (),
    ) -> None:
        """Insert one batch as Arrow tables (calls last: a call is visible once its
        spans and content are). A row repeating a stored key is folded into it by the
        ReplacingMergeTree (queries read ``FINAL``); a call's newer version wins."""
        calls, spans, events = unique(calls, spans, events)
        scores = list({s.id: s for s in scores}.values())
        with self._lock:
            if scores:
                self.client.insert_arrow("scores", arrow.scores_table(scores))
            if spans:
                self.client.insert_arrow("spans", arrow.spans_table(spans))
            if events:
                self.client.insert_arrow("content_events", arrow.events_table(events))
            if calls:
                self.client.insert_arrow("calls", arrow.calls_table(calls))

    def _rows(self, q: Query) -> list[dict[str, Any]]:
        with self._lock:
            res = self.client.query(q.sql, parameters=q.params)
        names = res.column_names
        return [dict(zip(names, r, strict=True)) for r in res.result_rows]

    def _exec(self, q: Query) -> None:
        with self._lock:
            self.client.command(q.sql, parameters=q.params)

    def health(self) -> dict[str, Any]:
        """Reachability and row counts."""
        with self._lock:
            calls = self.client.query("SELECT count() FROM calls FINAL").result_rows[0][0]
            spans = self.client.query("SELECT count() FROM spans FINAL").result_rows[0][0]
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
