"""What redaction (``gensight.enrich.redaction``) costs per record, on realistic records.

    python bench/redaction.py

Records: the calls and spans the real producers sent (tests/fixtures/otlp, with content)
as the OTLP mapper makes them, and gateway-style chat calls (system prompt, a few turns,
~2 KB of text). Each is measured as-is (the common case: nothing to mask), with a key
pasted into one message (masking happens), and with ``--redact pii``. Times are per
record, the median of several rounds, on one core.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.enrich.redaction import Redactor
from gensight.model.records import CallRecord
from gensight.receive.otlp.decode import traces_to_records

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "otlp"

PROSE = (
    "Our refund policy allows returns within 30 days of delivery. Items must be unused and "
    "in their original packaging. To start a return, open your order history, choose the "
    "item and follow the steps; the label is emailed to you. Refunds reach the original "
    "payment method within 5-10 business days after we receive the parcel. "
)


def otlp_records() -> tuple[list, list]:
    calls, spans = [], []
    for d in sorted(FIXTURES.glob("*-content")):
        for f in sorted(d.glob("traces-*.json")):
            req = json_format.ParseDict(
                json.loads(f.read_text()),
                trace_service_pb2.ExportTraceServiceRequest(),
                ignore_unknown_fields=True,
            )
            c, s, _, _ = traces_to_records(req)
            calls += c
            spans += s
    return calls, spans


def gateway_call(i: int, secret: str = "") -> CallRecord:
    return CallRecord(
        id=f"{i:016x}",
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        ts=datetime.now(UTC),
        duration_ms=812.0,
        source="gateway",
        operation="chat",
        request_model="gpt-4o-mini",
        error_message=None,
        system_instructions=[{"role": "system", "content": "You are a support assistant. " * 4}],
        input_messages=[
            {"role": "user", "content": "How do I return an item I bought last week?"},
            {"role": "assistant", "content": PROSE},
            {"role": "user", "content": "And what if it was a gift? " + secret},
        ],
        output_messages=[{"role": "assistant", "content": PROSE * 2, "finish_reason": "stop"}],
        attributes={
            "http.request.method": "POST",
            "url.path": "/v1/chat/completions",
            "gensight.upstream": "openai",
            "gen_ai.response.system_fingerprint": "fp_0123456789",
        },
    )


def per_record(records: list, redactor: Redactor, rounds: int = 7) -> float:
    """Median µs per record of ``redactor`` over copies of ``records``."""
    times = []
    for _ in range(rounds):
        batch = [copy.deepcopy(r) for r in records]
        calls = [r for r in batch if isinstance(r, CallRecord)]
        spans = [r for r in batch if not isinstance(r, CallRecord)]
        t = time.perf_counter()
        redactor.apply(calls, spans, ())
        times.append((time.perf_counter() - t) / len(batch) * 1e6)
    return statistics.median(times)


def main() -> None:
    calls, spans = otlp_records()
    n = 2000
    otlp_calls = (calls * (n // len(calls) + 1))[:n]
    otlp_spans = (spans * (n // len(spans) + 1))[:n]
    gw = [gateway_call(i) for i in range(n)]
    gw_secret = [gateway_call(i, "my key is sk-proj-Ab12Cd34Ef56Gh78Ij90KlMn") for i in range(n)]
    rows = [
        ("OTLP calls (fixtures, with content)", otlp_calls),
        ("OTLP spans (fixtures)", otlp_spans),
        ("gateway chat call, ~2 KB, clean", gw),
        ("gateway chat call, a key in a message", gw_secret),
    ]
    print(f"{'record':42} {'secrets µs':>11} {'+pii µs':>9}")
    for name, recs in rows:
        a = per_record(recs, Redactor())
        b = per_record(recs, Redactor(pii=True))
        print(f"{name:42} {a:11.2f} {b:9.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
