"""Stores behind one seam (``gensight.store.base.Store``)."""

from __future__ import annotations

from gensight.store.base import CallFilters, Cursor, Store


def open_store(url: str) -> Store:
    """Open the store a ``--store`` URL names (``duckdb:///path.db``)."""
    if url.startswith("duckdb://"):
        from gensight.store.duckdb import DuckDBStore

        return DuckDBStore.from_url(url)
    raise ValueError(f"unsupported store URL {url!r}: use duckdb:///path.db")


__all__ = ["CallFilters", "Cursor", "Store", "open_store"]
