"""Rollups (DuckDB): the overview over long ranges reads them, with the raw sums and
percentiles within 1% of the exact ones; replays, merges, retention, compaction and
rebuilds keep them exact; the raw rows answer when rollups would read as many rows."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gensight.model.records import CallRecord
from gensight.query import answers
from gensight.store import rollups
from gensight.store.base import CallFilters
from gensight.store.duckdb import DuckDBStore

#: CLI runs as tests/unit/test_settings.py runs them (typer reads the width at import)
_ENV = {"TERMINAL_WIDTH": "200"}

END = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=7)
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4", None]
APPS = ["shop", "search", "chat"]


def _calls(n: int, seed: int = 7, days: float = 3.0) -> list[CallRecord]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        stream = rnd.random() < 0.6
        failed = rnd.random() < 0.05
        model = rnd.choice(MODELS)
        out.append(
            CallRecord(
                id=f"c{seed}-{i:06d}",
                trace_id=f"{seed:08x}{i:024x}",
                span_id=f"{i:016x}",
                ts=END - timedelta(seconds=rnd.uniform(0, days * 86400)),
                duration_ms=rnd.lognormvariate(6.5, 0.9),
                ttft_ms=rnd.lognormvariate(5.5, 0.5) if stream else None,
                stream=stream,
                source=rnd.choice(["otlp", "gateway"]),
                app=rnd.choice(APPS),
                provider="openai" if model and model.startswith("gpt") else "anthropic",
                operation="chat",
                request_model=model,
                response_model=None if model else "fallback-model",
                # a few calls report no usage at all (no_usage_calls, not unpriced)
                input_tokens=rnd.randint(10, 4000) if rnd.random() < 0.97 else None,
                output_tokens=rnd.randint(0, 800) if rnd.random() < 0.95 else None,
                cost_usd=None if rnd.random() < 0.1 else rnd.uniform(1e-5, 0.05),
                cost_source="computed",
                status="error" if failed else "ok",
                error_class="rate_limit" if failed else None,
                user=f"u{rnd.randint(1, 30)}",
                session=f"s{rnd.randint(1, 5)}",
            )
        )
    return out


@pytest.fixture(autouse=True)
def _always_rollups(monkeypatch: pytest.MonkeyPatch) -> None:
    # these stores are small: rollups hold about as many rows as calls, so the overview
    # would read raw rows; the accuracy checks want the rollups read whatever they cost
    monkeypatch.setattr(rollups, "MAX_ROW_SHARE", float("inf"))


@pytest.fixture
def store(tmp_path: Path):
    s = DuckDBStore(tmp_path / "r.duckdb")
    calls = _calls(6000)
    for i in range(0, len(calls), 700):
        s.write(calls[i : i + 700], [], [])
    yield s
    s.close()


def _range(days: float = 3.0) -> CallFilters:
    # not aligned to hours: the partial hours at both ends come from raw rows
    return CallFilters(since=END - timedelta(days=days, minutes=13), until=END)


def _raw(store: DuckDBStore, f: CallFilters, interval: int, group_by: str | None) -> dict:
    reader = store.rollups_for
    store.rollups_for = lambda *a: None  # type: ignore[method-assign]
    try:
        answer = answers.overview(store, f, interval, group_by)
    finally:
        store.rollups_for = reader  # type: ignore[method-assign]
    assert answer["rows_from"] == "raw"
    return answer


def _close(a: float | None, b: float | None, rel: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rel * abs(b)


def _same(got: dict, want: dict, rel: float = 0.01) -> None:
    """Additive measures equal, percentiles within ``rel`` of the exact ones."""
    for k in ("calls", "errors", "input_tokens", "output_tokens", "unpriced_calls",
              "no_usage_calls"):  # fmt: skip
        assert got[k] == want[k], k
    assert got["cost_usd"] == want["cost_usd"]  # exact decimal sums on both paths
    for m in ("latency_ms", "ttft_ms"):
        for level, value in want[m].items():
            assert _close(got[m][level], value, rel), (m, level, got[m][level], value)


def _check(store: DuckDBStore, f: CallFilters, interval: int, group_by: str | None) -> dict:
    got = answers.overview(store, f, interval, group_by)
    want = _raw(store, f, interval, group_by)
    assert got["rows_from"] == "rollups"
    _same(got["totals"], want["totals"])
    assert [g["group"] for g in got["groups"]] == [g["group"] for g in want["groups"]]
    for g, w in zip(got["groups"], want["groups"], strict=True):
        _same(g, w)
    assert len(got["series"]) == len(want["series"])
    for p, w in zip(got["series"], want["series"], strict=True):
        assert (p["bucket"], p["group"]) == (w["bucket"], w["group"])
        # a few dozen calls per point: equal sums; percentiles of small sets within 1% too
        _same(p, w)
    return got


@pytest.mark.parametrize("group_by", [None, "model", "app", "provider", "error_class"])
def test_overview_from_rollups_matches_raw(store: DuckDBStore, group_by: str | None):
    got = _check(store, _range(), 6 * 3600 if group_by is None else 12 * 3600, group_by)
    assert got["totals"]["calls"] > 5000
    assert got["totals"]["latency_ms"]["p99"] is not None


def test_filters_rollups_answer_and_those_they_do_not(store: DuckDBStore):
    # what the dashboard asks: one dimension filtered and grouped, errors by class
    _check(store, dataclasses.replace(_range(), model="gpt-4o"), 12 * 3600, "model")
    _check(store, dataclasses.replace(_range(), app="shop"), 86400, None)
    _check(store, dataclasses.replace(_range(), status="error"), 12 * 3600, "error_class")
    _check(store, _range(), 3600, None)  # hourly histograms without dimensions
    # a session, a search, two dimensions no rollup keeps together: the raw rows; so do
    # buckets under an hour
    for raw in (
        dataclasses.replace(_range(), session="s1"),
        dataclasses.replace(_range(), q="hello"),
        dataclasses.replace(_range(), model="gpt-4o", app="shop"),
        dataclasses.replace(_range(), user="u1"),  # users have no rollups
        dataclasses.replace(_range(), template_id="t1"),  # nor templates
        dataclasses.replace(_range(), score="helpful:<0.5"),  # scores live elsewhere
    ):
        assert answers.overview(store, raw, 12 * 3600, None)["rows_from"] == "raw"
    for group_by in ("user", "template"):
        assert answers.overview(store, _range(), 12 * 3600, group_by)["rows_from"] == "raw"
    # series buckets finer than a set's 12-hour histograms
    assert answers.overview(store, _range(), 3 * 3600, "model")["rows_from"] == "raw"
    assert answers.overview(store, _range(), 1800, None)["rows_from"] == "raw"
    short = CallFilters(since=END - timedelta(minutes=50), until=END)
    assert answers.overview(store, short, 3600, None)["rows_from"] == "raw"


def test_replay_and_rewrite_keep_rollups_exact(store: DuckDBStore):
    calls = _calls(6000)
    store.write(calls[:1500], [], [])  # a replayed batch
    changed = [
        dataclasses.replace(
            c, request_model="gpt-4o", output_tokens=(c.output_tokens or 0) + 5,
            duration_ms=c.duration_ms * 3, status="error", error_class="timeout", cost_usd=None,
        )
        for c in calls[100:400]
    ]  # fmt: skip
    store.write(changed, [], [])  # a merge rewrote stored calls
    store.write(changed, [], [])  # and its batch was replayed
    got = _check(store, _range(), 12 * 3600, "model")
    assert got["totals"]["calls"] == _raw(store, _range(), 3600, None)["totals"]["calls"]
    store.compact_rollups()
    _check(store, _range(), 12 * 3600, "error_class")
    kept = _tables(store)
    store.rebuild_rollups()
    _check(store, _range(), 12 * 3600, "model")
    assert _tables(store) == kept  # the writer's upkeep holds what a rebuild computes


def _tables(store: DuckDBStore) -> dict[str, list[tuple]]:
    """Every rollup table's rows summed by their keys (zero sums dropped)."""
    out = {}
    for table in rollups.TABLES:
        cols = [r[0] for r in store._con.execute(f"DESCRIBE {table}").fetchall()]
        keys = [c for c in cols if c not in (*rollups.MEASURES, "n")]
        sums = [c for c in cols if c not in keys]
        by = ", ".join(f'"{c}"' for c in keys)
        out[table] = store._con.execute(
            f"SELECT {by}, {', '.join(f'sum({c})' for c in sums)} FROM {table} GROUP BY {by}"
            f" HAVING {' OR '.join(f'sum({c}) <> 0' for c in sums)} ORDER BY ALL"
        ).fetchall()
    return out


