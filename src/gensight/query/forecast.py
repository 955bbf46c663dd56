"""Month-end spend: month to date and a projection from the recent daily run rate (#19).

``month_to_date`` is the priced cost of the current UTC month's calls up to now. The run
rate is the mean daily cost of the last ``DAYS`` complete UTC days (fewer when the calls
began more recently: days before the first day with calls do not count). The projection
is month to date plus the run rate times the days left (fractional: the rest of today
counts); its range is about 95% under independent days: ±1.96 × √(n·s² + n²·s²/d), where
s is the days' standard deviation, d their number and n the days left (the day-to-day
variation of the days to come and the uncertainty of the rate), never below the month to
date. Per app, and in total (the total is its own sum, not the apps' ranges added).

Limits: a run rate, not a model of growth or weekly seasonality; unpriced calls (cost
unknown) add nothing; a month's first day projects from the previous days.
"""

from __future__ import annotations

import calendar
import math
import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gensight.query import answers
from gensight.store.base import CallFilters

#: Complete days the run rate averages.
DAYS = 7
DAY = 86400
Z95 = 1.96


def _month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(now.year, now.month)[1]
    return start, start + timedelta(days=days)


def _project(mtd: float, daily: list[float], left: float) -> dict[str, Any]:
    if not daily:
        return {"rate_usd_per_day": None, "forecast_usd": None, "low_usd": None, "high_usd": None}
    rate = statistics.fmean(daily)
    s = statistics.stdev(daily) if len(daily) > 1 else 0.0
    half = Z95 * math.sqrt(left * s * s + left * left * s * s / len(daily))
    point = mtd + rate * left
    return {
        "rate_usd_per_day": rate,
        "forecast_usd": point,
        "low_usd": max(mtd, point - half),
        "high_usd": point + half,
    }


def month_end(store: Any, filters: CallFilters, now: datetime | None = None) -> dict[str, Any]:
    """The total's month to date, run rate and projected month-end spend with its range,
    and the same per app (``apps``, costliest projection first)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start, end = _month_bounds(now)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=DAYS)
    left = (end - now).total_seconds() / DAY
    mtd_f = replace(filters, since=start, until=now)
    days_f = replace(filters, since=first, until=today)
    total = answers.totals(store, mtd_f)
    # one row per (day, app); the ungrouped days are the apps' sums
    rows = store.series_rows(days_f, DAY, "app")
    by_day: dict[Any, dict[str | None, float]] = {}
    for r in rows:
        by_day.setdefault(_utc(r["bucket"]), {})[r["grp"]] = float(r.get("cost_usd") or 0.0)
    days = [first + timedelta(days=i) for i in range(DAYS)]

    def daily(app: str | None, whole: bool) -> list[float]:
        values = [
            sum(by_day.get(d, {}).values()) if whole else by_day.get(d, {}).get(app, 0.0)
            for d in days
        ]
        seen = [i for i, d in enumerate(days) if (by_day.get(d) if whole else
                                                  app in by_day.get(d, {}))]  # fmt: skip
        return values[seen[0] :] if seen else []

    apps = []
    mtd_apps = {r["grp"]: r for r in store.group_rows(mtd_f, "app")}
    names = set(mtd_apps) | {a for v in by_day.values() for a in v}
    for app in names:
        mtd = float((mtd_apps.get(app) or {}).get("cost_usd") or 0.0)
        projected = _project(mtd, daily(app, False), left)
        apps.append({"app": app, "month_to_date_usd": mtd, **projected})
    apps.sort(key=lambda a: (-(a["forecast_usd"] or a["month_to_date_usd"]), a["app"] or ""))
    mtd_total = float(total.get("cost_usd") or 0.0)
    return {
        "month": start.strftime("%Y-%m"),
        "now": now.isoformat(),
        "days_left": left,
        "rate_days": DAYS,
        "month_to_date_usd": mtd_total,
        "unpriced_calls": total.get("unpriced_calls", 0),
        **_project(mtd_total, daily(None, True), left),
        "apps": apps,
    }


def _utc(ts: Any) -> datetime:
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
