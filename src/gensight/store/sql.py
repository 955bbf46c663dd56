"""The query layer's SQL, written once for every backend (dialects: ``gensight.store.dialect``).

Each store supplies a ``Dialect`` (how DuckDB or ClickHouse spells a parameter, a
conditional count, an exact percentile, a time bucket, a JSON lookup); the statements
here are shared, so both stores answer every API question with the same SQL shape and
the same numbers. Values always travel as bound parameters, never inside the SQL text.
"""

from __future__ import annotations

from datetime import datetime

from gensight.model.records import CALL_FIELD_NAMES
from gensight.model.vocab import CALL_SORT_KEYS, FILTER_NAMES, SORT_ORDERS
from gensight.store import score_sql
from gensight.store.base import CallFilters, Cursor
from gensight.store.dialect import Dialect, Query
from gensight.store.dimensions import CORRELATION_DIMENSIONS, GROUP_BY, MODEL
from gensight.store.schema import SPANS

MESSAGE_FIELDS = ("input_messages", "output_messages", "system_instructions")
JSON_CALL_FIELDS = (*MESSAGE_FIELDS, "attributes")
#: Columns of a call in lists (the API leaves content and attributes to the detail view).
LIST_COLUMNS = [c for c in CALL_FIELD_NAMES if c not in JSON_CALL_FIELDS]
SPAN_COLUMNS = SPANS.names

#: Filters that compare a column with a value (time, model and content search are special).
_EQUALITY_FILTERS = (
    *(n for n in FILTER_NAMES if n not in ("since", "until", "model", "q", "score")),
    "trace_id",
)


def where(d: Dialect, q: Query, filters: CallFilters, alias: str = "c") -> str:
    """The predicate for call filters; binds its values into ``q``."""
    a = alias
    clauses: list[str] = []
    if filters.since:
        clauses.append(f"{a}.ts >= {d.param_ts(q, filters.since)}")
    if filters.until:
        clauses.append(f"{a}.ts < {d.param_ts(q, filters.until)}")
    for name in _EQUALITY_FILTERS:
        value = getattr(filters, name)
        if value:
            clauses.append(f'{a}."{name}" = {d.param(q, value)}')
    if filters.model:
        # the expression group_by=model groups on, so a model row counts what its link lists
        clauses.append(
            f"coalesce({a}.request_model, {a}.response_model) = {d.param(q, filters.model)}"
        )
    if filters.q:
        needle = filters.q.lower()
        content = [d.contains_ci(f"{a}.{f}", d.param(q, needle)) for f in MESSAGE_FIELDS]
        content.append(d.exists_content(a, d.param(q, needle)))
        clauses.append(f"({' OR '.join(content)})")
    if filters.score:
        clauses.append(score_sql.filter_clause(d, q, filters.score, a))
    return " AND ".join(clauses) if clauses else "1 = 1"


