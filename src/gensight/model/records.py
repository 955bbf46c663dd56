"""The one normalized shape every captured call and span becomes.

Every receiver (gateway, OTLP ingest, the SDK's spans arriving over OTLP) produces
``CallRecord`` and ``SpanRecord`` objects; the pipeline prices them and the store
writes them. Field names are the API's names, the database's column names and the
UI's labels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gensight.model.vocab import COST_SOURCES, ERROR_CLASSES  # re-exported: defined once there


@dataclass(slots=True)
class CallRecord:
    """One LLM call: what was asked, what came back, how long, how much, how it ended."""

    id: str
    trace_id: str
    span_id: str
    ts: datetime  # start time, UTC, timezone-aware
    duration_ms: float
    source: str  # "gateway" | "otlp"
    producer: str | None = None  # openai-v2, openlit, traceloop, openinference, gensight-sdk, …
    parent_span_id: str | None = None
    ttft_ms: float | None = None
    app: str | None = None
    environment: str | None = None
    provider: str | None = None
    operation: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    stream: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    tokens_estimated: bool = False
    cost_usd: float | None = None
    cost_source: str = "unknown"
    reported_cost_usd: float | None = None  # the producer's own figure, when it sent one
    status: str = "ok"
    error_class: str | None = None
    http_status: int | None = None
    error_message: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    user: str | None = None
    session: str | None = None
    tags: list[str] = field(default_factory=list)
    server_address: str | None = None
    attempts: int = 1
    input_messages: list[dict[str, Any]] | None = None
    output_messages: list[dict[str, Any]] | None = None
    system_instructions: list[dict[str, Any]] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    #: the provider's id of the HTTP request (``x-request-id``/``request-id``,
    #: ``anthropic.request.id``): what its support asks for, and what tells two reports
    #: of one failed call apart from two calls
    upstream_request_id: str | None = None
    #: Azure OpenAI (#14): the deployment called and the ``api-version`` asked for
    deployment: str | None = None
    api_version: str | None = None
    #: hash of what decides the answer (model, messages, tools, output-changing
    #: parameters), taken before redaction or metadata-only capture drop the text: equal
    #: hashes are requests a response cache would have answered (#19)
    request_hash: str | None = None
    #: hash of the shared prefix (model, system prompt, tools, every message but the
    #: last) and its estimated token count: what provider prompt caching can reuse (#19)
    prefix_hash: str | None = None
    prefix_tokens: int | None = None
    #: the prompt template the call was made from: the producer's ``gen_ai.prompt.name``
    #: (and version), else the drain3-mined cluster ``mined-<n>`` (#19)
    template_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as the API shows it (``ts`` in ISO 8601)."""
        d = {f.name: getattr(self, f.name) for f in _CALL_FIELDS}
        d["ts"] = self.ts.isoformat()
        return d


@dataclass(slots=True)
class SpanRecord:
    """One span of a trace, LLM or not, so a request shows as one tree."""

    trace_id: str
    span_id: str
    name: str
    ts: datetime
    duration_ms: float
    parent_span_id: str | None = None
    kind: str = "internal"  # internal | server | client | producer | consumer
    status: str = "ok"
    status_message: str | None = None
    app: str | None = None
    call_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The span as the API shows it."""
        d = {f.name: getattr(self, f.name) for f in _SPAN_FIELDS}
        d["ts"] = self.ts.isoformat()
        return d


@dataclass(slots=True)
class ContentEvent:
    """Message content that arrived apart from its span (OTLP log events).

    Legacy GenAI content events (``gen_ai.user.message``, ``gen_ai.choice``, …) and
    ``gen_ai.client.inference.operation.details`` are joined to their call by
    ``(trace_id, span_id)`` when read, so they may arrive before or after the span.
    """

    trace_id: str
    span_id: str
    ts: datetime
    seq: int  # order within the producer's batch, to keep the conversation in order
    kind: str  # "input" | "output" | "system"
    message: dict[str, Any]


@dataclass(slots=True)
class Score:
    """A judgement of quality (#20) about a call, a trace or a session.

    ``value`` (a number) and/or ``label`` (``good``, ``thumbs_down``…); ``source`` is who
    judged (``vocab.SCORE_SOURCES``). Idempotent by ``id``: the same score sent twice is
    stored once. A score is joined to its call, trace or session when read, so it may
    arrive before or after them; ``trace_id`` is the call's trace when the sender knew it.
    """

    id: str
    ts: datetime
    target: str  # "call" | "trace" | "session"
    target_id: str
    name: str
    value: float | None = None
    label: str | None = None
    comment: str | None = None
    source: str = "api"
    author: str | None = None
    app: str | None = None
    trace_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The score as the API shows it."""
        d = {f.name: getattr(self, f.name) for f in _SCORE_FIELDS}
        d["ts"] = self.ts.isoformat()
        return d


_CALL_FIELDS = dataclasses.fields(CallRecord)
_SPAN_FIELDS = dataclasses.fields(SpanRecord)
_SCORE_FIELDS = dataclasses.fields(Score)
CALL_FIELD_NAMES = tuple(f.name for f in _CALL_FIELDS)
SPAN_FIELD_NAMES = tuple(f.name for f in _SPAN_FIELDS)
SCORE_FIELD_NAMES = tuple(f.name for f in _SCORE_FIELDS)
__all__ = [
    "CALL_FIELD_NAMES",
    "COST_SOURCES",
    "ERROR_CLASSES",
    "SCORE_FIELD_NAMES",
    "SPAN_FIELD_NAMES",
    "CallRecord",
    "ContentEvent",
    "Score",
    "SpanRecord",
]
