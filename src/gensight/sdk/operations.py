"""What each instrumented OpenAI operation contributes to its span, one class per API.

An ``Operation`` reads the request's keyword arguments into span attributes, reads
the response (or each stream chunk) into the ``Call`` in flight, and builds the
content attributes when capture is on. ``call.py`` owns the span's life cycle;
this module only knows where each API keeps its model, parameters, usage and text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import openai

from gensight.sdk import attributes as a
from gensight.sdk import content

if TYPE_CHECKING:
    from gensight.sdk.call import Call

_SENTINELS = (openai.Omit, openai.NotGiven, type(None))


def _given(kwargs: dict[str, Any], key: str) -> Any:
    """A keyword argument's value, or None when absent, ``omit`` or ``NOT_GIVEN``."""
    v = kwargs.get(key)
    return None if type(v) in _SENTINELS else v


def _float(v: Any) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return None


def _int(v: Any) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return None


def _stop_sequences(v: Any) -> tuple[str, ...] | None:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list | tuple) and v and all(isinstance(s, str) for s in v):
        return tuple(v)
    return None


def _choice_count(v: Any) -> int | None:
    n = _int(v)
    return n if n is not None and n != 1 else None


def _service_tier(v: Any) -> str | None:
    return v if isinstance(v, str) and v != "auto" else None


