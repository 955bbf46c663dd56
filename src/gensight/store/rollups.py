"""Hourly rollups of the calls for long ranges (DuckDB), kept exact by the writer.

Two tables per set of dimensions (``SETS``) beside ``calls``: ``rollup_calls_<set>``
holds the additive measures (calls, errors, tokens, cost, unpriced and no-usage calls)
per hour and per value of the set's dimensions; ``rollup_latency_<set>`` holds mergeable
latency and TTFT histograms per block of ``BLOCKS[set]`` (an hour for the set of no
dimension, 12 hours for the others) and the same values: log-spaced buckets of relative
width ``ALPHA`` (DDSketch's mapping), so a percentile read from merged buckets is within
``ALPHA`` of a value at the same rank, and within ``ALPHA`` of the exact (interpolated)
percentile.

Why 12-hour blocks: a histogram row is (block, value, metric, bucket), so per hour and
per model there is about one row per call until a cell holds many more calls than the
~400 buckets latencies span. Hourly rows per model were as many as the calls at 1M
(bench/rollups.py: 30d by model read 499 ms from rollups vs 327 ms raw); 12-hour blocks
hold ~12x more calls per cell and answer every series of 12 hours or more (the
dashboard's 30-day range). ``user`` has no set: with hundreds of users its histograms
stay about one row per call at any block, and raw rows answer as fast.

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

#: Width of one rollup bucket of the measures.
BUCKET = timedelta(hours=1)
#: Relative accuracy of the latency/TTFT histograms (just under the 1% promised).
ALPHA = 0.0095
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LN_GAMMA = math.log(GAMMA)
#: Values below this (ms) share one bucket that reads as 0.
MIN_MS = 0.001
ZERO_KEY = -32768

#: The dimensions a call's rollup rows may keep: every ``group_by`` but ``user`` (too
#: many values for its histograms to be fewer rows than the calls) and ``template``
#: (mined ids, as many as the prompts' shapes; filtered by ``template_id``), and
#: ``status``. Overviews filtered or grouped by another dimension read raw rows.
DIMENSIONS = (*(d for d in GROUP_BY if d not in ("user", "template")), "status")
#: The rollups, by name: each keeps its dimensions' values per hour (one table pair per
#: set, so an overview reads only the rows of its own few dimensions; a set of all
#: dimensions would hold about one row per call).
SETS: dict[str, tuple[str, ...]] = {
    "all": (),
    **{d: (d,) for d in DIMENSIONS},
    "status_error_class": ("status", "error_class"),
}
#: Each set's histogram block (seconds): hourly without dimensions, else 12 hours.
BLOCKS: dict[str, int] = {name: 3600 if not dims else 12 * 3600 for name, dims in SETS.items()}
#: An overview reads rollups when their rows (histogram rows, plus the raw calls of the
#: partial blocks at the ends) are at most this share of the raw calls of its range;
#: otherwise the raw rows answer faster (measured by bench/rollups.py).
MAX_ROW_SHARE = 0.5
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
#: The sets that used to be kept (dropped when a store built them opens).
_OLD_TABLES = [f"rollup_{kind}_user" for kind in ("calls", "latency")]


def block_of(table: str) -> int:
    """The time block (seconds) of one rollup table's ``hour`` column."""
    kind, name = table.removeprefix("rollup_").split("_", 1)
    return BLOCKS[name] if kind == "latency" else int(BUCKET.total_seconds())


def _block_sql(col: str, seconds: int) -> str:
    """The start of the epoch-aligned block of ``seconds`` holding ``col``."""
    micros = seconds * 1_000_000
    return f"make_timestamp(epoch_us({col}) // {micros} * {micros})"


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


def _insert_from(rows: str, name: str, dims: tuple[str, ...]) -> list[tuple[str, str]]:
    """(table, statement) adding the rollup rows of ``rows`` (signed call rows, or a
    table of them) to one set's tables. ``rows`` is read once per statement."""
    cols = _cols(dims)
    measures = _SUMS
    calls = (
        f"INSERT INTO rollup_calls_{name} SELECT {_block_sql('ts', 3600)} AS hour, {cols}"
        f"{', '.join(measures)} FROM {rows} r GROUP BY ALL"
        f" HAVING {' OR '.join(f'{m} <> 0' for m in measures)}"
    )
    block = _block_sql("ts", BLOCKS[name])
    value = "CASE WHEN metric = 0 THEN duration_ms ELSE ttft_ms END"
    latency = (
        f"INSERT INTO rollup_latency_{name} SELECT hour, {cols}metric, {key_sql('v')} AS key,"
        f" sum(sign) FROM (SELECT {block} AS hour, {cols}metric, {value} AS v, sign"
        f" FROM (SELECT *, unnest([0, 1]) AS metric FROM {rows} r))"
        " WHERE v IS NOT NULL GROUP BY ALL HAVING sum(sign) <> 0"
    )
    return [(f"rollup_calls_{name}", calls), (f"rollup_latency_{name}", latency)]


