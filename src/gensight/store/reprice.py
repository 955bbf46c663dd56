"""Repricing stored calls after the price data or the prices file changed (#19 item 5).

Each matching call with usage (or a producer-reported cost) is priced again exactly as the
writer prices a new call (``Pricer.price`` from an unpriced copy: the prices file, then
genai-prices, then the reported cost, else unknown); the calls whose ``cost_usd`` or
``cost_source`` changed are written back whole (DuckDB replaces the row by id, ClickHouse
keeps the newest version of the id), the rest are left alone. Idempotent: a second run
with the same prices changes nothing. The report says how many calls were examined and
changed, per model, with the cost before and after.

Limits: calls are read and rewritten in pages by id; calls that arrive meanwhile are
priced by the writer (with the same new prices when the server reloaded them first).
The rollups (DuckDB, #18) stay exact: a rewritten call goes through ``store.write``,
which subtracts the stored version's rollup rows and adds the new one's.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from gensight.enrich.pricing import Pricer
from gensight.store.base import CallFilters

PAGE = 2000
#: Costs closer than this are the same cost (float noise from another summation order).
EPSILON = 1e-12


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= EPSILON * max(1.0, abs(a), abs(b))


def reprice(store: Any, pricer: Pricer, filters: CallFilters) -> dict[str, Any]:
    """Price the matching stored calls again; write back those whose cost changed."""
    examined = changed = 0
    by_model: dict[str, dict[str, Any]] = {}
    sources: dict[str, int] = {}
    after = None
    while True:
        page = store.calls_to_reprice(filters, PAGE, after)
        if not page:
            break
        after = page[-1].id
        rewrite = []
        for call in page:
            examined += 1
            fresh = copy.copy(call)
            if isinstance(call.attributes, dict):  # price() may note why a call is unpriced
                fresh.attributes = dict(call.attributes)
            fresh.cost_usd, fresh.cost_source = None, "unknown"
            try:
                pricer.price(fresh)
            except ValueError:  # an implausible stored call: leave it as it is
                continue
            if _same(fresh.cost_usd, call.cost_usd) and fresh.cost_source == call.cost_source:
                continue
            changed += 1
            model = call.request_model or call.response_model or "(unknown)"
            row = by_model.setdefault(
                model, {"model": model, "calls": 0, "before_usd": 0.0, "after_usd": 0.0,
                        "unpriced_before": 0, "unpriced_after": 0}
            )  # fmt: skip
            row["calls"] += 1
            if call.cost_usd is None:
                row["unpriced_before"] += 1
            else:
                row["before_usd"] += call.cost_usd
            if fresh.cost_usd is None:
                row["unpriced_after"] += 1
            else:
                row["after_usd"] += fresh.cost_usd
            key = f"{call.cost_source}->{fresh.cost_source}"
            sources[key] = sources.get(key, 0) + 1
            fields = {"cost_usd": fresh.cost_usd, "cost_source": fresh.cost_source}
            rewrite.append(replace(call, attributes=fresh.attributes, **fields))
        if rewrite:
            store.write(rewrite, [], [])
        if len(page) < PAGE:
            break
    models = sorted(by_model.values(), key=lambda r: (-r["calls"], r["model"]))
    return {
        "examined": examined,
        "changed": changed,
        "unchanged": examined - changed,
        "models": models,
        "sources": sources,
        "before_usd": sum(r["before_usd"] for r in models),
        "after_usd": sum(r["after_usd"] for r in models),
    }
