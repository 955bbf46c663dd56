"""How each backend spells the few things that differ, and a statement with its parameters.

The statements in ``gensight.store.sql`` are written once against a ``Dialect``; DuckDB
and ClickHouse each supply one. Values always travel as bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utc_naive(ts: datetime) -> datetime:
    """An aware time as naive UTC (how both stores keep times)."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


class Dialect:
    """How one backend spells the few things that differ. Subclasses fill these in."""

    name = "?"
    #: Calls looked up per ``stored_calls`` query (``in_strings`` lists' length).
    lookup_chunk = 1000

    def table(self, name: str, alias: str) -> str:
        """A record table as a FROM item: one row per natural key."""
        return f"{name} {alias}"

    def param(self, q: Query, value: Any) -> str:
        """Bind ``value`` and return its placeholder."""
        raise NotImplementedError

    def param_ts(self, q: Query, value: datetime) -> str:
        """Bind a time (naive UTC, microsecond precision)."""
        raise NotImplementedError

    def in_strings(self, q: Query, expr: str, values: list[str]) -> str:
        """``expr IN`` a bound list of strings, as one parameter the engine hashes (a
        placeholder per value makes DuckDB compare each row with each value)."""
        raise NotImplementedError

    def countif(self, cond: str) -> str:
        raise NotImplementedError

    def money_sum(self, expr: str) -> str:
        """The sum of dollar amounts, exact to 1e-12 USD and the same in any order of
        rows (a float sum depends on the order a parallel scan adds them in), as a float."""
        raise NotImplementedError

    def quantile(self, expr: str, level: float) -> str:
        """Exact, linearly interpolated percentile (the same numbers on every backend)."""
        raise NotImplementedError

    def quantiles(self, expr: str, levels: tuple[float, ...]) -> str:
        """Several exact percentiles as one list, from one sorted copy of the values
        (a third of the memory of separate aggregates, which matters over 30 days)."""
        raise NotImplementedError

    def bucket(self, col: str, seconds: int) -> str:
        """Start of the epoch-aligned bucket of ``seconds`` holding ``col``."""
        raise NotImplementedError

    def contains_ci(self, expr: str, needle_placeholder: str) -> str:
        """Case-insensitive substring test (the needle is bound lowercased)."""
        raise NotImplementedError

    def json_str(self, col: str, key: str) -> str:
        """A string member of a JSON object column, NULL when absent."""
        raise NotImplementedError

    def concat_strict(self, a: str, b: str) -> str:
        """``a`` followed by ``b``, NULL when either is NULL."""
        raise NotImplementedError

    def to_text(self, expr: str) -> str:
        """``expr`` as text, NULL staying NULL."""
        raise NotImplementedError

    def slope(self, y: str, x: str) -> str:
        raise NotImplementedError

    def intercept(self, y: str, x: str) -> str:
        raise NotImplementedError

    def r2(self, y: str, x: str) -> str:
        raise NotImplementedError

    def exists_content(self, alias: str, needle: str) -> str:
        """Whether a content event of the call contains the needle."""
        return (
            f"EXISTS (SELECT 1 FROM {self.table('content_events', 'e')}"
            f" WHERE e.trace_id = {alias}.trace_id AND e.span_id = {alias}.span_id"
            f" AND {self.contains_ci('e.message', needle)})"
        )


@dataclass
class Query:
    """SQL text plus its bound parameters, built through a dialect."""

    dialect: Dialect
    sql: str = ""
    params: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = self.dialect.new_params()  # type: ignore[attr-defined]


