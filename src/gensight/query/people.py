"""The answers about conversations and users: ``/api/sessions``, ``/api/sessions/{id}``,
``/api/users``, ``/api/users/{id}`` and the pages over them.

A session is every call carrying one ``session`` id (``gen_ai.conversation.id``,
``session.id``, ``X-Gensight-Session``), its turns in time order; a user every call
of one ``user``. Their measures are the overview's (``analysis.totals_row``); a user's
budget state comes from the alert rules' states handed in (the query layer does not
run alerts).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gensight.query import analysis
from gensight.store.base import CallFilters

#: Sessions or users listed at most per answer.
MAX_ROWS = 200
#: Turns of one session shown at most.
MAX_TURNS = 1000


def _row(r: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        key: r["grp"],
        "first_ts": r["first_ts"],
        "last_ts": r["last_ts"],
        "app": r.get("app"),
        **({"user": r.get("who")} if key == "session" else {}),
        **analysis.totals_row(r),
    }


def sessions(store: Any, filters: CallFilters, limit: int = MAX_ROWS) -> dict[str, Any]:
    """``{"items": [{session, first_ts, last_ts, app, user, ...measures}], "truncated"}``:
    the conversations of the matching calls, most recently active first."""
    rows = store.people_rows(filters, "session", limit)
    return {"items": [_row(r, "session") for r in rows[:limit]], "truncated": len(rows) > limit}


def session(
    store: Any, session_id: str, filters: CallFilters | None = None
) -> dict[str, Any] | None:
    """One conversation: its row and its turns (calls with messages) in time order."""
    f = replace(filters or CallFilters(), session=session_id)
    rows = store.people_rows(f, "session", 1)
    if not rows:
        return None
    turns, more = store.list_calls(f, MAX_TURNS, None, True, "ts", "asc")
    return {**_row(rows[0], "session"), "turns": turns, "truncated": more is not None}


def budget_states(states: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    """The budget rules (``action`` block) of each app or user, from the alert states."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in states:
        value = (s.get("filters") or {}).get(key)
        if s.get("action") == "block" and value:
            out.setdefault(value, []).append(
                {
                    "rule_id": s["rule_id"],
                    "name": s["name"],
                    "state": s["state"],
                    "since": s.get("since"),
                    "threshold": s.get("threshold"),
                    "value": s.get("value"),
                    "window": s.get("window"),
                }
            )
    return out


def _budget(rules: list[dict[str, Any]]) -> str:
    if not rules:
        return "none"
    return "blocked" if any(r["state"] == "firing" for r in rules) else "ok"


def users(
    store: Any, filters: CallFilters, states: list[dict[str, Any]], limit: int = MAX_ROWS
) -> dict[str, Any]:
    """``{"items": [{user, first_ts, last_ts, app, ...measures, budget, budgets}]}``:
    per user of the matching calls, most recently seen first; ``budget`` is ``blocked``
    while one of the user's budget rules fires, ``ok`` when it has some, else ``none``."""
    rows = store.people_rows(filters, "user", limit)
    budgets = budget_states(states, "user")
    items = []
    for r in rows[:limit]:
        row = _row(r, "user")
        row["budgets"] = budgets.get(row["user"], [])
        row["budget"] = _budget(row["budgets"])
        items.append(row)
    return {"items": items, "truncated": len(rows) > limit}


def user(
    store: Any, user_id: str, filters: CallFilters, states: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """One user: the row of ``users`` and the user's sessions."""
    f = replace(filters, user=user_id)
    rows = store.people_rows(f, "user", 1)
    if not rows:
        return None
    row = _row(rows[0], "user")
    row["budgets"] = budget_states(states, "user").get(user_id, [])
    row["budget"] = _budget(row["budgets"])
    row["sessions"] = sessions(store, f)["items"]
    return row