def test_reopened_store_without_rollups_builds_them(tmp_path: Path):
    path = tmp_path / "old.duckdb"
    s = DuckDBStore(path)
    s.write(_calls(2000, seed=3), [], [])
    for table in rollups.TABLES:  # a store from before rollups
        s._con.execute(f"DROP TABLE {table}")
    s._con.execute("DELETE FROM rollup_state")
    s.close()
    s = DuckDBStore(path)
    try:
        _check(s, _range(), 12 * 3600, "app")
    finally:
        s.close()


def test_retention_keeps_rollups_exact(tmp_path: Path):
    s = DuckDBStore(tmp_path / "ret.duckdb", retention=timedelta(days=1, minutes=31))
    try:
        s.write(_calls(3000, seed=5), [], [])
        assert s.apply_retention() > 0
        got = _check(s, _range(), 12 * 3600, "model")
        assert 0 < got["totals"]["calls"] < 1500
    finally:
        s.close()


def test_rebuild_command(tmp_path: Path):
    from typer.testing import CliRunner

    from gensight.cli.main import app

    path = tmp_path / "cmd.duckdb"
    s = DuckDBStore(path)
    s.write(_calls(1500, seed=9), [], [])
    s._con.execute("DELETE FROM rollup_calls_model")  # rollups lost
    s.close()
    result = CliRunner().invoke(
        app, ["rebuild", "rollups", "--store", f"duckdb://{path}"], env=_ENV
    )
    assert result.exit_code == 0, result.output
    assert "rebuilt rollups" in result.output
    s = DuckDBStore(path)
    try:
        _check(s, _range(), 12 * 3600, "model")
    finally:
        s.close()
    bad = CliRunner().invoke(app, ["rebuild", "indexes", "--store", f"duckdb://{path}"], env=_ENV)
    assert bad.exit_code != 0 and "rollups" in bad.output