#: A rollup row's measures, summed over signed call rows (``r``).
_SUMS = (
    "sum(sign)",
    "coalesce(sum(sign) FILTER (WHERE status = 'error'), 0)",
    "coalesce(sum(sign * input_tokens), 0)",
    "coalesce(sum(sign * output_tokens), 0)",
    "coalesce(sum(sign * CAST(cost_usd AS DECIMAL(38, 12))), 0)",
    # as ``sql.measures``: a call without any tokens has no usage, not a missing price
    "coalesce(sum(sign) FILTER (WHERE cost_usd IS NULL"
    " AND NOT (input_tokens IS NULL AND output_tokens IS NULL)), 0)",
    "coalesce(sum(sign) FILTER (WHERE cost_usd IS NULL"
    " AND (input_tokens IS NULL AND output_tokens IS NULL)), 0)",
)


def _mask(grouped: tuple[str, ...], columns: tuple[str, ...]) -> int:
    """DuckDB's ``GROUPING(columns…)`` of a grouping set: a 1 bit per column not in it."""
    return sum(1 << (len(columns) - 1 - i) for i, c in enumerate(columns) if c not in grouped)


def _batch_statements() -> list[str]:
    """A batch's rollup rows for every set: each kind summed once over the signed rows
    (``_gensight_delta``), one grouping set per rollup set, then copied to the sets'
    tables. Two aggregations and plain copies, not an aggregation per table: a batch's
    upkeep was ~20 statements of ~3 ms each, whatever its size."""
    dims = tuple(DIMENSIONS)
    blocks = sorted(set(BLOCKS.values()))
    q = ", ".join(f'"{d}"' for d in dims)

    def keys(head: str, ds: tuple[str, ...], tail: str = "") -> str:
        return "(" + ", ".join([head, *(f'"{d}"' for d in ds), *([tail] if tail else [])]) + ")"

    sums = ", ".join(f"{m} AS m_{name}" for m, name in zip(_SUMS, MEASURES, strict=True))
    out = [
        "CREATE OR REPLACE TEMP TABLE _gensight_sums AS"
        f" SELECT GROUPING({q}) AS g, hour, {q}, {sums}"
        f" FROM (SELECT {_block_sql('ts', 3600)} AS hour, * FROM _gensight_delta) r"
        f" GROUP BY GROUPING SETS ({', '.join(keys('hour', ds) for ds in SETS.values())})"
        f" HAVING {' OR '.join(f'{m} <> 0' for m in _SUMS)}"
    ]
    bcols = [f"b{b}" for b in blocks]
    block_exprs = "".join(f"{_block_sql('ts', b)} AS b{b}, " for b in blocks)
    hist_sets = ", ".join(keys(f"b{BLOCKS[n]}", ds, "metric, key") for n, ds in SETS.items())
    value = "CASE WHEN metric = 0 THEN duration_ms ELSE ttft_ms END"
    out.append(
        "CREATE OR REPLACE TEMP TABLE _gensight_hist AS"
        f" SELECT GROUPING({q}, {', '.join(bcols)}) AS g, {', '.join(bcols)}, {q}, metric,"
        " key, sum(sign) AS n FROM (SELECT"
        f" {block_exprs}{q}, metric,"
        f" {key_sql('v')} AS key, sign FROM (SELECT *, {value} AS v FROM"
        " (SELECT *, unnest([0, 1]) AS metric FROM _gensight_delta)) WHERE v IS NOT NULL)"
        f" GROUP BY GROUPING SETS ({hist_sets}) HAVING sum(sign) <> 0"
    )
    measure_cols = ", ".join(f"m_{name}" for name in MEASURES)
    for name, ds in SETS.items():
        cols, block = _cols(ds), f"b{BLOCKS[name]}"
        out.append(
            f"INSERT INTO rollup_calls_{name} SELECT hour, {cols}{measure_cols}"
            f" FROM _gensight_sums WHERE g = {_mask(ds, dims)}"
        )
        out.append(
            f"INSERT INTO rollup_latency_{name} SELECT {block}, {cols}metric, key, n"
            f" FROM _gensight_hist WHERE g = {_mask((*ds, block), (*dims, *bcols))}"
        )
    return out


def create(con: Any) -> None:
    """Create the tables; fill them from ``calls`` when they are new (an older store) or
    were built as other tables (derived data: dropped and built again)."""
    con.execute(DDL[-1])
    if not is_built(con):
        for table in (*TABLES, *_OLD_TABLES):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in DDL:
        con.execute(statement)
    if not is_built(con):
        rebuild(con)


