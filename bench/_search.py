"""The search index's costs for ``bench/query.py``: per-batch maintenance by the writer
and a full rebuild (time, documents/s, bytes on disk)."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def batch_cost(world: Any, batches: int, batch: int) -> dict[str, Any]:
    """Index ``batches`` batches of the benchmark's calls as the writer does after each
    store commit, with the writer's commit policy (``COMMIT_EVERY``; a search commits
    what is pending) and with a commit after every batch (the previous policy)."""
    from gensight.store import search

    end_us = int(time.time() * 1_000_000)
    starts, per_trace = world.traces(batches * batch, end_us, days=1)
    made, pos = [], 0
    used = max(1, int(batch / 1.55))
    while pos < len(starts) and len(made) < batches:
        calls, _ = world.batch(starts[pos : pos + used], per_trace[pos : pos + used])
        made.append(calls)
        pos += used
    out: dict[str, Any] = {"batches": len(made), "calls/batch": len(made[0]) if made else 0}
    for name, every_batch in (("policy", False), ("commit each batch", True)):
        tmp = Path(tempfile.mkdtemp(prefix="gensight-index-cost-"))
        try:
            index = search.SearchIndex(str(tmp / "i"))
            times = []
            for calls in made:
                t = time.perf_counter()
                index.add(calls, [])
                if every_batch:
                    with index._lock:
                        index._commit()
                times.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            index.searcher()  # what a search pays for pending documents
            first_search_ms = (time.perf_counter() - t) * 1000
            index.close()
            n = sum(len(c) for c in made)
            out[name] = {
                "ms/batch p50": statistics.median(times),
                "ms/batch max": max(times),
                "calls/s": n / (sum(times) / 1000),
                "first search ms": first_search_ms,
            }
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def rebuild(path: str) -> dict[str, Any]:
    """``gensight rebuild search``'s work on a DuckDB data set, timed."""
    from gensight.store.duckdb import DuckDBStore

    st = DuckDBStore(path)
    try:
        t = time.perf_counter()
        st.rebuild_search()
        secs = time.perf_counter() - t
        assert st.search is not None
        docs = st.search.index.searcher().num_docs
    finally:
        st.close()
    size = sum(f.stat().st_size for f in Path(path + ".search").iterdir() if f.is_file())
    return {"search_build_s": secs, "search_docs": docs, "docs/s": docs / secs,
            "search_bytes": size}  # fmt: skip
