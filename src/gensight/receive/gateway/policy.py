"""When the gateway tries again: retryable answers, backoff, Retry-After, fallback.

Upstream 429s, 5xx and connection failures are retried with exponential backoff and
jitter, honouring ``Retry-After`` / ``retry-after-ms`` up to ``--retry-max-wait`` (a
longer wait is the client's to decide, so that answer is passed on), and then the
addressed upstream's own fallback (``--fallback NAME=OTHER``), if it has one, gets the
same tries. The loop that applies this is
``Gateway._exchange``; these are its decisions.
"""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from gensight.receive.gateway.upstreams import Upstream


def targets(upstream: Upstream, fallbacks: dict[str, Upstream]) -> list[Upstream]:
    """The upstreams to try in order: the one addressed, then its own fallback, if any.

    Only a configured pair falls back: a self-hosted upstream's prompts never go to a
    remote provider unless that pair was configured; and never across wire formats (an
    Anthropic request means nothing to an OpenAI endpoint).
    """
    fallback = fallbacks.get(upstream.name)
    if fallback is not None and fallback is not upstream and fallback.wire == upstream.wire:
        return [upstream, fallback]
    return [upstream]


def credentials(headers: Any, addressed: Upstream, target: Upstream, names: tuple[str, ...]) -> Any:
    """The headers for an attempt on ``target``: its own key in place of the client's;
    the client's key only when ``target`` is the upstream the client addressed."""
    own = target.auth_header()
    if own is None and target is addressed:
        return headers
    out = headers.copy()
    for name in names:
        out.popall(name, None)
    if own is not None:
        out[own[0]] = own[1]
    return out


#: Error classes of answers worth asking again (by status and body: a 500 whose body is
#: a validation error is ``invalid_request`` and is not retried).
RETRYABLE_CLASSES = frozenset({"rate_limit", "upstream_error", "timeout"})


def retryable_status(status: int) -> bool:
    """Whether an answer with this status may be retried (429 and 5xx)."""
    return status == 429 or status >= 500


def retry_after(headers: Any) -> float | None:
    """Seconds a 429/503 asks to wait (``retry-after-ms``, ``Retry-After`` secs or date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def give_up(
    attempt: int, retries: int, headers: Any, error: str, wait: float, budget_left: float
) -> bool:
    """Whether a failed answer ends the tries on this upstream.

    So it does when the tries are used up, when the upstream says retrying cannot help
    (``x-should-retry: false``, an exhausted quota), or when the next wait (its
    Retry-After, or the backoff) is longer than what is left of the call's retry budget
    (``--retry-max-wait``): sleeping past the client's own timeout helps no one.
    """
    return (
        attempt == retries
        or headers.get("x-should-retry") == "false"
        or "insufficient_quota" in error
        or wait > budget_left
    )


def backoff(attempt: int, retry_after: float | None, base: float) -> float:
    """Seconds before retry ``attempt + 1``: Retry-After when given, else exponential + jitter."""
    if retry_after is not None:
        return retry_after
    wait = min(base * (2**attempt), 8.0)
    return wait * (0.5 + random.random() / 2)
