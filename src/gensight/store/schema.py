"""The stored tables, defined once: the Arrow batch schema and both stores' DDL come from here.

Each record table lists its columns (name, logical type, nullability, whether ClickHouse
should dictionary-encode it) and its natural key: a call by ``id``, a span by
``(trace_id, span_id)``, a content event by ``(trace_id, span_id, ts, seq, kind)``. The key
is DuckDB's primary key and ClickHouse's ReplacingMergeTree sorting key, which is what
makes every write idempotent: a batch stored twice (a lost acknowledgement, a journal
replay, an exporter's resend) leaves one row per key.

A fresh store is created from ``duckdb_ddl``/``clickhouse_ddl``; an existing one reaches
the same schema through the frozen migrations in ``gensight.store.migrations`` (a test
checks that both roads end at the same tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gensight.model.records import CALL_FIELD_NAMES, SCORE_FIELD_NAMES, SPAN_FIELD_NAMES

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Column:
    """One column: ``type`` is string, timestamp, float, bool, int, int32 or strings."""

    name: str
    type: str
    nullable: bool = True
    low_cardinality: bool = False


@dataclass(frozen=True)
class Table:
    """A record table: columns, natural key, and how ClickHouse lays it out."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    #: ClickHouse sorting key; rows with equal sorting keys are one row after FINAL, so it
    #: must be a function of ``key`` alone (plus values a merge never changes, like ``ts``)
    order_by: str
    #: ClickHouse data-skipping indexes (name, expression, type)
    skip_indexes: tuple[tuple[str, str, str], ...] = ()
    #: DuckDB secondary indexes (name, column)
    duckdb_indexes: tuple[tuple[str, str], ...] = ()
    #: ClickHouse version column: a merged record written later replaces the stored one
    versioned: bool = False

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]


def _c(name: str, type_: str = "string", nullable: bool = True, lc: bool = False) -> Column:
    return Column(name, type_, nullable, lc)


CALLS = Table(
    "calls",
    (
        _c("id", nullable=False),
        _c("trace_id", nullable=False),
        _c("span_id", nullable=False),
        _c("ts", "timestamp", nullable=False),
        _c("duration_ms", "float", nullable=False),
        _c("source", nullable=False, lc=True),
        _c("producer", lc=True),
        _c("parent_span_id"),
        _c("ttft_ms", "float"),
        _c("app", lc=True),
        _c("environment", lc=True),
        _c("provider", lc=True),
        _c("operation", lc=True),
        _c("request_model", lc=True),
        _c("response_model", lc=True),
        _c("response_id"),
        _c("stream", "bool", nullable=False),
        _c("input_tokens", "int"),
        _c("output_tokens", "int"),
        _c("cache_read_tokens", "int"),
        _c("cache_write_tokens", "int"),
        _c("reasoning_tokens", "int"),
        _c("tokens_estimated", "bool", nullable=False),
        _c("cost_usd", "float"),
        _c("cost_source", nullable=False, lc=True),
        _c("reported_cost_usd", "float"),
        _c("status", nullable=False, lc=True),
        _c("error_class", lc=True),
        _c("http_status", "int32"),
        _c("error_message"),
        _c("finish_reasons", "strings", nullable=False),
        _c("temperature", "float"),
        _c("top_p", "float"),
        _c("max_tokens", "int"),
        _c("frequency_penalty", "float"),
        _c("presence_penalty", "float"),
        _c("seed", "int"),
        _c("user"),
        _c("session"),
        _c("tags", "strings", nullable=False),
        _c("server_address", lc=True),
        _c("attempts", "int32", nullable=False),
        _c("input_messages"),
        _c("output_messages"),
        _c("system_instructions"),
        _c("attributes"),
        _c("upstream_request_id"),
        _c("deployment", lc=True),
        _c("api_version", lc=True),
        _c("request_hash"),
        _c("prefix_hash"),
        _c("prefix_tokens", "int"),
        _c("template_id", lc=True),
    ),
    key=("id",),
    # a merged record keeps the stored one's id and ts, so its sorting key is the same
    order_by="toStartOfHour(ts), id",
    skip_indexes=(
        ("idx_trace", "trace_id", "bloom_filter"),
        ("idx_id", "id", "bloom_filter"),
    ),
    versioned=True,
)

