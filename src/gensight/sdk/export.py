"""OTLP/HTTP exporters for ``gensight.init()``: a fast span encoder, and one warning.

Spans: the official exporter builds a protobuf object per span, attribute and value,
which costs more CPU per LLM call (~80 µs for a typical GenAI span here) than all
the SDK's other work together. ``encode_spans`` writes the same
``ExportTraceServiceRequest`` bytes directly; ``tests/integration/test_sdk.py`` checks that they
decode to exactly what the official encoder produces; repeated attribute values
(operation, provider, model…) are encoded once and reused.

Failures: the official exporters log an error for every failed batch and a warning
for every retry. These subclasses log one warning when the endpoint first fails
("telemetry is being dropped"), stay quiet while it keeps failing, log once more when
it recovers, and skip the retries at shutdown once the endpoint is known to be down,
so an unreachable endpoint never delays the app's exit by the export timeout.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

log = logging.getLogger("gensight.sdk")

# -- protobuf wire format --------------------------------------------------------------

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_VARINTS = [bytes([i]) for i in range(128)]


def _varint(n: int) -> bytes:
    if n < 128:
        return _VARINTS[n] if n >= 0 else _varint(n & 0xFFFFFFFFFFFFFFFF)
    out = bytearray()
    while n > 127:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _string(tag: bytes, s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return tag + _varint(len(b)) + b


def _any_value(v: Any) -> bytes:
    """An ``AnyValue`` message body."""
    t = type(v)
    if t is str:
        return _string(b"\x0a", v)
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        return b"\x18" + _varint(v & 0xFFFFFFFFFFFFFFFF)
    if t is float:
        return b"\x21" + _pack_double(v)
    if v is None:
        return b""
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, str):
        return _string(b"\x0a", str(v))
    if isinstance(v, int):
        return b"\x18" + _varint(int(v) & 0xFFFFFFFFFFFFFFFF)
    if isinstance(v, float):
        return b"\x21" + _pack_double(float(v))
    if isinstance(v, bytes):
        return _ld(b"\x3a", v)
    if isinstance(v, list | tuple):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", _any_value(x)) for x in v))
    if isinstance(v, dict):
        return _ld(b"\x32", b"".join(_ld(b"\x0a", _key_value(str(k), x)) for k, x in v.items()))
    raise TypeError(f"cannot encode attribute value of type {t.__name__}")


_KEYS: dict[str, bytes] = {}


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message body."""
    k = _KEYS.get(key)
    if k is None:
        k = _string(b"\x0a", key)
        if len(_KEYS) < 10_000:
            _KEYS[key] = k
    return k + _ld(b"\x12", _any_value(value))


#: Encoded attribute fields by (tag, key, type, value): most values repeat from span to
#: span (operation, provider, model, server, finish reasons). Each key caches at most
#: ``_DISTINCT`` values, so ids and counts stop being cached after a while.
_FIELDS: dict[tuple[bytes, str, type, Any], bytes] = {}
_DISTINCT = 64
_distinct: dict[str, int] = {}
_CACHEABLE = frozenset({str, int, float, bool, tuple})


def _attributes(tag: bytes, attributes: Any) -> bytes:
    if not attributes:
        return b""
    # BoundedAttributes is a MutableMapping whose generic items() costs ~1 µs an item
    items = getattr(attributes, "_dict", attributes).items()
    out = []
    fields = _FIELDS
    for k, v in items:
        t = type(v)
        if t in _CACHEABLE and (v or t is not float):  # 0.0 == -0.0, but not in bytes
            ck = (tag, k, t, v)
            try:
                field = fields.get(ck)
            except TypeError:  # a tuple holding something unhashable
                out.append(_ld(tag, _key_value(k, v)))
                continue
            if field is None:
                field = _ld(tag, _key_value(k, v))
                n = _distinct.get(k, 0)
                if n < _DISTINCT and len(fields) < 20_000:
                    _distinct[k] = n + 1
                    fields[ck] = field
            out.append(field)
        else:
            out.append(_ld(tag, _key_value(k, v)))
    return b"".join(out)


