"""A prompt template's page (#19): its pattern, measures and latest calls, from the very
answer ``GET /api/templates/{id}`` returns."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from gensight.query import templates
from gensight.query.params import with_range
from gensight.web.pages import FILTER_PARAMS, _filters, _params, _store
from gensight.web.render import error_page, query_string, render

router = APIRouter(include_in_schema=False)


@router.get("/templates/{name}", response_class=HTMLResponse)
def template_page(request: Request, name: str) -> Response:
    """One template (default: the last 24 hours); 404 when no call has it."""
    f = with_range(_filters(request))
    answer = templates.template(_store(request), f, name)
    if answer is None:
        return error_page(request, 404, "No such template", f"no template with id {name!r}")
    params = _params(request, FILTER_PARAMS)
    return render(
        request, "template.html", nav="analysis", t=answer, params=params,
        calls_url="/calls" + query_string({**params, "template_id": name}),
        json_url=f"/api/templates/{quote(name, safe='')}" + query_string(params),
    )  # fmt: skip
