"""The arithmetic of the answers: intervals, measures, groups and "(other)", series, lift.

The store runs the SQL and returns rows; these functions turn rows into the API's
numbers, once, for every caller (API, pages, alerts, CLI) and both backends.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from gensight.model.vocab import MAX_GROUPS, OTHER_GROUP

#: Measures that add up across groups and buckets (percentiles do not).
ADDITIVE = (
    "calls", "errors", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls",
    "no_usage_calls",
)  # fmt: skip

#: Candidate bucket widths (seconds) for automatically chosen intervals.
NICE_INTERVALS = (
    1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400,
)  # fmt: skip


def choose_interval(since: datetime, until: datetime, buckets: int = 60) -> int:
    """The smallest nice bucket width giving at most about ``buckets`` buckets."""
    span = max(1.0, (until - since).total_seconds())
    for seconds in NICE_INTERVALS:
        if span / seconds <= buckets:
            return seconds
    return NICE_INTERVALS[-1]


def bucket_start(ts: datetime, seconds: int) -> datetime:
    """The start of the bucket holding ``ts`` (buckets aligned to the Unix epoch)."""
    epoch = int(ts.timestamp())
    try:
        return datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    except (OverflowError, ValueError, OSError):  # before year 1: the range's own start
        return ts


def totals_row(row: dict[str, Any]) -> dict[str, Any]:
    """One aggregate row as the API's measures object."""
    calls = int(row.get("calls") or 0)
    errors = int(row.get("errors") or 0)
    return {
        "calls": calls,
        "errors": errors,
        "error_rate": (errors / calls) if calls else 0.0,
        "input_tokens": int(row.get("input_tokens") or 0),
        "output_tokens": int(row.get("output_tokens") or 0),
        "cost_usd": float(row.get("cost_usd") or 0.0),
        "unpriced_calls": int(row.get("unpriced_calls") or 0),
        "no_usage_calls": int(row.get("no_usage_calls") or 0),
        "latency_ms": dict(zip(("p50", "p95", "p99"), _levels(row.get("lat_q"), 3), strict=True)),
        "ttft_ms": dict(zip(("p50", "p95"), _levels(row.get("ttft_q"), 2), strict=True)),
    }


def _levels(values: Any, n: int) -> list[float | None]:
    """A percentile list as floats; None where there were no values (DuckDB gives NULL,
    ClickHouse NaN)."""
    if not values:
        return [None] * n
    return [None if v is None or v != v else float(v) for v in values]


def rank_groups(rows: Iterable[dict[str, Any]]) -> list[str | None]:
    """Groups (``grp`` of the rows) by calls, most first; ties by name, no-value last."""
    calls: dict[str | None, int] = {}
    for r in rows:
        calls[r["grp"]] = calls.get(r["grp"], 0) + int(r.get("calls") or 0)
    return sorted(calls, key=lambda g: (-calls[g], g is None, str(g)))


def group_totals(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str | None]]:
    """The overview's ``groups`` from per-group aggregate rows, and the groups kept.

    The ``MAX_GROUPS`` groups with most calls keep their name (and exact percentiles);
    the rest are summed, every additive measure, as one ``"(other)"`` row whose
    percentiles are null (they are not summable).
    """
    order = rank_groups(rows)
    kept = set(order[:MAX_GROUPS])
    by_group = {r["grp"]: r for r in rows}
    out = [{"group": g, **totals_row(by_group[g])} for g in order[:MAX_GROUPS]]
    if len(order) > MAX_GROUPS:
        rest = _sum(by_group[g] for g in order[MAX_GROUPS:])
        out.append({"group": OTHER_GROUP, **totals_row(rest)})
    return out, kept


def _sum(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {k: 0 for k in ADDITIVE}
    for r in rows:
        for k in ADDITIVE:
            total[k] += r.get(k) or 0
    return total


def fill_series(
    rows: Iterable[dict[str, Any]],
    since: datetime,
    until: datetime,
    seconds: int,
    kept: set[str | None] | None = None,
    order: list[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Series points for every bucket in the range (empty buckets as zeros), oldest first.

    Ungrouped when ``kept`` is None. Grouped, the ``kept`` groups keep their name (in
    ``order``) and the rest are summed per bucket as ``"(other)"``, like the groups.
    """
    rows = list(rows)
    groups: list[str | None] = [None]
    if kept is not None:
        groups = [g for g in (order or rank_groups(rows)) if g in kept]
        other: dict[datetime, list[dict[str, Any]]] = {}
        for r in rows:
            if r["grp"] not in kept:
                other.setdefault(r["bucket"], []).append(r)
        rows = [r for r in rows if r["grp"] in kept] + [
            {"bucket": b, "grp": OTHER_GROUP, **_sum(rs)} for b, rs in other.items()
        ]
        if other:
            groups.append(OTHER_GROUP)
    index = {(as_utc(r["bucket"]), r.get("grp") if kept is not None else None): r for r in rows}
    out = []
    t = bucket_start(since, seconds)
    step = timedelta(seconds=seconds)
    while t < until:
        for g in groups:
            r = index.get((t, g), {})
            point = {"bucket": t.isoformat(), "group": g, **totals_row(r)}
            out.append(point)
        if datetime.max.replace(tzinfo=UTC) - t < step:  # the range reaches year 9999
            break
        t += step
    return out


def as_utc(ts: datetime) -> datetime:
    """A time as UTC (a naive one is taken to be UTC already)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def lifts(
    counts: Iterable[tuple[str, str | None, int, int]],
    target_total: int,
    total: int,
    min_count: int = 3,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Attribute values over-represented among target calls.

    ``counts`` holds ``(dimension, value, target_count, count)``. Lift is the value's
    share among target calls over its share among all calls; values with lift > 1 seen
    in at least ``min_count`` target calls are kept, highest lift (then count) first.
    """
    out = []
    if not target_total or not total:
        return out
    for dim, value, tcount, count in counts:
        if value is None or tcount < min_count or not count:
            continue
        target_share = tcount / target_total
        share = count / total
        lift = target_share / share
        if lift <= 1.0:
            continue
        out.append(
            {
                "attribute": dim,
                "value": value,
                "target_count": int(tcount),
                "count": int(count),
                "target_share": target_share,
                "share": share,
                "lift": lift,
            }
        )
    out.sort(key=lambda r: (-r["lift"], -r["target_count"], r["attribute"], str(r["value"])))
    return out[:limit]
