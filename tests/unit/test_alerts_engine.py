"""The alert engine on a real DuckDB file: shared state across restarts and replicas,
calendar windows, budgets' matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gensight.alerts import AlertEngine, Notifier, RuleError, load_rules_file, parse_rule
from gensight.model.records import CallRecord
from gensight.store.duckdb import DuckDBStore


class Recorded(Notifier):
    """A notifier that keeps what it would send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_bodies: list[tuple[str, str]] = []

    def send(self, rule_id: str, url: str, body: bytes, event: str) -> None:
        self.sent_bodies.append((rule_id, event))


def _call(ts: datetime, app: str = "a", cost: float = 1.0, user: str | None = None) -> CallRecord:
    return CallRecord(
        id=ts.isoformat(), trace_id="t", span_id="s", ts=ts, duration_ms=5.0,
        source="gateway", app=app, user=user, cost_usd=cost, cost_source="computed",
    )  # fmt: skip


def test_restarts_and_replicas_do_not_notify_twice(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "g.duckdb")
    rule = parse_rule(
        {
            "name": "spend",
            "measure": "cost_usd",
            "window": "1h",
            "threshold": 1.5,
            "webhook": "http://127.0.0.1:9/",
        }  # fmt: skip
    )
    now = datetime.now(UTC)
    first = AlertEngine(store, notifier=Recorded(), allow_private_webhooks=True)
    first.create(rule)
    first.evaluate(now=now)
    assert first.states()[0]["state"] == "ok" and first.notifier.sent_bodies == []

    store.write([_call(now - timedelta(minutes=1)), _call(now - timedelta(minutes=2))], [], [])
    first.evaluate(now=now)
    first.evaluate(now=now + timedelta(seconds=1))
    assert first.notifier.sent_bodies == [(rule.id, "firing")]

    # a second server on the same store (or this one restarted) knows it already fired
    second = AlertEngine(store, notifier=Recorded(), allow_private_webhooks=True)
    second.evaluate(now=now + timedelta(seconds=2))
    (s,) = second.states()
    assert s["state"] == "firing" and s["value"] == 2.0 and second.notifier.sent_bodies == []

    # an hour later the window is empty: the server holding the alerts lease (the first)
    # records and notifies the resolution, even when another one saw it first
    later = now + timedelta(hours=1, minutes=1)
    second.evaluate(now=later)
    first.evaluate(now=later + timedelta(seconds=1))
    assert first.leader and not second.leader
    assert second.notifier.sent_bodies == []
    assert first.notifier.sent_bodies == [(rule.id, "firing"), (rule.id, "resolved")]
    history = store.alert_events(rule.id)
    assert [e["state"] for e in history] == ["ok", "firing"]  # newest first
    assert history[1]["detail"]["previous"] == "ok" and history[1]["value"] == 2.0
    store.close()


def test_budget_matches_its_app_and_user_only(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "g.duckdb")
    engine = AlertEngine(store, notifier=Recorded(), allow_private_webhooks=True)
    team = parse_rule(
        {
            "name": "team",
            "measure": "cost_usd",
            "window": "day",
            "threshold": 0.5,
            "action": "block",
            "filters": {"app": "a", "user": "u"},
        }  # fmt: skip
    )
    engine.create(team)
    now = datetime.now(UTC).replace(hour=12)  # "day" windows start at midnight
    store.write([_call(now, app="a", user="u")], [], [])
    assert engine.budget("a", "u") is None  # not evaluated yet
    engine.evaluate(now=now + timedelta(seconds=1))
    refusal = engine.budget("a", "u")
    assert refusal is not None and refusal.rule_id == team.id and "'team'" in refusal.message
    assert engine.budget("a", None) is None and engine.budget("b", "u") is None
    engine.delete(team.id)
    assert engine.budget("a", "u") is None
    store.close()


def test_calendar_windows() -> None:
    rule = parse_rule({"name": "m", "measure": "cost_usd", "window": "month", "threshold": 1})
    now = datetime(2026, 3, 17, 15, 4, 5, tzinfo=UTC)
    assert rule.window_range(now) == (datetime(2026, 3, 1, tzinfo=UTC), now)
    day = parse_rule({"name": "d", "measure": "cost_usd", "window": "day", "threshold": 1})
    assert day.window_range(now)[0] == datetime(2026, 3, 17, tzinfo=UTC)
    assert "this month (UTC)" in rule.describe()


def test_rules_file_errors_name_the_rule_and_field(tmp_path: Path) -> None:
    f = tmp_path / "rules.toml"
    good = '[[rule]]\nname = "ok"\nmeasure = "calls"\nthreshold = 1\n'
    f.write_text(good + '[[rule]]\nname = "bad"\nmeasure = "calls"\nthreshold = 1\nop = "=>"\n')
    with pytest.raises(ValueError, match=r"rule 2 \('bad'\): invalid rule field 'op'"):
        load_rules_file(f)
    f.write_text('[[rule]]\nname = "same"\nmeasure = "calls"\nthreshold = 1\n' * 2)
    with pytest.raises(ValueError, match="share an id"):
        load_rules_file(f)
    with pytest.raises(RuleError) as e:
        parse_rule({"name": "x", "measure": "calls", "threshold": float("nan")})
    assert e.value.field == "threshold"
