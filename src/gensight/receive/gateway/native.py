"""What the provider-native wires have in common, read the way ``capture.Capture`` reads
OpenAI's.

``NativeCapture`` is the base of ``anthropic.AnthropicCapture`` and
``gemini.GeminiCapture``: it holds what every call has (operation, request, usage as
the record counts it, finish reasons, messages, a stream error), whether content was
generated yet (``has_output``: the gateway's TTFT is the first content delta, not the
first byte, which is a ``message_start`` or a header-only chunk), and fills the
``CallRecord`` the same way for both. Subclasses parse their wire into these fields.

Usage is stored by the OTel GenAI rule whatever the wire spelled: input tokens include
cache reads and writes, output tokens include reasoning (thinking) tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from gensight.conventions.errors import classify
from gensight.model.records import CallRecord


def as_int(v: Any) -> int | None:
    """An integer count from JSON (bools and fractions are not counts)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def as_float(v: Any) -> float | None:
    """A number from JSON (bools are not numbers)."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def to_json(value: Any) -> str:
    """Compact JSON text of a structured value (tool arguments, lists of names)."""
    return orjson.dumps(value, default=str).decode()


def parse_object(raw: bytes) -> dict[str, Any] | None:
    """A JSON object from raw bytes, else None."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class NativeCapture(ABC):
    """One call on a provider's own wire: request, answer as it arrives, the record."""

    #: The gateway never rewrites a native request (nothing like OpenAI's include_usage).
    injected_usage = False

    def __init__(self, operation: str | None, request: dict[str, Any] | None, body: bytes):
        self.operation = operation
        self.request = request
        self.upstream_body = body
        self.stream = False
        self.model: str | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read: int | None = None
        self.cache_write: int | None = None
        self.reasoning: int | None = None
        self.finish_reasons: list[str] = []
        self.attrs: dict[str, Any] = {}
        self.error_type: str | None = None
        self.error_message: str | None = None
        #: Whether a streamed event carried generated content yet: the gateway takes the
        #: first such event's arrival as the first token (TTFT).
        self.has_output = False

    @property
    def is_call(self) -> bool:
        """Whether this request is an LLM call (else it is recorded as a span only)."""
        return self.operation is not None

    def token_seen(self) -> None:
        """Note generated content (the first is the call's first token)."""
        self.has_output = True

    def body_for(self, inject: bool) -> bytes:
        """The body of an attempt: always as the client sent it (nothing is injected)."""
        return self.upstream_body

    def stream_error(self, etype: str, err: Any) -> None:
        """An error the upstream reported inside a 2xx stream."""
        self.error_type = etype
        self.error_message = to_json(err)

    # -- subclasses ----------------------------------------------------------
    @abstractmethod
    def on_body(self, body: bytes) -> None:
        """A whole non-streamed 2xx body."""

    @abstractmethod
    def on_event(self, event: str | None, data: bytes) -> bool:
        """One streamed event; True would drop it from what the client gets (never here)."""

    @abstractmethod
    def outputs(self) -> list[dict[str, Any]] | None:
        """The messages generated (a cut stream's partial ones too)."""

    @abstractmethod
    def input_messages(self) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        """``(input messages, system instructions)`` of the request."""

    @abstractmethod
    def params(self, call: CallRecord) -> None:
        """Set the request parameters (temperature, max tokens…) on ``call``."""

    # -- the record ----------------------------------------------------------
    def fill(self, call: CallRecord, capture_content: bool) -> None:
        """Set the call's fields from what was captured."""
        call.operation = self.operation
        call.request_model = self.model
        call.response_model = self.response_model
        call.response_id = self.response_id
        call.stream = self.stream
        self.params(call)
        call.attributes.update(self.attrs)
        call.input_tokens = self.input_tokens
        call.output_tokens = self.output_tokens
        call.cache_read_tokens = self.cache_read
        call.cache_write_tokens = self.cache_write
        call.reasoning_tokens = self.reasoning
        outputs = self.outputs()
        call.finish_reasons = list(self.finish_reasons) or [
            m["finish_reason"] for m in outputs or () if m.get("finish_reason")
        ]
        if capture_content:
            call.input_messages, call.system_instructions = self.input_messages()
            call.output_messages = outputs
        if self.error_type is not None and call.status == "ok":
            call.status = "error"
            call.error_class = classify(None, self.error_type, self.error_message)
            call.error_message = self.error_message

    def needs_estimate(self, call: CallRecord) -> bool:
        """Native wires report usage on every answer; a cut stream keeps what it had."""
        return False

    def estimate(self, call: CallRecord) -> None:  # noqa: B027 - nothing to do by default
        """Count what the upstream did not (only where ``needs_estimate`` says so)."""
