"""The journal survives damage and upgrades: checksums, resynchronisation, unknown
kinds, the schema changing under it, and journals of the previous release (f3c7c51)."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import shutil
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gensight.model.records import CallRecord
from gensight.pipeline import legacy
from gensight.pipeline.codec import RECORDS, decode_batch, encode_batch
from gensight.pipeline.journal import SEGMENT_MAGIC, Journal
from gensight.pipeline.writer import Pipeline
from gensight.receive.otlp.decode import TRACES, replay_traces

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "journal" / "f3c7c51"


class ListStore:
    """Keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list = []
        self.spans: list = []
        self.events: list = []

    def write(self, calls, spans, events) -> None:
        self.calls += calls
        self.spans += spans
        self.events += events


def _journal_of_five(d: Path) -> tuple[Journal, list]:
    j = Journal(d, max_bytes=10_000_000)
    entries = [j.append("records.json", f"payload-{i}".encode()) for i in range(5)]
    j.close()
    return j, entries


def _flip(path: Path, at: int, value: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[at] = value if value is not None else data[at] ^ 0xFF
    path.write_bytes(bytes(data))


# offsets inside an entry: magic 4, seq 8, kind length 2, payload length 4, crc 4, kind
_DAMAGE = {
    "bad length byte (longer)": lambda off: (off + 4 + 8 + 2 + 3, 0x7F),
    "bad length byte (huge)": lambda off: (off + 4 + 8 + 2, 0xFF),
    "bad kind length byte": lambda off: (off + 4 + 8 + 1, 0x03),
    "bad kind byte": lambda off: (off + 22, 0xFF),
    "flipped payload byte": lambda off: (off + 22 + len("records.json") + 3, None),
    "bad seq byte": lambda off: (off + 4 + 7, None),
    "bad magic byte": lambda off: (off, None),
}


@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_a_damaged_entry_is_skipped_with_a_log_line_and_later_ones_replayed(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
):
    _, entries = _journal_of_five(tmp_path)
    seg = entries[2].segment
    at, value = _DAMAGE[damage](entries[2].offset)
    _flip(seg, at, value)
    with caplog.at_level(logging.WARNING, "gensight.pipeline.journal"):
        again = Journal(tmp_path, max_bytes=10_000_000)
    pending = again.pending()
    assert [again.read(e) for e in pending] == [f"payload-{i}".encode() for i in (0, 1, 3, 4)]
    assert again.damaged == 1
    line = " ".join(r.getMessage() for r in caplog.records)
    assert str(seg) in line and f"offset {entries[2].offset}" in line
    assert f"resuming at offset {entries[3].offset}" in line


def test_a_truncated_tail_loses_only_the_cut_entry(tmp_path: Path, caplog):
    _, entries = _journal_of_five(tmp_path)
    seg = entries[4].segment
    with seg.open("r+b") as f:
        f.truncate(entries[4].offset + 10)  # a crash in the middle of the last write
    with caplog.at_level(logging.WARNING, "gensight.pipeline.journal"):
        again = Journal(tmp_path, max_bytes=10_000_000)
    assert [again.read(e) for e in again.pending()] == [f"payload-{i}".encode() for i in range(4)]
    assert f"{seg}: 10 unreadable bytes at offset {entries[4].offset}" in caplog.text
    nxt = again.append("records.json", b"after")  # appends go on, in a segment of their own
    assert nxt.seq == entries[3].seq + 1 and again.read(nxt) == b"after"


def test_damage_in_two_places_and_in_an_earlier_segment(tmp_path: Path):
    j = Journal(tmp_path, max_bytes=10_000_000, segment_bytes=120)  # about two per segment
    entries = [j.append("records.json", f"payload-{i}".encode()) for i in range(8)]
    j.close()
    assert len({e.segment for e in entries}) >= 3
    for victim in (entries[1], entries[5]):
        _flip(victim.segment, victim.offset + 30)
    again = Journal(tmp_path, max_bytes=10_000_000)
    got = [again.read(e) for e in again.pending()]
    assert got == [f"payload-{i}".encode() for i in (0, 2, 3, 4, 6, 7)]
    assert again.damaged == 2


def test_damage_found_at_replay_is_skipped_and_counted(tmp_path: Path, caplog):
    """A byte flipped after the journal was opened (read back at replay time)."""
    store = ListStore()
    j = Journal(tmp_path, max_bytes=10_000_000)
    p = Pipeline(store, flush_interval=0.01, journal=j)
    calls = [_call(i) for i in range(3)]
    for c in calls:
        j.append(RECORDS, encode_batch([c], [], []))
    j.close()
    j = Journal(tmp_path, max_bytes=10_000_000)
    second = j.pending()[1]
    _flip(second.segment, second.offset + 40)
    p = Pipeline(store, flush_interval=0.01, journal=j)
    p.start()
    assert p.flush(timeout=10)
    p.stop()
    assert [c.id for c in store.calls] == ["c0", "c2"]
    assert p.stats()["journal_damaged"] == 1
    assert f"{second.segment} at offset {second.offset} is damaged" in caplog.text


def test_an_unknown_kind_is_set_aside_never_a_crash(tmp_path: Path, caplog):
    j = Journal(tmp_path, max_bytes=10_000_000)
    j.append(RECORDS, encode_batch([_call(1)], [], []))
    future = j.append("otlp-profiles", b"\x0a\x02hi")  # a kind a later release may add
    j.append(RECORDS, encode_batch([_call(2)], [], []))
    j.close()
    store = ListStore()
    p = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000))
    p.start()
    assert p.flush(timeout=10)
    p.stop()
    assert [c.id for c in store.calls] == ["c1", "c2"]
    kept = tmp_path / "set-aside" / f"entry-{future.seq}-otlp-profiles.bin"
    assert kept.read_bytes() == b"\x0a\x02hi"
    assert str(kept) in caplog.text and p.stats()["set_aside_entries"] == 1
    assert Journal(tmp_path, max_bytes=1).pending() == []


