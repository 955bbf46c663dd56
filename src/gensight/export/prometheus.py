"""Prometheus ``GET /metrics``: what Gensight recorded, as counters and histograms.

Every call the writer stores is counted (a pipeline observer), so for one server the
counters equal the JSON API's totals over the same calls::

    gensight_calls_total{app, model, provider, status}
    gensight_errors_total{app, model, provider, error_class}
    gensight_tokens_total{app, model, provider, type}     type: input, output,
                                                          cache_read, cache_write, reasoning
    gensight_cost_usd_total{app, model, provider}         priced calls only
    gensight_call_duration_seconds{app, model, provider}  histogram
    gensight_ttft_seconds{app, model, provider}           histogram (streams)

``model`` is the requested model (else the response's), as ``group_by=model`` in the
API; a call without an app, model or provider has the label ``""``. Label values are
bounded: each label keeps the first ``max_values`` values it sees (default 50), later
ones are counted under ``"other"``, so a client sending random app names cannot blow up
the scrape.

Server health, read at scrape time::

    gensight_writer_queue_depth, gensight_writer_queue_capacity,
    gensight_writer_spill_bytes, gensight_writer_{accepted,written,dropped}_records_total,
    gensight_writer_write_errors_total, gensight_writer_set_aside_records_total,
    gensight_journal_damaged_entries_total, gensight_server_events_total{event},
    gensight_alert_firing{rule_id, name}, gensight_alert_notifications_total{result},
    gensight_forward_spans_total{result}, gensight_forward_queue_depth

With several replicas, each counts what its own writer stored: sum over instances.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gensight.model import vocab
from gensight.model.records import CallRecord, SpanRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABELS = ("app", "model", "provider")
OTHER = "other"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300)
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
TOKEN_TYPES = vocab.TOKEN_TYPES


class LabelLimiter:
    """Keeps the first ``max_values`` values of one label; later ones become ``other``."""

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        v = value or ""
        if v in self._seen:
            return v
        if len(self._seen) < self.max_values:
            self._seen.add(v)
            return v
        return OTHER


class Metrics:
    """The registry ``/metrics`` serves, fed by the pipeline's ``observe``."""

    def __init__(self, max_values: int = 50) -> None:
        disable_created_metrics()  # ``*_created`` series double the scrape for no use here
        self.registry = CollectorRegistry(auto_describe=True)
        self._limit = {name: LabelLimiter(max_values) for name in LABELS}
        self._lock = threading.Lock()
        r = self.registry
        self.calls = Counter(
            "gensight_calls",
            "LLM calls recorded, by app, model, provider and status",
            [*LABELS, "status"],
            registry=r,
        )
        self.errors = Counter(
            "gensight_errors",
            f"Failed LLM calls by {vocab.label('error_class')}: {', '.join(vocab.ERROR_CLASSES)}",
            [*LABELS, "error_class"],
            registry=r,
        )
        self.tokens = Counter(
            "gensight_tokens",
            "Tokens of recorded calls by type: " + ", ".join(t for t, _ in TOKEN_TYPES),
            [*LABELS, "type"],
            registry=r,
        )
        self.cost = Counter(
            "gensight_cost_usd", "Cost of recorded calls in USD (priced calls)", LABELS, registry=r
        )
        self.duration = Histogram(
            "gensight_call_duration_seconds",
            f"{vocab.LONG_LABELS['duration_ms'].capitalize()} of recorded calls, seconds",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gensight_ttft_seconds",
            f"TTFT ({vocab.LONG_LABELS['ttft_ms']}) of streamed calls, seconds",
            LABELS,
            buckets=TTFT_BUCKETS,
            registry=r,
        )

    def observe(self, calls: Sequence[CallRecord], spans: Sequence[SpanRecord]) -> None:
        """Pipeline observer: count a stored batch (writer thread)."""
        with self._lock:
            for c in calls:
                labels = (
                    self._limit["app"](c.app),
                    self._limit["model"](c.request_model or c.response_model),
                    self._limit["provider"](c.provider),
                )
                self.calls.labels(*labels, c.status).inc()
                if c.status == "error":
                    self.errors.labels(*labels, c.error_class or "unknown").inc()
                for kind, name in TOKEN_TYPES:
                    n = getattr(c, name)
                    if n:
                        self.tokens.labels(*labels, kind).inc(n)
                if c.cost_usd is not None:
                    self.cost.labels(*labels).inc(c.cost_usd)
                self.duration.labels(*labels).observe(c.duration_ms / 1000.0)
                if c.ttft_ms is not None:
                    self.ttft.labels(*labels).observe(c.ttft_ms / 1000.0)

    def add_collector(self, collect: Callable[[], Iterator[Metric]]) -> None:
        """Register metrics read at scrape time (queue depth, alert states, …)."""
        self.registry.register(_Collect(collect))

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class _Collect(Collector):
    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        return self._collect()

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check for clashes up front


