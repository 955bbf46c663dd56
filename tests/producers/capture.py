"""A tiny OTLP/HTTP capture receiver for tests and fixture generation.

Accepts ``POST /v1/traces``, ``/v1/logs`` and ``/v1/metrics`` (protobuf or JSON
bodies, optionally gzip-encoded), answers 200 with an empty
``Export*ServiceResponse`` and keeps every request converted to OTLP/JSON (the
proto3 JSON mapping with lowerCamelCase names, and trace/span ids as hex, as the
OTLP/JSON spec requires). Optionally saves each one to
``OUT/{traces,logs,metrics}-N.json``.

    with CaptureServer(out_dir=path) as cap:     # cap.url == "http://127.0.0.1:PORT"
        ...run a producer exporting to cap.url...
    cap.requests["traces"]                          # list of OTLP/JSON dicts
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SIGNALS: dict[str, tuple[type[Message], type[Message]]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}

_HEX_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def _hex_ids(node: Any) -> Any:
    """Turn base64 id fields (proto3 JSON bytes) into the hex OTLP/JSON requires."""
    import base64

    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _HEX_ID_FIELDS and isinstance(value, str):
                out[key] = base64.b64decode(value).hex()
            else:
                out[key] = _hex_ids(value)
        return out
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def decode_request(signal: str, body: bytes, content_type: str) -> dict[str, Any]:
    """Decode one OTLP/HTTP export body (protobuf or JSON) into an OTLP/JSON dict."""
    request_cls, _ = SIGNALS[signal]
    if "json" in content_type:
        msg = json_format.Parse(body.decode(), request_cls(), ignore_unknown_fields=True)
    else:
        msg = request_cls()
        msg.ParseFromString(body)
    return _hex_ids(json_format.MessageToDict(msg))


class CaptureServer:
    """OTLP/HTTP receiver on a free loopback port that records (and saves) exports."""

    def __init__(self, out_dir: Path | None = None, host: str = "127.0.0.1") -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.requests: dict[str, list[dict[str, Any]]] = {s: [] for s in SIGNALS}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                # OTel JS exporters send ``Transfer-Encoding: chunked`` with no length
                if "chunked" not in (self.headers.get("transfer-encoding") or "").lower():
                    return self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after each chunk

            def do_POST(self) -> None:  # noqa: N802
                signal = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                if signal not in SIGNALS:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = self._body()
                encoding = (self.headers.get("content-encoding") or "").lower()
                content_type = self.headers.get("content-type") or "application/x-protobuf"
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    capture._record(signal, decode_request(signal, body, content_type))
                except Exception as exc:  # noqa: BLE001 - report, answer 400
                    capture.errors.append(f"{signal}: {exc!r}")
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                _, response_cls = SIGNALS[signal]
                if "json" in content_type:
                    payload = b"{}"
                    ctype = "application/json"
                else:
                    payload = response_cls().SerializeToString()
                    ctype = "application/x-protobuf"
                self.send_response(200)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def _record(self, signal: str, data: dict[str, Any]) -> None:
        with self._lock:
            items = self.requests[signal]
            items.append(data)
            n = len(items)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"{signal}-{n}.json"
            path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")

    def start(self) -> CaptureServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # helpers for tests ------------------------------------------------------

    def spans(self) -> list[dict[str, Any]]:
        """Every captured span (OTLP/JSON), flattened, with its resource attributes."""
        out = []
        for req in self.requests["traces"]:
            for rs in req.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        out.append(dict(span, _resource=rs.get("resource", {}),
                                        _scope=ss.get("scope", {})))  # fmt: skip
        return out

    def log_records(self) -> list[dict[str, Any]]:
        """Every captured log record (OTLP/JSON), flattened."""
        out = []
        for req in self.requests["logs"]:
            for rl in req.get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    out.extend(sl.get("logRecords", []))
        return out

    def metric_names(self) -> set[str]:
        """Names of every captured metric."""
        names = set()
        for req in self.requests["metrics"]:
            for rm in req.get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    for metric in sm.get("metrics", []):
                        names.add(metric.get("name"))
        return names


def attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """OTLP/JSON ``attributes`` list → plain dict (arrays become lists)."""

    def value(v: dict[str, Any]) -> Any:
        if "stringValue" in v:
            return v["stringValue"]
        if "intValue" in v:
            return int(v["intValue"])
        if "doubleValue" in v:
            return v["doubleValue"]
        if "boolValue" in v:
            return v["boolValue"]
        if "arrayValue" in v:
            return [value(x) for x in v["arrayValue"].get("values", [])]
        if "kvlistValue" in v:
            return {
                kv["key"]: value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])
            }
        if "bytesValue" in v:
            return v["bytesValue"]
        return None

    return {kv["key"]: value(kv.get("value", {})) for kv in items or []}
