"""Quality beside cost (#20): score means per group, and cost per good answer.

The store returns rows (``SQLStore.score_rows``, ``good_answer_rows``); the arithmetic
is here, the one place, so the API, the pages and alerts show the same numbers.

*Cost per good answer* of a group (a model, an app, a template…) is its mean cost per
priced call divided by the share of its scored calls that are good (a call is good when
the mean of its ``name`` scores is at or above ``threshold``): what one good answer
costs when the bad ones have to be paid for too. Null when no call is scored, none is
good, or none is priced, never 0 or infinity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gensight.model.vocab import OTHER_GROUP
from gensight.query.analysis import as_utc, bucket_start
from gensight.store.base import CallFilters


def _means(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{name: {"mean", "count", "calls"}}`` from score rows of one group (or several:
    the means are weighted by how many numeric values each has)."""
    acc: dict[str, list[float]] = {}
    for r in rows:
        a = acc.setdefault(r["name"], [0.0, 0, 0, 0])
        valued = int(r["valued"] or 0)
        if r["mean"] is not None and valued:
            a[0] += float(r["mean"]) * valued
        a[1] += valued
        a[2] += int(r["n"])
        a[3] += int(r["scored_calls"])
    return {
        name: {
            "mean": (total / valued) if valued else None,
            "count": int(n),
            "calls": int(calls),
        }
        for name, (total, valued, n, calls) in sorted(acc.items())
    }


def score_totals(store: Any, filters: CallFilters) -> dict[str, dict[str, Any]]:
    """Per score name over the matching calls: ``mean`` value, ``count`` of scores and
    the ``calls`` they judge (scores of calls; trace and session scores are not split
    over their calls)."""
    return _means(store.score_rows(filters, None))


def attach_group_scores(
    store: Any, filters: CallFilters, group_by: str, groups: list[dict[str, Any]]
) -> None:
    """Give each overview group its ``scores`` (``(other)``: the rest's, combined)."""
    rows = store.score_rows(filters, group_by)
    named = {g["group"] for g in groups if g["group"] != OTHER_GROUP}
    for g in groups:
        if g["group"] == OTHER_GROUP:
            mine = [r for r in rows if r["grp"] not in named]
        else:
            mine = [r for r in rows if r["grp"] == g["group"]]
        g["scores"] = _means(mine)


def cost_per_good_answer(
    store: Any, filters: CallFilters, group_by: str, name: str, threshold: float
) -> dict[str, Any]:
    """Per group: calls, cost, scored and good calls, the good share and the cost per
    good answer; ranked cheapest good answer first (groups without one last)."""
    items = []
    for r in store.good_answer_rows(filters, group_by, name, threshold):
        calls, priced = int(r["calls"]), int(r["priced"])
        scored, good = int(r["scored"]), int(r["good"])
        cost = float(r["cost_usd"]) if r["cost_usd"] is not None and priced else None
        share = good / scored if scored else None
        per_call = cost / priced if cost is not None else None
        per_good = per_call / share if per_call is not None and share else None
        items.append(
            {
                "group": r["grp"],
                "calls": calls,
                "cost_usd": cost,
                "priced_calls": priced,
                "scored_calls": scored,
                "good_calls": good,
                "good_share": share,
                "cost_per_call_usd": per_call,
                "cost_per_good_answer_usd": per_good,
            }
        )
    items.sort(
        key=lambda i: (
            i["cost_per_good_answer_usd"] is None,
            i["cost_per_good_answer_usd"] or 0.0,
            str(i["group"]),
        )
    )
    return {"score": name, "threshold": threshold, "group_by": group_by, "items": items}


def chosen_score(totals: dict[str, dict[str, Any]], requested: str | None) -> str | None:
    """The score a page shows: the one asked for, else the most used one (None: none)."""
    if requested:
        return requested
    return max(sorted(totals), key=lambda n: totals[n]["count"], default=None)


def score_over_time(store: Any, filters: CallFilters, interval: int, name: str) -> dict[str, Any]:
    """One score per bucket of the judged calls' start: ``mean``, ``count`` of scores and
    ``calls`` (empty buckets: no mean, zero counts). Its totals are the overview's
    ``scores[name]``."""
    assert filters.since is not None and filters.until is not None
    rows = store.score_series_rows(filters, interval, name)
    index = {as_utc(r["bucket"]): r for r in rows}
    series = []
    t = bucket_start(filters.since, interval)
    step = timedelta(seconds=interval)
    while t < filters.until:
        r = index.get(t)
        point = _means([{**r, "name": name}]).get(name) if r else None
        series.append(
            {"bucket": t.isoformat(), **(point or {"mean": None, "count": 0, "calls": 0})}
        )
        if datetime.max.replace(tzinfo=UTC) - t < step:
            break
        t += step
    return {"name": name, "series": series}
