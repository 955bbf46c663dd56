"""Store backends for parametrized tests (DuckDB file, ClickHouse SQL on chDB)."""

from __future__ import annotations

from pathlib import Path

from gensight.store.clickhouse import ClickHouseStore


def fresh_chdb_store(path: Path) -> ClickHouseStore:
    """A ClickHouse store on the session's chDB engine, emptied for this test.

    chDB runs one engine per process and data path, so every test of a pytest process
    shares one path and starts from empty tables (leases and alert rules included: a
    lease another test left would otherwise be held).
    """
    store = ClickHouseStore.from_url(f"chdb://{path}")
    for table in (
        "calls",
        "spans",
        "content_events",
        "scores",
        "alert_rules",
        "alert_events",
        "leases",
    ):
        store.client.command(f"TRUNCATE TABLE {table}")
    return store