def _span_attributes(span: Any) -> Any:
    """A ``ReadableSpan``'s attributes as a plain dict when possible.

    Its ``attributes`` property is a mappingproxy over BoundedAttributes, iterated
    through the generic Mapping machinery: a third of the encoding time.
    """
    bounded = getattr(span, "_attributes", None)
    inner = getattr(bounded, "_dict", None)
    return inner if type(inner) is dict else span.attributes


# Span.flags: the official encoder sets "has is_remote" and "is_remote" bits only.
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)


def _encode_span(span: Any) -> bytes:
    ctx = span.context
    out = [
        b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + ctx.span_id.to_bytes(8, "big"),
    ]
    trace_state = ctx.trace_state
    if trace_state:
        out.append(_string(b"\x1a", ",".join(f"{k}={v}" for k, v in trace_state.items())))
    parent = span.parent
    if parent is not None:
        out.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        out.append(_string(b"\x2a", span.name))
    out.append(b"\x30" + _VARINTS[span.kind.value + 1])
    out.append(b"\x39" + _pack_fixed64(span.start_time or 0))
    out.append(b"\x41" + _pack_fixed64(span.end_time or 0))
    out.append(_attributes(b"\x4a", _span_attributes(span)))
    if span.dropped_attributes:
        out.append(b"\x50" + _varint(span.dropped_attributes))
    for e in span.events:
        body = b"\x09" + _pack_fixed64(e.timestamp or 0)
        if e.name:
            body += _string(b"\x12", e.name)
        body += _attributes(b"\x1a", e.attributes)
        if e.dropped_attributes:
            body += b"\x20" + _varint(e.dropped_attributes)
        out.append(_ld(b"\x5a", body))
    if span.dropped_events:
        out.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        lc = link.context
        body = b"\x0a\x10" + lc.trace_id.to_bytes(16, "big") + b"\x12\x08"
        body += lc.span_id.to_bytes(8, "big") + _attributes(b"\x22", link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        body += b"\x35" + struct.pack("<I", 0x300 if lc.is_remote else 0x100)
        out.append(_ld(b"\x6a", body))
    if span.dropped_links:
        out.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    if status is not None:
        body = b""
        if status.description:
            body += _string(b"\x12", status.description)
        code = status.status_code.value
        if code:
            body += b"\x18" + _VARINTS[code]
        out.append(_ld(b"\x7a", body))
    out.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(out)


_scope_cache: dict[Any, bytes] = {}
_resource_cache: dict[Any, bytes] = {}


def _encode_scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    body = b""
    if scope.name:
        body += _string(b"\x0a", scope.name)
    if scope.version:
        body += _string(b"\x12", scope.version)
    body += _attributes(b"\x1a", scope.attributes)
    return body


def encode_spans(spans: Sequence[Any]) -> bytes:
    """An OTLP ``ExportTraceServiceRequest`` for SDK ``ReadableSpan``s, serialized."""
    return _request(
        [((s.resource, s.instrumentation_scope or None), _encode_span(s)) for s in spans]
    )


def _request(encoded: Sequence[tuple[tuple[Any, Any], bytes]]) -> bytes:
    """The request body for spans already encoded, grouped by (resource, scope)."""
    grouped: dict[Any, dict[Any, list[bytes]]] = {}
    for (resource, scope), body in encoded:
        by_scope = grouped.get(resource)
        if by_scope is None:
            by_scope = grouped[resource] = {}
        bodies = by_scope.get(scope)
        if bodies is None:
            bodies = by_scope[scope] = []
        bodies.append(_ld(b"\x12", body))
    out = []
    for resource, by_scope in grouped.items():
        body = [_ld(b"\x0a", _attributes(b"\x0a", resource.attributes))]
        for scope, bodies in by_scope.items():
            sbody = _ld(b"\x0a", _encode_scope(scope)) + b"".join(bodies)
            if scope is not None and scope.schema_url:
                sbody += _string(b"\x1a", scope.schema_url)
            body.append(_ld(b"\x12", sbody))
        if resource.schema_url:
            body.append(_string(b"\x1a", resource.schema_url))
        out.append(_ld(b"\x0a", b"".join(body)))
    return b"".join(out)


# -- failure reporting -----------------------------------------------------------------

_quiet = threading.local()


class _QuietFilter(logging.Filter):
    """Drops the official exporters' per-batch logs while a Gensight exporter runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


_QUIET_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http",
)
_filter = _QuietFilter()
for _name in _QUIET_LOGGERS:
    logging.getLogger(_name).addFilter(_filter)


class Health:
    """Whether the endpoint works, shared by the three exporters: one warning in all.

    While the endpoint is down, batches are dropped at once except for one attempt
    every ``retry_every`` seconds, so a dead endpoint costs neither CPU nor a full
    queue; at shutdown, one that is down (or does not accept a TCP connection) gets
    no attempt at all.
    """

    def __init__(self, endpoint: str, retry_every: float = 10.0) -> None:
        self.endpoint = endpoint
        self.retry_every = retry_every
        self.down = False
        self.up_once = False
        self.shutting_down = False
        self._next_try = 0.0
        self._lock = threading.Lock()

    def report(self, ok: bool, signal: str) -> None:
        with self._lock:
            if ok:
                self.up_once = True
                if self.down:
                    self.down = False
                    log.warning("gensight: exporting telemetry to %s again", self.endpoint)
            else:
                self._next_try = time.monotonic() + self.retry_every
                if not self.down:
                    self.down = True
                    log.warning(
                        "gensight: cannot export %s to %s; telemetry is dropped until it "
                        "is reachable (the app is not affected)",
                        signal,
                        self.endpoint,
                    )

    def skip(self) -> bool:
        """Whether to drop a batch without trying (see the class docstring)."""
        if not self.down:
            return False
        return self.shutting_down or time.monotonic() < self._next_try

    def probe(self, timeout: float = 0.5) -> bool:
        """Whether the endpoint accepts a TCP connection now (marks it down if not)."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
            return True
        except OSError:
            with self._lock:
                if not self.down:
                    self.down = True
                    log.warning(
                        "gensight: cannot reach %s; telemetry not yet exported is dropped",
                        self.endpoint,
                    )
            return False


def _run_quietly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    _quiet.on = True
    try:
        return fn(*args, **kwargs)
    finally:
        _quiet.on = False


class SpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` with the fast encoder and the single warning."""

    def __init__(self, health: Health, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._health = health

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self._health.skip():
            return SpanExportResult.FAILURE
        ok = False
        try:
            client = getattr(self, "_client", None)
            data = None
            if client is not None and not getattr(self, "_shutdown", False):
                try:
                    data = encode_spans(spans)
                except Exception:
                    log.debug("gensight: fast span encoding failed", exc_info=True)
            if data is None:
                ok = _run_quietly(super().export, spans) == SpanExportResult.SUCCESS
            else:
                ok = bool(getattr(_run_quietly(client.export, data), "success", False))
        except Exception:
            log.debug("gensight: span export failed", exc_info=True)
        self._health.report(ok, "spans")
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class MetricExporter(OTLPMetricExporter):
    """``OTLPMetricExporter`` with the single warning."""

    def __init__(self, health: Health, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._health = health

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        if self._health.skip():
            return MetricExportResult.FAILURE
        try:
            result = _run_quietly(
                OTLPMetricExporter.export, self, metrics_data, timeout_millis, **kwargs
            )
        except Exception:
            log.debug("gensight: metric export failed", exc_info=True)
            result = MetricExportResult.FAILURE
        self._health.report(result == MetricExportResult.SUCCESS, "metrics")
        return result


class LogExporter(OTLPLogExporter):
    """``OTLPLogExporter`` with the single warning."""

    def __init__(self, health: Health, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._health = health

    def export(self, batch: Any) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        if self._health.skip():
            return LogRecordExportResult.FAILURE
        try:
            result = _run_quietly(super().export, batch)
        except Exception:
            log.debug("gensight: log export failed", exc_info=True)
            result = LogRecordExportResult.FAILURE
        self._health.report(result == LogRecordExportResult.SUCCESS, "logs")
        return result
