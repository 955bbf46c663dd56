"""The SDK's own histograms, for when ``gensight.init()`` owns the metrics pipeline.

Recording into an OpenTelemetry SDK histogram costs ~10 µs per measurement in Python
(the attributes are cleaned, copied, recursively hashed and sorted every time), and
each LLM call makes three: a third of the SDK's whole per-call budget. ``Meter`` here
is a minimal stand-in with the same ``create_histogram`` call: a measurement is a
tuple key, a dict lookup, a bisect and a few additions under a lock. ``Exporter``
sends its histograms as ordinary OTLP histogram metrics (cumulative, or delta if the
exporter prefers it) every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60 s) and at
shutdown, through the same OTLP/HTTP metric exporter class as everything else.

When the app brings its own ``MeterProvider``, the instrumentation records into it
through the ordinary OpenTelemetry API instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("gensight.sdk")

#: Distinct attribute sets per histogram before further ones share one overflow point
#: (the OpenTelemetry SDK's default cardinality limit).
CARDINALITY_LIMIT = 2000
_OVERFLOW = (("otel.metric.overflow", True),)


class _Point:
    __slots__ = ("attributes", "counts", "count", "sum", "min", "max")

    def __init__(self, attributes: dict[str, Any], buckets: int) -> None:
        self.attributes = attributes
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")


class Histogram:
    """One explicit-bucket histogram: ``record(value, attributes)``."""

    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(float(b) for b in bounds)
        self._points: dict[tuple[tuple[str, Any], ...], _Point] = {}
        self._lock = threading.Lock()

    def record(self, value: float, attributes: dict[str, Any] | None = None) -> None:
        """Add one measurement (attribute values must be hashable: str, int, float, bool)."""
        key = tuple(attributes.items()) if attributes else ()
        index = bisect_left(self.bounds, value)
        with self._lock:
            point = self._points.get(key)
            if point is None:
                if len(self._points) >= CARDINALITY_LIMIT:
                    key = _OVERFLOW
                    point = self._points.get(key)
                if point is None:
                    point = _Point(dict(key), len(self.bounds) + 1)
                    self._points[key] = point
            point.counts[index] += 1
            point.count += 1
            point.sum += value
            if value < point.min:
                point.min = value
            if value > point.max:
                point.max = value

    def take(self, reset: bool) -> list[_Point]:
        """The points so far (copies); ``reset`` starts the next interval empty."""
        with self._lock:
            points = list(self._points.values())
            if reset:
                self._points = {}
                return points
            copies = []
            for p in points:
                c = _Point(p.attributes, 0)
                c.counts, c.count, c.sum, c.min, c.max = (
                    list(p.counts),
                    p.count,
                    p.sum,
                    p.min,
                    p.max,
                )
                copies.append(c)
            return copies


class Meter:
    """Just enough of an OpenTelemetry ``Meter`` for ``Instruments``: histograms."""

    def __init__(self) -> None:
        self.histograms: list[Histogram] = []

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] = (),
    ) -> Histogram:
        h = Histogram(name, unit, description, explicit_bucket_boundaries_advisory)
        self.histograms.append(h)
        return h


class Exporter:
    """Exports a ``Meter``'s histograms periodically through an OTLP metric exporter."""

    def __init__(
        self,
        meter: Meter,
        exporter: Any,
        resource: Any,
        scope: tuple[str, str],
        interval: float | None = None,
    ) -> None:
        from opentelemetry.sdk.metrics import Histogram as SdkHistogram
        from opentelemetry.sdk.metrics.export import AggregationTemporality

        self.meter = meter
        self.exporter = exporter
        self.resource = resource
        self.scope = scope
        if interval is None:
            try:
                interval = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000
            except ValueError:
                interval = 60.0
        self.interval = max(interval, 0.1)
        preferred = getattr(exporter, "_preferred_temporality", {}) or {}
        self.delta = preferred.get(SdkHistogram) == AggregationTemporality.DELTA
        self._start_ns = time.time_ns()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="gensight-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.export()

    def export(self) -> bool:
        """Send the histograms now (nothing if no call was recorded)."""
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            HistogramDataPoint,
            Metric,
            MetricExportResult,
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )
        from opentelemetry.sdk.metrics.export import Histogram as HistogramData
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        with self._lock:
            now = time.time_ns()
            start, temporality = self._start_ns, AggregationTemporality.CUMULATIVE
            if self.delta:
                self._start_ns, temporality = now, AggregationTemporality.DELTA
            metrics = []
            for h in self.meter.histograms:
                points = h.take(reset=self.delta)
                if not points:
                    continue
                data = HistogramData(
                    data_points=[
                        HistogramDataPoint(
                            attributes=p.attributes,
                            start_time_unix_nano=start,
                            time_unix_nano=now,
                            count=p.count,
                            sum=p.sum,
                            bucket_counts=p.counts,
                            explicit_bounds=h.bounds,
                            min=p.min,
                            max=p.max,
                        )
                        for p in points
                    ],
                    aggregation_temporality=temporality,
                )
                metrics.append(Metric(h.name, h.description, h.unit, data))
            if not metrics:
                return True
            scope = InstrumentationScope(*self.scope)
            batch = MetricsData(
                resource_metrics=[
                    ResourceMetrics(
                        resource=self.resource,
                        scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url="")],
                        schema_url=self.resource.schema_url,
                    )
                ]
            )
            try:
                return self.exporter.export(batch) == MetricExportResult.SUCCESS
            except Exception:
                log.debug("gensight: histogram export failed", exc_info=True)
                return False

    def shutdown(self) -> None:
        """Stop the timer and send what is left."""
        self._stop.set()
        self.export()
        try:
            self.exporter.shutdown()
        except Exception:
            log.debug("gensight: metric exporter shutdown failed", exc_info=True)

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        return self.export()
