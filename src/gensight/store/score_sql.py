"""The scores' SQL (#20), for every backend: reading them, filtering calls by them, and the
per-group means and good-answer counts the answers are built from.

A score joins its call (``target = 'call'``, ``target_id`` = the call's id), its trace
(``target = 'trace'``) or its session when read, never when written, so it may arrive
before or after what it judges. Group means count the scores of calls (a trace's or a
session's score judges several calls at once, and would be counted once per call).
"""

from __future__ import annotations

from collections.abc import Callable

from gensight.model.scores import ScoreFilter, parse_score_filter
from gensight.store.base import CallFilters
from gensight.store.dialect import Dialect, Query
from gensight.store.schema import SCORES

SCORE_COLUMNS = SCORES.names
_COLS = ", ".join(f'sc."{n}"' for n in SCORE_COLUMNS)


def _match(d: Dialect, q: Query, f: ScoreFilter) -> str:
    """The condition on ``sc`` a score filter sets (values bound into ``q``)."""
    out = f"sc.name = {d.param(q, f.name)}"
    if f.op is not None and f.value is not None:
        out += f" AND sc.value {f.op} {d.param(q, f.value)}"
    elif f.op is not None and f.label is not None:
        out += f" AND sc.label {f.op} {d.param(q, f.label)}"
    return out


def filter_clause(d: Dialect, q: Query, text: str, alias: str = "c") -> str:
    """Calls with a matching score: of the call itself, of its trace or of its session."""
    f = parse_score_filter(text)
    parts = []
    for target, column in (("call", "id"), ("trace", "trace_id"), ("session", "session")):
        parts.append(
            f"{alias}.{column} IN (SELECT sc.target_id FROM {d.table('scores', 'sc')}"
            f" WHERE sc.target = '{target}' AND {_match(d, q, f)})"
        )
    return f"({' OR '.join(parts)})"


def scores_of(d: Dialect, call_ids: list[str], trace_ids: list[str]) -> Query:
    """The scores of these calls and traces (a call's also when sent with its trace id)."""
    q = Query(d)
    alternatives = []
    if call_ids:
        marks = ", ".join(d.param(q, i) for i in call_ids)
        alternatives.append(f"(sc.target = 'call' AND sc.target_id IN ({marks}))")
    if trace_ids:
        marks = ", ".join(d.param(q, i) for i in trace_ids)
        alternatives.append(f"(sc.target = 'trace' AND sc.target_id IN ({marks}))")
        marks = ", ".join(d.param(q, i) for i in trace_ids)
        alternatives.append(f"sc.trace_id IN ({marks})")
    q.sql = (
        f"SELECT {_COLS} FROM {d.table('scores', 'sc')}"
        f" WHERE {' OR '.join(alternatives) or '1 = 0'} ORDER BY sc.ts, sc.id"
    )
    return q


def scores_of_sessions(d: Dialect, sessions: list[str]) -> Query:
    """The scores of these sessions."""
    q = Query(d)
    marks = ", ".join(d.param(q, i) for i in sessions)
    q.sql = (
        f"SELECT {_COLS} FROM {d.table('scores', 'sc')}"
        f" WHERE sc.target = 'session' AND sc.target_id IN ({marks}) ORDER BY sc.ts, sc.id"
    )
    return q


def list_scores(d: Dialect, filters: CallFilters, name: str | None, limit: int) -> Query:
    """Scores newest first, within the time filters (by the score's time), by name."""
    q = Query(d)
    clauses = []
    if filters.since:
        clauses.append(f"sc.ts >= {d.param_ts(q, filters.since)}")
    if filters.until:
        clauses.append(f"sc.ts < {d.param_ts(q, filters.until)}")
    if name:
        clauses.append(f"sc.name = {d.param(q, name)}")
    if filters.app:
        clauses.append(f"sc.app = {d.param(q, filters.app)}")
    q.sql = (
        f"SELECT {_COLS} FROM {d.table('scores', 'sc')}"
        f" WHERE {' AND '.join(clauses) or '1 = 1'}"
        f" ORDER BY sc.ts DESC, sc.id DESC LIMIT {int(limit)}"
    )
    return q


Where = Callable[[Dialect, Query, CallFilters], str]


