"""Stores behind one seam (``gensight.store.base.Store``)."""

from __future__ import annotations

from datetime import timedelta

from gensight.store.base import CallFilters, Cursor, Store


def open_store(
    url: str,
    retention: timedelta | None = None,
    duckdb_memory: int | None = None,
    duckdb_threads: int = 0,
) -> Store:
    """Open the store a ``--store`` URL names (duckdb, clickhouse or chdb).

    ``duckdb_memory`` (bytes) and ``duckdb_threads`` (0: DuckDB's default) tune a DuckDB
    store; the other stores ignore them."""
    if url.startswith("duckdb://"):
        from gensight.store.duckdb import DuckDBStore

        return DuckDBStore.from_url(url, retention, duckdb_memory, duckdb_threads)
    if url.startswith(("clickhouse://", "clickhouses://", "chdb://")):
        try:
            from gensight.store.clickhouse import ClickHouseStore
        except ImportError as e:
            raise ValueError(
                f"{url.split(':')[0]} store needs the clickhouse extra:"
                f" pip install 'gensight[clickhouse]' ({e})"
            ) from None
        return ClickHouseStore.from_url(url, retention)
    raise ValueError(
        f"unsupported store URL {url!r}: use duckdb:///path.db,"
        " clickhouse://user:pass@host:8123/db or chdb:///path"
    )


__all__ = ["CallFilters", "Cursor", "Store", "open_store"]
