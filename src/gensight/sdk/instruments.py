"""The GenAI client metric instruments, with the semantic conventions' bucket boundaries.

Boundaries are given as the instruments' advice, so they apply on a ``MeterProvider``
the app configured itself as well as on the one ``gensight.init()`` makes.
"""

from __future__ import annotations

from opentelemetry.metrics import Histogram, Meter

from gensight.sdk import attributes as a

#: Seconds: ``gen_ai.client.operation.duration`` and ``…time_to_first_chunk``.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
#: Tokens: ``gen_ai.client.token.usage``.
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip


class Instruments:
    """The histograms one instrumentation records into."""

    __slots__ = ("operation_duration", "token_usage", "time_to_first_chunk")

    def __init__(self, meter: Meter) -> None:
        self.operation_duration: Histogram = meter.create_histogram(
            name=a.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage: Histogram = meter.create_histogram(
            name=a.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.time_to_first_chunk: Histogram = meter.create_histogram(
            name=a.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk, measured from when the client "
            "issues the generation request to when the first chunk is received in the "
            "response stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
