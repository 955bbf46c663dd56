"""OTLP/HTTP receivers: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``.

Bodies are ``application/x-protobuf`` or ``application/json`` (OTLP/JSON: hex trace and
span ids, lowerCamelCase or snake_case keys), optionally ``Content-Encoding: gzip``,
decoded with the ``opentelemetry-proto`` classes. Answers follow the OTLP/HTTP spec: the
Export*ServiceResponse in the request's encoding, ``partial_success`` when some items were
rejected, a ``google.rpc.Status`` body for errors (400 undecodable, 413 too large, 415
unsupported type or encoding, 503 when the writer queue is full, so exporters retry).
A batch answered with 200 has been handed to the writer.
"""

from __future__ import annotations

import base64
import binascii
import logging
import zlib
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gensight.conventions.logfire import join_streams
from gensight.conventions.logs import log_to_events
from gensight.conventions.otlp_values import attributes
from gensight.conventions.spans import Resource, span_to_records
from gensight.model.records import CallRecord, ContentEvent, SpanRecord

log = logging.getLogger("gensight.ingest")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class BadRequest(Exception):
    """A request the receiver refuses, with the HTTP status and a message naming why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, gunzipped, refusing more than ``max_body`` bytes before or after."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_body:
        raise BadRequest(413, f"request body of {length} bytes exceeds the limit of {max_body}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise BadRequest(413, f"request body exceeds the limit of {max_body} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    d = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    try:
        out = d.decompress(body, max_body + 1)
    except zlib.error as e:
        raise BadRequest(400, f"body is not valid {encoding}: {e}") from None
    if len(out) > max_body or d.unconsumed_tail:
        raise BadRequest(413, f"decompressed body exceeds the limit of {max_body} bytes")
    if not d.eof:
        raise BadRequest(400, f"body is not valid {encoding}: truncated stream")
    return out


def content_kind(request: Request) -> str:
    """``protobuf`` or ``json`` from the Content-Type, else 415."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype == PROTOBUF:
        return "protobuf"
    if ctype == JSON:
        return "json"
    raise BadRequest(
        415, f"unsupported Content-Type {ctype or '(none)'!r}: use {PROTOBUF} or {JSON}"
    )


_ID_KEYS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8}
_ID_KEYS.update({"parentSpanId": 8, "parent_span_id": 8})


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raise BadRequest(400, f"{key} {value!r} is not a hex id") from None
                node[key] = base64.b64encode(raw).decode()
            elif isinstance(value, dict | list):
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _hex_ids_to_base64(item)


def decode(body: bytes, kind: str, message: Message) -> Message:
    """Parse an OTLP request body into ``message`` (400 naming the failure)."""
    name = type(message).__name__
    if kind == "protobuf":
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as e:
            raise BadRequest(400, f"body is not a valid protobuf {name}: {e}") from None
        return message
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as e:
        raise BadRequest(400, f"body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest(400, f"OTLP/JSON body must be an object ({name})")
    _hex_ids_to_base64(data)
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, ValueError, TypeError) as e:
        raise BadRequest(400, f"body is not a valid OTLP/JSON {name}: {e}") from None
    return message


def encode(message: Message, kind: str) -> tuple[bytes, str]:
    """Serialize a response message in the request's encoding."""
    if kind == "json":
        return orjson.dumps(json_format.MessageToDict(message)), JSON
    return message.SerializeToString(), PROTOBUF


def error_response(status: int, message: str, kind: str) -> Response:
    """An OTLP error answer: a ``google.rpc.Status`` in the request's encoding."""
    body, ctype = encode(status_pb2.Status(code=_GRPC_CODES.get(status, 3), message=message), kind)
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(body, status_code=status, media_type=ctype, headers=headers)


_GRPC_CODES = {400: 3, 413: 8, 415: 3, 401: 16, 503: 14}


def traces_to_records(
    req: trace_service_pb2.ExportTraceServiceRequest,
) -> tuple[list[CallRecord], list[SpanRecord], int, str]:
    """Normalize an export request; returns calls, spans, rejected count and first error."""
    calls: list[CallRecord] = []
    spans: list[SpanRecord] = []
    rejected = 0
    first_error = ""
    for rs in req.resource_spans:
        rattrs = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            resource = Resource(rattrs, scope)
            for span in ss.spans:
                try:
                    srec, call = span_to_records(span, resource, scope)
                except Exception as e:  # one bad span must not cost the batch
                    rejected += 1
                    if not first_error:
                        first_error = f"span {span.name!r}: {e}"
                    continue
                spans.append(srec)
                if call is not None:
                    calls.append(call)
    join_streams(calls, spans)  # logfire: a stream's request span and its result span
    return calls, spans, rejected, first_error


