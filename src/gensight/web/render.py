"""Templates, formatting filters and the response headers every page carries.

Templates are autoescaped: prompts, completions, attribute values and even the Host
header are untrusted text and are never marked safe. Chart data reaches the browser only
as JSON inside ``<script type="application/json">`` (Jinja's ``tojson`` escapes ``<``,
``>``, ``&`` and ``'``), and the Content-Security-Policy allows scripts from this server's
``/static`` files only, so markup that slips into a page still cannot run.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gensight.model import vocab

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

#: No inline script or style, no plugins, no framing; forms and fetches stay on this server.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def fmt_ms(value: float | None) -> str:
    """``345 ms`` below a second, ``1.23 s`` above; ``–`` for nothing."""
    if value is None:
        return "–"
    if value == 0:
        return "0 ms"
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.2f} s"


def fmt_usd(value: float | None) -> str:
    """Dollars with enough decimals for the tiny costs of single calls: two significant
    digits below a cent (``$0.00000014``), ``<$0.00000001`` below that; never a
    non-zero cost shown as zero."""
    if value is None:
        return "–"
    if value == 0:
        return "$0"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1:
        return f"{sign}${v:,.2f}"
    if v >= 0.01:
        return f"{sign}${v:.4f}"
    if v < 1e-8:
        return f"{sign}<$0.00000001"
    digits = 1 - math.floor(math.log10(v))  # two significant digits
    return f"{sign}${v:.{digits}f}"


def fmt_int(value: float | None) -> str:
    """Thousands separators; ``–`` for nothing."""
    if value is None:
        return "–"
    return f"{int(value):,}"


def fmt_compact(value: float | None) -> str:
    """Large counts short: ``1,234``, ``45.7k``, ``458k``, ``1.23M``."""
    if value is None:
        return "–"
    v = float(value)
    if abs(v) < 10_000:
        return f"{int(v):,}"
    for unit, size in (("k", 1e3), ("M", 1e6), ("B", 1e9)):
        shown = v / size
        if abs(shown) < 999.5 or unit == "B":
            digits = 0 if abs(shown) >= 99.95 else 1 if abs(shown) >= 9.995 else 2
            return f"{shown:.{digits}f}{unit}"
    raise AssertionError("unreachable")


def fmt_pct(value: float | None) -> str:
    """A 0–1 ratio as a percentage."""
    if value is None:
        return "–"
    return f"{value * 100:.1f}%"


def fmt_num(value: float | None, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def fmt_seconds(value: int) -> str:
    """A bucket width: ``30 s``, ``10 min``, ``3 h``, ``1 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} s"


def parse_ts(text: str | datetime) -> datetime:
    """An API timestamp (ISO 8601) as an aware UTC datetime."""
    ts = text if isinstance(text, datetime) else datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def fmt_ts(value: str | datetime | None) -> str:
    """``2026-01-31 12:00:05.123`` (UTC)."""
    if not value:
        return "–"
    ts = parse_ts(value)
    return ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def fmt_minute(value: str | datetime | None) -> str:
    """``05:59`` today, ``2026-01-31 05:59`` on another day (UTC)."""
    if not value:
        return "–"
    ts = parse_ts(value)
    if ts.date() == datetime.now(UTC).date():
        return ts.strftime("%H:%M")
    return ts.strftime("%Y-%m-%d %H:%M")


def fmt_json(value: Any) -> str:
    """Pretty JSON text for a value (strings that hold JSON are decoded first)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def fmt_value(value: Any) -> str:
    """An attribute value as one line of text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ms=fmt_ms,
        seconds=fmt_seconds,
        usd=fmt_usd,
        int=fmt_int,
        compact=fmt_compact,
        pct=fmt_pct,
        num=fmt_num,
        ts=fmt_ts,
        minute=fmt_minute,
        pretty_json=fmt_json,
        value=fmt_value,
    )
    # one vocabulary: the forms' filters, choice lists and labels are vocab's
    env.globals.update(vocab=vocab, label=vocab.label, long_label=vocab.LONG_LABELS.get)
    return env


ENV = _env()


def query_string(params: dict[str, Any]) -> str:
    """``?a=1&b=2`` from the params that are set (empty string when none are)."""
    kept = [(k, v) for k, v in params.items() if v not in (None, "")]
    return ("?" + urlencode(kept)) if kept else ""


def base_url(request: Request) -> str:
    """``http://HOST:PORT`` as the browser reached this server."""
    return str(request.base_url).rstrip("/")


def firing_rules(request: Request) -> list[dict[str, Any]]:
    """The alert rules firing now, for the header's badge (none for a caller who may not
    read, such as the login page's, or when alerts are off or unreadable)."""
    alerts = getattr(request.app.state, "alerts", None)
    keyring = getattr(request.app.state, "keyring", None)
    scopes = request.scope.get("state", {}).get("gensight_scopes", ())
    if alerts is None or (keyring and "read" not in scopes):
        return []
    try:
        return [s for s in alerts.states() if s["state"] == "firing"]
    except Exception:  # the badge never breaks a page
        return []


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from a template, with the security headers."""
    context.setdefault("refresh", None)
    context.setdefault("json_url", None)
    context.setdefault("nav", None)
    context.setdefault("charts", None)
    context.setdefault("signed_in", bool(request.scope.get("state", {}).get("gensight_session")))
    context.setdefault("firing", firing_rules(request))
    context.setdefault("keyed", bool(getattr(request.app.state, "keyring", None)))
    html = ENV.get_template(template).render(request=request, server=base_url(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def error_page(
    request: Request, status_code: int, title: str, message: str, param: str | None = None
) -> HTMLResponse:
    """A 400 or 404 page that says what was wrong (and which parameter)."""
    return render(
        request,
        "error.html",
        status_code=status_code,
        title=title,
        message=message,
        param=param,
    )