def _cols(names: list[str] | tuple[str, ...], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{n}"' for n in names)


def list_calls(
    d: Dialect,
    filters: CallFilters,
    limit: int,
    cursor: Cursor | None,
    full: bool = False,
    sort: str = "ts",
    order: str = "desc",
    only: tuple[list[str], list[str]] | None = None,
) -> Query:
    """A page of calls in ``sort`` order (one row more than ``limit``, to know if there is
    more); ties by time, then id, in the same direction; calls without a value last.
    ``full`` adds messages and attributes. ``sort`` is one of ``vocab.CALL_SORT_KEYS``.
    ``only`` keeps the calls of these (ids, span ids): a search index's hits."""
    if sort not in CALL_SORT_KEYS or order not in SORT_ORDERS:
        raise ValueError(f"unknown sort {sort!r} {order!r}")
    q = Query(d)
    w = where(d, q, filters)
    if only is not None:
        w += _only(d, q, only)
    direction, cmp = ("DESC", "<") if order == "desc" else ("ASC", ">")
    if cursor is not None:
        # placeholders are bound in the order they appear (DuckDB's are positional)
        v = f'c."{sort}"'
        if sort == "ts":
            head, tail = "(", ")"
        elif cursor.value is None:
            head, tail = f"({v} IS NULL AND (", "))"
        else:
            v1, v2 = d.param(q, cursor.value), d.param(q, cursor.value)
            head, tail = f"({v} IS NULL OR {v} {cmp} {v1} OR ({v} = {v2} AND (", ")))"
        ts1, ts2 = d.param_ts(q, cursor.ts), d.param_ts(q, cursor.ts)
        cid = d.param(q, cursor.id)
        w += f" AND {head}c.ts {cmp} {ts1} OR (c.ts = {ts2} AND c.id {cmp} {cid}){tail}"
    keys = f"c.ts {direction}, c.id {direction}"
    if sort != "ts":
        keys = f'(c."{sort}" IS NULL), c."{sort}" {direction}, {keys}'
    q.sql = (
        f"SELECT {_cols(CALL_FIELD_NAMES if full else LIST_COLUMNS, 'c')}"
        f" FROM {d.table('calls', 'c')} WHERE {w}"
        f" ORDER BY {keys} LIMIT {int(limit) + 1}"
    )
    return q


def time_bounds(d: Dialect, filters: CallFilters) -> Query:
    """The first and last start time of the matching calls (NULLs when none match)."""
    q = Query(d)
    q.sql = (
        f"SELECT min(c.ts) AS first, max(c.ts) AS last, count(*) AS n"
        f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)}"
    )
    return q


def count_calls(
    d: Dialect, filters: CallFilters, only: tuple[list[str], list[str]] | None = None
) -> Query:
    """How many calls match the filters (``only``: as ``list_calls``)."""
    q = Query(d)
    w = where(d, q, filters) + (_only(d, q, only) if only is not None else "")
    q.sql = f"SELECT count(*) AS n FROM {d.table('calls', 'c')} WHERE {w}"
    return q


def calls_by_id(d: Dialect, ids: list[str], full: bool = False) -> Query:
    """These calls (a search page's hits), in no order: one look-up by the primary key."""
    q = Query(d)
    q.sql = (
        f"SELECT {_cols(CALL_FIELD_NAMES if full else LIST_COLUMNS, 'c')}"
        f" FROM {d.table('calls', 'c')}"
        f" WHERE c.id IN ({', '.join(d.param(q, v) for v in ids)})"
    )
    return q


def call_keys(d: Dialect, filters: CallFilters, span_ids: list[str]) -> Query:
    """The id and time of the calls of these spans that match the filters."""
    q = Query(d)
    w = where(d, q, filters)
    q.sql = (
        f"SELECT c.id AS id, c.ts AS ts FROM {d.table('calls', 'c')}"
        f" WHERE {w} AND {d.in_strings(q, 'c.span_id', span_ids)}"
    )
    return q


def _only(d: Dialect, q: Query, only: tuple[list[str], list[str]]) -> str:
    """The calls of these (ids, span ids): a search index's hits."""
    alternatives = [
        f"c.{col} IN ({', '.join(d.param(q, v) for v in values)})"
        for col, values in zip(("id", "span_id"), only, strict=True)
        if values
    ]
    return f" AND ({' OR '.join(alternatives) or '1 = 0'})"


#: The columns whose seen values the filter forms suggest (``known_values``).
KNOWN_VALUE_COLUMNS = {"app": "app", "model": MODEL, "user": '"user"', "session": "session"}


def known_values(d: Dialect, name: str, filters: CallFilters, limit: int) -> Query:
    """The commonest values of a filter column among the matching calls."""
    q = Query(d)
    col = KNOWN_VALUE_COLUMNS[name]
    q.sql = (
        f"SELECT {col} AS v, count(*) AS n FROM {d.table('calls', 'c')}"
        f" WHERE {where(d, q, filters)} AND {col} IS NOT NULL"
        f" GROUP BY v ORDER BY n DESC, v LIMIT {int(limit)}"
    )
    return q


def get_call(d: Dialect, call_id: str) -> Query:
    """One call, all columns."""
    q = Query(d)
    q.sql = (
        f"SELECT {_cols(CALL_FIELD_NAMES)} FROM {d.table('calls', 'c')}"
        f" WHERE c.id = {d.param(q, call_id)}"
        " ORDER BY ts DESC LIMIT 1"
    )
    return q


