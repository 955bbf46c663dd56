"""Query parameters shared by the API, the pages, alerts and the CLI: times, filters,
intervals, paging."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gensight.model.scores import parse_score_filter
from gensight.model.units import is_duration, parse_duration
from gensight.model.vocab import (
    CALL_FILTERS,
    CALL_SORT_KEYS,
    FILTER_NAMES,
    FILTERS,
    GROUP_BY,
    SORT_ORDERS,
    one_of,
)
from gensight.query.analysis import choose_interval
from gensight.store.base import CallFilters, Cursor


class ParamError(ValueError):
    """A bad query parameter; the message names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"invalid parameter {param!r}: {message}")
        self.param = param


def parse_time(param: str, text: str | None, now: datetime | None = None) -> datetime | None:
    """An ISO 8601 time or a relative one (``1h`` = one hour ago), as aware UTC."""
    if text is None or text == "":
        return None
    now = now or datetime.now(UTC)
    if is_duration(text):
        try:
            return _in_range(param, now - parse_duration(text))
        except (ValueError, OverflowError):
            raise ParamError(param, f"{text!r} reaches back before {MIN_TIME.year}") from None
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
    try:
        return _in_range(param, ts.astimezone(UTC))
    except OverflowError:
        raise ParamError(param, f"{text!r} is out of range") from None


#: Times a query may name: calls are from this era, and ranges around them stay computable.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def _in_range(param: str, ts: datetime) -> datetime:
    if not MIN_TIME <= ts <= MAX_TIME:
        raise ParamError(param, f"{ts.isoformat()} is outside {MIN_TIME.year}..{MAX_TIME.year}")
    return ts


def call_filters(**params: str | None) -> CallFilters:
    """Validated filters from raw query parameters named as ``vocab.CALL_FILTERS``
    (ParamError naming an unknown or bad one; blank values are no filter)."""
    for name in params:
        if name not in FILTERS:
            raise ParamError(name, f"unknown filter; {one_of(FILTER_NAMES)}")
    start = parse_time("since", params.get("since"))
    end = parse_time("until", params.get("until"))
    if start and end and start >= end:
        raise ParamError("since", "must be earlier than until")
    values: dict[str, str | None] = {}
    for f in CALL_FILTERS:
        if f.name in ("since", "until"):
            continue
        value = params.get(f.name) or None
        if value is not None and f.choices is not None and value not in f.choices:
            raise ParamError(f.name, one_of(f.choices))
        if value is not None and f.name == "score":
            try:
                parse_score_filter(value)
            except ValueError as e:
                raise ParamError("score", str(e)) from None
        values[f.name] = value
    return CallFilters(since=start, until=end, **values)


def parse_cursor(text: str | None, sort: str = "ts", order: str = "desc") -> Cursor | None:
    """The paging cursor (ParamError when it is not one this server handed out, or one
    handed out for another ``sort``/``order``)."""
    if not text:
        return None
    try:
        cursor = Cursor.decode(text)
    except ValueError:
        raise ParamError("cursor", "not a cursor returned by this API") from None
    if (cursor.key, cursor.order) != (sort, order):
        raise ParamError(
            "cursor",
            f"this cursor pages sort={cursor.key}&order={cursor.order}, not"
            f" sort={sort}&order={order}; start again without cursor",
        )
    return cursor


def parse_sort(sort: str | None, order: str | None) -> tuple[str, str]:
    """The call log's ``sort`` key and ``order`` (default: time, newest first)."""
    key = sort or "ts"
    if key not in CALL_SORT_KEYS:
        raise ParamError("sort", one_of(CALL_SORT_KEYS))
    direction = order or "desc"
    if direction not in SORT_ORDERS:
        raise ParamError("order", one_of(SORT_ORDERS))
    return key, direction


def with_range(filters: CallFilters, default: timedelta = timedelta(hours=24)) -> CallFilters:
    """Filters with ``since``/``until`` filled in (default: the last 24 hours)."""
    until = filters.until or datetime.now(UTC)
    since = filters.since or (until - default)
    return replace(filters, since=since, until=until)


def parse_interval(text: str | None, filters: CallFilters) -> int:
    """Bucket width in seconds: given (``5m``) or chosen from the range."""
    assert filters.since and filters.until
    if not text:
        return choose_interval(filters.since, filters.until)
    try:
        seconds = int(parse_duration(text).total_seconds())
    except ValueError as e:
        raise ParamError("interval", str(e)) from None
    if seconds < 1:
        raise ParamError("interval", "must be at least 1s")
    if (filters.until - filters.since).total_seconds() / seconds > 10_000:
        raise ParamError("interval", "too small for the range: more than 10,000 buckets")
    return seconds


def parse_group_by(text: str | None) -> str | None:
    """A ``group_by`` dimension of ``vocab.GROUP_BY`` (None when blank)."""
    if not text:
        return None
    if text not in GROUP_BY:
        raise ParamError("group_by", one_of(GROUP_BY))
    return text
