"""Keep credentials out of stored attributes.

Some producers record request headers (OpenLLMetry's ``gen_ai.headers``) or client
settings; an ``Authorization`` value or an API key there must never reach the store.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_VALUE = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]+=*"
    r"|\b(sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,})"
    r"|(['\"]?(?:authorization|api[-_]?key|x-api-key|proxy-authorization)['\"]?\s*[:=]\s*['\"]?)"
    r"[^'\",}\s]+"
)
_HINTS = ("sk-", "earer", "uthorization", "api-key", "api_key", "apikey", "API")


def _mask(m: re.Match[str]) -> str:
    prefix = m.group(1) or m.group(3) or ""
    return f"{prefix}[REDACTED]"


def scrub_text(text: str) -> str:
    """Mask bearer tokens, OpenAI/Anthropic-style keys and ``api-key: …`` pairs in text."""
    if not any(h in text for h in _HINTS):
        return text
    return _SECRET_VALUE.sub(_mask, text)


def scrub_secrets(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes with credential-looking string values masked (in place, returned)."""
    for key, value in attrs.items():
        if isinstance(value, str) and len(value) > 10:
            attrs[key] = scrub_text(value)
    return attrs
