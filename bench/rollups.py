"""Rollups benchmark: the overview over raw rows vs hourly rollups, in one process.

On a DuckDB file that ``bench/query.py`` generated (``--data``/``--calls`` as there), on
a scratch copy: times ``gensight rebuild rollups``' work (``rebuild_rollups``), the
rollup tables' rows, then each overview query (24h, 30d, 30d by model/app/user) from
raw rows and from rollups (forced, whatever they cost) alternately, p50/p95 of
``--reps``, which the overview itself picks (``auto``: ``rollups.pays``), and the largest
relative difference of any percentile between the two answers (the rollups promise ≤ 1%).

    .venv/bin/python bench/rollups.py --calls 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, print_table  # noqa: E402


def _diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest relative difference of the percentiles of two overview answers."""
    worst = 0.0
    rows = [(a["totals"], b["totals"])]
    rows += list(zip(a["groups"], b["groups"], strict=True))
    rows += list(zip(a["series"], b["series"], strict=True))
    for x, y in rows:
        for k in (
            "calls",
            "errors",
            "input_tokens",
            "output_tokens",
            "unpriced_calls",
            "no_usage_calls",
        ):
            if x[k] != y[k]:
                raise AssertionError(f"{k}: {x[k]} != {y[k]}")
        for m in ("latency_ms", "ttft_ms"):
            for level, v in y[m].items():
                if v and x[m][level] is not None:
                    worst = max(worst, abs(x[m][level] - v) / abs(v))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "gensight-qbench")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default)")
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()

    from gensight.query import answers
    from gensight.query.analysis import choose_interval
    from gensight.store.base import CallFilters
    from gensight.store.duckdb import DuckDBStore

    src = args.data / f"duckdb-{args.calls}" / "gensight.duckdb"
    meta = json.loads((src.parent / "meta.json").read_text())
    scratch = Path(tempfile.mkdtemp(prefix="gensight-rollbench-"))
    path = scratch / "gensight.duckdb"
    shutil.copy2(src, path)
    try:
        from gensight.store import rollups

        share = rollups.MAX_ROW_SHARE
        t = time.perf_counter()
        store = DuckDBStore(path)  # builds the rollups when the file has none
        open_s = time.perf_counter() - t
        if args.threads:
            store._con.execute(f"SET threads = {int(args.threads)}")
        t = time.perf_counter()
        store.rebuild_rollups()
        rebuild_s = time.perf_counter() - t
        sizes = {
            name: store._con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            for name in ("calls", *rollups.TABLES)
        }
        print(f"open (incl. first build) {open_s:.1f} s, rebuild {rebuild_s:.1f} s, rows {sizes}")
        end = datetime.fromisoformat(meta["end"])
        plan = [
            ("overview 24h", timedelta(hours=24), None),
            ("overview 7d", timedelta(days=7), None),
            ("overview 30d", timedelta(days=30), None),
            ("overview 30d by model", timedelta(days=30), "model"),
            ("overview 30d by app", timedelta(days=30), "app"),
            ("overview 30d by provider", timedelta(days=30), "provider"),
            ("overview 30d by user", timedelta(days=30), "user"),
        ]
        rows = []
        raw_reader = store.rollups_for
        for name, span, group_by in plan:
            f = CallFilters(since=end - span, until=end)
            interval = choose_interval(f.since, f.until)
            times: dict[str, list[float]] = {"raw": [], "rollups": []}
            answers_by: dict[str, Any] = {}
            load = load_average()
            for _ in range(args.reps + 1):  # the first of each is a warm-up
                for mode in ("raw", "rollups"):
                    store.rollups_for = raw_reader if mode == "rollups" else lambda *a: None
                    rollups.MAX_ROW_SHARE = float("inf") if mode == "rollups" else share
                    t = time.perf_counter()
                    answers_by[mode] = answers.overview(store, f, interval, group_by)
                    times[mode].append((time.perf_counter() - t) * 1000)
            store.rollups_for = raw_reader
            rollups.MAX_ROW_SHARE = share
            used = answers_by["rollups"]["rows_from"]
            auto = answers.overview(store, f, interval, group_by)["rows_from"]
            p50 = {m: statistics.median(v[1:]) for m, v in times.items()}
            rows.append(
                {
                    "query": name,
                    "raw_p50_ms": p50["raw"],
                    "raw_max_ms": max(times["raw"][1:]),
                    "rollup_p50_ms": p50["rollups"],
                    "rollup_max_ms": max(times["rollups"][1:]),
                    "speedup": p50["raw"] / p50["rollups"],
                    "rows_from": used,
                    "auto": auto,
                    "max_pct_diff": 100 * _diff(answers_by["rollups"], answers_by["raw"]),
                    "load": load,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        store.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(
        rows,
        [
            ("query", "query", 0),
            ("raw_p50_ms", "raw p50 ms", 1),
            ("rollup_p50_ms", "rollup p50 ms", 1),
            ("speedup", "×", 1),
            ("rows_from", "rows_from", 0),
            ("auto", "auto", 0),
            ("max_pct_diff", "max pct diff %", 3),
            ("load", "load", 2),
        ],
    )
    out = {
        "calls": args.calls,
        "open_s": open_s,
        "rebuild_s": rebuild_s,
        "rows": sizes,
        "queries": rows,
        "load_after": load_average(),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
