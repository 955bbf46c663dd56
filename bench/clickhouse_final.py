"""FINAL or argMax: how ClickHouse (chDB) reads a ReplacingMergeTree without double counting.

    python bench/clickhouse_final.py [--calls 300000] [--repeat 0.05] [--runs 5]

Writes ``--calls`` calls in batches of 20,000 (as the pipeline's writer does), then
writes ``--repeat`` of them again (a resend: the same keys, later versions), and times
the overview totals and the first call-log page three ways: plain (counts repeats
twice), ``FROM calls FINAL`` (what the store uses), and a ``GROUP BY id`` of ``argMax``
per column. Prints the median of ``--runs`` runs and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gensight.model.records import CallRecord
from gensight.store import arrow
from gensight.store.clickhouse import ClickHouseStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_COLS = ("ts", "app", "status", "input_tokens", "output_tokens", "cost_usd", "duration_ms",
         "ttft_ms")  # fmt: skip
_MEASURES = (
    "count(*) AS calls, countIf(c.status = 'error') AS errors, sum(c.input_tokens) AS it,"
    " sum(c.output_tokens) AS ot, sum(c.cost_usd) AS cost,"
    " quantilesExactInclusive(0.5, 0.95, 0.99)(c.duration_ms) AS lat,"
    " quantilesExactInclusive(0.5, 0.95)(c.ttft_ms) AS ttft"
)
_WHERE = "c.ts >= toDateTime64('2026-01-01 00:00:00', 6, 'UTC') AND c.app = 'shop'"


def _calls(n: int) -> list[CallRecord]:
    return [
        CallRecord(id=f"{i:016x}", trace_id=f"{i:032x}", span_id=f"{i:016x}",
                   ts=T0 + timedelta(seconds=i * 8.64), duration_ms=100.0 + i % 900,
                   source="otlp", app=("shop", "search", "chat")[i % 3], provider="openai",
                   operation="chat", request_model=("gpt-4o-mini", "gpt-4o")[i % 2],
                   input_tokens=100 + i % 50, output_tokens=10 + i % 20,
                   cost_usd=0.0001 * (i % 7), cost_source="computed",
                   ttft_ms=float(i % 300) if i % 4 == 0 else None,
                   status="error" if i % 20 == 0 else "ok")
        for i in range(n)
    ]  # fmt: skip


def _time(store: ClickHouseStore, sql: str, runs: int) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = store.client.query(sql).result_rows
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, result


def main() -> None:
    """Write the calls, time the three readings, print a table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300_000)
    ap.add_argument("--repeat", type=float, default=0.05)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    store = ClickHouseStore.from_url(f"chdb://{tempfile.mkdtemp()}/ch")
    calls = _calls(args.calls)
    for i in range(0, len(calls), 20_000):
        store.client.insert_arrow("calls", arrow.calls_table(calls[i : i + 20_000]))
    step = max(1, round(1 / args.repeat)) if args.repeat else 0
    repeats = calls[::step] if step else []
    for i in range(0, len(repeats), 20_000):
        store.client.insert_arrow("calls", arrow.calls_table(repeats[i : i + 20_000]))
    argmax = ", ".join(f"argMax({c}, _version) AS {c}" for c in _COLS)
    grouped = f"(SELECT id, {argmax} FROM calls GROUP BY id)"
    page_cols = "c.id, c.ts, c.app, c.status, c.duration_ms"
    readings = {
        "plain": ("calls AS c", "calls AS c"),
        "FINAL": ("calls AS c FINAL", "calls AS c FINAL"),
        "argMax": (f"{grouped} AS c", f"{grouped} AS c"),
    }
    # a key's rows all share one day (the partition), so FINAL need not merge across days
    per_day = " SETTINGS do_not_merge_across_partitions_select_final = 1"
    print(f"{len(calls)} calls, {len(repeats)} written twice; median of {args.runs} runs")
    print(f"{'reading':9} {'totals ms':>10} {'page ms':>9}  calls counted")
    readings["FINAL/day"] = readings["FINAL"]
    for name, (totals_from, page_from) in readings.items():
        tail = per_day if name == "FINAL/day" else ""
        t_ms, rows = _time(
            store, f"SELECT {_MEASURES} FROM {totals_from} WHERE {_WHERE}{tail}", args.runs
        )
        p_ms, _ = _time(
            store,
            f"SELECT {page_cols} FROM {page_from} WHERE {_WHERE}"
            f" ORDER BY c.ts DESC, c.id DESC LIMIT 51{tail}",
            args.runs,
        )
        print(f"{name:9} {t_ms:10.1f} {p_ms:9.1f}  {rows[0][0]}")  # type: ignore[index]
    load = Path("/proc/loadavg").read_text().strip()
    print("loadavg:", load, "| cpus:", os.cpu_count())
    store.close()


if __name__ == "__main__":
    main()