class DuckDBDialect(Dialect):
    """DuckDB: ``?`` parameters, FILTER clauses, ``quantile_cont``."""

    name = "duckdb"
    lookup_chunk = 10_000  # one list parameter, whatever its length

    def new_params(self) -> list[Any]:
        return []

    def param(self, q: Query, value: Any) -> str:
        q.params.append(value)
        return "?"

    def param_ts(self, q: Query, value: datetime) -> str:
        return self.param(q, utc_naive(value))

    def in_strings(self, q: Query, expr: str, values: list[str]) -> str:
        # measured on 100k rows, 2 x 1,000 values: 16 ms, against 430 ms with ? per value
        return f"{expr} IN (SELECT unnest({self.param(q, list(values))}::VARCHAR[]))"

    def countif(self, cond: str) -> str:
        return f"count(*) FILTER (WHERE {cond})"

    def money_sum(self, expr: str) -> str:
        return f"CAST(sum(CAST({expr} AS DECIMAL(38, 12))) AS DOUBLE)"

    def quantile(self, expr: str, level: float) -> str:
        return f"quantile_cont({expr}, {level})"

    def quantiles(self, expr: str, levels: tuple[float, ...]) -> str:
        return f"quantile_cont({expr}, {list(levels)})"

    def bucket(self, col: str, seconds: int) -> str:
        micros = seconds * 1_000_000
        return f"make_timestamp(epoch_us({col}) // {micros} * {micros})"

    def contains_ci(self, expr: str, needle_placeholder: str) -> str:
        return f"contains(lower({expr}), {needle_placeholder})"

    def json_str(self, col: str, key: str) -> str:
        return f"json_extract_string({col}, '$.\"{key}\"')"

    def concat_strict(self, a: str, b: str) -> str:
        return f"({a} || {b})"

    def to_text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def slope(self, y: str, x: str) -> str:
        return f"regr_slope({y}, {x})"

    def intercept(self, y: str, x: str) -> str:
        return f"regr_intercept({y}, {x})"

    def r2(self, y: str, x: str) -> str:
        return f"regr_r2({y}, {x})"


class ClickHouseDialect(Dialect):
    """ClickHouse (server or chDB): ``%(pN)s`` parameters bound by clickhouse-connect."""

    name = "clickhouse"
    lookup_chunk = 1000  # values are inlined into the SQL text, under max_query_size

    def table(self, name: str, alias: str) -> str:
        """FINAL: a ReplacingMergeTree may still hold a key's older rows until it merges
        (measured against the argMax alternative: see the store module's docstring)."""
        return f"{name} AS {alias} FINAL"

    def new_params(self) -> dict[str, Any]:
        return {}

    def param(self, q: Query, value: Any) -> str:
        key = f"p{len(q.params)}"
        q.params[key] = value
        return f"%({key})s"

    def param_ts(self, q: Query, value: datetime) -> str:
        text = utc_naive(value).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"toDateTime64({self.param(q, text)}, 6, 'UTC')"

    def in_strings(self, q: Query, expr: str, values: list[str]) -> str:
        return f"{expr} IN {self.param(q, tuple(values))}"  # a tuple binds as a set

    def countif(self, cond: str) -> str:
        return f"countIf({cond})"

    def money_sum(self, expr: str) -> str:
        # toDecimal128 truncates (1.2149999999999999e-05 -> 0.000012149999): half a unit
        # first rounds as DuckDB's CAST does
        half = f"if({expr} < 0, -5e-13, 5e-13)"
        return f"toFloat64(sum(toDecimal128({expr} + {half}, 12)))"

    def quantile(self, expr: str, level: float) -> str:
        return f"quantileExactInclusive({level})({expr})"

    def quantiles(self, expr: str, levels: tuple[float, ...]) -> str:
        return f"quantilesExactInclusive({', '.join(map(str, levels))})({expr})"

    def bucket(self, col: str, seconds: int) -> str:
        micros = seconds * 1_000_000
        return (
            f"fromUnixTimestamp64Micro(intDiv(toUnixTimestamp64Micro({col}), {micros})"
            f" * {micros}, 'UTC')"
        )

    def contains_ci(self, expr: str, needle_placeholder: str) -> str:
        return f"positionCaseInsensitiveUTF8(ifNull({expr}, ''), {needle_placeholder}) > 0"

    def json_str(self, col: str, key: str) -> str:
        return f"nullIf(JSONExtractString({col}, '{key}'), '')"

    def concat_strict(self, a: str, b: str) -> str:
        return f"concat({a}, {b})"

    def to_text(self, expr: str) -> str:
        return f"CAST({expr} AS Nullable(String))"

    def slope(self, y: str, x: str) -> str:
        return f"tupleElement(simpleLinearRegression({x}, {y}), 1)"

    def intercept(self, y: str, x: str) -> str:
        return f"tupleElement(simpleLinearRegression({x}, {y}), 2)"

    def r2(self, y: str, x: str) -> str:
        return f"pow(corr({x}, {y}), 2)"
