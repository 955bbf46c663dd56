"""The overview's rows from the hourly rollups (``gensight.store.rollups``).

``RollupReader`` answers ``aggregate``, ``group_rows`` and ``series_rows`` with rows of
the shape ``SQLStore`` returns from raw calls (the same measure names, ``lat_q`` and
``ttft_q`` percentile lists), so ``gensight.query.analysis`` shapes both alike. A range
is read as its whole hours from the rollups plus its partial hours at either end from
``calls``, unioned before grouping: sums are the raw sums, percentiles come from the
merged histograms (within ``rollups.ALPHA`` of the exact ones, interpolated as DuckDB's
``quantile_cont`` interpolates).
"""

from __future__ import annotations

from typing import Any

from gensight.store import rollups
from gensight.store.base import CallFilters
from gensight.store.dialect import DuckDBDialect, Query
from gensight.store.dimensions import MODEL

_D = DuckDBDialect()
_NO_USAGE = "(c.input_tokens IS NULL AND c.output_tokens IS NULL)"


class RollupReader:
    """Overview rows over one rollup set (``rollups.SETS``) for one store (its ``_rows``
    runs the statements)."""

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name
        self.dims = rollups.SETS[name]

    def aggregate(self, filters: CallFilters) -> dict[str, Any]:
        rows = self._rows(filters, None, None)
        return rows[0] if rows else {}

    def group_rows(self, filters: CallFilters, group_by: str) -> list[dict[str, Any]]:
        rows = self._rows(filters, None, group_by)
        rows.sort(key=lambda r: (-int(r["calls"] or 0), r["grp"] is None, str(r["grp"])))
        return rows

    def series_rows(
        self, filters: CallFilters, interval: int, group_by: str | None
    ) -> list[dict[str, Any]]:
        rows = self._rows(filters, interval, group_by)
        rows.sort(key=lambda r: r["bucket"])
        return rows

    # ------------------------------------------------------------------------------
    def _rows(
        self, filters: CallFilters, interval: int | None, group_by: str | None
    ) -> list[dict[str, Any]]:
        measures = self.store._rows(_measures(self, filters, interval, group_by))
        levels = self.store._rows(_levels(self, filters, interval, group_by))
        by_key: dict[tuple[Any, Any], dict[str, Any]] = {}
        for r in measures:
            r["lat_q"] = r["ttft_q"] = None
            by_key[(r["bucket"], r["grp"])] = r
        for r in levels:
            row = by_key.get((r["bucket"], r["grp"]))
            if row is None:
                continue
            values = [_level(r, i, q) for i, q in enumerate(rollups.LEVELS)]
            row["lat_q" if r["metric"] == 0 else "ttft_q"] = (
                values if r["metric"] == 0 else values[:2]
            )
        return [r for r in by_key.values() if r["calls"]]


def _level(r: dict[str, Any], i: int, q: float) -> float:
    """Percentile ``q``, interpolated between the buckets of its two neighbouring ranks."""
    rank = q * (int(r["total"]) - 1)
    lo, hi = rollups.key_value(r[f"lo{i}"]), rollups.key_value(r[f"hi{i}"])
    return lo + (rank - int(rank)) * (hi - lo)


def _parts(q: Query, filters: CallFilters, rollup_table: str, raw: list[str]) -> str:
    """The rollup rows of the whole hours UNION ALL the raw rows of the partial ones
    (parameters bound in the order they appear)."""
    assert filters.since is not None and filters.until is not None
    since, until = filters.since, filters.until
    h0, h1 = rollups.ceil_hour(since), rollups.floor_hour(until)
    parts = [
        rollup_table.format(whole=f"hour >= {_D.param_ts(q, h0)} AND hour < {_D.param_ts(q, h1)}")
    ]
    for part in raw:
        edges = (
            f"((c.ts >= {_D.param_ts(q, since)} AND c.ts < {_D.param_ts(q, h0)})"
            f" OR (c.ts >= {_D.param_ts(q, h1)} AND c.ts < {_D.param_ts(q, until)}))"
        )
        parts.append(part.format(edges=edges))
    return " UNION ALL ".join(parts)