SPANS = Table(
    "spans",
    (
        _c("trace_id", nullable=False),
        _c("span_id", nullable=False),
        _c("parent_span_id"),
        _c("name", nullable=False),
        _c("kind", nullable=False, lc=True),
        _c("ts", "timestamp", nullable=False),
        _c("duration_ms", "float", nullable=False),
        _c("status", nullable=False, lc=True),
        _c("status_message"),
        _c("app", lc=True),
        _c("call_id"),
        _c("attributes"),
        _c("events"),
    ),
    key=("trace_id", "span_id"),
    order_by="trace_id, span_id",
    # a trace is a point lookup, not a scan of every span (1.5 s → 28 ms at 10M)
    duckdb_indexes=(("spans_trace", "trace_id"),),
)

CONTENT_EVENTS = Table(
    "content_events",
    (
        _c("trace_id", nullable=False),
        _c("span_id", nullable=False),
        _c("ts", "timestamp", nullable=False),
        _c("seq", "int32", nullable=False),
        _c("kind", nullable=False, lc=True),
        _c("message", nullable=False),
    ),
    key=("trace_id", "span_id", "ts", "seq", "kind"),
    order_by="trace_id, span_id, ts, seq, kind",
)

#: Scores (#20): about a call, a trace or a session, joined to them when read (so a score
#: may arrive before its call). A resent score (same id) replaces the stored one.
SCORES = Table(
    "scores",
    (
        _c("id", nullable=False),
        _c("ts", "timestamp", nullable=False),
        _c("target", nullable=False, lc=True),
        _c("target_id", nullable=False),
        _c("name", nullable=False, lc=True),
        _c("value", "float"),
        _c("label", lc=True),
        _c("comment"),
        _c("source", nullable=False, lc=True),
        _c("author"),
        _c("app", lc=True),
        _c("trace_id"),
    ),
    key=("id",),
    order_by="id",
    # no DuckDB index: an index column cannot be rewritten by INSERT OR REPLACE
    skip_indexes=(("idx_target", "target_id", "bloom_filter"),),
    versioned=True,
)

RECORD_TABLES = (CALLS, SPANS, CONTENT_EVENTS, SCORES)

assert tuple(CALLS.names) == CALL_FIELD_NAMES, "calls table out of step with CallRecord"
assert set(SPANS.names) == set(SPAN_FIELD_NAMES), "spans table out of step with SpanRecord"
assert tuple(SCORES.names) == SCORE_FIELD_NAMES, "scores table out of step with Score"

#: The ClickHouse version column (not a record field: filled by the server at insert).
VERSION_COLUMN = "_version"