def server_collector(
    pipeline: Any, counters: dict[str, int], alerts: Any = None, forwarder: Any = None
) -> Callable[[], Iterator[Metric]]:
    """Writer queue, ingest/gateway counters, alert and forwarding state at scrape time."""

    def collect() -> Iterator[Metric]:
        q = pipeline.stats()
        yield GaugeMetricFamily(
            "gensight_writer_queue_depth", "Records waiting for the writer", value=q["depth"]
        )
        yield GaugeMetricFamily(
            "gensight_writer_queue_capacity", "Records the writer queue holds", value=q["capacity"]
        )
        yield GaugeMetricFamily(
            "gensight_writer_spill_bytes",
            "Bytes spilled to disk while the store is down",
            value=q.get("spill_bytes", 0),
        )
        for key, help_ in (
            ("accepted", "Records accepted into the writer queue"),
            ("written", "Records written to the store"),
            ("dropped", "Records lost (queue full, or store down at shutdown)"),
        ):
            yield CounterMetricFamily(f"gensight_writer_{key}_records", help_, value=q[key])
        yield CounterMetricFamily(
            "gensight_writer_write_errors", "Failed store writes (retried)", value=q["write_errors"]
        )
        yield CounterMetricFamily(
            "gensight_writer_set_aside_records",
            "Records the store would not take, set aside under DATA_DIR/set-aside",
            value=q.get("set_aside", 0),
        )
        yield CounterMetricFamily(
            "gensight_journal_damaged_entries",
            "Journal entries skipped because they failed their checksum",
            value=q.get("journal_damaged", 0),
        )
        events = CounterMetricFamily(
            "gensight_server_events", "Ingest and gateway events by kind", labels=["event"]
        )
        for key, value in sorted(dict(counters).items()):
            events.add_metric([key], value)
        yield events
        if alerts is not None:
            firing = GaugeMetricFamily(
                "gensight_alert_firing", "1 while an alert rule fires", labels=["rule_id", "name"]
            )
            for s in alerts.states():
                firing.add_metric([s["rule_id"], s["name"]], 1 if s["state"] == "firing" else 0)
            yield firing
            h = alerts.health()
            notes = CounterMetricFamily(
                "gensight_alert_notifications", "Webhook notifications", labels=["result"]
            )
            for result in ("sent", "failed", "dropped"):
                notes.add_metric([result], h[f"notifications_{result}"])
            yield notes
        if forwarder is not None:
            f = forwarder.stats()
            spans = CounterMetricFamily(
                "gensight_forward_spans", "Calls forwarded over OTLP", labels=["result"]
            )
            for result in ("sent", "failed", "dropped"):
                spans.add_metric([result], f[result])
            yield spans
            yield GaugeMetricFamily(
                "gensight_forward_queue_depth", "Calls waiting to be forwarded", value=f["queued"]
            )

    return collect


def metrics_route(metrics: Metrics) -> Route:
    """``GET /metrics``."""

    async def endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return Route("/metrics", endpoint, methods=["GET"], include_in_schema=False)
