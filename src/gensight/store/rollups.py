"""Hourly rollups of the calls for long ranges (DuckDB), kept exact by the writer.

Two tables beside ``calls``: ``rollup_calls`` holds the additive measures (calls,
errors, tokens, cost, unpriced calls) per hour and per value of every dimension the
overview filters or groups on (``DIMENSIONS``); ``rollup_latency`` holds mergeable
latency and TTFT histograms per the same key: log-spaced buckets of relative width
``ALPHA`` (DDSketch's mapping), so a percentile read from merged buckets is within
``ALPHA`` of a value at the same rank, and within ``ALPHA`` of the exact (interpolated)
percentile.

The writer keeps them in step inside the transaction that writes a batch: each call of
the batch adds its row with sign +1, and the stored version it replaces (same id, so the
same ``ts``: a merged record keeps the stored one's) is subtracted with sign -1. A
replayed or resent batch therefore adds nothing, and a merge that rewrites a stored call
moves its counts, never doubles them. These signed delta rows are summed by every
reader and folded into one row per key by ``compact`` (the writer's hourly upkeep).
Retention drops whole hours and rebuilds the hour it cuts through; ``rebuild`` (the
``gensight rollups rebuild`` command) recomputes everything from ``calls``.

Reading (``RollupReader``): a range is split into its whole hours, read from the
rollups, and the partial hours at either end, read from ``calls``; both go through the
same buckets, so the totals equal those over raw rows and percentiles are within 1%.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from gensight.store.base import CallFilters
from gensight.store.dialect import utc_naive
from gensight.store.dimensions import GROUP_BY, MODEL

#: Width of one rollup bucket.
BUCKET = timedelta(hours=1)
#: Relative accuracy of the latency/TTFT histograms (just under the 1% promised).
ALPHA = 0.0095
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LN_GAMMA = math.log(GAMMA)
#: Values below this (ms) share one bucket that reads as 0.
MIN_MS = 0.001
ZERO_KEY = -32768

#: The dimensions a call's rollup rows may keep: every ``group_by`` and ``status``.
DIMENSIONS = (*GROUP_BY, "status")
#: The rollups, by name: each keeps its dimensions' values per hour (one table pair per
#: set, so an overview reads only the rows of its own few dimensions; a set of all
#: dimensions would hold about one row per call).
SETS: dict[str, tuple[str, ...]] = {
    "all": (),
    **{d: (d,) for d in DIMENSIONS},
    "status_error_class": ("status", "error_class"),
}
MEASURES = (
    "calls", "errors", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls",
    "no_usage_calls",
)  # fmt: skip
LEVELS = (0.5, 0.95, 0.99)

# a call as a rollup row's columns (the model is the expression group_by=model uses)
DIM_EXPR = ", ".join(MODEL + ' AS "model"' if d == "model" else f'c."{d}"' for d in DIMENSIONS)


def _cols(dims: tuple[str, ...]) -> str:
    return "".join(f'"{d}", ' for d in dims)


def _ddl(name: str, dims: tuple[str, ...]) -> list[str]:
    cols = "".join(f'"{d}" VARCHAR, ' for d in dims)
    return [
        f"CREATE TABLE IF NOT EXISTS rollup_calls_{name} (hour TIMESTAMP, {cols}calls BIGINT,"
        " errors BIGINT, input_tokens BIGINT, output_tokens BIGINT,"
        " cost_usd DECIMAL(38, 12), unpriced_calls BIGINT, no_usage_calls BIGINT)",
        f"CREATE TABLE IF NOT EXISTS rollup_latency_{name} (hour TIMESTAMP, {cols}"
        "metric UTINYINT, key SMALLINT, n BIGINT)",
    ]


DDL = [st for name, dims in SETS.items() for st in _ddl(name, dims)] + [
    "CREATE TABLE IF NOT EXISTS rollup_state (name VARCHAR PRIMARY KEY, value VARCHAR)"
]
TABLES = [f"rollup_{kind}_{name}" for name in SETS for kind in ("calls", "latency")]


def key_sql(col: str) -> str:
    """The histogram bucket of a value (ms)."""
    return (
        f"CASE WHEN {col} < {MIN_MS} THEN {ZERO_KEY}"
        f" ELSE CAST(ceil(ln({col}) / {LN_GAMMA!r}) AS SMALLINT) END"
    )


def key_value(key: int) -> float:
    """The value a bucket stands for: within ``ALPHA`` of every value in it."""
    if key == ZERO_KEY:
        return 0.0
    return 2.0 * GAMMA**key / (1.0 + GAMMA)


def _signed_rows(source: str, sign: int, where: str = "1 = 1") -> str:
    """Calls of ``source`` as signed rows of what the rollups keep."""
    return (
        f"SELECT {sign} AS sign, c.ts, {DIM_EXPR}, c.input_tokens, c.output_tokens,"
        f" c.cost_usd, c.duration_ms, c.ttft_ms FROM {source} c WHERE {where}"
    )


def _insert_from(rows: str, name: str, dims: tuple[str, ...]) -> list[str]:
    """Statements adding the rollup rows of ``rows`` (signed call rows, or a table of
    them) to one set's tables. ``rows`` is read once per statement."""
    hour = "time_bucket(INTERVAL 1 hour, ts)"
    cols = _cols(dims)
    errors = "coalesce(sum(sign) FILTER (WHERE status = 'error'), 0)"
    tokens_in = "coalesce(sum(sign * input_tokens), 0)"
    tokens_out = "coalesce(sum(sign * output_tokens), 0)"
    cost = "coalesce(sum(sign * CAST(cost_usd AS DECIMAL(38, 12))), 0)"
    # as ``sql.measures``: a call without any tokens has no usage, not a missing price
    no_usage = "(input_tokens IS NULL AND output_tokens IS NULL)"
    unpriced = f"coalesce(sum(sign) FILTER (WHERE cost_usd IS NULL AND NOT {no_usage}), 0)"
    no_usage_n = f"coalesce(sum(sign) FILTER (WHERE cost_usd IS NULL AND {no_usage}), 0)"
    measures = ("sum(sign)", errors, tokens_in, tokens_out, cost, unpriced, no_usage_n)
    calls = (
        f"INSERT INTO rollup_calls_{name} SELECT {hour} AS hour, {cols}"
        f"{', '.join(measures)} FROM {rows} r GROUP BY ALL"
        f" HAVING {' OR '.join(f'{m} <> 0' for m in measures)}"
    )
    value = "CASE WHEN metric = 0 THEN duration_ms ELSE ttft_ms END"
    latency = (
        f"INSERT INTO rollup_latency_{name} SELECT hour, {cols}metric, {key_sql('v')} AS key,"
        f" sum(sign) FROM (SELECT {hour} AS hour, {cols}metric, {value} AS v, sign"
        f" FROM (SELECT *, unnest([0, 1]) AS metric FROM {rows} r))"
        " WHERE v IS NOT NULL GROUP BY ALL HAVING sum(sign) <> 0"
    )
    return [calls, latency]


