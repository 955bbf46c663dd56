"""OTLP/gRPC receivers: ``TraceService``, ``LogsService`` and ``MetricsService``/Export.

    gensight serve --grpc            # listens on 127.0.0.1:4317 (--grpc-port to change)

OpenTelemetry SDKs export OTLP/gRPC to ``localhost:4317`` by default, so an app run
under ``opentelemetry-instrument`` with no exporter settings reaches Gensight. Requests
go through the very functions of the OTLP/HTTP receiver (``decode.traces_to_records``,
``decode.logs_to_events``), so both give identical records. Answers follow the OTLP spec:
``partial_success`` for rejected items, ``UNAVAILABLE`` when the writer queue is full
(exporters retry), ``UNAUTHENTICATED`` without a key when keys are configured
(``authorization: Bearer KEY`` or ``x-gensight-key`` metadata), ``PERMISSION_DENIED``
for a key without the ``ingest`` scope. gzip-compressed
requests are accepted. The server runs on its own thread pool, apart from the HTTP
event loop.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from gensight.receive.auth import Keyring
from gensight.receive.otlp.decode import (
    LOGS,
    TRACES,
    Submit,
    count_points,
    logs_to_events,
    logs_to_scores,
    traces_to_records,
    traces_to_scores,
)

log = logging.getLogger("gensight.ingest.grpc")


class _Receiver:
    """What the three services share: key check, counting, handing records over."""

    def __init__(self, submit: Submit, counters: dict[str, int], keyring: Keyring | None) -> None:
        self.submit = submit
        self.counters = counters
        self.keyring = keyring if keyring else None

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def check_key(self, context: grpc.ServicerContext) -> None:
        if self.keyring is None:
            return
        offered: bytes | None = None
        for k, v in context.invocation_metadata():
            value = v.encode() if isinstance(v, str) else v
            if k == "x-gensight-key":
                offered = value
            elif k == "authorization" and offered is None and value[:7].lower() == b"bearer ":
                offered = value[7:].strip()
        entry = self.keyring.match(offered)
        if entry is None:
            self.count("grpc_unauthenticated")
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong Gensight key (x-gensight-key or authorization: Bearer)",
            )
        elif "ingest" not in entry.scopes:
            self.count("grpc_forbidden")
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this key lacks the 'ingest' scope")

    def hand_over(
        self,
        context: grpc.ServicerContext,
        calls: Any,
        spans: Any,
        events: Any,
        raw: tuple[str, bytes] | None = None,
        scores: Any = (),
    ) -> None:
        if (calls or spans or events or scores) and not self.submit(
            calls, spans, events, raw, scores=scores
        ):
            self.count("grpc_unavailable")
            context.abort(grpc.StatusCode.UNAVAILABLE, "writer queue is full; retry later")


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, r: _Receiver) -> None:
        self.r = r

    def Export(  # noqa: N802 - the gRPC method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.r.check_key(context)
        calls, spans, rejected, err = traces_to_records(request)
        raw = (TRACES, request.SerializeToString())
        self.r.hand_over(context, calls, spans, [], raw, traces_to_scores(request))
        self.r.count("grpc_traces")
        resp = trace_service_pb2.ExportTraceServiceResponse()
        if rejected:
            self.r.count("rejected", rejected)
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = err
        return resp


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, r: _Receiver) -> None:
        self.r = r

    def Export(  # noqa: N802
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self.r.check_key(context)
        events, rejected, err = logs_to_events(request)
        raw = (LOGS, request.SerializeToString())
        self.r.hand_over(context, [], [], events, raw, logs_to_scores(request))
        self.r.count("grpc_logs")
        resp = logs_service_pb2.ExportLogsServiceResponse()
        if rejected:
            self.r.count("rejected", rejected)
            resp.partial_success.rejected_log_records = rejected
            resp.partial_success.error_message = err
        return resp


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, r: _Receiver) -> None:
        self.r = r

    def Export(  # noqa: N802
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self.r.check_key(context)
        self.r.count("metric_points", count_points(request))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcReceiver:
    """The OTLP/gRPC server; ``start()`` binds and returns the port it listens on."""

    def __init__(
        self,
        submit: Submit,
        counters: dict[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 4317,
        max_body: int = 16 * 1024 * 1024,
        key: str | None = None,
        keyring: Keyring | None = None,
        workers: int = 4,
    ) -> None:
        self.host = host
        self.port = port
        if keyring is None and key:
            keyring = Keyring(api_key=key)
        receiver = _Receiver(submit, counters, keyring)
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gensight-grpc"),
            options=[
                ("grpc.max_receive_message_length", max_body),
                ("grpc.so_reuseport", 0),  # a second server on the port must fail, not share
            ],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(receiver), self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(receiver), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _Metrics(receiver), self.server
        )

    def start(self) -> int:
        """Listen (RuntimeError when the port cannot be bound)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        try:
            bound = self.server.add_insecure_port(f"{host}:{self.port}")
        except RuntimeError as e:
            raise RuntimeError(f"cannot listen for OTLP/gRPC on {host}:{self.port}: {e}") from None
        if not bound:
            raise RuntimeError(f"cannot listen for OTLP/gRPC on {host}:{self.port}")
        self.port = bound
        self.server.start()
        log.info("OTLP/gRPC on %s:%d", self.host, bound)
        return bound

    def stop(self, grace: float = 5.0) -> None:
        """Finish requests in flight (up to ``grace`` seconds), then stop."""
        self.server.stop(grace).wait(grace + 1)


__all__ = ["GrpcReceiver", "Submit"]
