"""Loopback receivers for what Gensight sends out: webhooks (alerts) and OTLP (forwarding)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gensight.conventions.otlp_values import attributes
from gensight.demo import ServerThread


class Receiver:
    """A loopback HTTP server that keeps every POST it gets.

    ``fail_first`` answers that many requests with 503 first; ``delay`` sleeps before
    answering (a slow target).
    """

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.delay = delay
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self.server = ServerThread(self.app)
        self.url = self.server.url

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            n = len(self.requests)
            self.requests.append(
                {"path": request.url.path, "headers": dict(request.headers), "body": body}
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        if n < self.fail_first:
            return Response(b"try later", status_code=503)
        return Response(self.answer(request.url.path), media_type=self.media_type)

    media_type = "application/json"

    def answer(self, path: str) -> bytes:
        return b"{}"

    def json_bodies(self, succeeded_only: bool = True) -> list[dict[str, Any]]:
        """The JSON bodies received (without the ones answered 503)."""
        with self._lock:
            items = self.requests[self.fail_first :] if succeeded_only else list(self.requests)
        return [orjson.loads(r["body"]) for r in items]

    def wait(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` requests arrived; return all of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"expected {n} requests, got {len(self.requests)}")

    def __enter__(self) -> Receiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


class OTLPSink(Receiver):
    """An OTLP/HTTP traces endpoint that decodes what it gets."""

    media_type = "application/x-protobuf"

    def answer(self, path: str) -> bytes:
        return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received: name, ids, kind, status, resource and span attributes."""
        out = []
        for r in self.requests[self.fail_first :]:
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(r["body"])
            for rs in req.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            {
                                "name": s.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex() or None,
                                "kind": s.kind,
                                "status": s.status.code,
                                "duration_ms": (s.end_time_unix_nano - s.start_time_unix_nano)
                                / 1e6,
                                "resource": resource,
                                "attributes": attributes(s.attributes),
                            }
                        )
        return out
