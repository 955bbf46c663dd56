"""Upgrading a store made by the previous release: every call survives with its values,
and the new guarantees hold on it (a record written again is still one).

The DuckDB file was written by the previous release's own code
(tests/fixtures/store_previous/make.py); the ClickHouse tables are created with that
release's DDL, which ``expected.json`` recorded from it too.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gensight.model.records import CallRecord, SpanRecord
from gensight.query import answers
from gensight.store import migrations, schema
from gensight.store.base import CallFilters
from gensight.store.clickhouse import ClickHouseStore
from gensight.store.duckdb import DuckDBStore

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_previous"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
WIDE = CallFilters(since=datetime.fromisoformat("2020-01-01T00:00:00+00:00"),
                   until=datetime.fromisoformat("2100-01-01T00:00:00+00:00"))  # fmt: skip
TRACE = "ab" * 16


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def test_released_migrations_are_frozen():
    """The frozen text is what the previous release ran, word for word."""
    assert migrations.DUCKDB[:4] == EXPECTED["migrations"]["duckdb"]
    assert migrations.CLICKHOUSE[:3] == EXPECTED["migrations"]["clickhouse"]


def _same_call(got: dict[str, Any], before: dict[str, Any]) -> bool:
    """The stored call as the previous release showed it; fields added since are empty
    (``scores``, #20: none yet)."""
    added = got.keys() - before.keys()
    return {k: got.get(k) for k in before} == before and all(got[k] in (None, []) for k in added)


def _assert_survived(store: Any) -> None:
    for call_id, before in EXPECTED["calls"].items():
        assert _same_call(_json(store.get_call(call_id)), before), call_id
    # the previous release stored a resent call and span twice: one of each now
    assert store.health()["calls"] == len(EXPECTED["calls"])
    assert answers.totals(store, WIDE)["calls"] == len(EXPECTED["calls"])
    view = store.get_trace(TRACE)
    old_spans = {s["span_id"]: s for s in EXPECTED["trace"]["spans"]}
    assert sorted(s["span_id"] for s in view["spans"]) == sorted(old_spans)
    assert {s["span_id"]: s for s in _json(view["spans"])} == old_spans
    # new features on the old data: writing a stored call and span again changes nothing
    call = store.stored_calls([_record(EXPECTED["calls"]["0000000000000001"])])[0]
    old = old_spans["0000000000000001"]
    span = SpanRecord(**{**old, "ts": datetime.fromisoformat(old["ts"])})
    store.write([call], [span], [])
    assert store.health()["calls"] == len(EXPECTED["calls"])
    assert len(store.get_trace(TRACE)["spans"]) == len(old_spans)
    assert _same_call(_json(store.get_call(call.id)), EXPECTED["calls"][call.id])


def _record(d: dict[str, Any]) -> CallRecord:
    return CallRecord(**{**d, "ts": datetime.fromisoformat(d["ts"])})  # new fields: defaults


def _duckdb_schema(store: DuckDBStore) -> dict[str, Any]:
    con = store._con
    out: dict[str, Any] = {}
    for t in schema.RECORD_TABLES:
        out[t.name] = con.execute(f"DESCRIBE {t.name}").fetchall()
    out["constraints"] = con.execute(
        "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints()"
        " ORDER BY ALL"
    ).fetchall()
    out["indexes"] = con.execute(
        "SELECT index_name, table_name, sql FROM duckdb_indexes() ORDER BY ALL"
    ).fetchall()
    out["tables"] = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
    return out


def test_duckdb_file_of_the_previous_release_migrates(tmp_path: Path):
    path = tmp_path / "old.duckdb"
    path.write_bytes(gzip.decompress((FIXTURE / "previous_release.duckdb.gz").read_bytes()))
    store = DuckDBStore(path)
    try:
        assert store.schema_version == len(migrations.DUCKDB)
        _assert_survived(store)
        assert [r["id"] for r in store.alert_rules()] == ["r1"]
        fresh = DuckDBStore(tmp_path / "fresh.duckdb")
        try:  # both roads lead to the same tables
            assert _duckdb_schema(store) == _duckdb_schema(fresh)
        finally:
            fresh.close()
    finally:
        store.close()
    # and it opens again without migrating twice
    again = DuckDBStore(path)
    try:
        assert again.schema_version == len(migrations.DUCKDB)
        assert again.health()["calls"] == len(EXPECTED["calls"])
    finally:
        again.close()


def _clickhouse_schema(store: ClickHouseStore) -> dict[str, Any]:
    out = {}
    for t in schema.RECORD_TABLES:
        # the engine with its version column, keys (not the TTL another test may have set)
        rows = store.client.query(
            "SELECT splitByString(' PARTITION BY', engine_full)[1], sorting_key, partition_key"
            " FROM system.tables"
            " WHERE database = currentDatabase() AND name = %(t)s",
            parameters={"t": t.name},
        ).result_rows
        cols = store.client.query(f"DESCRIBE TABLE {t.name}").result_rows
        out[t.name] = (rows, [c[:3] for c in cols])
    return out


@pytest.mark.parametrize("_", ["chdb"])
def test_clickhouse_tables_of_the_previous_release_migrate(_, chdb_path: Path):
    store = ClickHouseStore.from_url(f"chdb://{chdb_path}")
    fresh_shape = _clickhouse_schema(store)
    c = store.client
    # the previous release's tables, as its own migrations made them
    for t in ("calls", "spans", "content_events", "schema_migrations"):
        c.command(f"DROP TABLE IF EXISTS {t}")
    c.command(
        "CREATE TABLE schema_migrations (version UInt32, applied_at DateTime)"
        " ENGINE = MergeTree ORDER BY version"
    )
    for version, statements in enumerate(EXPECTED["migrations"]["clickhouse"], start=1):
        for statement in statements:
            c.command(statement)
        c.insert("schema_migrations", [[version, datetime(2026, 1, 1)]],
                 column_names=["version", "applied_at"])  # fmt: skip
    calls = [_record(d) for d in EXPECTED["calls"].values()]
    spans = [SpanRecord(**{**s, "ts": datetime.fromisoformat(s["ts"])})
             for s in EXPECTED["trace"]["spans"]]  # fmt: skip
    from gensight.model.records import ContentEvent
    from gensight.store import arrow

    ts = datetime.fromisoformat(EXPECTED["calls"]["0000000000000003"]["ts"])
    events = [ContentEvent(TRACE, "0000000000000003", ts, 0, "input",
                           {"role": "user", "content": "embed me"})]  # fmt: skip
    c.insert_arrow("spans", arrow.spans_table(spans + spans[1:]))  # a resend, stored twice
    c.insert_arrow("content_events", arrow.events_table(events))
    table = arrow.calls_table(calls + calls[:1])
    then = set(EXPECTED["calls"]["0000000000000001"])  # the previous release's columns
    c.insert_arrow("calls", table.drop_columns([n for n in table.column_names if n not in then]))
    store.close()

    migrated = ClickHouseStore.from_url(f"chdb://{chdb_path}")
    try:
        assert migrated.schema_version == len(migrations.CLICKHOUSE)
        assert _clickhouse_schema(migrated) == fresh_shape
        _assert_survived(migrated)
    finally:
        migrated.close()