def score_means(d: Dialect, filters: CallFilters, grp: str | None, where: Where) -> Query:
    """Per group (``grp`` an expression over calls, or none) and score name: the mean of
    the numeric values (``mean``, over ``valued`` of them), how many scores (``n``) and
    how many calls they judge (``scored_calls``)."""
    q = Query(d)
    g = grp or "''"
    q.sql = (
        "SELECT g.grp AS grp, sc.name AS name, avg(sc.value) AS mean, count(*) AS n,"
        " count(sc.value) AS valued, count(DISTINCT g.id) AS scored_calls"
        f" FROM (SELECT c.id AS id, {g} AS grp FROM {d.table('calls', 'c')}"
        f" WHERE {where(d, q, filters)}) AS g"
        f" INNER JOIN (SELECT sc.target_id AS target_id, sc.name AS name, sc.value AS value"
        f" FROM {d.table('scores', 'sc')} WHERE sc.target = 'call') AS sc"
        " ON sc.target_id = g.id GROUP BY g.grp, sc.name ORDER BY g.grp, sc.name"
    )
    return q


def good_answers(
    d: Dialect, filters: CallFilters, grp: str, name: str, threshold: float, where: Where
) -> Query:
    """Per group: ``calls``, ``cost_usd``, ``priced`` calls, calls ``scored`` by ``name``
    and the ``good`` ones among them (their mean ``name`` value at or above
    ``threshold``)."""
    q = Query(d)
    # bound in the order the marks appear in the text (DuckDB's are positional)
    thr = d.param(q, threshold)
    inner = where(d, q, filters)
    name_mark = d.param(q, name)
    matched = "v.target_id <> ''"  # unmatched: NULL in DuckDB, '' in ClickHouse
    q.sql = (
        "SELECT g.grp AS grp, count(*) AS calls, sum(g.cost_usd) AS cost_usd,"
        f" {d.countif('g.cost_usd IS NOT NULL')} AS priced,"
        f" {d.countif(matched)} AS scored,"
        f" {d.countif(f'{matched} AND v.v >= {thr}')} AS good"
        f" FROM (SELECT c.id AS id, {grp} AS grp, c.cost_usd AS cost_usd"
        f" FROM {d.table('calls', 'c')} WHERE {inner}) AS g"
        " LEFT JOIN (SELECT sc.target_id AS target_id, avg(sc.value) AS v"
        f" FROM {d.table('scores', 'sc')} WHERE sc.target = 'call' AND sc.name = {name_mark}"
        " AND sc.value IS NOT NULL GROUP BY sc.target_id) AS v ON v.target_id = g.id"
        " GROUP BY g.grp ORDER BY g.grp"
    )
    return q


def call_contexts(d: Dialect, call_ids: list[str]) -> Query:
    """The trace and span ids and app of these calls (for scores forwarded over OTLP)."""
    q = Query(d)
    marks = ", ".join(d.param(q, i) for i in call_ids)
    q.sql = (
        f"SELECT DISTINCT c.id AS id, c.trace_id AS trace_id, c.span_id AS span_id,"
        " c.app AS app"
        f" FROM {d.table('calls', 'c')} WHERE c.id IN ({marks})"
    )
    return q


def score_series(d: Dialect, filters: CallFilters, seconds: int, name: str, where: Where) -> Query:
    """Per bucket of the judged calls' start (``bucket``): the mean of their ``name``
    scores' values (``mean`` over ``valued``), how many scores (``n``) and calls."""
    q = Query(d)
    inner = where(d, q, filters)
    name_mark = d.param(q, name)
    q.sql = (
        "SELECT g.bucket AS bucket, avg(sc.value) AS mean, count(*) AS n,"
        " count(sc.value) AS valued, count(DISTINCT g.id) AS scored_calls"
        f" FROM (SELECT c.id AS id, {d.bucket('c.ts', seconds)} AS bucket"
        f" FROM {d.table('calls', 'c')} WHERE {inner}) AS g"
        " INNER JOIN (SELECT sc.target_id AS target_id, sc.value AS value"
        f" FROM {d.table('scores', 'sc')} WHERE sc.target = 'call' AND sc.name = {name_mark})"
        " AS sc ON sc.target_id = g.id GROUP BY g.bucket ORDER BY g.bucket"
    )
    return q
