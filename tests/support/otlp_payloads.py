"""OTLP request bodies made by the real OpenTelemetry SDK and its OTLP encoders."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def record_spans(
    build: Callable[[trace.Tracer], None], service: str = "test-app", **resource: Any
) -> list[ReadableSpan]:
    """Run ``build`` with a real SDK tracer and return the finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tests.producer"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def traces_protobuf(spans: list[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest as the OTLP/HTTP protobuf exporter sends it."""
    return encode_spans(spans).SerializeToString()


def _ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                node[k] = base64.b64decode(v).hex()
            else:
                _ids_to_hex(v)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


def traces_json(spans: list[ReadableSpan]) -> bytes:
    """The same request in OTLP/JSON (hex ids, lowerCamelCase keys)."""
    data = json_format.MessageToDict(encode_spans(spans))
    _ids_to_hex(data)
    return orjson.dumps(data)


def logs_protobuf(records: list[Any]) -> bytes:
    """An ExportLogsServiceRequest from SDK log records (ReadWriteLogRecord/LogData)."""
    return encode_logs(records).SerializeToString()


def hex_trace_id(span: ReadableSpan) -> str:
    """The span's trace id as the API shows it."""
    return format(span.context.trace_id, "032x")


def hex_span_id(span: ReadableSpan) -> str:
    """The span's id as the API shows it."""
    return format(span.context.span_id, "016x")
