"""--retention on both stores: old rows go, new rows stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gensight.model.records import CallRecord, SpanRecord
from gensight.store.base import CallFilters
from gensight.store.clickhouse import ClickHouseStore
from gensight.store.duckdb import DuckDBStore


def _records(age: timedelta, n: str):
    ts = datetime.now(UTC) - age
    call = CallRecord(id=n, trace_id=n * 32, span_id=n * 16, ts=ts, duration_ms=1.0,
                      source="otlp")  # fmt: skip
    span = SpanRecord(trace_id=n * 32, span_id=n * 16, name="chat", ts=ts, duration_ms=1.0,
                      call_id=n)  # fmt: skip
    return [call], [span], []


@pytest.mark.parametrize("kind", ["duckdb", "chdb"])
def test_retention_expires_old_rows(kind, tmp_path: Path, chdb_path: Path):
    keep = timedelta(days=1)
    if kind == "duckdb":
        store = DuckDBStore(tmp_path / "r.duckdb", retention=keep)
    else:
        from tests.support.stores import fresh_chdb_store

        fresh_chdb_store(chdb_path).close()
        store = ClickHouseStore.from_url(f"chdb://{chdb_path}", retention=keep)
    try:
        store.write(*_records(timedelta(days=3), "a"))
        store.write(*_records(timedelta(hours=1), "b"))
        store.apply_retention()
        if kind == "chdb":  # TTL runs on merges; force one instead of waiting
            for table in ("calls", "spans"):
                store.client.command(f"OPTIMIZE TABLE {table} FINAL")
        items, _ = store.list_calls(CallFilters(), 10, None)
        assert [c["id"] for c in items] == ["b"]
        assert store.get_trace("a" * 32) is None
        assert store.get_trace("b" * 32) is not None
    finally:
        store.close()
    if kind == "chdb":  # without --retention the TTL goes (and the shared engine is clean)
        again = ClickHouseStore.from_url(f"chdb://{chdb_path}")
        try:
            for table in ("calls", "spans", "content_events"):
                ddl = str(again.client.command(f"SHOW CREATE TABLE {table}"))
                assert "TTL toDateTime(ts)" not in ddl.replace("\\n", "\n"), table
        finally:
            again.close()