def create(con: Any) -> None:
    """Create the tables; fill them from ``calls`` when they are new (an older store) or
    were built as other tables (derived data: dropped and built again)."""
    con.execute(DDL[-1])
    if not is_built(con):
        for table in TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in DDL:
        con.execute(statement)
    if not is_built(con):
        rebuild(con)


def is_built(con: Any) -> bool:
    row = con.execute("SELECT value FROM rollup_state WHERE name = 'version'").fetchone()
    return bool(row) and row[0] == _VERSION


#: What the stored rollups were built as; a store with others rebuilds them at open.
_VERSION = f"sets={','.join(SETS)};alpha={ALPHA};measures={','.join(MEASURES)}"


def apply_batch(con: Any, batch: str, since: datetime, until: datetime) -> None:
    """Inside the writer's transaction, before ``batch`` (a registered Arrow table of
    calls) replaces stored calls: add its calls, subtract the versions they replace
    (stored between ``since`` and ``until``, the batch's time range)."""
    old = f"c.ts >= ? AND c.ts <= ? AND c.id IN (SELECT id FROM {batch})"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _gensight_delta AS "
        + _signed_rows(batch, 1)
        + " UNION ALL "
        + _signed_rows("calls", -1, old),
        [utc_naive(since), utc_naive(until)],
    )
    try:
        for name, dims in SETS.items():
            for statement in _insert_from("_gensight_delta", name, dims):
                con.execute(statement)
    finally:
        con.execute("DROP TABLE IF EXISTS _gensight_delta")


