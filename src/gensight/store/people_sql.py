"""The SQL of conversations and users: one row per session or user with the overview's
measures and when it was first and last seen (shared by both backends, like ``sql``)."""

from __future__ import annotations

from gensight.store.base import CallFilters
from gensight.store.dialect import Dialect, Query
from gensight.store.sql import measures, where

#: The column each list groups by.
PEOPLE_COLUMNS = {"session": "session", "user": '"user"'}


def people_rows(d: Dialect, filters: CallFilters, column: str, limit: int) -> Query:
    """Per session (or user): measures, first and last start, an app and a user of it
    (the least by name, so both stores agree); the most recently active first."""
    col = PEOPLE_COLUMNS[column]
    q = Query(d)
    q.sql = (
        f"SELECT c.{col} AS grp, {measures(d)}, min(c.ts) AS first_ts, max(c.ts) AS last_ts,"
        ' min(c.app) AS app, min(c."user") AS who'
        f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)} AND c.{col} IS NOT NULL"
        f" GROUP BY grp ORDER BY last_ts DESC, grp LIMIT {int(limit) + 1}"
    )
    return q
