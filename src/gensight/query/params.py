"""Query parameters shared by the API and the pages: times, filters, paging."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from gensight.store.base import CallFilters, Cursor

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ParamError(ValueError):
    """A bad query parameter; the message names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"invalid parameter {param!r}: {message}")
        self.param = param


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``7d``, ``2w`` as a timedelta (ValueError otherwise)."""
    m = _RELATIVE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h, 7d")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_time(param: str, text: str | None, now: datetime | None = None) -> datetime | None:
    """An ISO 8601 time or a relative one (``1h`` = one hour ago), as aware UTC."""
    if text is None or text == "":
        return None
    now = now or datetime.now(UTC)
    if _RELATIVE.match(text):
        return now - parse_duration(text)
    if text == "now":
        return now
    t = text.strip()
    if "T" in t and " " in t:  # an unescaped "+" offset arrives as a space
        t = t.replace(" ", "+")
    try:
        ts = datetime.fromisoformat(t)
    except ValueError:
        raise ParamError(
            param, f"{text!r} is neither an ISO 8601 time nor relative like 1h or 7d"
        ) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


_STATUSES = ("ok", "error")


def call_filters(
    *,
    since: str | None = None,
    until: str | None = None,
    app: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    status: str | None = None,
    error_class: str | None = None,
    user: str | None = None,
    session: str | None = None,
    environment: str | None = None,
    operation: str | None = None,
    source: str | None = None,
    q: str | None = None,
) -> CallFilters:
    """Validated filters from raw query parameters (ParamError naming a bad one)."""
    from gensight.model.records import ERROR_CLASSES

    start = parse_time("since", since)
    end = parse_time("until", until)
    if start and end and start >= end:
        raise ParamError("since", "must be earlier than until")
    if status and status not in _STATUSES:
        raise ParamError("status", f"must be one of {', '.join(_STATUSES)}")
    if error_class and error_class not in ERROR_CLASSES:
        raise ParamError("error_class", f"must be one of {', '.join(ERROR_CLASSES)}")
    if source and source not in ("gateway", "otlp"):
        raise ParamError("source", "must be gateway or otlp")
    return CallFilters(
        since=start,
        until=end,
        app=app or None,
        model=model or None,
        provider=provider or None,
        status=status or None,
        error_class=error_class or None,
        user=user or None,
        session=session or None,
        environment=environment or None,
        operation=operation or None,
        source=source or None,
        q=q or None,
    )


def parse_cursor(text: str | None) -> Cursor | None:
    """The paging cursor (ParamError when it is not one this server handed out)."""
    if not text:
        return None
    try:
        return Cursor.decode(text)
    except ValueError:
        raise ParamError("cursor", "not a cursor returned by this API") from None
