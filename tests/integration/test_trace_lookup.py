"""A trace's calls are found by its spans' time: from the first start to the last end.

A gateway's call inside a long root span has no span row of its own (the client's root
span is the only one stored), so a lookup bounded by the spans' *starts* missed calls
late in a long trace; calls with their own spans, and clock skew of a few minutes
between the producers, are found too; a call of another trace in the same time is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gensight.model.records import CallRecord, SpanRecord
from gensight.query import answers
from gensight.store.duckdb import DuckDBStore
from tests.support.stores import fresh_chdb_store

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TRACE = "a1" * 16


def _call(i: int, ts: datetime, trace: str = TRACE, span: str | None = None) -> CallRecord:
    return CallRecord(
        id=f"call-{i}",
        trace_id=trace,
        span_id=span or f"{i + 1:016x}",
        ts=ts,
        duration_ms=800.0,
        source="gateway",
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        input_tokens=100,
        output_tokens=20,
        cost_usd=0.0001,
        cost_source="computed",
        status="ok",
    )


@pytest.fixture(params=["duckdb", "chdb"])
def store(request, tmp_path: Path, chdb_path: Path):
    s = (
        DuckDBStore(tmp_path / "t.duckdb")
        if request.param == "duckdb"
        else fresh_chdb_store(chdb_path)
    )
    yield s
    s.close()


def test_calls_late_in_a_long_root_span_belong_to_its_trace(store) -> None:
    root = SpanRecord(
        trace_id=TRACE, span_id="f" * 16, name="nightly batch", ts=T0,
        duration_ms=3 * 3600 * 1000.0, kind="server",
    )  # fmt: skip
    own = SpanRecord(
        trace_id=TRACE, span_id="e" * 16, name="chat gpt-4o-mini", ts=T0 + timedelta(minutes=1),
        duration_ms=800.0, parent_span_id=root.span_id, kind="client", call_id="call-1",
    )  # fmt: skip
    calls = [
        _call(1, T0 + timedelta(minutes=1), span=own.span_id),  # with its own span
        _call(2, T0 + timedelta(hours=2, minutes=30)),  # late, no span row: the gateway's
        _call(3, T0 - timedelta(minutes=2)),  # its producer's clock runs behind
        _call(4, T0 + timedelta(hours=1), trace="b2" * 16),  # another trace, same time
    ]
    store.write(calls, [root, own], [])
    got = answers.trace(store, TRACE)
    assert got is not None
    assert [c["id"] for c in got["calls"]] == ["call-3", "call-1", "call-2"]
    assert got["totals"]["calls"] == 3
    assert got["totals"]["cost_usd"] == pytest.approx(0.0003)


def _span(i: int, ts: datetime, trace: str = TRACE, ms: float = 500.0) -> SpanRecord:
    return SpanRecord(trace_id=trace, span_id=f"{i:016x}", name=f"step {i}", ts=ts,
                      duration_ms=ms, kind="internal")  # fmt: skip


def _ids(got: dict | None) -> tuple[list[str], list[str]]:
    assert got is not None
    return [s["span_id"] for s in got["spans"]], [c["id"] for c in got["calls"]]


def test_the_search_index_bounds_a_trace_by_everything_stored_of_it(tmp_path: Path) -> None:
    """The DuckDB store reads a trace within the window its index keeps: a trace written
    over several batches (a late span that started first, a replayed batch, a call
    hours beyond its spans, which the spans' time alone misses) is read whole, after a
    reopen and a rebuild too."""
    path = tmp_path / "t.duckdb"
    store = DuckDBStore(path)
    spans = [_span(1, T0), _span(2, T0 + timedelta(seconds=5))]
    store.write([_call(1, T0 + timedelta(seconds=1))], spans, [])
    store.write([], [_span(3, T0 - timedelta(hours=1), ms=4000.0)], [])  # late, started first
    store.write([_call(2, T0 + timedelta(hours=6))], [], [])  # a call with no span, later
    store.write([_call(1, T0 + timedelta(seconds=1))], spans, [])  # a replay
    store.write([_call(9, T0, trace="b2" * 16)], [_span(9, T0, trace="b2" * 16)], [])
    want = ([f"{3:016x}", f"{1:016x}", f"{2:016x}"], ["call-1", "call-2"])
    window = store.trace_window(TRACE)
    assert window == (T0 - timedelta(hours=1), T0 + timedelta(hours=6, milliseconds=800))
    assert _ids(store.get_trace(TRACE)) == want
    assert store.trace_window("c3" * 16) is None
    store.close()

    store = DuckDBStore(path)
    assert store.trace_window(TRACE) == window
    assert _ids(store.get_trace(TRACE)) == want
    store.rebuild_search()
    assert store.trace_window(TRACE) == window
    assert _ids(answers.trace(store, TRACE)) == want
    store.close()


def test_retention_keeps_the_window_of_a_trace_that_outlives_the_cut(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    store = DuckDBStore(tmp_path / "t.duckdb", retention=timedelta(days=1))
    old, new = now - timedelta(days=2), now - timedelta(hours=1)
    store.write([_call(1, old, trace="b2" * 16)], [_span(1, old, trace="b2" * 16)], [])
    store.write([], [_span(2, now - timedelta(days=1, hours=1), ms=3 * 3600e3)], [])
    store.write([_call(3, new)], [], [])
    store.apply_retention()
    assert store.trace_window("b2" * 16) is None
    assert store.get_trace("b2" * 16) is None
    # the span that started before the cut is deleted; its trace's window still spans it
    assert _ids(store.get_trace(TRACE)) == ([], ["call-3"])
    store.close()
