"""No loss: the write-ahead journal across store outages, SIGTERM and SIGKILL."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry import trace

from gensight.model.records import CallRecord
from gensight.pipeline.journal import Journal, JournalFull
from gensight.pipeline.writer import Pipeline
from tests.support.otlp_payloads import record_spans, traces_protobuf
from tests.support.server import Server


def _call(i: int) -> CallRecord:
    return CallRecord(id=f"c{i}", trace_id=f"{i:032x}", span_id=f"{i:016x}",
                      ts=datetime.now(UTC), duration_ms=1.0, source="gateway")  # fmt: skip


def test_journal_replays_what_was_not_committed(tmp_path: Path):
    j = Journal(tmp_path, max_bytes=10_000_000)
    entries = [j.append("records", f"payload-{i}".encode()) for i in range(5)]
    j.commit(entries[2].seq)
    j.close()
    again = Journal(tmp_path, max_bytes=10_000_000)
    pending = again.pending()
    assert [e.seq for e in pending] == [entries[3].seq, entries[4].seq]
    assert again.read(pending[0]) == b"payload-3"
    nxt = again.append("records", b"later")
    assert nxt.seq == entries[4].seq + 1


def test_torn_tail_is_dropped_and_appends_go_on(tmp_path: Path):
    j = Journal(tmp_path, max_bytes=10_000_000)
    j.append("records", b"whole")
    j.close()
    seg = next(tmp_path.glob("seg-*.log"))
    with seg.open("ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x09\x00")  # a crash mid-header
    again = Journal(tmp_path, max_bytes=10_000_000)
    assert [again.read(e) for e in again.pending()] == [b"whole"]
    e = again.append("records", b"next")
    assert again.read(e) == b"next"


def test_full_journal_refuses(tmp_path: Path):
    j = Journal(tmp_path, max_bytes=100)
    j.append("records", b"x" * 50)
    with pytest.raises(JournalFull):
        j.append("records", b"x" * 60)


class FlakyStore:
    """A store that is down until ``up`` is set; records what it got, in order."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.ids: list[str] = []

    def write(self, calls, spans, events) -> None:
        if not self.up.is_set():
            raise ConnectionError("store is down")
        self.ids += [c.id for c in calls]


def test_outage_longer_than_memory_loses_nothing_and_keeps_order(tmp_path: Path):
    store = FlakyStore()
    j = Journal(tmp_path, max_bytes=50_000_000)
    p = Pipeline(store, queue_size=100, flush_interval=0.01, journal=j)
    p.start()
    for i in range(1000):  # ten times what memory may hold
        assert p.submit([_call(i)])
    stats = p.stats()
    assert stats["depth"] <= 100 and stats["spilled_batches"] > 0  # memory stays bounded
    assert stats["dropped"] == 0 and stats["spill_bytes"] > 0
    store.up.set()
    assert p.flush(timeout=30)
    p.stop()
    assert store.ids == [f"c{i}" for i in range(1000)]
    assert Journal(tmp_path, max_bytes=1).pending() == []


def test_store_down_at_shutdown_keeps_batches_for_the_next_start(tmp_path: Path):
    store = FlakyStore()
    p = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000))
    p.start()
    for i in range(10):
        p.submit([_call(i)])
    p.stop(timeout=20)
    assert store.ids == []
    store.up.set()
    p2 = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000))
    p2.start()
    assert p2.flush(timeout=10)
    p2.stop()
    assert store.ids == [f"c{i}" for i in range(10)]


def _batch(n: int, service: str) -> bytes:
    def build(tracer: trace.Tracer) -> None:
        for i in range(n):
            with tracer.start_as_current_span(f"chat {i}") as s:
                s.set_attribute("gen_ai.operation.name", "chat")
                s.set_attribute("gen_ai.request.model", "gpt-4o-mini")

    return traces_protobuf(record_spans(build, service=service))


def test_sigkill_after_acknowledging_loses_nothing(tmp_path: Path):
    srv = Server(tmp_path / "d", "--flush-interval", "60")  # nothing reaches the store
    bodies = [_batch(500, "killed") for _ in range(8)]
    for body in bodies:
        r = srv.client.post(
            "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
        )
        assert r.status_code == 200
    srv.stop(signal.SIGKILL)  # no shutdown at all: the queue dies with the process
    again = Server(tmp_path / "d")
    try:
        deadline = time.monotonic() + 30
        stored = 0
        while time.monotonic() < deadline and stored < 4000:
            time.sleep(0.2)
            stored = again.client.get("/api/health").json()["store"]["calls"]
        assert stored == 4000  # every acknowledged call, once
        assert again.client.get("/api/health").json()["queue"]["replayed_batches"] == 8
    finally:
        again.stop()


class PickyStore:
    """A store that cannot take one particular record (as Arrow refuses a wrong type)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def write(self, calls, spans, events) -> None:
        if any(c.id == "c13" for c in calls):
            raise ValueError("cannot convert")
        self.ids += [c.id for c in calls]


def test_one_bad_record_is_set_aside_and_never_blocks_the_rest(tmp_path: Path):
    store = PickyStore()
    p = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000))
    p.start()
    for i in range(40):
        p.submit([_call(i)])
    assert p.flush(timeout=10)
    p.stop()
    assert sorted(store.ids, key=lambda s: int(s[1:])) == [f"c{i}" for i in range(40) if i != 13]
    assert p.stats()["rejected"] == 1
    assert Journal(tmp_path, max_bytes=1).pending() == []