def rebuild(con: Any, since: datetime | None = None, until: datetime | None = None) -> None:
    """Recompute the rollups of ``[since, until)`` (whole hours; all when unset) from
    ``calls``, in the caller's transaction."""
    w, params = "1 = 1", []
    if since is not None:
        w, params = "hour >= ?", [utc_naive(since)]
    if until is not None:
        w += " AND hour < ?"
        params.append(utc_naive(until))
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE {w}", params)
    raw = w.replace("hour", "c.ts")
    rows = f"({_signed_rows('calls', 1, raw)})"
    for name, dims in SETS.items():
        for statement in _insert_from(rows, name, dims):
            con.execute(statement, params)
    con.execute("INSERT OR REPLACE INTO rollup_state VALUES ('version', ?)", [_VERSION])


def compact(con: Any) -> None:
    """Fold the signed delta rows into one row per key (the same sums, fewer rows),
    ordered by hour (so a range reads only its blocks)."""
    con.execute("BEGIN")
    try:
        for name, dims in SETS.items():
            cols = _cols(dims)
            sums = ", ".join(f"sum({m}) AS {m}" for m in MEASURES)
            nonzero = " OR ".join(f"sum({m}) <> 0" for m in MEASURES)
            for table, select in (
                (f"rollup_calls_{name}", f"{sums} FROM rollup_calls_{name} GROUP BY ALL"
                 f" HAVING {nonzero}"),
                (f"rollup_latency_{name}", f"metric, key, sum(n) AS n FROM rollup_latency_{name}"
                 " GROUP BY ALL HAVING sum(n) <> 0"),
            ):  # fmt: skip
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE _gensight_compact AS SELECT hour, {cols}"
                    f"{select} ORDER BY hour"
                )
                con.execute(f"DELETE FROM {table}")
                con.execute(f"INSERT INTO {table} SELECT * FROM _gensight_compact")
        con.execute("DROP TABLE IF EXISTS _gensight_compact")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def after_retention(con: Any, cutoff: datetime) -> None:
    """Calls before ``cutoff`` were deleted: drop their hours, rebuild the cut one."""
    hour = floor_hour(cutoff)
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE hour < ?", [utc_naive(hour)])
    rebuild(con, hour, hour + BUCKET)


def floor_hour(ts: datetime) -> datetime:
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.replace(minute=0, second=0, microsecond=0)


def ceil_hour(ts: datetime) -> datetime:
    f = floor_hour(ts)
    return f if f == ts else f + BUCKET


def choose(filters: CallFilters, interval: int | None, group_by: str | None) -> str | None:
    """The rollup set that answers these filters, or None: the fewest dimensions holding
    every filtered or grouped one, a range holding at least one whole hour, and series
    buckets made of whole hours."""
    if filters.since is None or filters.until is None:
        return None
    used = set(filters.active()) - {"since", "until"}
    if group_by:
        used.add(group_by)
    if interval is not None and interval % int(BUCKET.total_seconds()):
        return None
    if ceil_hour(filters.since) >= floor_hour(filters.until):
        return None
    fits = [name for name, dims in SETS.items() if used <= set(dims)]
    return min(fits, key=lambda n: len(SETS[n])) if fits else None
