"""--retention on both stores: old rows go, new rows stay; scores (#20) by their own age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gensight.model.records import CallRecord, Score, SpanRecord
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


def _score(age: timedelta, n: str, call_id: str) -> Score:
    ts = datetime.now(UTC) - age
    return Score(id=n, ts=ts, target="call", target_id=call_id, name="helpful", value=1.0)


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
        # a score given with its old call, one given lately about it, one about the new
        # call, and one waiting for a call that has not arrived
        scores = [
            _score(timedelta(days=3), "s-old", "a"),
            _score(timedelta(hours=2), "s-late", "a"),
            _score(timedelta(hours=1), "s-new", "b"),
            _score(timedelta(days=2), "s-waiting-old", "c"),
            _score(timedelta(minutes=5), "s-waiting", "c"),
        ]
        store.write([], [], [], scores)
        store.apply_retention()
        if kind == "chdb":  # TTL runs on merges; force one instead of waiting
            for table in ("calls", "spans", "scores"):
                store.client.command(f"OPTIMIZE TABLE {table} FINAL")
        items, _ = store.list_calls(CallFilters(), 10, None)
        assert [c["id"] for c in items] == ["b"]
        assert store.get_trace("a" * 32) is None
        assert store.get_trace("b" * 32) is not None
        # a score expires at the retention age of its own time, like every record
        kept = store.list_scores(CallFilters(), None, 10)
        assert sorted(s["id"] for s in kept) == ["s-late", "s-new", "s-waiting"]
        assert [s["id"] for s in store.get_call("b")["scores"]] == ["s-new"]
    finally:
        store.close()
    if kind == "chdb":  # without --retention the TTL goes (and the shared engine is clean)
        again = ClickHouseStore.from_url(f"chdb://{chdb_path}")
        try:
            for table in ("calls", "spans", "content_events", "scores"):
                ddl = str(again.client.command(f"SHOW CREATE TABLE {table}"))
                assert "TTL toDateTime(ts)" not in ddl.replace("\\n", "\n"), table
        finally:
            again.close()