def stored_calls(
    d: Dialect,
    ids: list[str],
    response_ids: list[str],
    request_ids: list[str],
    since: datetime,
    until: datetime,
    failed_models: list[str] | None = None,
    failed_window: tuple[datetime, datetime] | None = None,
    parents: list[str] | None = None,
) -> Query:
    """Stored calls a batch may repeat: by id (a resent or replayed record), or by the
    provider's response or request id (the same call from another producer), or failed
    calls without a response id near ``failed_window`` (a 429 two producers report), or
    calls inside the spans ``parents`` (a second instrumentation of the same call).
    Bounded by
    the batch's time, so both engines read only a few blocks; the merge decides which
    candidates are the same call."""
    q = Query(d)
    w = f"c.ts >= {d.param_ts(q, since)} AND c.ts < {d.param_ts(q, until)}"
    alternatives = []
    for column, values in (
        ("id", ids),
        ("response_id", response_ids),
        ("upstream_request_id", request_ids),
        ("parent_span_id", parents or []),
    ):
        if values:
            alternatives.append(d.in_strings(q, f"c.{column}", sorted(set(values))))
    if failed_models and failed_window:  # failed calls without ids, close in time
        models = d.in_strings(q, "c.request_model", sorted(set(failed_models)))
        lo, hi = (d.param_ts(q, t) for t in failed_window)
        alternatives.append(
            f"(c.status = 'error' AND c.response_id IS NULL AND {models}"
            f" AND c.ts >= {lo} AND c.ts < {hi})"
        )
    q.sql = (
        f"SELECT {_cols(CALL_FIELD_NAMES, 'c')} FROM {d.table('calls', 'c')}"
        f" WHERE {w} AND ({' OR '.join(alternatives) or '1 = 0'})"
    )
    return q


def content_events(d: Dialect, trace_id: str, span_id: str) -> Query:
    """The content events of one call, in order."""
    q = Query(d)
    q.sql = (
        f"SELECT kind, message FROM {d.table('content_events', 'e')}"
        f" WHERE trace_id = {d.param(q, trace_id)} AND span_id = {d.param(q, span_id)}"
        " ORDER BY ts, seq"
    )
    return q


def content_events_of(d: Dialect, span_ids: list[str]) -> Query:
    """The content events of several calls (by span id), in order."""
    q = Query(d)
    marks = ", ".join(d.param(q, s) for s in span_ids)
    q.sql = (
        f"SELECT trace_id, span_id, kind, message FROM {d.table('content_events', 'e')}"
        f" WHERE span_id IN ({marks}) ORDER BY ts, seq"
    )
    return q


def trace_spans(
    d: Dialect, trace_id: str, window: tuple[datetime, datetime] | None = None
) -> Query:
    """Every span of a trace, oldest first (starting within ``window``, when known)."""
    q = Query(d)
    where = f"trace_id = {d.param(q, trace_id)}"
    if window is not None:
        where += f" AND ts >= {d.param_ts(q, window[0])} AND ts < {d.param_ts(q, window[1])}"
    q.sql = (
        f"SELECT {_cols(SPAN_COLUMNS)} FROM {d.table('spans', 's')}"
        f" WHERE {where} ORDER BY ts, span_id"
    )
    return q


#: A call that reported no tokens at all (typically a failure before any usage): there is
#: nothing to price, which is not the same as a price missing.
_NO_USAGE = "(c.input_tokens IS NULL AND c.output_tokens IS NULL)"


def measures(d: Dialect) -> str:
    """The aggregate columns of every totals and series row (over ``calls c``).

    Columns are qualified: ClickHouse would otherwise read ``cost_usd`` inside a later
    aggregate as the alias ``sum(cost_usd) AS cost_usd``.
    """
    return f"""
        count(*) AS calls,
        {d.countif("c.status = 'error'")} AS errors,
        sum(c.input_tokens) AS input_tokens,
        sum(c.output_tokens) AS output_tokens,
        {d.money_sum("c.cost_usd")} AS cost_usd,
        {d.countif(f"c.cost_usd IS NULL AND NOT {_NO_USAGE}")} AS unpriced_calls,
        {d.countif(f"c.cost_usd IS NULL AND {_NO_USAGE}")} AS no_usage_calls,
        {d.quantiles("c.duration_ms", (0.5, 0.95, 0.99))} AS lat_q,
        {d.quantiles("c.ttft_ms", (0.5, 0.95))} AS ttft_q
    """


def overview_totals(d: Dialect, filters: CallFilters) -> Query:
    q = Query(d)
    q.sql = f"SELECT {measures(d)} FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)}"
    return q


def overview_series(d: Dialect, filters: CallFilters, seconds: int, group: str | None) -> Query:
    q = Query(d)
    grp = GROUP_BY[group] if group else "NULL"
    q.sql = (
        f"SELECT {d.bucket('ts', seconds)} AS bucket, {grp} AS grp, {measures(d)}"
        f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)}"
        " GROUP BY bucket, grp ORDER BY bucket"
    )
    return q


def overview_groups(d: Dialect, filters: CallFilters, group: str) -> Query:
    """Totals per group over the whole range (percentiles are exact per group)."""
    q = Query(d)
    q.sql = (
        f"SELECT {GROUP_BY[group]} AS grp, {measures(d)}"
        f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)}"
        " GROUP BY grp ORDER BY calls DESC, grp"
    )
    return q


_MODEL = MODEL
_ERRORS = "status = 'error'"


def latency_points(d: Dialect, filters: CallFilters, max_points: int) -> Query:
    q = Query(d)
    w = where(d, q, filters) + " AND c.status = 'ok' AND c.output_tokens > 0"
    q.sql = (
        f"SELECT id, {_MODEL} AS model, output_tokens, duration_ms, ttft_ms, stream"
        f" FROM {d.table('calls', 'c')} WHERE {w} ORDER BY ts DESC, id DESC LIMIT {int(max_points)}"
    )
    return q


def latency_fits(d: Dialect, filters: CallFilters) -> Query:
    q = Query(d)
    w = where(d, q, filters) + " AND c.status = 'ok' AND c.output_tokens > 0"
    x, y = "CAST(output_tokens AS DOUBLE)", "duration_ms"
    q.sql = (
        f"SELECT {_MODEL} AS model, count(*) AS calls,"
        f" {d.slope(y, x)} AS slope_ms_per_token, {d.intercept(y, x)} AS intercept_ms,"
        f" {d.r2(y, x)} AS r2 FROM {d.table('calls', 'c')} WHERE {w} GROUP BY model"
        " HAVING count(*) >= 2 ORDER BY calls DESC, model"
    )
    return q


def correlation_base(d: Dialect, filters: CallFilters) -> Query:
    q = Query(d)
    q.sql = (
        f"SELECT count(*) AS total, {d.quantile('duration_ms', 0.95)} AS p95,"
        f" {d.countif(_ERRORS)} AS errors"
        f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)}"
    )
    return q


def correlation_counts(
    d: Dialect, filters: CallFilters, target: str, threshold: float | None
) -> Query:
    """Per dimension and value: calls in the target set, and all calls."""
    q = Query(d)
    parts = []
    for name, expr in CORRELATION_DIMENSIONS.items():
        if target == "error" and name == "error_class":
            continue
        cond = f"duration_ms > {d.param(q, threshold)}" if target == "slow" else "status = 'error'"
        parts.append(
            f"SELECT '{name}' AS dim, {d.to_text(expr)} AS value,"
            f" {d.countif(cond)} AS tcount, count(*) AS n"
            f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)} GROUP BY value"
        )
    q.sql = " UNION ALL ".join(parts)
    return q


def _downstream(d: Dialect) -> str:
    keys = (
        ("db:", "db.system"),
        ("db:", "db.system.name"),
        ("http:", "server.address"),
        ("http:", "net.peer.name"),
        ("rpc:", "rpc.service"),
        ("messaging:", "messaging.system"),
        ("tool:", "gen_ai.tool.name"),
    )
    options = [d.concat_strict(f"'{p}'", d.json_str("s.attributes", k)) for p, k in keys]
    return f"coalesce({', '.join(options)}, concat(s.kind, ':', s.name))"


