"""The savings sections of ``/analysis`` and the dashboard (issue #19): what-if prices,
cache opportunities, prompt templates, forecast and anomalies, rendered from the very
answers ``gensight.web.savings_api`` returns."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from gensight.model import vocab
from gensight.query import cache, templates, whatif
from gensight.query.params import ParamError
from gensight.store.base import CallFilters
from gensight.web.render import query_string


def analysis_sections(request: Request, f: CallFilters, params: dict[str, str]) -> dict[str, Any]:
    """The template context of the savings sections, and their JSON twins."""
    store = request.app.state.store
    qp = request.query_params
    as_text = qp.get("as") or ",".join(vocab.WHAT_IF_DEFAULTS)
    targets = whatif.parse_targets(as_text)
    try:
        wi = whatif.what_if(store, request.app.state.pricer, f, targets, "model")
        wi_error = None
    except ParamError as e:  # an unpriced model typed in the form: say so in the section
        wi, wi_error = None, str(e)
    opportunities = cache.cache_opportunities(store, request.app.state.pricer, f)
    return {
        "templates": templates.templates(store, f),
        "cache": opportunities,
        "what_if": wi,
        "what_if_error": wi_error,
        "what_if_as": as_text,
        "savings_json": {
            "what-if": "/api/analysis/what-if" + query_string({**params, "as": as_text}),
            "cache": "/api/analysis/cache" + query_string(params),
            "templates": "/api/analysis/templates" + query_string(params),
        },
    }
