"""The JSON API of conversations and users: ``/api/sessions``, ``/api/sessions/{id}``,
``/api/users``, ``/api/users/{id}`` (the pages ``/sessions`` and ``/users`` render the
same answers, from ``gensight.query.people``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from gensight.query import people, schemas
from gensight.query.params import with_range
from gensight.web.api import _ERRORS, Filters

router = APIRouter(prefix="/api", tags=["api"], responses=_ERRORS)

#: Lists of sessions and users cover the last 7 days unless since/until say otherwise.
DEFAULT_RANGE = timedelta(days=7)


def alert_states(request: Request) -> list[dict[str, Any]]:
    """The alert rules' states (budgets among them), or none when alerts are off."""
    alerts = getattr(request.app.state, "alerts", None)
    return alerts.states() if alerts is not None else []


@router.get(
    "/sessions",
    summary="Conversations, most recently active first",
    response_model=schemas.SessionList,
)
def list_sessions(request: Request, filters: Filters) -> dict[str, Any]:
    """``{"items": [{"session", "first_ts", "last_ts", "app", "user", calls, errors,
    cost_usd, …}], "truncated"}`` over the matching calls (default: the last 7 days)."""
    return people.sessions(request.app.state.store, with_range(filters, DEFAULT_RANGE))


@router.get(
    "/sessions/{session_id}",
    summary="One conversation and its turns",
    response_model=schemas.Session,
)
def get_session(request: Request, session_id: str) -> dict[str, Any]:
    """The session's row and ``turns``: its calls with messages, oldest first."""
    answer = people.session(request.app.state.store, session_id)
    if answer is None:
        raise HTTPException(404, f"no session with id {session_id!r}")
    return answer


@router.get("/users", summary="Users, most recently seen first", response_model=schemas.UserList)
def list_users(request: Request, filters: Filters) -> dict[str, Any]:
    """``{"items": [{"user", "first_ts", "last_ts", calls, cost_usd, error_rate,
    latency_ms, …, "budget": "blocked"|"ok"|"none", "budgets"}]}`` (default: 7 days)."""
    f = with_range(filters, DEFAULT_RANGE)
    return people.users(request.app.state.store, f, alert_states(request))


@router.get(
    "/users/{user_id}", summary="One user, with their sessions", response_model=schemas.User
)
def get_user(request: Request, user_id: str, filters: Filters) -> dict[str, Any]:
    """The user's row of ``/api/users`` and ``sessions`` (default: the last 7 days)."""
    f = with_range(filters, DEFAULT_RANGE)
    answer = people.user(request.app.state.store, user_id, f, alert_states(request))
    if answer is None:
        raise HTTPException(404, f"no calls of user {user_id!r} in this range")
    return answer
