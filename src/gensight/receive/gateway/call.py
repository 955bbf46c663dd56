"""One gateway request's state, shared by the forwarding code and the recorder."""

from __future__ import annotations

import random
import time
from datetime import datetime

from gensight.model.records import SpanRecord
from gensight.receive.gateway.capture import Capture
from gensight.receive.gateway.native import NativeCapture
from gensight.receive.gateway.upstreams import Upstream


def new_id(bits: int) -> str:
    """A random W3C trace id (128 bits) or span id (64 bits), hex."""
    return ("%032x" if bits == 128 else "%016x") % random.getrandbits(bits)


class Call:
    """Per-request state: what was asked, which upstream answered, how, and when."""

    __slots__ = (
        "attempts",
        "id",
        "ratelimit",
        "refusal",
        "upstream_request_id",
        "budget_rule",
        "capture",
        "disconnected",
        "done",
        "error_class",
        "error_message",
        "first_byte",
        "first_token",
        "http_status",
        "meta",
        "method",
        "path",
        "query",
        "response_started",
        "route",
        "start",
        "target",
        "ts",
        "upstream_error",
    )

    def __init__(
        self,
        start: float,
        ts: datetime,
        method: str,
        path: str,
        capture: Capture | NativeCapture,
        meta: dict[bytes, bytes],
    ) -> None:
        #: The call's record id (its server span's id), known from the start so every
        #: answer can carry it (``X-Gensight-Call-Id``).
        self.id = new_id(64)
        self.ts = ts
        self.start = start
        self.method = method
        self.path = path
        self.query = b""  # the query string as sent (Azure's api-version is there)
        self.capture = capture
        self.meta = meta
        self.route = path
        self.attempts: list[SpanRecord] = []
        self.target: Upstream | None = None
        self.http_status: int | None = None
        self.first_byte: float | None = None
        #: When the first chunk carrying output arrived (a stream's TTFT).
        self.first_token: float | None = None
        self.response_started = False
        self.done = False
        self.disconnected = False
        self.error_class: str | None = None
        self.error_message: str | None = None
        self.upstream_error = False  # error_message is the upstream's body (may quote the prompt)
        self.budget_rule: str | None = None
        #: Why the gateway answered without any upstream (its error code), if it did.
        self.refusal: str | None = None
        #: The answering upstream's id of the request (``x-request-id``/``request-id``).
        self.upstream_request_id: str | None = None
        #: Its ``x-ratelimit-*`` (and ``anthropic-ratelimit-*``) headers, as sent.
        self.ratelimit: dict[str, str] = {}

    def elapsed_ms(self, since: float | None = None) -> float:
        """Milliseconds since the request arrived (or since ``since``, a perf_counter)."""
        return (time.perf_counter() - (self.start if since is None else since)) * 1000.0
