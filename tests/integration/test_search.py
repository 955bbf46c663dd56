"""The call log's q= from the tantivy index (DuckDB): words as a phrase, the last a
prefix, any case; messages of calls and of content events; newest first with the other
filters; pages; a rewritten call's old text gone; rebuilt by a command and at open."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gensight.model.records import CallRecord, ContentEvent
from gensight.store.base import CallFilters
from gensight.store.duckdb import DuckDBStore

#: CLI runs as tests/unit/test_settings.py runs them (typer reads the width at import)
_ENV = {"TERMINAL_WIDTH": "200"}

NOW = datetime.now(UTC).replace(microsecond=0)


def _calls(n: int = 60) -> list[CallRecord]:
    out = []
    for i in range(n):
        text = f"Where is my invoice #{i}? Read the Refund-Policy." if i % 3 == 0 else "hello"
        out.append(
            CallRecord(
                id=f"c{i:03d}",
                trace_id=f"{i:032x}",
                span_id=f"{i:016x}",
                ts=NOW - timedelta(minutes=i),
                duration_ms=10.0,
                source="gateway" if i % 2 else "otlp",
                app="shop" if i % 2 else "search",
                input_messages=[{"role": "user", "content": text}],
                output_messages=[{"role": "assistant", "content": f"answer {i}"}],
                system_instructions=[{"type": "text", "content": "You are terse."}]
                if i == 7
                else None,
                status="error" if i == 5 else "ok",
                error_message="upstream said: quota exhausted" if i == 5 else None,
            )
        )
    return out


@pytest.fixture
def store(tmp_path: Path):
    s = DuckDBStore(tmp_path / "s.duckdb")
    s.write(_calls(), [], [])
    assert s.search is not None
    yield s
    s.close()


def _ids(store: DuckDBStore, limit: int = 100, **kw) -> list[str]:
    rows, _ = store.list_calls(CallFilters(**kw), limit, None)
    return [r["id"] for r in rows]


def test_phrase_prefix_case_and_fields(store: DuckDBStore):
    invoices = [f"c{i:03d}" for i in range(0, 60, 3)]
    assert _ids(store, q="invoice") == invoices  # newest first
    assert _ids(store, q="INVOICES") == []  # the last word is a prefix, not a stem
    assert _ids(store, q="invo") == invoices
    assert _ids(store, q="refund pol") == invoices
    assert _ids(store, q="policy refund") == []  # a phrase: in order
    assert _ids(store, q="invoice #12") == ["c012"]
    assert _ids(store, q="quota exhausted") == ["c005"]  # error messages
    assert _ids(store, q="terse") == ["c007"]  # system instructions
    assert _ids(store, q="answer 41") == ["c041"]  # completions
    assert _ids(store, q="assistant") == []  # roles are labels, not content
    assert _ids(store, q="zqxjv") == []


def test_filters_pages_and_events(store: DuckDBStore):
    shop = [f"c{i:03d}" for i in range(0, 60, 3) if i % 2]
    assert _ids(store, q="invoice", app="shop") == shop
    since = NOW - timedelta(minutes=30, seconds=1)
    assert _ids(store, q="invoice", since=since) == [f"c{i:03d}" for i in range(0, 31, 3)]
    # pages of 4 with the cursor: every hit once, in order
    seen, cursor = [], None
    while True:
        rows, cursor = store.list_calls(CallFilters(q="invoice"), 4, cursor)
        seen += [r["id"] for r in rows]
        if cursor is None:
            break
    assert seen == [f"c{i:03d}" for i in range(0, 60, 3)]
    # messages that arrived as OTLP log events find their call
    event = ContentEvent(
        trace_id=f"{4:032x}", span_id=f"{4:016x}", ts=NOW - timedelta(minutes=4), seq=0,
        kind="input", message={"role": "user", "content": "a shipment to Reykjavik"},
    )  # fmt: skip
    store.write([], [], [event])
    store.write([], [], [event])  # a resend
    assert _ids(store, q="reykjavik") == ["c004"]
    assert _ids(store, q="reykjavik", app="shop") == []


def test_rewritten_call_replaces_its_text(store: DuckDBStore):
    old = _calls()[3]
    store.write(
        [dataclasses.replace(old, input_messages=[{"role": "user", "content": "x"}])], [], []
    )
    assert "c003" not in _ids(store, q="invoice")
    assert _ids(store, q="x") == ["c003"]  # and its new text found


def test_index_survives_reopen_and_is_rebuilt(tmp_path: Path):
    from typer.testing import CliRunner

    from gensight.cli.main import app

    path = tmp_path / "r.duckdb"
    s = DuckDBStore(path)
    s.write(_calls(), [], [])
    s.close()
    s = DuckDBStore(path)
    assert not s.search.created and len(_ids(s, q="invoice")) == 20
    s.close()
    import shutil

    shutil.rmtree(f"{path}.search")  # lost: opening builds it again (beside the store)
    s = DuckDBStore(path)
    assert s.search.created and len(_ids(s, q="refund")) == 20
    assert s.wait_search(30)
    s.close()
    # an index of another schema under this layout's name: opening builds it again
    import tantivy

    marker = next(p for p in Path(f"{path}.search").iterdir() if p.name.startswith("gensight-"))
    shutil.rmtree(f"{path}.search")
    Path(f"{path}.search").mkdir()
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("text")
    tantivy.Index(sb.build(), path=f"{path}.search").writer().commit()
    marker.touch()
    s = DuckDBStore(path)
    assert s.search.created and len(_ids(s, q="refund")) == 20
    assert s.wait_search(30)
    s.close()
    result = CliRunner().invoke(app, ["rebuild", "search", "--store", f"duckdb://{path}"], env=_ENV)
    assert result.exit_code == 0, result.output
    s = DuckDBStore(path)
    try:
        assert _ids(s, q="quota") == ["c005"]
    finally:
        s.close()


def test_totals_count_the_hits_with_the_filters(store: DuckDBStore, monkeypatch):
    from gensight.store import search_calls

    event = ContentEvent(
        trace_id=f"{4:032x}", span_id=f"{4:016x}", ts=NOW - timedelta(minutes=4), seq=0,
        kind="input", message={"role": "user", "content": "an invoice for Reykjavik"},
    )  # fmt: skip
    store.write([], [], [event])  # c004 (no invoice in its own text) now matches too
    since = NOW - timedelta(minutes=30, seconds=1)
    asked = [
        CallFilters(q="invoice"),
        CallFilters(q="invoice", app="shop"),
        CallFilters(q="invoice", since=since),
        CallFilters(q="reykjavik", app="search"),
        CallFilters(q="zqxjv"),
    ]
    from_index = [store.count_calls(f) for f in asked]
    assert from_index == [21, 10, 12, 1, 0]
    index, store.search = store.search, None  # the same counts by scanning the messages
    try:
        assert [store.count_calls(f) for f in asked] == from_index
    finally:
        store.search = index
    monkeypatch.setattr(search_calls, "MAX_EVENT_HITS", 0)  # too many hits: it scans
    assert store.count_calls(CallFilters(q="invoice")) == 21
    monkeypatch.setattr(search_calls, "MAX_EVENT_HITS", 10)
    monkeypatch.setattr(search_calls, "MAX_JOINED_HITS", 5)
    assert store.count_calls(CallFilters(q="invoice", score="x")) == 0


def _seeded(n: int = 240) -> tuple[list[CallRecord], list[ContentEvent]]:
    """Calls with a few words in varied places, several apps/models/statuses, some at the
    same instant (ties), and content events stamped hours away from their call."""
    import random

    rnd = random.Random(7)
    vocab = ["invoice", "invoices", "refund", "policy", "shipping", "delay", "quota", "alpha"]
    calls, events = [], []
    for i in range(n):
        said = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(0, 4))) or None
        calls.append(
            CallRecord(
                id=f"s{i:04d}",
                trace_id=f"{i:032x}",
                span_id=f"{i:016x}",
                ts=NOW - timedelta(minutes=7 * (i // 3)),  # three calls per instant
                duration_ms=5.0,
                source=rnd.choice(["gateway", "otlp"]),
                app=rnd.choice(["shop", "search", None]),
                provider=rnd.choice(["openai", "anthropic"]),
                request_model=rnd.choice(["gpt-4o", None]),
                response_model=rnd.choice(["gpt-4o", "claude-3"]),
                input_messages=[{"role": "user", "content": said}] if said else None,
                status="error" if i % 11 == 0 else "ok",
                error_message="upstream quota exhausted" if i % 11 == 0 else None,
            )
        )
        if i % 13 == 0:  # a log record stamped 5 h before or after its span
            shift = timedelta(hours=5) * (1 if i % 2 else -1)
            events.append(
                ContentEvent(
                    trace_id=f"{i:032x}",
                    span_id=f"{i:016x}",
                    ts=calls[-1].ts + shift,
                    seq=0,
                    kind="input",
                    message={"role": "user", "content": rnd.choice(vocab)},
                )  # fmt: skip
            )
    return calls, events


def test_index_answers_equal_the_scan(tmp_path: Path):
    """Pages and totals from the index equal a brute-force scan of the messages (SQL's
    case-insensitive contains) for phrases and prefixes with the filters combined."""
    s = DuckDBStore(tmp_path / "b.duckdb")
    try:
        calls, events = _seeded()
        s.write(calls[:120], [], events[:5])
        s.write(calls[120:], [], events[5:])
        since, until = NOW - timedelta(hours=40), NOW - timedelta(hours=3)
        asked = []
        # words for which SQL's substring and the index's phrase-prefix agree (the scan
        # reads messages, not error messages: those only the index holds)
        for q in ["invoice", "refund policy", "ship", "alpha", "zzz"]:
            for kw in [{}, {"app": "shop"}, {"model": "gpt-4o", "status": "ok"},
                       {"since": since, "until": until}, {"provider": "anthropic", "since": since},
                       {"source": "otlp", "status": "error"}]:  # fmt: skip
                asked.append(CallFilters(q=q, **kw))
        index = s.search

        def answer() -> list[tuple[int, list[str]]]:
            out = []
            for f in asked:
                seen, cursor = [], None
                while True:
                    rows, cursor = s.list_calls(f, 16, cursor)
                    seen += [r["id"] for r in rows]
                    if cursor is None:
                        break
                out.append((s.count_calls(f), seen))
            return out

        from_index = answer()
        s.search = None
        try:
            scanned = answer()
        finally:
            s.search = index
        assert from_index == scanned
        assert sum(n for n, _ in from_index) > 200  # the cases do find calls
        assert all(len(ids) == n == len(set(ids)) for n, ids in from_index)
    finally:
        s.close()


def test_event_far_from_its_call_is_found_in_a_time_range(store: DuckDBStore):
    """A content event stamped 6 h after its span still finds the call when the range
    holds the call (not the event), and not when it holds only the event."""
    call = _calls()[10]  # 10 minutes ago
    event = ContentEvent(
        trace_id=call.trace_id, span_id=call.span_id, ts=call.ts + timedelta(hours=6), seq=0,
        kind="input", message={"role": "user", "content": "a parcel to Tromsø"},
    )  # fmt: skip
    store.write([], [], [event])
    around = {"since": call.ts - timedelta(minutes=1), "until": call.ts + timedelta(minutes=1)}
    assert _ids(store, q="tromsø", **around) == ["c010"]
    assert store.count_calls(CallFilters(q="tromsø", **around)) == 1
    later = {"since": event.ts - timedelta(minutes=1), "until": event.ts + timedelta(minutes=1)}
    assert _ids(store, q="tromsø", **later) == []
    assert store.count_calls(CallFilters(q="tromsø", **later)) == 0


def test_retention_drops_documents_and_writes_are_searchable_at_once(tmp_path: Path):
    s = DuckDBStore(tmp_path / "r.duckdb", retention=timedelta(days=1))
    try:
        old = dataclasses.replace(_calls()[0], id="old", ts=NOW - timedelta(days=3))
        s.write([old, *_calls()], [], [])
        assert s.count_calls(CallFilters(q="invoice")) == 21
        assert s.apply_retention() > 0
        assert s.count_calls(CallFilters(q="invoice")) == 20  # the index forgot it too
        assert "old" not in _ids(s, q="invoice")
        assert s.search._pending == 0
        s.write([dataclasses.replace(_calls()[1], id="new", input_messages="fresh words")], [], [])
        assert _ids(s, q="fresh") == ["new"]  # pending documents are committed by a search
    finally:
        s.close()


def test_an_index_built_at_open_runs_beside_writes_and_misses_none(tmp_path: Path, monkeypatch):
    """A store whose index is lost (or of an older layout) opens at once: the index is
    built beside it, q= scans and traces are found by their spans meanwhile; calls
    written (or rewritten) and trace windows kept during the build are in the index
    when it is done; a build stopped by close is built again at the next open."""
    import shutil
    import threading

    from gensight.model.records import SpanRecord
    from gensight.store.search import SearchIndex

    path = tmp_path / "b.duckdb"
    s = DuckDBStore(path)
    s.write(_calls(), [], [])
    s.close()
    shutil.rmtree(f"{path}.search")

    started, go = threading.Event(), threading.Event()
    real = SearchIndex._add_rows

    def held(self, w, calls, events, traces, replace):
        if not replace:  # the build, after its snapshot: held until the test has written
            started.set()
            assert go.wait(30)
        return real(self, w, calls, events, traces, replace)

    monkeypatch.setattr(SearchIndex, "_add_rows", held)
    s = DuckDBStore(path)
    try:
        assert started.wait(30) and not s.wait_search(0)
        assert len(_ids(s, q="invoice")) == 20  # scanned meanwhile
        said = [{"role": "user", "content": "a zebra?"}]
        new = dataclasses.replace(_calls(1)[0], id="z001", trace_id="ab" * 16, span_id="e" * 16,
                                  input_messages=said)  # fmt: skip
        said = [{"role": "user", "content": "a walrus, nothing more"}]
        moved = dataclasses.replace(_calls(4)[3], input_messages=said)
        span = SpanRecord(trace_id="ab" * 16, span_id="f" * 16, name="agent", kind="internal",
                          ts=NOW - timedelta(hours=3), duration_ms=10.0)  # fmt: skip
        said = {"role": "assistant", "content": "okapi"}
        event = ContentEvent(trace_id=new.trace_id, span_id=new.span_id, ts=new.ts, seq=0,
                             kind="output", message=said)  # fmt: skip
        s.write([new, moved], [span], [event])
        go.set()
        assert s.wait_search(30)
        assert _ids(s, q="zebra") == ["z001"]
        assert _ids(s, q="walrus") == ["c003"]
        assert _ids(s, q="okapi") == ["z001"]  # through its content event
        asked = [
            "invoice",
            "walrus",
            "zebra",
            "okapi",
            "answer 1",
        ]  # where substring and words agree
        from_index = [(_ids(s, q=q), s.count_calls(CallFilters(q=q))) for q in asked]
        index, s.search = s.search, None
        scanned = [(_ids(s, q=q), s.count_calls(CallFilters(q=q))) for q in asked]
        s.search = index
        assert from_index == scanned and from_index[0][1] == 19  # c003's invoice is gone
        assert s.trace_window("ab" * 16) == (span.ts, new.ts + timedelta(milliseconds=10))
    finally:
        go.set()
        s.close()
    s = DuckDBStore(path)  # complete: kept
    try:
        assert not s.search.created and _ids(s, q="zebra") == ["z001"]
    finally:
        s.close()

    shutil.rmtree(f"{path}.search")
    go.clear()
    started.clear()
    s = DuckDBStore(path)
    assert started.wait(30)
    threading.Timer(0.5, go.set).start()  # close asks it to stop; it stops when let go
    s.close()
    s = DuckDBStore(path)  # an index whose build was stopped is built again
    try:
        assert s.search.created
        go.set()
        assert s.wait_search(30) and _ids(s, q="zebra") == ["z001"]
    finally:
        s.close()
