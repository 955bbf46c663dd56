"""The ``/alerts`` page: every rule with its state, a form to add one, recent transitions.

The page reads the same ``AlertEngine`` answers as ``/api/alerts`` and
``/api/alerts/history`` (its JSON twin), and its forms go through the API's own rule
validation (``parse_rule``): a bad field re-renders the form with a 400 naming it.
Forms post URL-encoded bodies (no JavaScript needed); a post from another site's page
(an ``Origin`` that is not this server) is refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gensight.alerts import FILTER_KEYS, RuleError, parse_rule
from gensight.model import vocab
from gensight.web.render import error_page, render

router = APIRouter(include_in_schema=False)

#: The filters the form offers (the API takes all of ``FILTER_KEYS``).
FORM_FILTERS = ("app", "user", "model", "provider", "error_class", "environment")


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


def _page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    engine = request.app.state.alerts
    context.setdefault("form", {"window": "5m", "op": ">", "action": "notify", "format": "json"})
    context.setdefault("error", None)
    context.setdefault("bad_field", None)
    return render(
        request,
        "alerts.html",
        status_code=status_code,
        nav="alerts",
        states=engine.states(),
        history=engine.history(limit=50),
        measures=list(vocab.ALERT_MEASURES),
        ops=vocab.ALERT_OPS,
        actions=vocab.ALERT_ACTIONS,
        formats=vocab.ALERT_FORMATS,
        filter_names=FORM_FILTERS,
        json_url="/api/alerts",
        **context,
    )


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request) -> Response:
    """Rules and their state (firing first), the add form, and the last transitions."""
    return _page(request)


def rule_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The form's fields as a rule definition (blank fields left to the defaults)."""
    data: dict[str, Any] = {
        k: form[k].strip()
        for k in ("name", "measure", "window", "op", "action", "format", "score")
        if form.get(k, "").strip()
    }
    text = form.get("threshold", "").strip()
    if text:
        try:
            data["threshold"] = float(text)
        except ValueError:
            raise RuleError("threshold", f"{text!r} is not a number") from None
    data["filters"] = {
        k: form[f"filter_{k}"].strip() for k in FILTER_KEYS if form.get(f"filter_{k}", "").strip()
    }
    data["webhook"] = form.get("webhook", "").strip() or None
    return data


@router.post("/alerts", response_class=HTMLResponse)
async def add_rule(request: Request) -> Response:
    """Add a rule from the form; back to ``/alerts`` (303), or the form with a 400."""
    if not _same_origin(request):
        return error_page(request, 403, "Refused", "a form from another site cannot change rules")
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    try:
        rule = parse_rule(rule_from_form(form), source="api")
    except RuleError as e:
        return _page(request, 400, form=form, error=str(e), bad_field=e.field)
    request.app.state.alerts.create(rule)
    return RedirectResponse(f"/alerts#rule-{rule.id}", status_code=303)


@router.post("/alerts/{rule_id}/delete", response_class=HTMLResponse)
def delete_rule(request: Request, rule_id: str) -> Response:
    """Remove a rule; back to ``/alerts``."""
    if not _same_origin(request):
        return error_page(request, 403, "Refused", "a form from another site cannot change rules")
    if not request.app.state.alerts.delete(rule_id):
        return error_page(request, 404, "No such rule", f"no alert rule with id {rule_id!r}")
    return RedirectResponse("/alerts", status_code=303)
