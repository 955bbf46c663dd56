"""GenAI content carried by OTLP log records → ``ContentEvent``s joined to calls later.

Two shapes exist:

* legacy per-message events (``gen_ai.system.message``, ``gen_ai.user.message``,
  ``gen_ai.assistant.message``, ``gen_ai.tool.message``, ``gen_ai.choice``), the event
  name in ``LogRecord.event_name`` or the ``event.name`` attribute, the message in the
  body;
* ``gen_ai.client.inference.operation.details``, whose attributes (or body) carry the
  whole ``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``.

The log record's trace and span ids name the call; the store joins them at read time, so
logs may arrive before or after their span.
"""

from __future__ import annotations

from typing import Any

from gensight.conventions import messages as msg
from gensight.conventions.otlp_values import any_value, attributes, hex_id, nanos_to_datetime
from gensight.model.records import ContentEvent

_LEGACY = {
    "gen_ai.system.message": ("system", "system"),
    "gen_ai.user.message": ("input", "user"),
    "gen_ai.assistant.message": ("input", "assistant"),
    "gen_ai.tool.message": ("input", "tool"),
    "gen_ai.choice": ("output", "assistant"),
}
_DETAILS = "gen_ai.client.inference.operation.details"
_DETAIL_KEYS = (
    ("gen_ai.system_instructions", "system", "system"),
    ("gen_ai.input.messages", "input", "user"),
    ("gen_ai.output.messages", "output", "assistant"),
)


def log_to_events(record: Any, seq_start: int) -> list[ContentEvent]:
    """The content events in one OTLP ``LogRecord`` (none for an unrelated log)."""
    attrs = attributes(record.attributes)
    name = record.event_name or attrs.get("event.name") or ""
    if not isinstance(name, str):  # any type may arrive; only a string names an event
        return []
    if name not in _LEGACY and name != _DETAILS and not name.startswith("gen_ai."):
        return []
    trace_id = hex_id(record.trace_id)
    span_id = hex_id(record.span_id)
    if trace_id is None or span_id is None:
        return []
    ts = nanos_to_datetime(record.time_unix_nano or record.observed_time_unix_nano)
    body = any_value(record.body) if record.HasField("body") else None
    out: list[ContentEvent] = []

    def add(kind: str, message: dict[str, Any]) -> None:
        if not msg.has_content(message):  # capture off: the event carries only a role
            return
        out.append(ContentEvent(trace_id, span_id, ts, seq_start + len(out), kind, message))

    if name in _LEGACY:
        kind, role = _LEGACY[name]
        m = msg.normalize_message(body if body is not None else {}, role)
        if name != "gen_ai.choice" or not m.get("role"):
            m["role"] = m.get("role") or role
        if name == "gen_ai.tool.message":
            m["role"] = "tool"
        add(kind, m)
        return out
    source = dict(attrs)
    if isinstance(body, dict):
        source.update({k: v for k, v in body.items() if k not in source})
    found = False
    for key, kind, role in _DETAIL_KEYS:
        for m in msg.messages_from_value(source.get(key), role) or []:
            add(kind, m)
            found = True
    if not found:
        # Older OpenLIT-style content events: gen_ai.content.prompt / .completion.
        if "gen_ai.prompt" in source:
            for m in msg.openlit_messages(source["gen_ai.prompt"], "user") or []:
                add("input", m)
        if "gen_ai.completion" in source:
            for m in msg.openlit_messages(source["gen_ai.completion"], "assistant") or []:
                add("output", m)
    return out
