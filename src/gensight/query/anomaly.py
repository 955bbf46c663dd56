"""Anomalies: a measure compared with its own baseline for the same hour of week (#19).

The baseline of a window (say 14:00–15:00 on a Tuesday) is the same window shifted back
by whole weeks (``weeks`` of them, default 4): their median is the usual value and their
median absolute deviation (scaled by 1.4826, so it estimates a standard deviation when
the weeks vary normally) the usual spread. The window is anomalous when its value is
more than ``k`` spreads from the median in the rule's direction, and

- the window holds at least ``min_calls`` calls (a quiet hour does not page),
- the deviation is at least ``floor`` in the measure's unit (weeks that happen to agree
  exactly have no spread: a cent more must not page) and at least ``min_change`` (default
  25%) of the usual value (four weeks give a rough spread; a busy hour's usual ±10% must
  not page when the weeks happened to agree closely), and
- at least ``MIN_WEEKS`` past weeks count (a new series has no baseline).

A past week counts when the filter had calls in the seven days ending with its window (the
series existed then); its window without calls is then 0 for sums (cost, calls, errors,
tokens), and has no value for ratios and percentiles (error rate, p95).
Limits: one seasonality (the week); holidays and launches are anomalies to it; a level
that changed for good is anomalous until the past weeks hold the new level.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gensight.model import vocab
from gensight.query import analysis, answers
from gensight.store.base import CallFilters

WEEK = timedelta(days=7)
#: Past weeks that must have had calls before a window can be judged.
MIN_WEEKS = 2
DEFAULT_K = 3.0
DEFAULT_WEEKS = 4
DEFAULT_MIN_CALLS = 20
DEFAULT_MIN_CHANGE = 0.25
#: The smallest deviation that counts, per measure, in the measure's unit.
DEFAULT_FLOORS = {
    "cost_usd": 1.0,
    "calls": 20.0,
    "errors": 5.0,
    "error_rate": 0.05,
    "latency_p95_ms": 500.0,
    "ttft_p95_ms": 300.0,
    "input_tokens": 20_000.0,
    "output_tokens": 5_000.0,
}
#: Measures an anomaly rule can watch (score means and forecasts have no hour of week).
MEASURES = tuple(DEFAULT_FLOORS)
#: Measures with no value in a window without calls (the rest are sums: 0).
_RATIOS = ("error_rate", "latency_p95_ms", "ttft_p95_ms")
#: MAD to standard deviation for normally distributed values.
MAD_SCALE = 1.4826


def measure_of(totals: dict[str, Any], measure: str) -> float | None:
    """The measure's value in a totals row (``None`` for a ratio with no calls)."""
    if measure in _RATIOS and not totals.get("calls"):
        return None
    value: Any = totals
    for key in vocab.ALERT_MEASURES[measure]:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return None if measure in _RATIOS else 0.0
    return float(value)


def _past_value(row: dict[str, Any], measure: str, alive: bool) -> float | None:
    """A past week's value, ``None`` when it does not count (see the module's docstring)."""
    if not alive or (measure in _RATIOS and not row.get("calls")):
        return None
    return measure_of(row, measure)


def judge(
    value: float | None,
    calls: int,
    past: list[float | None],
    measure: str,
    *,
    k: float = DEFAULT_K,
    min_calls: int = DEFAULT_MIN_CALLS,
    floor: float | None = None,
    min_change: float = DEFAULT_MIN_CHANGE,
    direction: str = ">",
) -> dict[str, Any]:
    """One window against its past weeks: usual, spread, deviation, and whether anomalous.

    ``reason`` says why a window is not judged (``no baseline``, ``too few calls``).
    """
    floor = DEFAULT_FLOORS[measure] if floor is None else floor
    known = [v for v in past if v is not None]
    out: dict[str, Any] = {"value": value, "calls": calls, "weeks": len(known)}
    out.update(usual=None, spread=None, deviation=None, bound=None, anomalous=False)
    if len(known) < MIN_WEEKS:
        out["reason"] = "no baseline"
        return out
    usual = statistics.median(known)
    spread = MAD_SCALE * statistics.median(abs(v - usual) for v in known)
    margin = max(k * spread, floor, min_change * abs(usual))
    up = direction in (">", ">=")
    out.update(usual=usual, spread=spread, bound=usual + margin if up else usual - margin)
    if value is None:
        out["reason"] = "no value"
        return out
    out["deviation"] = value - usual
    if calls < min_calls:
        out["reason"] = "too few calls"
        return out
    out["anomalous"] = (value - usual > margin) if up else (usual - value > margin)
    out["reason"] = None
    return out


def trailing(
    store: Any,
    filters: CallFilters,
    measure: str,
    window: timedelta,
    now: datetime,
    *,
    weeks: int = DEFAULT_WEEKS,
    **options: Any,
) -> dict[str, Any]:
    """The window ending ``now`` against the same window in each of the past ``weeks``."""

    def calls_in(since: datetime, until: datetime) -> dict[str, Any]:
        return answers.totals(store, replace(filters, since=since, until=until))

    current = calls_in(now - window, now)
    values: list[float | None] = []
    for i in range(1, weeks + 1):
        end = now - i * WEEK
        row = calls_in(end - window, end)
        alive = row["calls"] > 0 or calls_in(end - WEEK, end)["calls"] > 0
        values.append(_past_value(row, measure, alive))
    verdict = judge(measure_of(current, measure), current["calls"], values, measure, **options)
    return {**verdict, "since": (now - window).isoformat(), "until": now.isoformat()}


def scan(
    store: Any,
    filters: CallFilters,
    interval: int,
    measures: tuple[str, ...] = ("cost_usd", "calls"),
    *,
    weeks: int = DEFAULT_WEEKS,
    **options: Any,
) -> list[dict[str, Any]]:
    """Every bucket of ``filters``' range judged against its past weeks (one series query).

    Buckets are epoch-aligned, so a bucket and the same bucket a week earlier hold the
    same hour of week when ``interval`` divides a week (else: no anomalies, ``[]``).
    Returns the anomalous points only: bucket, measure, value, usual, spread, deviation.
    """
    assert filters.since is not None and filters.until is not None
    if interval <= 0 or (WEEK.total_seconds() % interval) or interval > 86400:
        return []
    start = filters.since - weeks * WEEK
    rows = store.series_rows(replace(filters, since=start), interval, None)
    series = analysis.fill_series(rows, start, filters.until, interval)
    points = [p for p in series if p["group"] is None]
    step = round(WEEK.total_seconds() / interval)
    running = [0]  # calls in buckets before i: the week ending at bucket j has calls?
    for p in points:
        running.append(running[-1] + p["calls"])
    out = []
    first = analysis.bucket_start(filters.since, interval).astimezone(UTC)
    for i, p in enumerate(points):
        if datetime.fromisoformat(p["bucket"]) < first:
            continue
        for m in measures:
            past: list[float | None] = []
            for w in range(1, weeks + 1):
                j = i - w * step
                alive = j >= 0 and running[j + 1] - running[max(0, j + 1 - step)] > 0
                past.append(_past_value(points[j], m, alive) if j >= 0 else None)
            verdict = judge(measure_of(p, m), p["calls"], past, m, **options)
            if verdict["anomalous"]:
                out.append({"bucket": p["bucket"], "measure": m, **verdict})
    return out
