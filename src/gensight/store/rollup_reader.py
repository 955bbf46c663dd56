"""The overview's rows from the rollups (``gensight.store.rollups``).

``RollupReader`` answers ``aggregate``, ``group_rows`` and ``series_rows`` with rows of
the shape ``SQLStore`` returns from raw calls (the same measure names, ``lat_q`` and
``ttft_q`` percentile lists), so ``gensight.query.analysis`` shapes both alike.

A range is read as its whole blocks from the rollups plus its partial blocks at either
end from ``calls``, unioned before grouping (the measures by hour, the histograms by
their set's block): sums are the raw sums, percentiles come from the merged histograms
(within ``rollups.ALPHA`` of the exact ones, interpolated as DuckDB's ``quantile_cont``
interpolates).

One overview is two statements, whatever it shows: the measures and the histograms,
each grouped once per series bucket and group; the per-group and overall answers are
sums of those rows (Python for the few measure rows, numpy for the histograms: sorted by
partition and bucket, running counts, ranks found with ``searchsorted``). A SQL window
over every histogram row, or ``GROUPING SETS``, took 2-5x longer (bench/rollups.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gensight.model import vocab
from gensight.store import rollups
from gensight.store.base import CallFilters
from gensight.store.dialect import DuckDBDialect, Query
from gensight.store.dimensions import MODEL

if TYPE_CHECKING:
    import numpy as np

_D = DuckDBDialect()
_EPOCH = datetime(1970, 1, 1)
_NO_USAGE = "(c.input_tokens IS NULL AND c.output_tokens IS NULL)"
#: The levels of an answer: per series bucket and group, per group, overall.
_SERIES, _GROUPS, _TOTAL = 0, 1, 2


class RollupReader:
    """Overview rows over one rollup set (``rollups.SETS``) for one store (its ``_rows``
    and ``_arrow`` run the statements); each answer is read once and kept."""

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name
        self.dims = rollups.SETS[name]
        self._done: dict[tuple[Any, ...], dict[int, list[dict[str, Any]]]] = {}
        self._last: tuple[int | None, str | None] = (None, None)

    def prepare(self, interval: int | None, group_by: str | None) -> RollupReader:
        """Read the series of ``interval`` by ``group_by`` for the totals and groups too."""
        self._last = (interval, group_by)
        return self

    def aggregate(self, filters: CallFilters) -> dict[str, Any]:
        rows = self._levels(filters, *self._last)[_TOTAL]
        return rows[0] if rows else {}

    def group_rows(self, filters: CallFilters, group_by: str) -> list[dict[str, Any]]:
        interval = self._last[0] if self._last[1] == group_by else None
        rows = list(self._levels(filters, interval, group_by)[_GROUPS])
        rows.sort(key=lambda r: (-int(r["calls"] or 0), r["grp"] is None, str(r["grp"])))
        return rows

    def series_rows(
        self, filters: CallFilters, interval: int, group_by: str | None
    ) -> list[dict[str, Any]]:
        rows = list(self._levels(filters, interval, group_by)[_SERIES])
        rows.sort(key=lambda r: r["bucket"])
        return rows

    # ------------------------------------------------------------------------------
    def _levels(
        self, filters: CallFilters, interval: int | None, group_by: str | None
    ) -> dict[int, list[dict[str, Any]]]:
        key = (filters, interval, group_by)
        if key not in self._done:
            self._done[key] = self._read(filters, interval, group_by)
        return self._done[key]

    def _read(
        self, filters: CallFilters, interval: int | None, group_by: str | None
    ) -> dict[int, list[dict[str, Any]]]:
        rows = self.store._rows(_measures(self, filters, interval, group_by))
        by_key = _sum_levels(rows)
        table = self.store._arrow(_histograms(self, filters, interval, group_by))
        for (lvl, bucket, grp, metric), values in _percentiles(table):
            row = by_key.get((lvl, bucket, grp))
            if row is not None:
                row["lat_q" if metric == 0 else "ttft_q"] = values if metric == 0 else values[:2]
        out: dict[int, list[dict[str, Any]]] = {_SERIES: [], _GROUPS: [], _TOTAL: []}
        for (lvl, _, _), r in by_key.items():
            if r["calls"]:
                r["cost_usd"] = float(r["cost_usd"])  # the exact Decimal sum, once
                out[lvl].append(r)
        return out


def _sum_levels(rows: list[dict[str, Any]]) -> dict[tuple[int, Any, Any], dict[str, Any]]:
    """Per-bucket-and-group measure rows summed per group and overall, by (level,
    bucket, group); ``lat_q``/``ttft_q`` None until the histograms fill them."""
    out: dict[tuple[int, Any, Any], dict[str, Any]] = {}
    for r in rows:
        for lvl, bucket, grp in (
            (_SERIES, r["bucket"], r["grp"]),
            (_GROUPS, None, r["grp"]),
            (_TOTAL, None, None),
        ):
            row = out.get((lvl, bucket, grp))
            if row is None:
                row = out[(lvl, bucket, grp)] = {"bucket": bucket, "grp": grp,
                                                 "lat_q": None, "ttft_q": None,
                                                 **dict.fromkeys(rollups.MEASURES, 0)}  # fmt: skip
            for m in rollups.MEASURES:
                row[m] += r[m] or 0
    return out


def _percentiles(table: Any) -> list[tuple[tuple[int, Any, Any, int], list[float]]]:
    """Per (level, bucket, group, metric) of the histogram rows in ``table`` (bucket,
    grp, metric, key, n; at most one row per key of a bucket and group): each of
    ``rollups.LEVELS``, interpolated between the buckets of its two neighbouring ranks
    (merged per group and overall here, with numpy)."""
    if table.num_rows == 0:
        return []
    import numpy as np  # with the first histograms read (a server that only ingests never)

    bucket_col = table.column("bucket").cast("int64").fill_null(0).to_numpy()
    buckets, b = np.unique(bucket_col, return_inverse=True)
    grp_col = table.column("grp").combine_chunks().dictionary_encode()
    names = grp_col.dictionary.to_pylist() + [None]
    g = grp_col.indices.fill_null(len(names) - 1).to_numpy().astype(np.int64)
    metric = table.column("metric").to_numpy().astype(np.int64)
    key = table.column("key").to_numpy().astype(np.int64)
    n = table.column("n").to_numpy().astype(np.int64)
    has_bucket = table.column("bucket").null_count == 0
    # each key's value from a table of the keys' range (the zero bucket apart)
    real = key[key != rollups.ZERO_KEY]
    low = int(real.min()) if len(real) else 0
    table_v = _key_values(np.arange(low, int(real.max()) + 1 if len(real) else 1))
    key_value = np.where(key == rollups.ZERO_KEY, 0.0, table_v[np.maximum(key - low, 0)])
    out = []
    for lvl, bi, gi in ((_SERIES, b, g), (_GROUPS, 0 * b, g), (_TOTAL, 0 * b, 0 * g)):
        part = (bi * len(names) + gi) * 2 + metric
        # sorted by partition, then key (one int64 sort: np.lexsort is ~6x slower)
        order = np.argsort(part * 65536 + (key - rollups.ZERO_KEY))
        part_s, cum = part[order], np.cumsum(n[order])
        value = key_value[order]
        start = np.flatnonzero(np.r_[True, part_s[1:] != part_s[:-1]])
        end = np.r_[start[1:], len(part_s)]
        base = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0)
        total = cum[end - 1] - base
        levels = np.empty((len(start), len(rollups.LEVELS)))
        for i, q in enumerate(rollups.LEVELS):
            rank = q * (total - 1)
            lo_rank, hi_rank = np.floor(rank), np.ceil(rank)
            # the first bucket whose running count passes the rank
            lo = np.searchsorted(cum, base + lo_rank, side="right")
            hi = np.searchsorted(cum, base + hi_rank, side="right")
            levels[:, i] = value[lo] + (rank - lo_rank) * (value[hi] - value[lo])
        p = part_s[start]
        for j, values in enumerate(levels.tolist()):
            bj, rest = divmod(int(p[j]), 2 * len(names))
            gj, mj = divmod(rest, 2)
            bucket = _bucket(int(buckets[bj])) if lvl == _SERIES and has_bucket else None
            grp = names[gj] if lvl != _TOTAL else None
            out.append(((lvl, bucket, grp, mj), values))
    return out


def _bucket(micros: int) -> datetime:
    """A series bucket as DuckDB returns a TIMESTAMP (naive UTC)."""
    return _EPOCH + timedelta(microseconds=micros)


def _key_values(keys: np.ndarray) -> np.ndarray:
    """``rollups.key_value`` of every key."""
    import numpy as np

    v = 2.0 * np.power(rollups.GAMMA, keys.astype(np.float64)) / (1.0 + rollups.GAMMA)
    return np.where(keys == rollups.ZERO_KEY, 0.0, v)


def _parts(q: Query, filters: CallFilters, rollup_table: str, raw: list[str], seconds: int) -> str:
    """The rollup rows of the whole blocks of ``seconds`` UNION ALL the raw rows of the
    partial ones (parameters bound in the order they appear)."""
    assert filters.since is not None and filters.until is not None
    since, until = filters.since, filters.until
    h0, h1 = rollups.ceil_block(since, seconds), rollups.floor_block(until, seconds)
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
    bucket = _D.bucket("u.ts", interval) if interval else "CAST(NULL AS TIMESTAMP)"
    grp = f'u."{group_by}"' if group_by else "CAST(NULL AS VARCHAR)"
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
    union = _parts(q, filters, rollup, [raw], 3600)
    bucket, grp, w = _outer(q, filters, interval, group_by)
    q.sql = (
        "SELECT bucket, grp, CAST(sum(calls) AS BIGINT) AS calls,"
        " CAST(sum(errors) AS BIGINT) AS errors,"
        " CAST(sum(input_tokens) AS BIGINT) AS input_tokens,"
        " CAST(sum(output_tokens) AS BIGINT) AS output_tokens,"
        " sum(cost_usd) AS cost_usd,"  # exact decimals, summed exactly below
        " CAST(sum(unpriced_calls) AS BIGINT) AS unpriced_calls,"
        " CAST(sum(no_usage_calls) AS BIGINT) AS no_usage_calls"
        f" FROM (SELECT {bucket} AS bucket, {grp} AS grp, * FROM ({union}) u WHERE {w})"
        " GROUP BY bucket, grp"
    )
    return q


def _histograms(
    r: RollupReader, filters: CallFilters, interval: int | None, group_by: str | None
) -> Query:
    """Per level, bucket, group and metric (0 latency, 1 TTFT): the merged histogram as
    ``keys`` (ascending) and ``ns`` lists."""
    q = Query(_D)
    cols, raw_cols = _dims(r)
    rollup = f"SELECT hour AS ts, {cols}metric, key, n FROM rollup_latency_{r.name} WHERE {{whole}}"
    raw = [
        f"SELECT c.ts, {raw_cols}{metric} AS metric, {rollups.key_sql(col)} AS key,"
        f" 1 AS n FROM calls c WHERE {{edges}} AND {col} IS NOT NULL"
        for metric, col in ((0, "c.duration_ms"), (1, "c.ttft_ms"))
    ]
    union = _parts(q, filters, rollup, raw, rollups.BLOCKS[r.name])
    bucket, grp, w = _outer(q, filters, interval, group_by)
    q.sql = (
        f"SELECT {bucket} AS bucket, {grp} AS grp, metric, key, CAST(sum(n) AS BIGINT) AS n"
        f" FROM ({union}) u WHERE {w} GROUP BY ALL HAVING sum(n) > 0"
    )
    return q


def count(store: Any, filters: CallFilters) -> int | None:
    """How many calls match ``filters``: the hourly measure rows of the fewest dimensions
    holding every filter, plus the raw calls of the partial hours at either end of the
    range (an open end has none); None when no rollup set holds the filters or the range
    holds no whole hour.

    The call log's ``total``: at 10M calls a raw count by app took ~40 ms a page, a sum
    over the app set's hourly rows (about one per app and hour) a few."""
    used = {k: v for k, v in filters.active().items() if k not in ("since", "until")}
    held, measure = used, "calls"
    fits = [n for n, dims in rollups.SETS.items() if set(held) <= set(dims)]
    if not fits and used.get("status") in vocab.STATUSES:
        # every set counts its errors: a status with other dimensions is one of two sums
        held = {k: v for k, v in used.items() if k != "status"}
        measure = "errors" if used["status"] == "error" else "calls - errors"
        fits = [n for n, dims in rollups.SETS.items() if set(held) <= set(dims)]
    h0 = rollups.ceil_hour(filters.since) if filters.since is not None else None
    h1 = rollups.floor_hour(filters.until) if filters.until is not None else None
    if not fits or (h0 is not None and h1 is not None and h0 >= h1):
        return None
    name = min(fits, key=lambda n: len(rollups.SETS[n]))
    q = Query(_D)  # placeholders are bound in the order they appear
    whole = ["1 = 1"]
    if h0 is not None:
        whole.append(f"hour >= {_D.param_ts(q, h0)}")
    if h1 is not None:
        whole.append(f"hour < {_D.param_ts(q, h1)}")
    whole += [f'"{d}" = {_D.param(q, v)}' for d, v in held.items()]
    edges = []
    if filters.since is not None and h0 is not None:
        edges.append(f"(c.ts >= {_D.param_ts(q, filters.since)} AND c.ts < {_D.param_ts(q, h0)})")
    if filters.until is not None and h1 is not None:
        edges.append(f"(c.ts >= {_D.param_ts(q, h1)} AND c.ts < {_D.param_ts(q, filters.until)})")
    raw = "0"
    if edges:
        cols = {d: MODEL if d == "model" else f'c."{d}"' for d in used}
        dims = "".join(f" AND {cols[d]} = {_D.param(q, v)}" for d, v in used.items())
        raw = f"(SELECT count(*) FROM calls c WHERE ({' OR '.join(edges)}){dims})"
    q.sql = (
        f"SELECT coalesce((SELECT sum({measure}) FROM rollup_calls_{name}"
        f" WHERE {' AND '.join(whole)}), 0) + {raw} AS n"
    )
    (row,) = store._rows(q)
    return int(row["n"])
