"""The embedded store: one DuckDB file, written in Arrow batches by the pipeline's writer.

Columns are the ``CallRecord``/``SpanRecord`` field names. Lists are ``VARCHAR[]``;
messages and attributes are JSON text. Times are UTC ``TIMESTAMP``s. The schema is
versioned (``schema_migrations``): a fresh file is created from ``gensight.store.schema``,
an older one runs the frozen migrations it lacks at open. Every record table has its
natural key as primary key, so writing a batch twice stores it once. Message content
that arrived as OTLP log events sits in ``content_events`` and is joined to its call
when read, so it may arrive before or after its span.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from gensight.model.records import CallRecord, ContentEvent, Score, SpanRecord
from gensight.store import (
    migrations,
    rollup_reader,
    rollups,
    schema,
    search,
    search_calls,
)
from gensight.store.base import CallFilters, Cursor
from gensight.store.common import SQLStore, unique
from gensight.store.dialect import DuckDBDialect, Query
from gensight.store.rollup_reader import RollupReader
from gensight.store.search import SearchIndex

if TYPE_CHECKING:
    import pyarrow as pa

#: The frozen migrations (``gensight.store.migrations``); their count is the latest version.
MIGRATIONS: list[list[str]] = migrations.DUCKDB

#: How each table takes a batch: a call replaces the stored row with its id (the writer
#: sends only new or merged calls), a span or content event already stored is kept as is.
_INSERT = {
    "calls": "INSERT OR REPLACE INTO calls BY NAME SELECT * FROM _gensight_batch",
    "spans": "INSERT OR IGNORE INTO spans BY NAME SELECT * FROM _gensight_batch",
    "content_events": "INSERT OR IGNORE INTO content_events BY NAME SELECT * FROM _gensight_batch",
    "scores": "INSERT OR REPLACE INTO scores BY NAME SELECT * FROM _gensight_batch",
}


log = logging.getLogger(__name__)

#: How far from a batch's calls their stored versions are looked for (a merged record
#: keeps the stored one's ts, so this is a margin, not a guess).
_OLD_VERSION_WINDOW = timedelta(hours=1)


class DuckDBStore(SQLStore):
    """A DuckDB file; one connection, a cursor per reading thread."""

    name = "duckdb"
    dialect = DuckDBDialect()

    def __init__(
        self,
        path: str | Path,
        retention: timedelta | None = None,
        memory_limit_mb: int = 512,
        search_index: bool = True,
        threads: int = 0,
    ) -> None:
        self.path = str(path)
        self.retention = retention
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(self.path)
        self._write_lock = threading.Lock()
        self._closed = False
        self._migrate()
        rollups.create(self._con)
        # a score is written by this process only (the file is its own): until the first,
        # the lookups of a trace's or a page's scores are skipped
        row = self._con.execute("SELECT EXISTS (SELECT 1 FROM scores)").fetchone()
        self._scored = bool(row and row[0])
        self.search: SearchIndex | None = None
        self._search_build: threading.Thread | None = None
        self._build_lock = threading.Lock()
        if search_index:
            self._open_search()
        # Bounded memory (DuckDB's default is 80% of RAM) and fewer, larger checkpoints:
        # with the default 16 MB threshold every commit of a growing table checkpoints.
        self._con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        self._con.execute("SET checkpoint_threshold = '256MB'")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")

    @classmethod
    def from_url(
        cls,
        url: str,
        retention: timedelta | None = None,
        memory: int | None = None,
        threads: int = 0,
    ) -> DuckDBStore:
        """``duckdb:///abs/path.db`` or ``duckdb://rel/path.db`` or ``duckdb://:memory:``;
        ``memory``: DuckDB's memory limit in bytes (default 512 MiB)."""
        path = url.removeprefix("duckdb://")
        if path.startswith("//"):  # duckdb:////abs/path written with one slash too many
            path = path[1:]
        mb = max(1, memory // 2**20) if memory else 512
        return cls(path or ":memory:", retention, memory_limit_mb=mb, threads=threads)

    def _migrate(self) -> None:
        """Create a fresh store from the schema definition, or bring an older one up to
        date with the frozen migrations it lacks (each in one transaction)."""
        con = self._con
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER, applied_at TIMESTAMP)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = row[0] if row else 0
        if current >= len(MIGRATIONS):
            return
        # rebuilding a large table or its index needs more than the usual limit
        con.execute("SET memory_limit = '4GB'")
        steps = (
            [(len(MIGRATIONS), schema.duckdb_create())]
            if current == 0
            else [(v, st) for v, st in enumerate(MIGRATIONS, start=1) if v > current]
        )
        for version, statements in steps:
            con.execute("BEGIN")
            try:
                for statement in statements:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)",
                    [version, datetime.now(UTC).replace(tzinfo=None)],
                )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

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
        scores: Sequence[Score] = (),
    ) -> None:
        """Store one batch in one transaction, via Arrow tables; idempotent: a call or a
        score replaces the stored one with its id, a span or event already stored stays."""
        from gensight.store import arrow  # pyarrow: loaded by the first write, not at start

        calls, spans, events = unique(calls, spans, events)
        scores = list({s.id: s for s in scores}.values())
        arrow.setup_without_pandas()
        tables: list[tuple[str, pa.Table]] = []
        if calls:
            tables.append(("calls", arrow.calls_table(calls)))
        if spans:
            tables.append(("spans", arrow.spans_table(spans)))
        if events:
            tables.append(("content_events", arrow.events_table(events)))
        if scores:
            tables.append(("scores", arrow.scores_table(scores)))
        if not tables:
            return
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for name, table in tables:
                    con.register("_gensight_batch", table)
                    try:
                        if name == "calls":  # before the calls it replaces are gone
                            since = min(c.ts for c in calls) - _OLD_VERSION_WINDOW
                            until = max(c.ts for c in calls) + _OLD_VERSION_WINDOW
                            rollups.apply_batch(con, "_gensight_batch", since, until)
                        con.execute(_INSERT[name])
                    finally:
                        con.unregister("_gensight_batch")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            self._scored = self._scored or bool(scores)
            if self.search is not None:
                try:
                    self.search.add(calls, events, spans)
                except Exception as e:  # the index is derived: `gensight rebuild search`
                    log.error("search index update failed (rebuild it): %s", e)

    def apply_retention(self) -> int:
        """Delete rows older than ``--retention`` (the pipeline calls this hourly)."""
        if not self.retention:
            return 0
        cutoff = datetime.now(UTC).replace(tzinfo=None) - self.retention
        deleted = 0
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for table in ("content_events", "spans", "calls", "scores"):
                    row = con.execute(f"DELETE FROM {table} WHERE ts < ?", [cutoff]).fetchone()
                    deleted += int(row[0]) if row else 0
                rollups.after_retention(con, cutoff)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            if self.search is not None:  # its documents of the deleted rows
                self.search.forget_before(cutoff)
        return deleted

    # -- the search index (``gensight.store.search``) --------------------------------
    def _open_search(self) -> None:
        try:
            index = SearchIndex(None if self.path == ":memory:" else self.path + ".search")
        except ImportError:  # tantivy not installed: q= scans the messages
            return
        self.search = index
        if not index.created:
            return
        row = self._con.execute(
            "SELECT EXISTS (SELECT 1 FROM calls) OR EXISTS (SELECT 1 FROM spans)"
            " OR EXISTS (SELECT 1 FROM content_events)"
        ).fetchone()
        if not (row and row[0]):
            self.rebuild_search()  # nothing to read: at once
            return
        # an index lost or of an older layout, over stored calls (minutes at 10M): built
        # beside the server, which answers q= by scanning and finds traces by their
        # spans meanwhile, and indexes what is written meanwhile when it is done
        index.ready = False
        log.info(
            "building the search index of %s beside the store (q= scans until then)", self.path
        )
        self._search_build = threading.Thread(
            target=self._build_search, name="gensight-search-build", daemon=True
        )
        self._search_build.start()

    def _build_search(self) -> None:
        assert self.search is not None
        try:
            self.rebuild_search()
        except Exception as e:  # derived data: `gensight rebuild search`, or the next open
            if self.search.stopping:
                log.info("search index build stopped: it is built again at the next open")
            else:
                log.error("building the search index failed (q= scans): %s", e)
            return
        self.search.ready = True
        log.info("search index built")

    def _index(self) -> SearchIndex | None:
        """The search index when it answers (not while it is being built)."""
        return self.search if self.search is not None and self.search.ready else None

    def wait_search(self, timeout: float | None = None) -> bool:
        """Wait for a search index build started at open; whether the index answers."""
        if self._search_build is not None:
            self._search_build.join(timeout)
        return self._index() is not None

    def rebuild_search(self) -> None:
        """Index every stored call's, content event's and trace's text and time again
        (what is written meanwhile is indexed after)."""
        if self.search is None:
            raise RuntimeError("no search index (install tantivy)")
        build = self._search_build
        if build is not None and build is not threading.current_thread() and build.is_alive():
            build.join()  # the build at open: complete with what was written meanwhile
            if self._index() is not None:
                return
        with self._build_lock:
            self._rebuild_search()

    def _rebuild_search(self) -> None:
        assert self.search is not None
        cursors = [self._con.cursor() for _ in range(3)]

        def read() -> tuple[Any, Any, Any]:
            for cur, q in zip(cursors, (search.rebuild_calls_sql(), search.REBUILD_EVENTS_SQL,
                                        search.REBUILD_TRACES_SQL), strict=True):  # fmt: skip
                cur.execute(q)
            return tuple(_fetch(cur) for cur in cursors)  # type: ignore[return-value]

        try:
            backlog = self.search.rebuild(read)
        finally:
            for cur in cursors:
                cur.close()
        with self._write_lock:  # read back and indexed before the writer writes again
            if not self._closed:
                self._index_backlog(backlog)

    def _index_backlog(self, backlog: search.Backlog) -> None:
        """Index again what the writer wrote while a rebuild ran (read back by id)."""
        assert self.search is not None
        cur = self._con.cursor()
        try:
            ids = sorted(backlog.calls)
            for i in range(0, len(ids), 1000):
                cur.execute(f"{search.rebuild_calls_sql()} AND id IN"
                            " (SELECT unnest(?::VARCHAR[]))", [ids[i : i + 1000]])  # fmt: skip
                calls = cur.fetchall()
                self.search.add_rows(calls, [], [])
            spans = sorted(backlog.spans)
            for i in range(0, len(spans), 1000):
                chunk = spans[i : i + 1000]
                cur.execute(f"{search.REBUILD_EVENTS_SQL} WHERE (trace_id, span_id) IN"
                            " (SELECT (unnest(?::VARCHAR[]), unnest(?::VARCHAR[])))",
                            [[t for t, _ in chunk], [s for _, s in chunk]])  # fmt: skip
                self.search.add_rows([], cur.fetchall(), [])
        finally:
            cur.close()
        self.search.add_rows([], [], [(t, t0, t1) for t, (t0, t1) in backlog.traces.items()])
        if backlog.cutoff is not None:
            self.search.forget_before(backlog.cutoff)

    def _may_have_scores(self) -> bool:
        return self._scored

    def trace_window(self, trace_id: str) -> tuple[datetime, datetime] | None:
        index = self._index()
        return index.trace_window(trace_id) if index is not None else None

    def _list_rows(
        self,
        filters: CallFilters,
        limit: int,
        cursor: Cursor | None,
        full: bool,
        sort: str = "ts",
        order: str = "desc",
    ) -> list[dict[str, Any]]:
        # the index reads hits newest first: other orders scan the messages in SQL
        index = self._index()
        if filters.q and index is not None and (sort, order) == ("ts", "desc"):
            rows = search_calls.list_rows(self, index, filters, limit, cursor, full)
            if rows is not None:
                return rows
        return super()._list_rows(filters, limit, cursor, full, sort, order)

    def count_calls(self, filters: CallFilters) -> int:
        index = self._index()
        if filters.q and index is not None:
            n = search_calls.count(self, index, filters)
            if n is not None:
                return n
        n = rollup_reader.count(self, filters)
        return n if n is not None else super().count_calls(filters)

    # -- rollups (``gensight.store.rollups``) ---------------------------------------
    def rebuild_rollups(self) -> None:
        """Recompute every rollup from the stored calls (``gensight rollups rebuild``)."""
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                rollups.rebuild(con)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        self.compact_rollups()

    def compact_rollups(self) -> None:
        """Fold the writer's signed delta rows (the writer's hourly upkeep)."""
        with self._write_lock:
            rollups.compact(self._con)

    def rollups_for(
        self, filters: CallFilters, interval: int | None = None, group_by: str | None = None
    ) -> RollupReader | None:
        """A reader of the overview's rows from rollups, or None when raw rows must answer."""
        name = rollups.choose(filters, interval, group_by)
        if name is None:
            return None
        cur = self._cursor()
        try:
            if not rollups.pays(cur, filters, name):
                return None
        finally:
            cur.close()
        return RollupReader(self, name).prepare(interval, group_by)

    # -- reading ------------------------------------------------------------
    def _rows(self, q: Query) -> list[dict[str, Any]]:
        cur = self._cursor()
        try:
            res = cur.execute(q.sql, q.params)
            names = [d[0] for d in res.description]
            return [dict(zip(names, r, strict=True)) for r in res.fetchall()]
        finally:
            cur.close()

    def _arrow(self, q: Query) -> pa.Table:
        """A statement's result as an Arrow table (many rows, no Python objects)."""
        from gensight.store import arrow

        arrow.setup_without_pandas()  # or pyarrow's first ``to_numpy`` imports pandas
        cur = self._cursor()
        try:
            return cur.sql(q.sql, params=q.params).to_arrow_table()
        finally:
            cur.close()

    def _exec(self, q: Query) -> None:
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
        """Checkpoint and close the file (again: nothing)."""
        if self.search is not None and self._search_build is not None:
            self.search.abort()  # a build at open stops within ~10,000 rows
            self._search_build.join(30)
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.search is not None:
                    self.search.close()
                self._con.execute("CHECKPOINT")
            finally:
                self._con.close()


def _fetch(cur: duckdb.DuckDBPyConnection, size: int = 2000) -> Iterator[tuple[Any, ...]]:
    """A cursor's rows, a chunk at a time."""
    while rows := cur.fetchmany(size):
        yield from rows