def test_raw_rows_answer_when_rollups_would_read_as_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the store's own choice
    s = DuckDBStore(tmp_path / "cost.duckdb")
    try:
        # a few thousand calls of distinct latencies: about one histogram row per call
        s.write(_calls(3000, seed=11), [], [])
        assert answers.overview(s, _range(), 12 * 3600, "model")["rows_from"] == "raw"
        assert answers.overview(s, _range(), 3600, None)["rows_from"] == "raw"
        # many calls of few latencies: a few rows per block answer for thousands of calls
        rnd = random.Random(2)
        few = [
            dataclasses.replace(c, id=f"few-{i}", span_id=f"f{i:015x}",
                                duration_ms=float(rnd.choice((120, 250, 900, 4000))),
                                ttft_ms=None)
            for i, c in enumerate(_calls(20000, seed=12))
        ]  # fmt: skip
        for i in range(0, len(few), 5000):
            s.write(few[i : i + 5000], [], [])
        monkeypatch.setattr(rollups, "MAX_ROW_SHARE", float("inf"))
        want = answers.overview(s, _range(), 12 * 3600, "model")
        monkeypatch.undo()
        got = answers.overview(s, _range(), 12 * 3600, "model")
        assert got["rows_from"] == "rollups"
        assert got["totals"] == want["totals"]
        assert answers.overview(s, _range(), 3600, None)["rows_from"] == "rollups"
    finally:
        s.close()


def test_the_call_logs_total_counts_from_rollups(store: DuckDBStore) -> None:
    """``count_calls`` sums hourly rollup rows plus the raw calls of partial hours: the
    same count as the raw rows, for open and unaligned ranges and each filter a set
    holds; filters no set holds together are counted from raw rows."""
    from gensight.store import rollup_reader
    from gensight.store.common import SQLStore

    r = _range()
    ranges = [
        CallFilters(),
        CallFilters(since=r.since),
        CallFilters(until=r.until - timedelta(hours=7, minutes=3)),
        r,
        CallFilters(since=r.since, until=r.since + timedelta(minutes=20)),  # no whole hour
    ]
    for base in ranges:
        for extra in ({}, {"app": "shop"}, {"model": "gpt-4o"}, {"status": "error"},
                      {"status": "error", "error_class": "rate_limit"},
                      {"model": "gpt-4o", "app": "shop"}, {"model": "gpt-4o", "status": "error"},
                      {"app": "shop", "status": "ok"}):  # fmt: skip
            f = dataclasses.replace(base, **extra)
            want = SQLStore.count_calls(store, f)
            assert store.count_calls(f) == want, (base, extra)
            held = len(set(extra) - {"status"}) <= 1
            whole = (
                base.since is None
                or base.until is None
                or base.until - base.since > timedelta(hours=2)
            )
            assert (rollup_reader.count(store, f) is not None) == (held and whole), (base, extra)
    assert SQLStore.count_calls(store, CallFilters(app="shop")) > 0
