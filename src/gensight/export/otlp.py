"""OTLP forwarding: every recorded call, re-exported as a GenAI span to another backend.

    gensight serve --forward-otlp http://collector:4318 --forward-header "Authorization=Bearer …"

Teams that already run Elastic APM, Guance DataKit (``http://host:9529/otel``), Jaeger,
Tempo or an OpenTelemetry Collector keep seeing their LLM calls there, with what Gensight
added: cost (``gen_ai.usage.cost``, USD), estimated tokens, the failure cause. Gateway
calls and ingested ones alike, once stored, become one ``CLIENT`` span each, named
``{operation} {model}``, with the OpenTelemetry GenAI attributes
(``gen_ai.operation.name``, ``gen_ai.provider.name`` and the older ``gen_ai.system``,
``gen_ai.request.*``, ``gen_ai.response.*``, ``gen_ai.usage.*``, ``error.type``,
``server.address``, ``user.id``, ``session.id``, ``gen_ai.conversation.id``) plus
``gensight.*`` ones (source, producer, cost_source, tokens_estimated, tags), under a
resource whose ``service.name`` is the call's app. Trace and span ids are kept, so a
forwarded call joins its trace in the other backend. Message content is not forwarded.
Scores (#20) follow as ``gen_ai.evaluation.result`` events to ``/v1/logs`` beside it
(``gensight.export.otlp_scores``), under their call's span when it is stored.

The URL is an OTLP/HTTP endpoint: ``/v1/traces`` is appended unless the URL already
ends with it. Bodies are protobuf. Spans wait in a bounded queue (``queue_size``
calls; more are dropped and counted) and go out in batches from a thread of their own,
with retries and exponential backoff on connection errors, 429 and 502-504
(``Retry-After`` honoured): a slow or dead target costs forwarded spans, never ingest
or gateway time. Counters are in ``/api/health`` (``forward``) and ``/metrics``.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from gensight.export.otlp_encode import kvs
from gensight.export.otlp_scores import Contexts, encode_scores, logs_url
from gensight.model.records import CallRecord, Score, SpanRecord
from gensight.pipeline.worker import Worker

log = logging.getLogger("gensight.export.otlp")

RETRYABLE = (429, 502, 503, 504)


def traces_url(url: str) -> str:
    """The OTLP/HTTP traces URL of a base URL (``…/v1/traces`` appended when missing)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


def _nanos(call: CallRecord) -> tuple[int, int]:
    start = int(call.ts.timestamp() * 1_000_000) * 1000
    return start, start + int(call.duration_ms * 1_000_000)


def call_attributes(call: CallRecord) -> dict[str, Any]:
    """The GenAI semantic-convention attributes of a call (None values left out later)."""
    return {
        "gen_ai.operation.name": call.operation,
        "gen_ai.provider.name": call.provider,
        "gen_ai.system": call.provider,  # the older name, still what many backends read
        "gen_ai.request.model": call.request_model,
        "gen_ai.response.model": call.response_model,
        "gen_ai.response.id": call.response_id,
        "gen_ai.response.finish_reasons": list(call.finish_reasons) or None,
        "gen_ai.request.temperature": call.temperature,
        "gen_ai.request.top_p": call.top_p,
        "gen_ai.request.max_tokens": call.max_tokens,
        "gen_ai.request.frequency_penalty": call.frequency_penalty,
        "gen_ai.request.presence_penalty": call.presence_penalty,
        "gen_ai.request.seed": call.seed,
        "gen_ai.usage.input_tokens": call.input_tokens,
        "gen_ai.usage.output_tokens": call.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": call.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": call.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": call.reasoning_tokens,
        "gen_ai.usage.cost": call.cost_usd,
        "gen_ai.response.time_to_first_chunk": (
            call.ttft_ms / 1000.0 if call.ttft_ms is not None else None
        ),
        "gen_ai.conversation.id": call.session,
        "session.id": call.session,
        "user.id": call.user,
        "server.address": call.server_address,
        "http.response.status_code": call.http_status,
        "error.type": call.error_class,
        "gensight.call_id": call.id,
        "gensight.source": call.source,
        "gensight.producer": call.producer,
        "gensight.stream": call.stream,
        "gensight.cost_source": call.cost_source,
        "gensight.tokens_estimated": call.tokens_estimated,
        "gensight.tags": list(call.tags) or None,
    }


def _ids(call: CallRecord) -> tuple[bytes, bytes, bytes]:
    def raw(hex_id: str | None, n: int) -> bytes:
        try:
            b = bytes.fromhex(hex_id or "")
        except ValueError:
            return b""
        return b if len(b) == n else b""

    trace_id = raw(call.trace_id, 16) or random.getrandbits(128).to_bytes(16, "big")
    span_id = raw(call.span_id, 8) or random.getrandbits(64).to_bytes(8, "big")
    return trace_id, span_id, raw(call.parent_span_id, 8)


def encode_calls(calls: Sequence[CallRecord]) -> bytes:
    """An ``ExportTraceServiceRequest`` (protobuf) with one span per call, by app."""
    req = ExportTraceServiceRequest()
    by_resource: dict[tuple[str | None, str | None], ResourceSpans] = {}
    for call in calls:
        key = (call.app, call.environment)
        rs = by_resource.get(key)
        if rs is None:
            rs = by_resource[key] = req.resource_spans.add()
            rs.resource.attributes.extend(
                kvs(
                    {
                        "service.name": call.app or "unknown_service",
                        "deployment.environment.name": call.environment,
                    }
                )
            )
            scope = rs.scope_spans.add()
            scope.scope.name = "gensight"
        trace_id, span_id, parent = _ids(call)
        start, end = _nanos(call)
        span = rs.scope_spans[0].spans.add(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=f"{call.operation or 'chat'} {call.request_model or ''}".strip(),
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
        )
        span.attributes.extend(kvs(call_attributes(call)))
        if call.status == "error":
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = (call.error_message or call.error_class or "error")[:1024]
    return req.SerializeToString()


