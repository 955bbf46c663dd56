"""The real OpenAI API's error bodies, as the fake upstream answers them."""

from __future__ import annotations

from typing import Any

_ERRORS: dict[str, tuple[str, str | None, str | int | None]] = {
    # key: (message, type, code)
    "400": (
        "Invalid value for 'temperature': decimal above maximum value. Expected a value "
        "<= 2, but got 9 instead.",
        "invalid_request_error",
        "decimal_above_max_value",
    ),
    "400-context": (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 131072 tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "context_length_exceeded",
    ),
    "400-filter": (  # Azure OpenAI's content filter
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry.",
        "invalid_request_error",
        "content_filter",
    ),
    "401": (
        "Incorrect API key provided: sk-fake***********1234. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    "403": (
        "Country, region, or territory not supported",
        "request_forbidden",
        "unsupported_country_region_territory",
    ),
    "404": (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    "408": ("Request timed out.", "timeout", None),
    "409": ("Conflict: the request could not be completed.", "invalid_request_error", None),
    "413": ("Request too large.", "invalid_request_error", "request_too_large"),
    "422": ("Unprocessable entity.", "invalid_request_error", None),
    "429": (
        "Rate limit reached for {model} in organization {org} on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in {retry}s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    ),
    "429-quota": (
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    ),
    "500": (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    # llama.cpp's answer to a body its JSON parser rejects: a validation error as 500
    "500-validation": (
        "[json.exception.type_error.302] type must be string, but is array",
        "server_error",
        500,
    ),
    "502": ("Bad gateway.", "server_error", None),
    "503": (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
    ),
    "504": ("Gateway timeout.", "server_error", None),
}

_ERROR_PARAM = {"400": "temperature", "400-context": "messages", "400-filter": "prompt"}


def error_body(
    status: int, model: str = "", variant: str = "", *, org: str = "org-fake", retry_after: int = 1
) -> dict[str, Any]:
    """The JSON body the real OpenAI API answers with for ``status``.

    ``variant`` selects an alternative (``"quota"`` for 429 insufficient_quota).
    """
    key = f"{status}-{variant}" if variant and f"{status}-{variant}" in _ERRORS else str(status)
    if key not in _ERRORS:
        key = "500" if status >= 500 else "400"
        message, etype, code = (
            f"Simulated error {status}.",
            "server_error" if status >= 500 else "invalid_request_error",
            None,
        )
    else:
        message, etype, code = _ERRORS[key]
    message = message.format(model=model or "unknown", org=org, retry=retry_after)
    return {
        "error": {
            "message": message,
            "type": etype,
            "param": _ERROR_PARAM.get(key),
            "code": code,
        }
    }


def invalid(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An ``invalid_request_error`` body with ``message`` (and the parameter it names)."""
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }
