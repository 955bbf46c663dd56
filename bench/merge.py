"""What counting each call once costs the writer: the merge step next to the write.

Every batch the writer stores first goes through ``CallMerger.resolve``, which asks the
store for the calls the batch may repeat (same id, same response or request id, failed
calls close in time, calls inside the batch's spans) and folds reports of one call into
one record. This measures, per batch of ``--batch`` calls as the store grows to
``--calls``, the time of that lookup + merge next to the time of ``store.write`` itself
(Arrow conversion + insert), on DuckDB or chDB, for fresh batches and for resent ones
(an exporter's retry: every call already stored). The ratio merge/write is what to read.

Run by hand::

    .venv/bin/python bench/merge.py --calls 200000 --batch 5000 --store duckdb
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gensight.model.records import CallRecord, SpanRecord
from gensight.pipeline.merge import CallMerger

MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("openai", "o3")]


def batch(rng: random.Random, start: datetime, n: int, seq: int) -> list[CallRecord]:
    out = []
    for i in range(n):
        provider, model = rng.choice(MODELS)
        failed = rng.random() < 0.03
        sid = f"{seq:08x}{i:08x}"
        out.append(
            CallRecord(
                id=sid, trace_id=f"{rng.getrandbits(128):032x}", span_id=sid,
                ts=start + timedelta(milliseconds=i * 7), duration_ms=rng.uniform(200, 4000),
                source="otlp", producer=rng.choice(["openai-v2", "traceloop", "anthropic-sdk"]),
                provider=provider, request_model=model, operation="chat",
                status="error" if failed else "ok",
                response_id=None if failed else f"resp_{seq}_{i}",
                upstream_request_id=f"req_{seq}_{i}" if rng.random() < 0.5 else None,
                input_tokens=None if failed else rng.randint(10, 4000),
                output_tokens=None if failed else rng.randint(1, 800),
            )
        )  # fmt: skip
    return out


def open_store(kind: str, where: Path):  # noqa: ANN201
    if kind == "duckdb":
        from gensight.store.duckdb import DuckDBStore

        return DuckDBStore(where / "merge.duckdb")
    from gensight.store.clickhouse import ClickHouseStore

    return ClickHouseStore.from_url(f"chdb://{where / 'chdb'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=5_000)
    p.add_argument("--store", choices=["duckdb", "chdb"], default="duckdb")
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    rng = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(a.store, Path(tmp))
        merger = CallMerger()
        start = datetime.now(UTC) - timedelta(days=1)
        merge_s, write_s, resend_s, batches = [], [], [], []
        for seq in range(a.calls // a.batch):
            calls = batch(rng, start + timedelta(seconds=seq * a.batch * 0.007), a.batch, seq)
            spans = [
                SpanRecord(trace_id=c.trace_id, span_id=c.span_id, name="chat", ts=c.ts,
                           duration_ms=c.duration_ms, call_id=c.id)
                for c in calls
            ]  # fmt: skip
            t0 = time.perf_counter()
            out, out_spans, _ = merger.resolve(calls, spans, store.stored_calls)
            t1 = time.perf_counter()
            store.write(out, out_spans, [])
            t2 = time.perf_counter()
            merge_s.append(t1 - t0)
            write_s.append(t2 - t1)
            batches.append(calls)
        for calls in rng.sample(batches, min(5, len(batches))):  # resent batches
            t0 = time.perf_counter()
            out, _, _ = merger.resolve(calls, [], store.stored_calls)
            resend_s.append(time.perf_counter() - t0)
            assert not out, "a resent batch must change nothing"
        store.close()
    med = statistics.median
    load = os.getloadavg()
    print(f"store={a.store} calls={a.calls} batch={a.batch} load={load[0]:.2f} {load[1]:.2f}")
    print(f"  merge (lookup+fold) per batch: p50 {med(merge_s) * 1e3:8.1f} ms")
    print(f"  store.write per batch:         p50 {med(write_s) * 1e3:8.1f} ms")
    print(f"  merge / write:                 {med(merge_s) / med(write_s):8.2f}")
    print(f"  last 5 batches merge p50:      {med(merge_s[-5:]) * 1e3:8.1f} ms")
    print(f"  resent batch (all stored):     p50 {med(resend_s) * 1e3:8.1f} ms, nothing written")


if __name__ == "__main__":
    main()