def _call(i: int, cls: type = CallRecord, **extra) -> CallRecord:
    return cls(id=f"c{i}", trace_id=f"{i:032x}", span_id=f"{i:016x}", ts=datetime.now(UTC),
               duration_ms=1.0, source="gateway", input_tokens=10 + i, **extra)  # fmt: skip


# The record class of a release that did not have ``reported_cost_usd`` yet, and of one
# that added ``future_field``: the journal must replay across both changes.
_FIELDS = [(f.name, f.type, f) for f in dataclasses.fields(CallRecord)]
OlderCallRecord = dataclasses.make_dataclass(
    "CallRecord", [x for x in _FIELDS if x[0] != "reported_cost_usd"], slots=True
)
NewerCallRecord = dataclasses.make_dataclass(
    "CallRecord",
    [*_FIELDS, ("future_field", "str | None", dataclasses.field(default=None))],
    slots=True,
)


class DownStore(ListStore):
    def write(self, calls, spans, events) -> None:
        raise ConnectionError("down")


def _journal_with(tmp_path: Path, records: list) -> None:
    """Journal records through the real submit path with the store down, then stop."""
    j = Journal(tmp_path, max_bytes=10_000_000)
    p = Pipeline(DownStore(), journal=j)  # not started: entries stay in the journal
    for r in records:
        assert p.submit([r])
    j.close()


def _replay(tmp_path: Path) -> ListStore:
    store = ListStore()
    p = Pipeline(store, flush_interval=0.01, journal=Journal(tmp_path, 10_000_000))
    p.start()
    assert p.flush(timeout=10)
    p.stop()
    return store


def test_a_journal_written_before_a_field_was_added_replays_with_its_default(tmp_path: Path):
    old = _call(1, OlderCallRecord)
    assert not hasattr(old, "reported_cost_usd")
    _journal_with(tmp_path, [old])
    (back,) = _replay(tmp_path).calls
    assert isinstance(back, CallRecord) and back.reported_cost_usd is None
    assert (back.id, back.input_tokens, back.ts) == ("c1", 11, old.ts)


def test_a_journal_written_by_a_release_with_a_new_field_replays_keeping_it(tmp_path: Path):
    new = _call(1, NewerCallRecord, future_field="v42")
    new.attributes = {"http.route": "/openai/v1"}
    _journal_with(tmp_path, [new])
    (back,) = _replay(tmp_path).calls
    assert isinstance(back, CallRecord) and (back.id, back.input_tokens) == ("c1", 11)
    assert back.attributes == {"http.route": "/openai/v1", "future_field": "v42"}


def test_a_record_missing_a_required_field_is_set_aside_not_lost(tmp_path: Path):
    j = Journal(tmp_path, max_bytes=10_000_000)
    good = encode_batch([_call(1)], [], [])
    j.append(RECORDS, good.replace(b'"source":"gateway"', b'"sauce":"gateway"'))
    j.append(RECORDS, encode_batch([_call(2)], [], []))
    j.close()
    assert [c.id for c in _replay(tmp_path).calls] == ["c2"]
    (kept,) = (tmp_path / "set-aside").glob("calls-*.jsonl")
    assert b'"id":"c1"' in kept.read_bytes() and b"unreadable from the journal" in kept.read_bytes()


