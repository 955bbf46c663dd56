"""Prompt templates: calls, cost, p95, error rate and tokens per template, and one
template's pattern with sample calls.

A call's ``template_id`` is set when it is stored (``gensight.enrich.templates``: the
producer's ``gen_ai.prompt.name``, else the drain3-mined cluster); the measures are the
overview's (``group_by=template``), so a template's row counts what its call-log link
lists. Patterns come from the miner's state saved in the store.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from typing import Any

from gensight.enrich.templates import STATE_NAME, patterns_from_state
from gensight.query import analysis
from gensight.store.base import CallFilters

_cache: dict[str, Any] = {}
_lock = threading.Lock()


def patterns(store: Any) -> dict[str, dict[str, Any]]:
    """Mined templates' patterns by id, decoded once per saved state."""
    load = getattr(store, "load_template_state", None)
    state = load(STATE_NAME) if load is not None else None
    if not state:
        return {}
    key = hashlib.sha256(state.encode()).hexdigest()
    with _lock:
        if _cache.get("key") == key:
            return _cache["patterns"]
    found = patterns_from_state(state)
    with _lock:
        _cache.update(key=key, patterns=found)
    return found


def _row(template_id: str, row: dict[str, Any], known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    mined = known.get(template_id)
    return {
        "template_id": template_id,
        "pattern": mined["pattern"] if mined else None,
        "named": mined is None and not template_id.startswith("mined-"),
        **analysis.totals_row(row),
    }


def templates(store: Any, filters: CallFilters) -> dict[str, Any]:
    """Every template of the matching calls, most costly first, and the untemplated rest."""
    rows = store.group_rows(filters, "template")
    known = patterns(store)
    items = [_row(r["grp"], r, known) for r in rows if r["grp"] is not None]
    untemplated = next((int(r["calls"]) for r in rows if r["grp"] is None), 0)
    items.sort(key=lambda t: (-t["cost_usd"], -t["calls"], t["template_id"]))
    return {"items": items, "untemplated_calls": untemplated}


def template(store: Any, filters: CallFilters, template_id: str) -> dict[str, Any] | None:
    """One template: its pattern, its measures and its latest calls (None when unknown)."""
    f = replace(filters, template_id=template_id)
    row = store.aggregate(f)
    known = patterns(store)
    if not int(row.get("calls") or 0) and template_id not in known:
        return None
    samples, _ = store.list_calls(f, 10, None)
    return {**_row(template_id, row, known), "samples": samples}