_DUCKDB = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "int": "BIGINT",
    "int32": "INTEGER",
    "strings": "VARCHAR[]",
}
_CLICKHOUSE = {
    "string": "String",
    "timestamp": "DateTime64(6, 'UTC')",
    "float": "Float64",
    "bool": "Bool",
    "int": "Int64",
    "int32": "Int32",
    "strings": "Array(String)",
}


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema of a batch for ``table`` (every field nullable, as Arrow batches are)."""
    import pyarrow as pa  # on the first write: a server that only reads never loads it

    types = {
        "string": pa.string(),
        "timestamp": pa.timestamp("us"),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "int32": pa.int32(),
        "strings": pa.list_(pa.string()),
    }
    return pa.schema([(c.name, types[c.type]) for c in table.columns])


def duckdb_type(column: Column) -> str:
    """The DuckDB type of a column."""
    return _DUCKDB[column.type]


def clickhouse_type(column: Column) -> str:
    """The ClickHouse type of a column (``Nullable``/``LowCardinality`` as declared)."""
    t = _CLICKHOUSE[column.type]
    if column.nullable:
        t = f"Nullable({t})"
    if column.low_cardinality:
        t = f"LowCardinality({t})"
    return t


def duckdb_ddl(table: Table, name: str | None = None) -> list[str]:
    """``CREATE TABLE`` (with the natural key as primary key) and its indexes."""
    name = name or table.name
    cols = ", ".join(f'"{c.name}" {duckdb_type(c)}' for c in table.columns)
    key = ", ".join(f'"{k}"' for k in table.key)
    out = [f"CREATE TABLE IF NOT EXISTS {name} ({cols}, PRIMARY KEY ({key}))"]
    out += [
        f"CREATE INDEX IF NOT EXISTS {index} ON {name} ({column})"
        for index, column in table.duckdb_indexes
    ]
    return out


def clickhouse_ddl(table: Table, name: str | None = None) -> str:
    """``CREATE TABLE`` as a ReplacingMergeTree keyed by the natural key, by day."""
    name = name or table.name
    cols = [f"`{c.name}` {clickhouse_type(c)}" for c in table.columns]
    engine = "ReplacingMergeTree"
    if table.versioned:
        cols.append(f"`{VERSION_COLUMN}` UInt64 DEFAULT toUnixTimestamp64Micro(now64(6))")
        engine = f"ReplacingMergeTree({VERSION_COLUMN})"
    cols += [f"INDEX {n} {expr} TYPE {kind} GRANULARITY 4" for n, expr, kind in table.skip_indexes]
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)}) ENGINE = {engine}"
        f" PARTITION BY toDate(ts) ORDER BY ({table.order_by})"
        " SETTINGS index_granularity = 8192"
    )


#: The prompt-template miner's saved state (#19): the latest row per name is current.
TEMPLATE_STATE_DUCKDB = (
    "CREATE TABLE IF NOT EXISTS template_state (name VARCHAR, state VARCHAR, updated_at TIMESTAMP)"
)
TEMPLATE_STATE_CLICKHOUSE = (
    "CREATE TABLE IF NOT EXISTS template_state (name String, state String,"
    " updated_at DateTime64(6, 'UTC')) ENGINE = ReplacingMergeTree(updated_at) ORDER BY name"
)

#: Tables beside the records (alert rules, their history, leases), as each store spells them.
DUCKDB_AUX = [
    "CREATE TABLE IF NOT EXISTS alert_rules"
    " (id VARCHAR, created_at TIMESTAMP, source VARCHAR, rule VARCHAR)",
    "CREATE TABLE IF NOT EXISTS alert_events (ts TIMESTAMP, rule_id VARCHAR, name VARCHAR,"
    " state VARCHAR, value DOUBLE, threshold DOUBLE, detail VARCHAR)",
    "CREATE TABLE IF NOT EXISTS leases (name VARCHAR, holder VARCHAR, expires_at TIMESTAMP)",
    TEMPLATE_STATE_DUCKDB,
]
CLICKHOUSE_AUX = [
    "CREATE TABLE IF NOT EXISTS alert_rules (id String, created_at DateTime64(6, 'UTC'),"
    " source LowCardinality(String), rule String) ENGINE = MergeTree ORDER BY id",
    "CREATE TABLE IF NOT EXISTS alert_events (ts DateTime64(6, 'UTC'), rule_id String,"
    " name String, state LowCardinality(String), value Nullable(Float64),"
    " threshold Float64, detail String) ENGINE = MergeTree ORDER BY (rule_id, ts)",
    "CREATE TABLE IF NOT EXISTS leases (name String, holder String,"
    " expires_at DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY (name, expires_at)"
    " TTL toDateTime(expires_at) + INTERVAL 1 HOUR",
    TEMPLATE_STATE_CLICKHOUSE,
]


def duckdb_create() -> list[str]:
    """Every statement that creates a fresh DuckDB store at the latest schema."""
    out: list[str] = []
    for table in RECORD_TABLES:
        out += duckdb_ddl(table)
    return out + DUCKDB_AUX


def clickhouse_create() -> list[str]:
    """Every statement that creates a fresh ClickHouse store at the latest schema."""
    return [clickhouse_ddl(t) for t in RECORD_TABLES] + CLICKHOUSE_AUX
