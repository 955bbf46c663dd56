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

    shutil.rmtree(f"{path}.search")  # lost: opening builds it again
    s = DuckDBStore(path)
    assert s.search.created and len(_ids(s, q="refund")) == 20
    s.close()
    result = CliRunner().invoke(app, ["rebuild", "search", "--store", f"duckdb://{path}"], env=_ENV)
    assert result.exit_code == 0, result.output
    s = DuckDBStore(path)
    try:
        assert _ids(s, q="quota") == ["c005"]
    finally:
        s.close()


def test_totals_count_the_hits_with_the_filters(store: DuckDBStore, monkeypatch):
    from gensight.store import search

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
    monkeypatch.setattr(search, "MAX_COUNTED_HITS", 5)  # too many hits: it scans
    assert store.count_calls(CallFilters(q="invoice")) == 21
