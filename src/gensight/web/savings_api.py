"""The JSON API of where the money goes (issue #19): what-if prices, cache opportunities,
prompt templates, the month-end forecast, anomalies, and repricing stored calls.

Every route returns a ``gensight.query`` answer as it is; the pages render the same ones.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from gensight.query import schemas, whatif
from gensight.query.params import with_range
from gensight.web.api import _ERRORS, Filters

router = APIRouter(prefix="/api", tags=["savings"], responses=_ERRORS)


def _store(request: Request) -> Any:
    return request.app.state.store


@router.get("/analysis/what-if", summary="Recorded usage repriced under other models")
def what_if(
    request: Request,
    filters: Filters,
    as_: Annotated[
        str | None,
        Query(
            alias="as",
            description="model(s) to reprice as, comma-separated; provider:model to pin one",
        ),
    ] = None,
    group_by: Annotated[schemas.GroupBy | None, Query()] = None,
) -> dict[str, Any]:
    """``{"totals": {cost_usd, targets: [{model, cost_usd, saving_usd, estimate}]},
    "groups": [...]}`` (default 24h, grouped by model); 400 for an unpriced target."""
    targets = whatif.parse_targets(as_)
    return whatif.what_if(
        _store(request), request.app.state.pricer, with_range(filters), targets, group_by or "model"
    )
