"""OTLP payloads to records, shared by the HTTP and gRPC receivers and the journal.

``decode`` parses an Export*ServiceRequest from protobuf or OTLP/JSON (hex trace and
span ids, lowerCamelCase or snake_case keys) with the ``opentelemetry-proto`` classes,
``encode`` writes an answer in the request's encoding; ``traces_to_records`` and
``logs_to_events`` normalize a request through ``gensight.conventions`` (one bad span
or log record is rejected alone, never the batch), and ``replay_traces`` /
``replay_logs`` turn a journaled payload back into records. Both receivers going
through these functions is what makes their records identical.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.conventions.evaluation import EVENT as EVAL_EVENT
from gensight.conventions.evaluation import log_to_score, span_scores
from gensight.conventions.logfire import join_streams
from gensight.conventions.logs import log_to_events
from gensight.conventions.otlp_values import attributes
from gensight.conventions.spans import Resource, span_to_records
from gensight.model.records import CallRecord, ContentEvent, Score, SpanRecord

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class BadRequest(Exception):
    """A request the receiver refuses, with the HTTP status and a message naming why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


def traces_to_scores(req: trace_service_pb2.ExportTraceServiceRequest) -> list[Score]:
    """Scores of the ``gen_ai.evaluation.result`` span events of a traces request (#20)."""
    scores: list[Score] = []
    for rs in req.resource_spans:
        app: str | None | bool = False  # resolved at the first evaluation event only
        for ss in rs.scope_spans:
            for span in ss.spans:
                if not span.events or not any(e.name == EVAL_EVENT for e in span.events):
                    continue
                if app is False:
                    app = Resource(attributes(rs.resource.attributes)).app
                try:
                    scores += span_scores(span, app or None)
                except Exception:  # a bad event costs itself, never its span
                    continue
    return scores


def logs_to_scores(req: logs_service_pb2.ExportLogsServiceRequest) -> list[Score]:
    """Scores of the ``gen_ai.evaluation.result`` log records of a logs request (#20)."""
    scores: list[Score] = []
    for rl in req.resource_logs:
        app: str | None | bool = False
        for sl in rl.scope_logs:
            for record in sl.log_records:
                if app is False:
                    app = Resource(attributes(rl.resource.attributes)).app
                try:
                    score = log_to_score(record, app or None)
                except Exception:
                    continue
                if score is not None:
                    scores.append(score)
    return scores


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


Replayed = tuple[list[CallRecord], list[SpanRecord], list[ContentEvent], list[Score]]


def replay_traces(payload: bytes) -> Replayed:
    """Records of a journaled traces request (the pipeline's replay decoder)."""
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(payload)
    calls, spans, _, _ = traces_to_records(req)
    return calls, spans, [], traces_to_scores(req)


def replay_logs(payload: bytes) -> Replayed:
    """Content events and scores of a journaled logs request."""
    req = logs_service_pb2.ExportLogsServiceRequest.FromString(payload)
    events, _, _ = logs_to_events(req)
    return [], [], events, logs_to_scores(req)