def _dependency_measures(d: Dialect, a: str = "c") -> str:
    return (
        f"count(*) AS calls, sum({a}.duration_ms) AS total_ms,"
        f" {d.quantile(f'{a}.duration_ms', 0.95)} AS p95_ms,"
        f" {d.countif(f'{a}.{_ERRORS}')} / count(*) AS error_rate,"
        f" count(DISTINCT {a}.trace_id) AS traces"
    )


def dependencies_llm(d: Dialect, filters: CallFilters) -> Query:
    """Per LLM provider/model: measures, and ``self_ms``, the time of the calls that lie
    in a trace whose root span is stored (an LLM call has no children: all of its time
    is its own)."""
    q = Query(d)
    rw = where(d, q, CallFilters(since=filters.since, until=filters.until), alias="r")
    roots = (
        f"SELECT r.trace_id FROM {d.table('spans', 'r')} WHERE {rw} AND r.parent_span_id IS NULL"
    )
    q.sql = (
        "SELECT 'llm' AS type, concat(coalesce(c.provider, '?'), '/', coalesce("
        f"{_MODEL}, '?')) AS downstream,"
        f" sum(CASE WHEN c.trace_id IN ({roots}) THEN c.duration_ms ELSE 0 END) AS self_ms,"
        f" {_dependency_measures(d)}"
        f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)} GROUP BY downstream"
    )
    return q


def _span_filters(filters: CallFilters) -> CallFilters:
    return CallFilters(since=filters.since, until=filters.until, app=filters.app)


def _with_self_time(d: Dialect, q: Query, filters: CallFilters) -> tuple[str, str]:
    """``spans s`` joined with the summed time of each span's direct children, and the
    span's exclusive (self) time: its duration less its children's, never below 0."""
    # the children's placeholders come first in the text, so they are bound first
    kw = where(d, q, CallFilters(since=filters.since, until=filters.until), alias="k")
    children = (
        f"(SELECT k.trace_id AS kt, k.parent_span_id AS kp, sum(k.duration_ms) AS child_ms"
        f" FROM {d.table('spans', 'k')} WHERE {kw} AND k.parent_span_id IS NOT NULL"
        " GROUP BY kt, kp)"
    )
    source = (
        f"{d.table('spans', 's')} LEFT JOIN {children} AS ch"
        " ON ch.kt = s.trace_id AND ch.kp = s.span_id"
    )
    return source, "greatest(s.duration_ms - coalesce(ch.child_ms, 0), 0)"


def dependencies_spans(d: Dialect, filters: CallFilters) -> Query:
    """Non-LLM, non-root spans grouped by what they call (db, http host, tool, …), with
    their summed exclusive time ``self_ms``."""
    q = Query(d)
    source, own = _with_self_time(d, q, filters)
    w = where(d, q, _span_filters(filters), alias="s")
    q.sql = (
        f"SELECT 'span' AS type, {_downstream(d)} AS downstream,"
        f" {_dependency_measures(d, 's')}, sum({own}) AS self_ms"
        f" FROM {source} WHERE {w}"
        " AND s.call_id IS NULL AND s.parent_span_id IS NOT NULL"
        " GROUP BY downstream"
    )
    return q


def dependencies_roots(d: Dialect, filters: CallFilters) -> Query:
    """The root spans' summed duration (the traces' time), count, and exclusive time
    (of the roots that are not LLM calls: an LLM root's time is its call's)."""
    q = Query(d)
    source, own = _with_self_time(d, q, filters)
    w = where(d, q, _span_filters(filters), alias="s")
    q.sql = (
        "SELECT coalesce(sum(s.duration_ms), 0) AS trace_ms, count(*) AS traces,"
        f" coalesce(sum(CASE WHEN s.call_id IS NULL THEN {own} ELSE 0 END), 0) AS self_ms"
        f" FROM {source} WHERE {w} AND s.parent_span_id IS NULL"
    )
    return q