def logs_to_events(
    req: logs_service_pb2.ExportLogsServiceRequest,
) -> tuple[list[ContentEvent], int, str]:
    """The GenAI content events of a logs export request."""
    events: list[ContentEvent] = []
    rejected = 0
    first_error = ""
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                try:
                    events.extend(log_to_events(record, len(events)))
                except Exception as e:
                    rejected += 1
                    if not first_error:
                        first_error = f"log record: {e}"
    return events, rejected, first_error


def count_points(req: metrics_service_pb2.ExportMetricsServiceRequest) -> int:
    """Number of data points in a metrics export request."""
    n = 0
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind:
                    n += len(getattr(m, kind).data_points)
    return n


Submit = Callable[..., bool]  # Pipeline.submit(calls, spans, events, raw=None)

#: Journal kinds of OTLP payloads (protobuf Export*ServiceRequest bytes).
TRACES = "otlp-traces"
LOGS = "otlp-logs"


def replay_traces(payload: bytes) -> tuple[list[CallRecord], list[SpanRecord], list[ContentEvent]]:
    """Records of a journaled traces request (the pipeline's replay decoder)."""
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(payload)
    calls, spans, _, _ = traces_to_records(req)
    return calls, spans, []


def replay_logs(payload: bytes) -> tuple[list[CallRecord], list[SpanRecord], list[ContentEvent]]:
    """Content events of a journaled logs request."""
    events, _, _ = logs_to_events(logs_service_pb2.ExportLogsServiceRequest.FromString(payload))
    return [], [], events


def otlp_routes(submit: Submit, max_body: int, counters: dict[str, int]) -> list[Route]:
    """The three OTLP/HTTP routes, handing records to ``submit`` (the pipeline)."""

    async def handle(request: Request, signal: str) -> Response:
        kind = "protobuf"
        try:
            kind = content_kind(request)
            body = await read_body(request, max_body)
            raw: tuple[str, bytes] | None = None
            if signal == "traces":
                req = decode(body, kind, trace_service_pb2.ExportTraceServiceRequest())
                calls, spans, rejected, err = traces_to_records(req)
                raw = (TRACES, body if kind == "protobuf" else req.SerializeToString())
                events: list[ContentEvent] = []
                resp: Message = trace_service_pb2.ExportTraceServiceResponse()
                if rejected:
                    resp.partial_success.rejected_spans = rejected
            elif signal == "logs":
                req = decode(body, kind, logs_service_pb2.ExportLogsServiceRequest())
                calls, spans = [], []
                events, rejected, err = logs_to_events(req)
                raw = (LOGS, body if kind == "protobuf" else req.SerializeToString())
                resp = logs_service_pb2.ExportLogsServiceResponse()
                if rejected:
                    resp.partial_success.rejected_log_records = rejected
            else:
                req = decode(body, kind, metrics_service_pb2.ExportMetricsServiceRequest())
                counters["metric_points"] = counters.get("metric_points", 0) + count_points(req)
                calls, spans, events, rejected, err = [], [], [], 0, ""
                resp = metrics_service_pb2.ExportMetricsServiceResponse()
            if rejected:
                resp.partial_success.error_message = err
                counters["rejected"] = counters.get("rejected", 0) + rejected
            if (calls or spans or events) and not submit(calls, spans, events, raw):
                raise BadRequest(503, "cannot keep more data now (store down, spill full)")
        except BadRequest as e:
            counters[f"http_{e.status}"] = counters.get(f"http_{e.status}", 0) + 1
            return error_response(e.status, e.message, kind)
        except (RecursionError, MemoryError, ValueError, TypeError) as e:
            # Pathological payloads (absurd nesting, wrong types past the decoder) are the
            # sender's problem: name it, never answer 500.
            counters["http_400"] = counters.get("http_400", 0) + 1
            return error_response(400, f"could not process {signal} payload: {e!r}", kind)
        data, ctype = encode(resp, kind)
        return Response(data, media_type=ctype)

    async def traces(request: Request) -> Response:
        return await handle(request, "traces")

    async def logs(request: Request) -> Response:
        return await handle(request, "logs")

    async def metrics(request: Request) -> Response:
        return await handle(request, "metrics")

    return [
        Route("/v1/traces", traces, methods=["POST"]),
        Route("/v1/logs", logs, methods=["POST"]),
        Route("/v1/metrics", metrics, methods=["POST"]),
    ]
