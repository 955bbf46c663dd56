"""OTLP/HTTP receivers: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``.

Bodies are ``application/x-protobuf`` or ``application/json`` (OTLP/JSON: hex trace and
span ids, lowerCamelCase or snake_case keys), optionally ``Content-Encoding: gzip``,
decoded with the ``opentelemetry-proto`` classes. Answers follow the OTLP/HTTP spec: the
Export*ServiceResponse in the request's encoding, ``partial_success`` when some items were
rejected, a ``google.rpc.Status`` body for errors (400 undecodable, 413 too large, 415
unsupported type or encoding, 503 when the writer queue is full, so exporters retry).
A batch answered with 200 has been handed to the writer. Decoding and normalizing are
``gensight.receive.otlp.decode``'s, shared with the gRPC receiver.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gensight.model.records import ContentEvent
from gensight.receive.otlp.decode import (
    JSON,
    LOGS,
    PROTOBUF,
    TRACES,
    BadRequest,
    Submit,
    count_points,
    decode,
    encode,
    logs_to_events,
    logs_to_scores,
    traces_to_records,
    traces_to_scores,
)


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


def error_response(status: int, message: str, kind: str) -> Response:
    """An OTLP error answer: a ``google.rpc.Status`` in the request's encoding."""
    body, ctype = encode(status_pb2.Status(code=_GRPC_CODES.get(status, 3), message=message), kind)
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(body, status_code=status, media_type=ctype, headers=headers)


_GRPC_CODES = {400: 3, 413: 8, 415: 3, 401: 16, 503: 14}


def otlp_routes(
    submit: Submit,
    max_body: int,
    counters: dict[str, int],
    refusal: Callable[[], str | None] | None = None,
) -> list[Route]:
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
                scores = traces_to_scores(req)
                raw = (TRACES, body if kind == "protobuf" else req.SerializeToString())
                events: list[ContentEvent] = []
                resp: Message = trace_service_pb2.ExportTraceServiceResponse()
                if rejected:
                    resp.partial_success.rejected_spans = rejected
            elif signal == "logs":
                req = decode(body, kind, logs_service_pb2.ExportLogsServiceRequest())
                calls, spans = [], []
                events, rejected, err = logs_to_events(req)
                scores = logs_to_scores(req)
                raw = (LOGS, body if kind == "protobuf" else req.SerializeToString())
                resp = logs_service_pb2.ExportLogsServiceResponse()
                if rejected:
                    resp.partial_success.rejected_log_records = rejected
            else:
                req = decode(body, kind, metrics_service_pb2.ExportMetricsServiceRequest())
                counters["metric_points"] = counters.get("metric_points", 0) + count_points(req)
                calls, spans, events, rejected, err = [], [], [], 0, ""
                scores = []
                resp = metrics_service_pb2.ExportMetricsServiceResponse()
            if rejected:
                resp.partial_success.error_message = err
                counters["rejected"] = counters.get("rejected", 0) + rejected
            bound = (request.scope.get("state") or {}).get("gensight_app")
            if bound:  # a key bound to an app: what it sends is that app's
                for record in (*calls, *spans, *scores):
                    record.app = bound
                if raw is not None:  # the journal keeps the records as decoded
                    raw = None
            if (calls or spans or events or scores) and not submit(
                calls, spans, events, raw, scores=scores
            ):
                why = refusal() if refusal is not None else None
                raise BadRequest(503, f"cannot keep more data now: {why or 'queue full'}")
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
