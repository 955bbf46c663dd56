"""The ``/alerts`` page: every rule with its state, a form to add one, recent transitions.

The page reads the same ``AlertEngine`` answers as ``/api/alerts`` and
``/api/alerts/history`` (its JSON twin), and its forms go through the API's own rule
validation (``parse_rule``): a bad field re-renders the form with a 400 naming it.
Forms post URL-encoded bodies (no JavaScript needed); a post from another site's page
(an ``Origin`` that is not this server) is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gensight.alerts import FILTER_KEYS, RuleError, parse_rule
from gensight.model import vocab
from gensight.receive.origin import cross_site_refusal
from gensight.web.render import error_page, query_string, render

router = APIRouter(include_in_schema=False)

#: The filters the form offers (the API takes all of ``FILTER_KEYS``).
FORM_FILTERS = ("app", "user", "model", "provider", "error_class", "environment")


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from this server's own page (``OriginGuard`` refuses the
    rest before this; kept as a second check where the page changes something)."""
    headers = {k.lower(): v for k, v in request.scope.get("headers") or ()}
    trusted = bool(getattr(request.app.state.settings, "trusted_proxy", False))
    return cross_site_refusal(headers, request.url.scheme, trusted, session=False) is None


def _calls_url(engine: Any, state: dict[str, Any], now: datetime) -> str:
    """The call log of a rule's matching calls in its current window."""
    rule = engine.get(state["rule_id"])
    params: dict[str, Any] = dict(state.get("filters") or {})
    if rule is not None:
        since, _ = rule.window_range(now)
        params["since"] = since.isoformat()
    if state.get("measure") in ("errors", "error_rate"):
        params["status"] = "error"
    return "/calls" + query_string(params)


def _page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    engine = request.app.state.alerts
    context.setdefault("form", {"window": "5m", "op": ">", "action": "notify", "format": "json"})
    context.setdefault("error", None)
    context.setdefault("bad_field", None)
    context.setdefault("editing", None)
    now = datetime.now(UTC)
    states = engine.states()
    for st in states:
        st["calls_url"] = _calls_url(engine, st, now)
    return render(
        request,
        "alerts.html",
        status_code=status_code,
        nav="alerts",
        states=states,
        units=vocab.MEASURE_UNITS,
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
    """Rules and their state (firing first), the add form (or, with ``edit=ID``, the
    form filled with that rule), and the last transitions."""
    edit = request.query_params.get("edit")
    if edit:
        rule = request.app.state.alerts.get(edit)
        if rule is None:
            return error_page(request, 404, "No such rule", f"no alert rule with id {edit!r}")
        return _page(request, form=_form_of(rule.to_dict()), editing=rule.id)
    return _page(request)


def _form_of(rule: dict[str, Any]) -> dict[str, str]:
    form = {k: str(rule[k]) for k in ("name", "measure", "window", "op", "action", "format")}
    form["threshold"] = "" if rule.get("threshold") is None else f"{rule['threshold']:g}"
    form["kind"] = rule.get("kind") or "threshold"
    form["webhook"] = rule.get("webhook") or ""
    form["id"] = rule["id"]
    for k, v in (rule.get("filters") or {}).items():
        form[f"filter_{k}"] = v
    return form


@router.get("/alerts/{rule_id}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, rule_id: str) -> Response:
    """Asks before a rule is removed (a plain page: works without JavaScript)."""
    rule = request.app.state.alerts.get(rule_id)
    if rule is None:
        return error_page(request, 404, "No such rule", f"no alert rule with id {rule_id!r}")
    return render(request, "alert_delete.html", nav="alerts", rule=rule.to_dict())


def rule_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The form's fields as a rule definition (blank fields left to the defaults)."""
    data: dict[str, Any] = {
        k: form[k].strip()
        for k in ("name", "measure", "window", "op", "action", "format", "score", "kind")
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
    if form.get("id", "").strip():  # an edit: the rule with this id is replaced
        data["id"] = form["id"].strip()
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
        return _page(
            request, 400, form=form, error=str(e), bad_field=e.field, editing=form.get("id")
        )
    try:
        request.app.state.alerts.create(rule)
    except RuleError as e:  # a webhook address refused after DNS, …
        return _page(
            request, 400, form=form, error=str(e), bad_field=e.field, editing=form.get("id")
        )
    return RedirectResponse(f"/alerts#rule-{rule.id}", status_code=303)


@router.post("/alerts/{rule_id}/delete", response_class=HTMLResponse)
def delete_rule(request: Request, rule_id: str) -> Response:
    """Remove a rule; back to ``/alerts``."""
    if not _same_origin(request):
        return error_page(request, 403, "Refused", "a form from another site cannot change rules")
    if not request.app.state.alerts.delete(rule_id):
        return error_page(request, 404, "No such rule", f"no alert rule with id {rule_id!r}")
    return RedirectResponse("/alerts", status_code=303)
