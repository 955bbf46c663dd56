"""No loss: the write-ahead journal across store outages and bad records."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from gensight.export.files import call_from_dict
from gensight.model.records import CallRecord
from gensight.pipeline.journal import Journal, JournalFull
from gensight.pipeline.writer import Pipeline


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
    assert p.stats()["set_aside"] == 1
    assert Journal(tmp_path, max_bytes=1).pending() == []
    lines = (tmp_path / "set-aside").glob("calls-*.jsonl")
    kept = [orjson.loads(line) for f in lines for line in f.read_bytes().splitlines()]
    assert [k["id"] for k in kept] == ["c13"]
    assert kept[0]["_set_aside"]["reason"] == "ValueError: cannot convert"
    assert call_from_dict(kept[0]).id == "c13"  # importable again as it is


class BuggyStore:
    """A store whose write raises AttributeError for one record (a bug, not an outage),
    as an upgrade that meets a record it does not expect would; writes the rest."""

    def __init__(self, poison: str = "poison") -> None:
        self.poison = poison
        self.ids: list[str] = []
        self.attempts = 0

    def write(self, calls, spans, events) -> None:
        self.attempts += 1
        if any(c.id == self.poison for c in calls):
            raise AttributeError("'NoneType' object has no attribute 'isoformat'")
        self.ids += [c.id for c in calls]


def _wait(cond, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_attribute_error_batch_is_set_aside_after_n_tries_and_new_calls_go_on(tmp_path: Path):
    store = BuggyStore()
    p = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000), poison_tries=3)
    p.start()
    poison = _call(0)
    poison.id = "poison"
    assert p.submit([poison, _call(1), _call(2)])
    assert _wait(lambda: p.stats()["set_aside"] == 1)
    for i in range(3, 10):  # calls arriving after the poison batch are written too
        assert p.submit([_call(i)])
    assert p.flush(timeout=10)
    p.stop()
    assert sorted(store.ids) == sorted(f"c{i}" for i in range(1, 10))
    stats = p.stats()
    assert stats["set_aside"] == 1 and stats["dropped"] == 0
    assert "AttributeError" in stats["last_error"]
    # three tries of the whole batch, then the halves: never retried forever
    assert 3 <= store.attempts <= 3 + 6
    kept = [orjson.loads(x) for f in (tmp_path / "set-aside").glob("calls-*.jsonl")
            for x in f.read_bytes().splitlines()]  # fmt: skip
    assert [k["id"] for k in kept] == ["poison"]
    assert Journal(tmp_path, max_bytes=1).pending() == []  # committed: not replayed again


class ShakyStore(BuggyStore):
    """Raises a non-outage error on the first ``fails`` writes, then works."""

    def __init__(self, fails: int) -> None:
        super().__init__(poison="-")
        self.fails = fails

    def write(self, calls, spans, events) -> None:
        if self.fails > 0:
            self.fails -= 1
            raise RuntimeError("transient")
        super().write(calls, spans, events)


def test_a_failure_that_passes_within_n_tries_sets_nothing_aside(tmp_path: Path):
    store = ShakyStore(fails=2)
    p = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000), poison_tries=3)
    p.start()
    p.submit([_call(1), _call(2)])
    assert p.flush(timeout=10)
    p.stop()
    assert store.ids == ["c1", "c2"] and p.stats()["set_aside"] == 0


class OutageThenPoisonStore(BuggyStore):
    """Down (ConnectionError) for its first ``down`` writes, then refuses one record."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down

    def write(self, calls, spans, events) -> None:
        if self.down > 0:
            self.down -= 1
            raise ConnectionError("store is down")
        super().write(calls, spans, events)


def test_an_outage_is_never_mistaken_for_poison(tmp_path: Path):
    store = OutageThenPoisonStore(down=5)  # more failures than poison_tries: still retried
    p = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000), poison_tries=2)
    p.start()
    p.submit([_call(i) for i in range(4)])
    assert p.flush(timeout=30)
    p.stop()
    assert store.ids == [f"c{i}" for i in range(4)] and p.stats()["set_aside"] == 0


def test_without_a_journal_a_set_aside_record_is_logged_whole(caplog):
    store = BuggyStore()
    p = Pipeline(store, flush_interval=0.01, poison_tries=1)
    p.start()
    poison = _call(0)
    poison.id = "poison"
    p.submit([poison])
    assert p.flush(timeout=10)
    p.stop()
    assert p.stats()["set_aside"] == 1
    assert any('"id":"poison"' in r.getMessage() for r in caplog.records)


def test_replayed_segments_are_deleted_once_stored(tmp_path: Path) -> None:
    """Issue #17 item 6: payloads before redaction leave the disk as soon as replay has
    stored them, without waiting for the next batch."""
    import time as _time
    from datetime import UTC, datetime

    from gensight.model.records import CallRecord
    from gensight.pipeline.codec import RECORDS, encode_batch
    from gensight.pipeline.writer import Pipeline
    from gensight.store.duckdb import DuckDBStore

    call = CallRecord(id="r1", trace_id="a" * 32, span_id="b" * 16, ts=datetime.now(UTC),
                      duration_ms=1, source="otlp")  # fmt: skip
    j = Journal(tmp_path / "journal", 10**9)
    j.append(RECORDS, encode_batch([call], [], []))
    j.close()  # the previous run ended before storing it
    store = DuckDBStore(tmp_path / "s.duckdb")
    p = Pipeline(store, journal=Journal(tmp_path / "journal", 10**9), flush_interval=0.05)
    p.start()
    try:
        deadline = _time.monotonic() + 10
        while p.stats()["written"] < 1 and _time.monotonic() < deadline:
            _time.sleep(0.05)
        assert p.stats()["written"] == 1
        assert not list((tmp_path / "journal").glob("seg-*.log"))
    finally:
        p.stop()
        store.close()


class _StoreThatRecords:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def write(self, calls, spans, events) -> None:
        self.ids += [c.id for c in calls]


def test_a_batch_journaled_first_is_never_committed_over_by_a_later_one(tmp_path: Path):
    """Two receivers submit at once: A's batch gets the earlier journal seq, B's the later.
    If B's could reach the queue (and the store, and the commit mark) while A's had its seq
    but was not yet queued, the mark would pass A's seq with A unstored, and a crash then
    would lose A: the replay starts after the mark. A's journal entry and its place in the
    queue must be taken together."""
    store = _StoreThatRecords()
    j = Journal(tmp_path, max_bytes=10_000_000)
    p = Pipeline(store, flush_interval=0.01, journal=j)
    p.start()
    real_append = j.append
    seen: dict[str, int] = {}

    def append(kind: str, payload: bytes):
        entry = real_append(kind, payload)
        if not seen:  # A: between its seq and its queue place, B submits and is written
            seen["a"] = entry.seq
            b = threading.Thread(target=lambda: (p.submit([_call(2)]), p.flush(timeout=5)))
            b.start()
            b.join(1.0)
            seen["committed"] = j.committed
            seen["stored_a"] = "c1" in store.ids
        return entry

    j.append = append  # type: ignore[method-assign]
    assert p.submit([_call(1)])
    assert p.flush(timeout=10)
    p.stop()
    # at no time did the mark pass A's seq before A was stored
    assert seen["committed"] < seen["a"] or seen["stored_a"]
    assert sorted(store.ids) == ["c1", "c2"]