def is_built(con: Any) -> bool:
    row = con.execute("SELECT value FROM rollup_state WHERE name = 'version'").fetchone()
    return bool(row) and row[0] == _VERSION


_BATCH = _batch_statements()

#: What the stored rollups were built as; a store with others rebuilds them at open.
_VERSION = (
    f"sets={','.join(f'{n}/{b}' for n, b in BLOCKS.items())};alpha={ALPHA};"
    f"measures={','.join(MEASURES)}"
)


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
        for statement in _BATCH:
            con.execute(statement)
    finally:
        for table in ("_gensight_delta", "_gensight_sums", "_gensight_hist"):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def rebuild(con: Any, since: datetime | None = None, until: datetime | None = None) -> None:
    """Recompute the rollups of ``[since, until)`` (widened to each table's whole blocks;
    all when unset) from ``calls``, in the caller's transaction."""
    for name, dims in SETS.items():
        for table, statement in _insert_from("({rows})", name, dims):
            w, params = "1 = 1", []
            seconds = block_of(table)
            if since is not None:
                w, params = "hour >= ?", [utc_naive(floor_block(since, seconds))]
            if until is not None:
                w += " AND hour < ?"
                params.append(utc_naive(ceil_block(until, seconds)))
            con.execute(f"DELETE FROM {table} WHERE {w}", params)
            rows = _signed_rows("calls", 1, w.replace("hour", "c.ts"))
            con.execute(statement.replace("({rows})", f"({rows})"), params)
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
    """Calls before ``cutoff`` were deleted: drop their blocks, rebuild the cut ones."""
    for table in TABLES:
        hour = floor_block(cutoff, block_of(table))
        con.execute(f"DELETE FROM {table} WHERE hour < ?", [utc_naive(hour)])
    rebuild(con, cutoff, cutoff)


def floor_block(ts: datetime, seconds: int = 3600) -> datetime:
    """The start of the epoch-aligned block of ``seconds`` holding ``ts`` (UTC)."""
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    micros = (ts - epoch) // timedelta(microseconds=1)
    return epoch + timedelta(microseconds=micros - micros % (seconds * 1_000_000))


def ceil_block(ts: datetime, seconds: int = 3600) -> datetime:
    f = floor_block(ts, seconds)
    return (
        f if f == (ts if ts.tzinfo else ts.replace(tzinfo=UTC)) else f + timedelta(seconds=seconds)
    )


def floor_hour(ts: datetime) -> datetime:
    return floor_block(ts, 3600)


def ceil_hour(ts: datetime) -> datetime:
    return ceil_block(ts, 3600)


def choose(filters: CallFilters, interval: int | None, group_by: str | None) -> str | None:
    """The rollup set that can answer these filters, or None: the fewest dimensions
    holding every filtered or grouped one, whose histogram blocks the series buckets are
    made of, with a range holding at least one whole block. (Whether it answers faster
    than the raw rows is the store's call: ``DuckDBStore.rollups_for``.)"""
    if filters.since is None or filters.until is None:
        return None
    used = set(filters.active()) - {"since", "until"}
    if group_by:
        used.add(group_by)
    fits = [
        name
        for name, dims in SETS.items()
        if used <= set(dims)
        and (interval is None or interval % BLOCKS[name] == 0)
        and ceil_block(filters.since, BLOCKS[name]) < floor_block(filters.until, BLOCKS[name])
    ]
    return min(fits, key=lambda n: len(SETS[n])) if fits else None


def pays(con: Any, filters: CallFilters, name: str) -> bool:
    """Whether set ``name`` answers faster than the raw rows: its histogram rows in the
    range's whole blocks plus the raw calls of the partial ones, at most
    ``MAX_ROW_SHARE`` of the range's calls (both counted from the rollups: cheap)."""
    assert filters.since is not None and filters.until is not None
    seconds = BLOCKS[name]
    h0, h1 = ceil_block(filters.since, seconds), floor_block(filters.until, seconds)
    a, b = floor_hour(filters.since), ceil_hour(filters.until)
    (hist,) = con.execute(
        f"SELECT count(*) FROM rollup_latency_{name} WHERE hour >= ? AND hour < ?",
        [utc_naive(h0), utc_naive(h1)],
    ).fetchone()
    (calls, edges) = con.execute(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(calls) FILTER (WHERE hour < ?"
        " OR hour >= ?), 0) FROM rollup_calls_all WHERE hour >= ? AND hour < ?",
        [utc_naive(h0), utc_naive(h1), utc_naive(a), utc_naive(b)],
    ).fetchone()
    return bool(calls) and int(hist) + int(edges) <= MAX_ROW_SHARE * int(calls)
