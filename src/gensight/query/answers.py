"""The answers: overview (totals, groups, series), trace with totals, the analyses.

The one place the API's numbers are computed. ``/api/...`` returns these objects as
they are; the pages render the same objects, alerts measure ``totals``, the CLI prints
the API's. The store runs the SQL and returns rows (``SQLStore``); the arithmetic is
``gensight.query.analysis``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gensight.model.units import parse_duration
from gensight.query import analysis, quality
from gensight.store.base import CallFilters, Cursor
from gensight.store.common import TRACE_EDGE, iso

#: The call log counts a page's total while it reads the page: on the other core (the
#: stores read from several threads; a ``q=`` of a common word is two index searches).
_COUNTS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gensight-count")


def call_page(
    store: Any,
    filters: CallFilters,
    limit: int,
    cursor: Cursor | None,
    full: bool = False,
    sort: str = "ts",
    order: str = "desc",
) -> dict[str, Any]:
    """A page of the call log: ``items`` in ``sort`` order, the ``next`` cursor (null on
    the last page) and ``total``, how many calls match the filters on all pages."""
    total = _COUNTS.submit(store.count_calls, filters)
    items, nxt = store.list_calls(filters, limit, cursor, full, sort, order)
    return {
        "items": items,
        "next": nxt.encode() if nxt else None,
        "total": total.result(),
        "sort": sort,
        "order": order,
    }


#: Filters whose form inputs suggest the values seen (``suggestions``).
SUGGESTED = ("app", "model", "user", "session")


def suggestions(
    store: Any,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> dict[str, list[str]]:
    """The commonest values of each ``SUGGESTED`` filter in a time range (default: the
    last 7 days)."""
    f = CallFilters(since=since or (until or datetime.now(UTC)) - timedelta(days=7), until=until)
    return {name: store.known_values(name, f, limit) for name in SUGGESTED}


def fitting_range(store: Any, filters: CallFilters, choices: tuple[str, ...]) -> str | None:
    """The dashboard's default range when none is asked for: the shortest of ``choices``
    (durations such as ``15m``, ``24h``) holding every call of the last 24 hours, or,
    when there were none, the shortest reaching back to the latest call; None when no
    choice reaches any call."""
    now = datetime.now(UTC)
    spans = [(c, parse_duration(c)) for c in choices]
    day = replace(filters, since=now - timedelta(hours=24), until=None)
    first, _ = store.time_bounds(day)
    if first is None:
        _, last = store.time_bounds(replace(filters, since=None, until=None))
        if last is None:
            return None
        first = last
    for choice, span in spans:
        if now - span <= first:
            return choice
    return None


def totals(store: Any, filters: CallFilters) -> dict[str, Any]:
    """The measures of the matching calls (what alert rules measure, what tiles show)."""
    return analysis.totals_row(store.aggregate(filters))


def overview(
    store: Any,
    filters: CallFilters,
    interval: int,
    group_by: str | None,
    quality_score: str | None = None,
) -> dict[str, Any]:
    """Totals, per-group totals and a time series (``filters.since``/``until`` set).

    ``groups`` holds the ``MAX_GROUPS`` largest groups with their percentiles (exact from
    raw rows, within 1% from rollups), then the
    rest summed as ``"(other)"``; the series is split into the same groups, so a table
    of ``groups`` and a chart of ``series`` show the same calls. With ``quality_score``,
    ``quality`` is that score's series over the same buckets.
    """
    assert filters.since is not None and filters.until is not None
    # long ranges from the hourly rollups where the store keeps them (rows_from says)
    rollup = getattr(store, "rollups_for", None)
    source = (rollup(filters, interval, group_by) if rollup else None) or store
    groups: list[dict[str, Any]] = []
    kept: set[str | None] | None = None
    order: list[str | None] | None = None
    if group_by:
        groups, kept = analysis.group_totals(source.group_rows(filters, group_by))
        quality.attach_group_scores(store, filters, group_by, groups)
        order = [g["group"] for g in groups]
    rows = source.series_rows(filters, interval, group_by)
    answer = {
        "rows_from": "raw" if source is store else "rollups",
        "totals": totals(source, filters),
        "scores": quality.score_totals(store, filters),
        "interval": interval,
        "since": iso(filters.since),
        "until": iso(filters.until),
        "group_by": group_by,
        "groups": groups,
        "series": analysis.fill_series(rows, filters.since, filters.until, interval, kept, order),
    }
    if quality_score:
        answer["quality"] = quality.score_over_time(store, filters, interval, quality_score)
    return answer


def trace(store: Any, trace_id: str) -> dict[str, Any] | None:
    """A trace's spans and calls, and ``totals`` of its calls (None when nothing is stored).

    The totals are measured by the overview's SQL over exactly the listed calls: this
    trace id, from its first call's start to its last's (or within the trace's window,
    when the store keeps one: the same calls, measured while they are read).
    """
    window = store.trace_window(trace_id)
    measured = None
    if window is not None:
        f = CallFilters(trace_id=trace_id, since=window[0], until=window[1] + TRACE_EDGE)
        measured = _COUNTS.submit(totals, store, f)
    answer = store.get_trace(trace_id, window)
    if answer is None:
        return None
    calls = answer["calls"]
    if measured is not None:
        answer["totals"] = measured.result()
    elif calls:
        starts = [datetime.fromisoformat(c["ts"]) for c in calls]
        f = CallFilters(
            trace_id=trace_id, since=min(starts), until=max(starts) + timedelta(microseconds=1)
        )
        answer["totals"] = totals(store, f)
    else:
        answer["totals"] = analysis.totals_row({})
    answer["totals"]["tokens_estimated"] = any(c.get("tokens_estimated") for c in calls)
    return answer


def latency_vs_tokens(store: Any, filters: CallFilters, max_points: int) -> dict[str, Any]:
    """Successful calls' output tokens vs latency, and per model a least-squares fit."""
    points, fits = store.latency_rows(filters, max_points)
    for p in points:
        p["stream"] = bool(p["stream"])
    for f in fits:
        f["calls"] = int(f["calls"])
        slope = f["slope_ms_per_token"]
        f["seconds_per_100_tokens"] = slope / 10.0 if slope is not None else None
    return {"points": points, "models": fits}


