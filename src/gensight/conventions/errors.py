"""Why a call failed: one ``error_class`` from an HTTP status, an exception type or a message.

Producers spell failures many ways: ``error.type`` may be ``RateLimitError``,
``openai.RateLimitError``, ``429``, ``rate_limit_exceeded`` or ``_OTHER``; exception
events carry ``exception.type`` and a message such as ``Error code: 429 - {...}``.
The HTTP status wins where one is known, since it is what the provider said.
"""

from __future__ import annotations

import re

_STATUS_RE = re.compile(r"(?:Error code|status(?: code)?|HTTP)[:= ]+([1-5]\d\d)\b", re.IGNORECASE)

# Matched against the lowercased, dot-stripped type name, in this order.
_TYPE_RULES: tuple[tuple[str, str], ...] = (
    ("ratelimit", "rate_limit"),
    ("rate_limit", "rate_limit"),
    ("toomanyrequests", "rate_limit"),
    ("quota", "rate_limit"),
    ("timeout", "timeout"),
    ("timedout", "timeout"),
    ("deadline", "timeout"),
    ("cancel", "cancelled"),
    ("abort", "cancelled"),
    ("connection", "connection"),
    ("connect", "connection"),
    ("network", "connection"),
    ("remoteprotocol", "connection"),
    ("authentication", "auth"),
    ("permissiondenied", "auth"),
    ("unauthorized", "auth"),
    ("forbidden", "auth"),
    ("auth", "auth"),
    ("badrequest", "invalid_request"),
    ("invalidrequest", "invalid_request"),
    ("invalid_request", "invalid_request"),
    ("notfound", "invalid_request"),
    ("conflict", "invalid_request"),
    ("unprocessable", "invalid_request"),
    ("contentfilter", "invalid_request"),
    ("lengthfinish", "invalid_request"),
    ("internalserver", "upstream_error"),
    ("serviceunavailable", "upstream_error"),
    ("overloaded", "upstream_error"),
    ("badgateway", "upstream_error"),
    ("server_error", "upstream_error"),
    ("servererror", "upstream_error"),
    ("apierror", "upstream_error"),
    ("apistatuserror", "upstream_error"),
)


def error_class_for_status(status: int | None) -> str | None:
    """The error class an HTTP status implies; ``None`` for success or no status."""
    if status is None or status < 400:
        return None
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    if status == 408:
        return "timeout"
    if status == 499:
        return "cancelled"
    if status >= 500:
        return "timeout" if status == 504 else "upstream_error"
    return "invalid_request"


def status_from_text(text: str | None) -> int | None:
    """An HTTP status mentioned in an error type or message (``Error code: 429``, ``"429"``)."""
    if not text:
        return None
    t = text.strip()
    if len(t) == 3 and t.isdigit() and t[0] in "45":
        return int(t)
    m = _STATUS_RE.search(t)
    return int(m.group(1)) if m else None


def error_class_for_type(error_type: str | None, message: str | None = None) -> str:
    """The error class of an exception type name or ``error.type`` value, else ``unknown``."""
    status = status_from_text(error_type) or status_from_text(message)
    by_status = error_class_for_status(status)
    if by_status:
        return by_status
    for text in (error_type, message):
        if not text:
            continue
        key = text.rsplit(".", 1)[-1].lower().replace(" ", "")
        for needle, cls in _TYPE_RULES:
            if needle in key:
                return cls
    return "unknown"


def classify(
    http_status: int | None, error_type: str | None = None, message: str | None = None
) -> str:
    """The error class of a failed call from whatever is known about it."""
    return error_class_for_status(http_status) or error_class_for_type(error_type, message)