def test_the_record_format_is_json_with_a_version_never_pickle():
    payload = encode_batch([_call(1)], [], [])
    assert payload.startswith(b'{"v":1,') and b"gensight" not in payload
    assert decode_batch(payload).batch[0][0].id == "c1"


# -- journals of the previous release -----------------------------------------------------
def _old_journal(tmp_path: Path) -> Path:
    d = tmp_path / "journal"
    shutil.copytree(FIXTURE, d)
    assert not (d / "seg-0000000000000001.log").read_bytes().startswith(SEGMENT_MAGIC)
    return d


def _old_replay(d: Path) -> tuple[Pipeline, ListStore]:
    store = ListStore()
    p = Pipeline(store, flush_interval=0.01, journal=Journal(d, 10_000_000))
    p.register_decoder(TRACES, replay_traces)
    p.start()
    assert p.flush(timeout=10)
    p.stop()
    return p, store


def test_a_journal_of_the_previous_release_is_replayed_once_after_the_upgrade(tmp_path: Path):
    d = _old_journal(tmp_path)
    p, store = _old_replay(d)
    # old-gw-0 was committed by the old release: not again; its pickles come back by name
    gw = [c for c in store.calls if c.source == "gateway"]
    assert [c.id for c in gw] == ["old-gw-1", "old-gw-2", "old-gw-3"]
    assert [(c.input_tokens, c.output_tokens, c.duration_ms) for c in gw] == [
        (10, 1, 101.0), (20, 2, 102.0), (30, 3, 103.0)
    ]  # fmt: skip
    assert gw[0].ts == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert gw[0].input_messages == [{"role": "user", "parts": [{"type": "text", "content": "q1"}]}]
    assert gw[0].attributes == {"http.route": "/openai/v1"} and gw[0].tags == ["old"]
    assert [s.call_id for s in store.spans if s.name == "gateway"] == ["old-gw-1"]
    assert [e.message["content"] for e in store.events] == ["a1"]
    assert [c.request_model for c in store.calls if c.source == "otlp"] == ["gpt-4o"]
    assert p.stats()["set_aside"] == 0 and p.stats()["journal_damaged"] == 0
    assert list(d.glob("seg-*.log")) == []  # replayed once: nothing left to replay again
    assert _old_replay(d)[1].calls == []


def test_a_bad_kind_byte_in_an_old_journal_skips_that_entry_only(tmp_path: Path, caplog):
    d = _old_journal(tmp_path)
    seg = d / "seg-0000000000000001.log"
    data = seg.read_bytes()
    _, klen, plen = legacy.HEADER.unpack_from(data, 0)
    second = legacy.HEADER.size + klen + plen  # the first pending entry (old-gw-1..3)
    _flip(seg, second + legacy.HEADER.size, 0xFF)
    _, store = _old_replay(d)
    assert [c.source for c in store.calls] == ["otlp"]  # the entry after it still replays
    assert f"{seg}: entry 2 at offset {second} has an unreadable kind" in caplog.text


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_an_old_pickle_can_only_name_records_never_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "journal"
    d.mkdir()
    payload = pickle.dumps(([_Evil()], [], []), protocol=5)
    k = legacy.PICKLED.encode()
    (d / "seg-0000000000000001.log").write_bytes(
        struct.pack(">QHI", 1, len(k), len(payload)) + k + payload
    )
    p, store = _old_replay(d)
    assert store.calls == [] and not (tmp_path / "pwned").exists()
    assert p.stats()["set_aside_entries"] == 1  # kept for a human, not executed


def test_a_segment_cut_short_after_open_is_damage_at_replay_not_a_crash(tmp_path: Path):
    j = Journal(tmp_path, max_bytes=10_000_000)
    j.append(RECORDS, encode_batch([_call(1)], [], []))
    last = j.append(RECORDS, encode_batch([_call(2)], [], []))
    j.close()
    j = Journal(tmp_path, max_bytes=10_000_000)
    with last.segment.open("r+b") as f:
        f.truncate(last.offset + 5)  # mid-header: the read finds too few bytes
    store = ListStore()
    p = Pipeline(store, flush_interval=0.01, journal=j)
    p.start()
    assert p.flush(timeout=10)
    p.stop()
    assert [c.id for c in store.calls] == ["c1"] and p.stats()["journal_damaged"] == 1
