"""Why a call failed: one ``error_class`` from an HTTP status, an exception type or a message.

Producers spell failures many ways: ``error.type`` may be ``RateLimitError``,
``openai.RateLimitError``, ``429``, ``rate_limit_exceeded`` or ``_OTHER``; exception
events carry ``exception.type`` and a message such as ``Error code: 429 - {...}``.
The HTTP status wins where one is known, since it is what the provider said.
"""

from __future__ import annotations

import json
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


# -- an upstream's error answer: its status *and* its body ---------------------------------

#: Provider error codes (OpenAI ``code``, Azure ``code``, llama.cpp ``type``) kept as the
#: record's error code, and the class each one is.
_CODES: dict[str, str] = {
    "context_length_exceeded": "invalid_request",
    "exceed_context_size_error": "invalid_request",  # llama.cpp
    "string_above_max_length": "invalid_request",
    "content_filter": "invalid_request",  # Azure OpenAI
    "content_policy_violation": "invalid_request",
    "insufficient_quota": "rate_limit",
    "rate_limit_exceeded": "rate_limit",
    "invalid_api_key": "auth",
    "model_not_found": "invalid_request",
}

#: ``type`` values that name a bad request whatever the status (vLLM answers
#: ``BadRequestError`` bodies; some servers send them with a 500).
_INVALID_TYPES = frozenset(
    {"invalid_request_error", "badrequesterror", "invalid_request", "validation_error"}
)

#: Messages of validation errors that servers return as 500 (llama.cpp's JSON parser,
#: vLLM's and TGI's request checks).
_VALIDATION = re.compile(
    r"json\.exception|validation error|must be (?:a |an )?(?:string|array|object|integer|number)"
    r"|is a required property|missing required|field required|unrecognized request argument"
    r"|maximum context length|exceeds? the (?:available )?context",
    re.IGNORECASE,
)


def _error_fields(body: str | None) -> tuple[str | None, str | None, str | None, int | None]:
    """``(type, code, message, status in the body)`` of an OpenAI-style error body."""
    if not body or body.lstrip()[:1] != "{":
        return None, None, body, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, None, body, None
    if not isinstance(data, dict):
        return None, None, body, None
    err = data.get("error", data)  # vLLM's errors are at the top level
    if isinstance(err, str):
        return None, None, err, None
    if not isinstance(err, dict):
        return None, None, body, None
    type_ = err.get("type") if isinstance(err.get("type"), str) else None
    code, status = err.get("code"), None
    if isinstance(code, int) and not isinstance(code, bool):
        code, status = None, code
    code = code if isinstance(code, str) and code else None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    return type_, code, message, status


def classify_answer(status: int, body: str | None) -> tuple[str, str | None]:
    """``(error class, provider code)`` of an upstream's error answer, read from its body
    as well as its status: a validation error sent as 500 is ``invalid_request``, a
    context-length or content-filter 400 keeps its code, an exhausted quota is a
    ``rate_limit`` with code ``insufficient_quota``."""
    by_status = error_class_for_status(status) or "unknown"
    type_, code, message, body_status = _error_fields(body)
    named = code or (type_ if type_ in _CODES else None)
    if named in _CODES:
        return _CODES[named], named
    if status >= 500 and (
        (type_ or "").lower().replace(" ", "") in _INVALID_TYPES
        or (body_status is not None and 400 <= body_status < 500 and body_status != 429)
        or (message and _VALIDATION.search(message))
    ):
        return "invalid_request", named
    return by_status, named