def _outer(q: Query, filters: CallFilters, interval: int | None, group_by: str | None) -> tuple:
    bucket = _D.bucket("u.ts", interval) if interval else "NULL"
    grp = f'u."{group_by}"' if group_by else "NULL"
    clauses = [
        f'u."{name}" = {_D.param(q, value)}'
        for name, value in filters.active().items()
        if name not in ("since", "until")
    ]
    return bucket, grp, " AND ".join(clauses) or "1 = 1"


def _dims(r: RollupReader) -> tuple[str, str]:
    """The set's columns as read from a rollup table, and from raw calls."""
    cols = "".join(f'"{d}", ' for d in r.dims)
    raw = "".join(f'{MODEL} AS "model", ' if d == "model" else f'c."{d}", ' for d in r.dims)
    return cols, raw


def _measures(
    r: RollupReader, filters: CallFilters, interval: int | None, group_by: str | None
) -> Query:
    q = Query(_D)
    cols, raw_cols = _dims(r)
    rollup = (
        f"SELECT hour AS ts, {cols}calls, errors, input_tokens, output_tokens, cost_usd,"
        f" unpriced_calls, no_usage_calls FROM rollup_calls_{r.name} WHERE {{whole}}"
    )
    raw = (
        f"SELECT c.ts, {raw_cols}1, CAST(c.status = 'error' AS BIGINT),"
        " c.input_tokens, c.output_tokens, CAST(c.cost_usd AS DECIMAL(38, 12)),"
        f" CAST(c.cost_usd IS NULL AND NOT {_NO_USAGE} AS BIGINT),"
        f" CAST(c.cost_usd IS NULL AND {_NO_USAGE} AS BIGINT) FROM calls c WHERE {{edges}}"
    )
    union = _parts(q, filters, rollup, [raw])
    bucket, grp, w = _outer(q, filters, interval, group_by)
    q.sql = (
        f"SELECT {bucket} AS bucket, {grp} AS grp, CAST(sum(calls) AS BIGINT) AS calls,"
        " CAST(sum(errors) AS BIGINT) AS errors,"
        " CAST(sum(input_tokens) AS BIGINT) AS input_tokens,"
        " CAST(sum(output_tokens) AS BIGINT) AS output_tokens,"
        " CAST(sum(cost_usd) AS DOUBLE) AS cost_usd,"
        " CAST(sum(unpriced_calls) AS BIGINT) AS unpriced_calls,"
        " CAST(sum(no_usage_calls) AS BIGINT) AS no_usage_calls"
        f" FROM ({union}) u WHERE {w} GROUP BY ALL"
    )
    return q


def _levels(
    r: RollupReader, filters: CallFilters, interval: int | None, group_by: str | None
) -> Query:
    """Per bucket, group and metric (0 latency, 1 TTFT): the count and, per level, the
    histogram keys holding the ranks either side of it."""
    q = Query(_D)
    cols, raw_cols = _dims(r)
    rollup = f"SELECT hour AS ts, {cols}metric, key, n FROM rollup_latency_{r.name} WHERE {{whole}}"
    raw = [
        f"SELECT c.ts, {raw_cols}{metric} AS metric, {rollups.key_sql(col)} AS key,"
        f" 1 AS n FROM calls c WHERE {{edges}} AND {col} IS NOT NULL"
        for metric, col in ((0, "c.duration_ms"), (1, "c.ttft_ms"))
    ]
    union = _parts(q, filters, rollup, raw)
    bucket, grp, w = _outer(q, filters, interval, group_by)
    picks = []
    for i, level in enumerate(rollups.LEVELS):
        picks.append(f"min(key) FILTER (WHERE cum > floor({level} * (total - 1))) AS lo{i}")
        picks.append(f"min(key) FILTER (WHERE cum > ceil({level} * (total - 1))) AS hi{i}")
    q.sql = (
        f"WITH h AS (SELECT {bucket} AS bucket, {grp} AS grp, metric, key, sum(n) AS n"
        f" FROM ({union}) u WHERE {w} GROUP BY ALL HAVING sum(n) > 0),"
        " c AS (SELECT *, sum(n) OVER (PARTITION BY bucket, grp, metric ORDER BY key"
        " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum,"
        " sum(n) OVER (PARTITION BY bucket, grp, metric) AS total FROM h)"
        f" SELECT bucket, grp, metric, any_value(total) AS total, {', '.join(picks)}"
        " FROM c GROUP BY bucket, grp, metric"
    )
    return q