def _user(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _output_type(fmt: Any) -> str | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else getattr(fmt, "type", None)
    if kind in ("json_schema", "json_object"):
        return "json"
    if kind == "text":
        return "text"
    if isinstance(fmt, type):  # a pydantic model given to .parse()
        return "json"
    return None


#: Request keyword → (span attribute, conversion returning None to skip it), for the
#: parameters chat, completions and responses share. Read by walking the call's own
#: keywords, usually a handful.
_COMMON: dict[str, tuple[str, Any]] = {
    "temperature": (a.GEN_AI_REQUEST_TEMPERATURE, _float),
    "top_p": (a.GEN_AI_REQUEST_TOP_P, _float),
    "frequency_penalty": (a.GEN_AI_REQUEST_FREQUENCY_PENALTY, _float),
    "presence_penalty": (a.GEN_AI_REQUEST_PRESENCE_PENALTY, _float),
    "seed": (a.GEN_AI_REQUEST_SEED, _int),
    "stop": (a.GEN_AI_REQUEST_STOP_SEQUENCES, _stop_sequences),
    "n": (a.GEN_AI_REQUEST_CHOICE_COUNT, _choice_count),
    "service_tier": (a.OPENAI_REQUEST_SERVICE_TIER, _service_tier),
    "user": ("user.id", _user),
    "safety_identifier": ("user.id", _user),
}


def _read(table: dict[str, tuple[str, Any]], kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        entry = table.get(key)
        if entry is not None and type(value) not in _SENTINELS:
            converted = entry[1](value)
            if converted is not None:
                attrs[entry[0]] = converted


def _chat_usage(call: Call, usage: Any) -> None:
    """Chat and legacy completions usage (``prompt_tokens`` spelling)."""
    call.input_tokens = usage.prompt_tokens
    call.output_tokens = usage.completion_tokens
    details = usage.prompt_tokens_details
    if details is not None:
        call.cache_read_tokens = details.cached_tokens
    details = usage.completion_tokens_details
    if details is not None:
        call.reasoning_tokens = details.reasoning_tokens


class Operation:
    """One OpenAI API as a GenAI operation (``gen_ai.operation.name``)."""

    name: str = ""
    api_type: str | None = None
    #: Whether stream chunks carry usage only when ``stream_options.include_usage``.
    usage_needs_stream_options = False

    def request(self, kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
        """Add the request's attributes (model, parameters) to ``attrs``."""

    def request_content(self, kwargs: dict[str, Any], call: Call) -> None:
        """Keep the request's messages on the call (capture on only)."""

    def response(self, result: Any, call: Call) -> None:
        """Read a whole (non-streamed) response into the call."""

    def chunk(self, chunk: Any, call: Call) -> bool:
        """Read one stream chunk into the call; False hides it from the app."""
        return True


class Chat(Operation):
    """``client.chat.completions.create / parse / stream``."""

    name = a.OP_CHAT
    api_type = "chat_completions"
    usage_needs_stream_options = True

    params = {
        **_COMMON,
        "max_tokens": (a.GEN_AI_REQUEST_MAX_TOKENS, _int),
        "max_completion_tokens": (a.GEN_AI_REQUEST_MAX_TOKENS, _int),
        "response_format": (a.GEN_AI_OUTPUT_TYPE, _output_type),
    }

    def request(self, kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
        _read(self.params, kwargs, attrs)

    def request_content(self, kwargs: dict[str, Any], call: Call) -> None:
        call.input_messages = content.chat_input(_given(kwargs, "messages"))

    def response(self, result: Any, call: Call) -> None:
        call.response_id = result.id
        call.response_model = result.model
        call.finish_reasons = [c.finish_reason for c in result.choices if c.finish_reason]
        if result.usage is not None:
            _chat_usage(call, result.usage)
        call.service_tier = getattr(result, "service_tier", None)
        call.fingerprint = getattr(result, "system_fingerprint", None)
        if call.capture:
            call.output_messages = content.chat_output(result.choices)

    def chunk(self, chunk: Any, call: Call) -> bool:
        if call.response_id is None:
            call.response_id = chunk.id
            call.response_model = chunk.model
            call.service_tier = getattr(chunk, "service_tier", None)
            call.fingerprint = getattr(chunk, "system_fingerprint", None)
        choices = chunk.choices
        for ch in choices:
            reason = ch.finish_reason
            if reason is not None:
                call.finish[ch.index] = reason
            if call.capture:
                _chat_delta(call, ch)
        usage = chunk.usage
        if usage is not None:
            _chat_usage(call, usage)
            if not choices and call.hide_usage_chunk:
                return False
        return True


def _chat_delta(call: Call, ch: Any) -> None:
    delta = ch.delta
    if delta is None:
        return
    if delta.content:
        call.texts.setdefault(ch.index, []).append(delta.content)
    for tc in delta.tool_calls or ():
        acc = call.tools.setdefault(ch.index, {}).setdefault(tc.index, {"arguments": []})
        if tc.id:
            acc["id"] = tc.id
        fn = tc.function
        if fn is not None:
            if fn.name:
                acc["name"] = fn.name
            if fn.arguments:
                acc["arguments"].append(fn.arguments)


class TextCompletion(Operation):
    """``client.completions.create`` (the legacy Completions API)."""

    name = a.OP_TEXT_COMPLETION
    usage_needs_stream_options = True

    params = {**_COMMON, "max_tokens": (a.GEN_AI_REQUEST_MAX_TOKENS, _int)}

    def request(self, kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
        _read(self.params, kwargs, attrs)

    def request_content(self, kwargs: dict[str, Any], call: Call) -> None:
        call.input_messages = content.completion_input(_given(kwargs, "prompt"))

    def response(self, result: Any, call: Call) -> None:
        call.response_id = result.id
        call.response_model = result.model
        call.finish_reasons = [c.finish_reason for c in result.choices if c.finish_reason]
        if result.usage is not None:
            _chat_usage(call, result.usage)
        call.fingerprint = getattr(result, "system_fingerprint", None)
        if call.capture:
            call.output_messages = content.completion_output(result.choices)

    def chunk(self, chunk: Any, call: Call) -> bool:
        if call.response_id is None:
            call.response_id = chunk.id
            call.response_model = chunk.model
        choices = chunk.choices
        for ch in choices:
            if ch.finish_reason is not None:
                call.finish[ch.index] = ch.finish_reason
            if call.capture and ch.text:
                call.texts.setdefault(ch.index, []).append(ch.text)
        usage = chunk.usage
        if usage is not None:
            _chat_usage(call, usage)
            if not choices and call.hide_usage_chunk:
                return False
        return True


class Embeddings(Operation):
    """``client.embeddings.create``."""

    name = a.OP_EMBEDDINGS

    params = {
        "encoding_format": (
            a.GEN_AI_REQUEST_ENCODING_FORMATS,
            lambda v: (v,) if isinstance(v, str) else None,
        ),
        "dimensions": (a.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, _int),
    }

    def request(self, kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
        _read(self.params, kwargs, attrs)

    def response(self, result: Any, call: Call) -> None:
        call.response_model = result.model
        usage = result.usage
        if usage is not None:
            call.input_tokens = usage.prompt_tokens


class Responses(Operation):
    """``client.responses.create / parse / stream`` (the Responses API).

    The semantic conventions call it a ``chat`` operation with
    ``openai.api.type = responses``.
    """

    name = a.OP_CHAT
    api_type = "responses"

    params = {
        **_COMMON,
        "max_output_tokens": (a.GEN_AI_REQUEST_MAX_TOKENS, _int),
        "text": (
            a.GEN_AI_OUTPUT_TYPE,
            lambda v: _output_type(v.get("format")) if isinstance(v, dict) else None,
        ),
        "text_format": (a.GEN_AI_OUTPUT_TYPE, _output_type),
        "conversation": (
            a.GEN_AI_CONVERSATION_ID,
            lambda v: _user(v.get("id") if isinstance(v, dict) else v),
        ),
    }

    def request(self, kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
        _read(self.params, kwargs, attrs)

    def request_content(self, kwargs: dict[str, Any], call: Call) -> None:
        call.input_messages = content.responses_input(_given(kwargs, "input"))
        call.system_instructions = content.responses_instructions(_given(kwargs, "instructions"))

    def response(self, result: Any, call: Call) -> None:
        call.response_id = result.id
        call.response_model = result.model
        usage = result.usage
        if usage is not None:
            call.input_tokens = usage.input_tokens
            call.output_tokens = usage.output_tokens
            details = usage.input_tokens_details
            if details is not None:
                call.cache_read_tokens = details.cached_tokens
            details = usage.output_tokens_details
            if details is not None:
                call.reasoning_tokens = details.reasoning_tokens
        call.service_tier = getattr(result, "service_tier", None)
        has_calls = any(getattr(i, "type", None) == "function_call" for i in result.output or ())
        reason = content.responses_finish_reason(result, has_calls)
        call.finish_reasons = [reason] if reason else []
        error = getattr(result, "error", None)
        if error is not None and getattr(result, "status", None) == "failed":
            call.error_type = getattr(error, "code", None) or "response_failed"
            call.error_message = getattr(error, "message", None)
        if call.capture:
            call.output_messages = content.responses_output(result)

    def chunk(self, chunk: Any, call: Call) -> bool:
        kind = chunk.type
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self.response(chunk.response, call)
        elif kind == "response.created":
            call.response_id = chunk.response.id
            call.response_model = chunk.response.model
        elif kind == "error":
            call.error_type = getattr(chunk, "code", None) or "error"
            call.error_message = getattr(chunk, "message", None)
        return True


CHAT = Chat()
TEXT_COMPLETION = TextCompletion()
EMBEDDINGS = Embeddings()
RESPONSES = Responses()
