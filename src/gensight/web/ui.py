"""The web UI: server-rendered pages over the same query layer as the JSON API.

Pages (all HTML, all usable without JavaScript except the charts):

- ``/`` dashboard: time range, group-by, auto-refresh; tiles and charts.
- ``/calls`` the call log (the ``/api/calls`` filters as query parameters) and
  ``/calls/{id}`` one call.
- ``/traces/{trace_id}`` the waterfall of a trace.
- ``/sessions`` conversations and ``/sessions/{id}`` one with its turns; ``/users``
  and ``/users/{id}`` per user with budget state.
- ``/analysis`` latency against output tokens, correlations, dependencies.
- ``/alerts`` alert rules and budgets with their state; add and remove rules.
- ``/login`` and ``/logout`` when keys are configured (``gensight.receive.auth``).

Static files (stylesheet, the page script, Chart.js vendored under ``static/vendor``)
are served from ``/static``; nothing is fetched from elsewhere.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from gensight.web.alerts_page import router as alerts_router
from gensight.web.login import router as login_router
from gensight.web.pages import router
from gensight.web.people_pages import router as people_router
from gensight.web.render import STATIC_DIR

__all__ = ["mount_ui", "router"]


def mount_ui(app: FastAPI) -> None:
    """Add the pages and ``/static`` to the server's app."""
    app.include_router(router)
    app.include_router(people_router)
    app.include_router(alerts_router)
    app.include_router(login_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
