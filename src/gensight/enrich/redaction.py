"""Redaction: the enrich step that masks secrets (always) and personal data (``--redact
pii``) in every record before it is stored.

The pipeline's writer calls ``Redactor.apply`` on each batch right before the store
write (after pricing, which may estimate tokens from the original text), so every path
(gateway, OTLP/HTTP, OTLP/gRPC, replay from the journal, ``/api/import``) goes through
it and nothing reaches the store, the forwarder or the alert engine unmasked. What is
masked (``gensight.enrich.secrets``):

- calls: ``input_messages``, ``output_messages``, ``system_instructions`` (every string
  at any depth: content parts, tool call arguments), ``error_message`` and the string
  values of ``attributes``;
- spans: ``attributes``, ``status_message`` and the attributes of span events;
- content events (OTLP log events): the message.

Identifiers (``app``, ``user``, ``session``, ``tags``, ids) are kept: they are the keys
the UI groups by. Use opaque user ids if they must not be personal data.

The common case is cheap: a record's strings are joined and pre-checked once for the
literal fragments every secret pattern needs; only records with a hit are walked and
rewritten (PII masking, being about digits and ``@``, runs its patterns on every string).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from gensight.enrich.secrets import (
    NAME_FAMILIES,
    NONE,
    families,
    is_secret_name,
    mask_value,
    scrub_pii,
    scrub_with,
)
from gensight.model.records import CallRecord, ContentEvent, SpanRecord

log = logging.getLogger("gensight.enrich.redaction")


def _strings(value: Any, out: list[str], keys: list[str]) -> bool:
    """Every string inside ``value`` (dicts' values, lists' items) appended to ``out``,
    dicts' keys to ``keys``; True when a dict inside has a key that names a secret."""
    t = type(value)
    if t is str:
        out.append(value)
    elif t is dict:
        named = False
        for k, v in value.items():
            if type(k) is str:
                keys.append(k)
                if is_secret_name(k) and v is not None and v != "":
                    named = True
            named = _strings(v, out, keys) or named
        return named
    elif t is list or t is tuple:
        named = False
        for v in value:
            named = _strings(v, out, keys) or named
        return named
    return False


class Redactor:
    """Masks secrets (always) and, with ``pii=True``, personal data, in place."""

    def __init__(self, pii: bool = False) -> None:
        self.pii = pii
        self.redacted = 0  # records walked for masking
        self._fams = NONE  # the secret pattern families of the record being masked
        self._key_fams = NONE  # those of its keys and span name

    def text(self, text: str) -> str:
        """One string, masked."""
        if self._fams:
            text = scrub_with(text, self._fams)
        return scrub_pii(text) if self.pii else text

    def _key(self, key: str) -> str:
        # keys are scanned for secret shapes (a token pasted as a name), not for PII
        return scrub_with(key, self._key_fams) if self._key_fams else key

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it masked, and the values of keys that
        name a secret masked whatever they hold (a new value when changed)."""
        t = type(value)
        if t is str:
            return self.text(value)
        if t is dict:
            return {
                k: mask_value(v) if type(k) is str and is_secret_name(k) else self.value(v)
                for k, v in value.items()
            }
        if t is list or t is tuple:
            return [self.value(v) for v in value]
        return value

    def _needed(self, *values: Any, name: str = "") -> bool:
        """Pre-check a record's strings at once; sets the families to apply while walking.
        Keys (and the span's ``name``) are checked apart: names like ``input_tokens`` would
        otherwise send every value through the ``name=value`` pattern."""
        found: list[str] = []
        keys: list[str] = [name] if name else []
        named = False
        for v in values:
            named = _strings(v, found, keys) or named
        self._fams = families("\x00".join(found)) if found else NONE
        self._key_fams = families("\x00".join(keys)) & NAME_FAMILIES if keys else NONE
        return named or bool(self._fams or self._key_fams) or (self.pii and bool(found))

    def _attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in attrs.items():
            if is_secret_name(k):
                v = mask_value(v)
            elif type(v) is str:
                if len(v) > 6:
                    v = self.text(v)
            elif type(v) is list or type(v) is dict:
                v = self.value(v)
            out[self._key(k)] = v
        return out

    def call(self, c: CallRecord) -> None:
        """Mask one call's messages, error message and attributes."""
        if not self._needed(
            c.input_messages,
            c.output_messages,
            c.system_instructions,
            c.error_message,
            c.attributes,
        ):
            return
        if c.input_messages:
            c.input_messages = self.value(c.input_messages)
        if c.output_messages:
            c.output_messages = self.value(c.output_messages)
        if c.system_instructions:
            c.system_instructions = self.value(c.system_instructions)
        if c.error_message:
            c.error_message = self.text(c.error_message)
        if c.attributes:
            c.attributes = self._attrs(c.attributes)
        self.redacted += 1

    def span(self, s: SpanRecord) -> None:
        """Mask one span's name, attributes, status message and event attributes."""
        if not self._needed(s.attributes, s.status_message, s.events, name=s.name):
            return
        if s.name:
            s.name = self._key(s.name)
        if s.attributes:
            s.attributes = self._attrs(s.attributes)
        if s.status_message:
            s.status_message = self.text(s.status_message)
        if s.events:
            s.events = self.value(s.events)
        self.redacted += 1

    def event(self, e: ContentEvent) -> None:
        """Mask one content event's message."""
        if self._needed(e.message):
            e.message = self.value(e.message)
            self.redacted += 1

    def apply(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord] = (),
        events: Sequence[ContentEvent] = (),
    ) -> None:
        """Mask every record of a batch, in place. A record that cannot be masked loses its
        content (fail closed) rather than being stored unmasked."""
        for c in calls:
            try:
                self.call(c)
            except Exception as e:  # never store what could not be checked
                log.error("redaction failed for call %s (%s): content dropped", c.id, e)
                c.input_messages = c.output_messages = c.system_instructions = None
                c.error_message = None
                c.attributes = {}
        for s in spans:
            try:
                self.span(s)
            except Exception as e:
                log.error("redaction failed for span %s (%s): attributes dropped", s.span_id, e)
                s.attributes, s.events, s.status_message = {}, [], None
        for ev in events:
            try:
                self.event(ev)
            except Exception as e:
                log.error("redaction failed for a content event (%s): dropped", e)
                ev.message = {}