class Forwarder(Worker):
    """Bounded queue + sender thread exporting stored calls over OTLP/HTTP."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        queue_size: int = 10_000,
        batch_size: int = 512,
        flush_interval: float = 1.0,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: float = 0.5,
        call_contexts: Callable[[list[str]], Contexts] | None = None,
    ) -> None:
        self.url = traces_url(url)
        self.logs_url = logs_url(url)
        # the stored calls' (trace id, span id, app), for scores about calls; read when sending
        self.call_contexts = call_contexts
        self.headers = {**(headers or {}), "content-type": "application/x-protobuf"}
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._queue: deque[CallRecord] = deque()
        self._scores: deque[Score] = deque()
        super().__init__()
        self.scores_sent = 0
        self.scores_failed = 0
        self.scores_dropped = 0
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.batches = 0
        self.retries = 0
        self.last_error: str | None = None

    # -- writer side (never blocks) --------------------------------------------------
    def observe(self, calls: Sequence[CallRecord], spans: Sequence[SpanRecord]) -> None:
        """Pipeline observer: queue the stored calls; drop (and count) past the bound."""
        if not calls:
            return
        with self._cond:
            room = self.queue_size - len(self._queue)
            if room < len(calls):
                self.dropped += len(calls) - max(room, 0)
            if room > 0:
                self._queue.extend(calls[:room])
                if len(self._queue) >= self.batch_size:
                    self._cond.notify()

    def observe_scores(self, scores: Sequence[Score]) -> None:
        """Pipeline score observer: queue the stored scores, bounded like the calls."""
        if not scores:
            return
        with self._cond:
            room = self.queue_size - len(self._scores)
            if room < len(scores):
                self.scores_dropped += len(scores) - max(room, 0)
            if room > 0:
                self._scores.extend(scores[:room])
                if len(self._scores) >= self.batch_size:
                    self._cond.notify()

    # -- sender ----------------------------------------------------------------------
    thread_name = "gensight-forward"

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (one try each, within ``timeout``), then stop."""
        super().stop(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                with self._cond:
                    full = max(len(self._queue), len(self._scores)) >= self.batch_size
                    if not full and not self._stopping:
                        self._cond.wait(self.flush_interval)
                    if not self._queue and not self._scores:
                        if self._stopping:
                            return
                        continue
                    n = min(self.batch_size, len(self._queue))
                    batch = [self._queue.popleft() for _ in range(n)]
                    n = min(self.batch_size, len(self._scores))
                    scores = [self._scores.popleft() for _ in range(n)]
                    stopping = self._stopping
                attempts = 1 if stopping else self.attempts
                if batch:
                    self._send(client, batch, attempts)
                if scores:  # after their calls, so the other backend has the span first
                    self._send_scores(client, scores, attempts)

    def _send(self, client: httpx.Client, batch: list[CallRecord], attempts: int) -> None:
        try:
            body = encode_calls(batch)
        except Exception as e:  # a call that cannot be encoded must not stop forwarding
            self.failed += len(batch)
            self.last_error = f"encoding failed: {e}"
            log.warning("OTLP forward: %s", self.last_error)
            return
        if self._post(client, self.url, body, attempts):
            self.sent += len(batch)
            self.batches += 1
        else:
            self.failed += len(batch)
            log.warning("OTLP forward of %d calls failed: %s", len(batch), self.last_error)

    def _send_scores(self, client: httpx.Client, scores: list[Score], attempts: int) -> None:
        try:
            ids = [s.target_id for s in scores if s.target == "call"]
            contexts = self.call_contexts(ids) if self.call_contexts and ids else {}
            body = encode_scores(scores, contexts)
        except Exception as e:  # a store that cannot answer, a score that cannot be encoded
            self.scores_failed += len(scores)
            self.last_error = f"scores not forwarded: {e}"
            log.warning("OTLP forward: %s", self.last_error)
            return
        if self._post(client, self.logs_url, body, attempts):
            self.scores_sent += len(scores)
            self.batches += 1
        else:
            self.scores_failed += len(scores)
            log.warning("OTLP forward of %d scores failed: %s", len(scores), self.last_error)

    def _post(self, client: httpx.Client, url: str, body: bytes, attempts: int) -> bool:
        """POST with retries; whether it was accepted (``last_error`` says why not)."""
        for n in range(attempts):
            delay: float | None = None
            try:
                resp = client.post(url, content=body, headers=self.headers)
                if resp.status_code < 300:
                    return True
                self.last_error = f"HTTP {resp.status_code} from {url}"
                if resp.status_code not in RETRYABLE:
                    break
                delay = _retry_after(resp.headers.get("retry-after"))
            except httpx.HTTPError as e:
                self.last_error = f"{type(e).__name__}: {e}"
            if n + 1 < attempts and not self._stopping:
                self.retries += 1
                time.sleep(delay if delay is not None else min(self.backoff * 2**n, 10.0))
        return False

    def stats(self) -> dict[str, Any]:
        """Counters for ``/api/health`` and ``/metrics``."""
        return {
            "url": self.url,
            "queued": len(self._queue),
            "scores_queued": len(self._scores),
            "scores_sent": self.scores_sent,
            "scores_failed": self.scores_failed,
            "scores_dropped": self.scores_dropped,
            "capacity": self.queue_size,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "batches": self.batches,
            "retries": self.retries,
            "last_error": self.last_error,
        }


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 30.0)
    except ValueError:
        return None