def correlations(store: Any, filters: CallFilters, target: str) -> dict[str, Any]:
    """Attribute values over-represented among slow (above p95) or failed calls."""
    base = store.correlation_base(filters)
    total = int(base["total"])
    threshold = base["p95"] if target == "slow" else None
    rows = store.correlation_rows(filters, target, threshold) if total else []
    # every call has exactly one value per dimension: one dimension's counts sum up
    target_total = sum(int(r["tcount"]) for r in rows if r["dim"] == "app")
    counts = [(r["dim"], r["value"], int(r["tcount"]), int(r["n"])) for r in rows]
    return {
        "target": target,
        "threshold_ms": threshold,
        "total": total,
        "target_total": target_total,
        "items": analysis.lifts(counts, target_total, total),
    }


def dependencies(store: Any, filters: CallFilters) -> dict[str, Any]:
    """Where request time goes: per LLM provider/model and per non-LLM downstream.

    ``share_of_trace_time`` is exclusive (self) time: a span's duration less its
    children's, over the traces' time, so a parent never counts its children's time
    again. Where spans run concurrently their self times can add up to more than the
    wall time; the shares are then taken of that sum instead, so the column never
    adds up to more than 100%."""
    items, roots = store.dependency_rows(filters)
    trace_ms = float(roots["trace_ms"] or 0.0)
    all_self = float(roots.get("self_ms") or 0.0) + sum(float(it["self_ms"] or 0) for it in items)
    base = max(trace_ms, all_self)
    for it in items:
        it["calls"] = int(it["calls"])
        it["traces"] = int(it["traces"])
        it["self_ms"] = float(it["self_ms"] or 0.0)
        it["share_of_trace_time"] = (it["self_ms"] / base) if trace_ms else None
    items.sort(key=lambda r: (-(r["self_ms"] or 0), -(r["total_ms"] or 0), r["downstream"]))
    return {"trace_ms": trace_ms, "traces": int(roots["traces"]), "items": items}
