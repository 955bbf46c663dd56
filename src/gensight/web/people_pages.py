"""The pages ``/sessions``, ``/sessions/{id}``, ``/users`` and ``/users/{id}``: the
answers of ``gensight.query.people`` (the ones ``/api/sessions`` and ``/api/users``
return), each page linking its JSON twin."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from gensight.query import answers, people
from gensight.query.params import with_range
from gensight.store.base import CallFilters
from gensight.web import call_log
from gensight.web.api_people import DEFAULT_RANGE, alert_states
from gensight.web.pages import FILTER_PARAMS, _filters, _link, _params, _store, page
from gensight.web.render import error_page, query_string, render

router = APIRouter(include_in_schema=False)

#: The filters the two list pages offer.
PEOPLE_FILTERS = ("since", "until", "app", "model", "user", "session", "environment")


def _list_page(request: Request, name: str, f: CallFilters, answer: dict[str, Any]) -> Response:
    """``/sessions`` or ``/users``: the answer, its filters and its JSON twin's link."""
    params = _params(request, FILTER_PARAMS)
    return render(
        request, f"{name}.html", nav=name, params=params, url=_link(f"/{name}"),
        answer=answer, since=f.since, until=f.until, names=PEOPLE_FILTERS,
        suggestions=answers.suggestions(_store(request), f.since, f.until),
        json_url=f"/api/{name}" + query_string(params),
    )  # fmt: skip


@router.get("/sessions", response_class=HTMLResponse)
@page
def sessions(request: Request) -> Response:
    """Conversations: first and last time, calls, cost, errors; newest first."""
    f = with_range(_filters(request), DEFAULT_RANGE)
    return _list_page(request, "sessions", f, people.sessions(_store(request), f))


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
@page
def session(request: Request, session_id: str) -> Response:
    """One conversation: its turns in order, each with its prompt and response."""
    answer = people.session(_store(request), session_id)
    if answer is None:
        return error_page(request, 404, "No such session", f"no session with id {session_id!r}")
    for turn in answer["turns"]:
        turn["preview"] = call_log.preview(turn)
    return render(
        request, "session.html", nav="sessions", s=answer,
        json_url="/api/sessions/" + quote(session_id, safe=""),
    )  # fmt: skip


@router.get("/users", response_class=HTMLResponse)
@page
def users(request: Request) -> Response:
    """Per user: calls, cost, error rate, p95, last seen and budget state."""
    f = with_range(_filters(request), DEFAULT_RANGE)
    return _list_page(request, "users", f, people.users(_store(request), f, alert_states(request)))


@router.get("/users/{user_id}", response_class=HTMLResponse)
@page
def user(request: Request, user_id: str) -> Response:
    """One user: their measures, budget and sessions."""
    f = with_range(_filters(request), DEFAULT_RANGE)
    answer = people.user(_store(request), user_id, f, alert_states(request))
    if answer is None:
        return error_page(
            request, 404, "No such user", f"no calls of user {user_id!r} in this range"
        )
    params = _params(request, FILTER_PARAMS)
    return render(
        request, "user.html", nav="users", u=answer, params=params,
        json_url=f"/api/users/{quote(user_id, safe='')}" + query_string(params),
    )  # fmt: skip
