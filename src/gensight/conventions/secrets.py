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
# A cheap first look: only strings containing one of these go through the full pattern.
_HINT = re.compile(r"sk-|earer|uthorization|api[-_]?key|API", re.IGNORECASE)


def _mask(m: re.Match[str]) -> str:
    prefix = m.group(1) or m.group(3) or ""
    return f"{prefix}[REDACTED]"


def scrub_text(text: str) -> str:
    """Mask bearer tokens, OpenAI/Anthropic-style keys and ``api-key: …`` pairs in text."""
    if _HINT.search(text) is None:
        return text
    return _SECRET_VALUE.sub(_mask, text)


def scrub_secrets(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes with credential-looking string values masked (in place, returned)."""
    hint = _HINT.search
    for key, value in attrs.items():
        if type(value) is str and len(value) > 10 and hint(value) is not None:
            attrs[key] = _SECRET_VALUE.sub(_mask, value)
    return attrs
