"""Several servers on one store: singleton work happens once (alert notifications)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from gensight.store.duckdb import DuckDBStore
from tests.support.stores import fresh_chdb_store


@pytest.mark.parametrize("kind", ["duckdb", "chdb"])
def test_one_lease_holder_at_a_time(kind, tmp_path: Path, chdb_path: Path):
    store = DuckDBStore(tmp_path / "l.duckdb") if kind == "duckdb" else fresh_chdb_store(chdb_path)
    try:
        ttl = timedelta(seconds=30)
        assert store.hold_lease("alerts", "replica-a", ttl)
        assert not store.hold_lease("alerts", "replica-b", ttl)  # a holds it
        assert store.hold_lease("alerts", "replica-a", ttl)  # renewal
        assert store.hold_lease("other-job", "replica-b", ttl)  # leases are by name
        # a holder that stops renewing loses the lease when it expires
        assert store.hold_lease("short", "replica-a", timedelta(seconds=0.5))
        assert not store.hold_lease("short", "replica-b", ttl)
        time.sleep(0.7)
        assert store.hold_lease("short", "replica-b", ttl)
    finally:
        store.close()


def test_only_the_leader_records_and_notifies(tmp_path: Path):
    from gensight.alerts import AlertEngine, parse_rule

    store = DuckDBStore(tmp_path / "r.duckdb")
    sent: list[str] = []

    class Notes:
        sent = failed = retries = dropped = 0
        deliveries: dict = {}

        def send(self, rule_id, url, body, event):
            sent.append(event)

        def pending(self):
            return 0

        def start(self):
            pass

        def stop(self, timeout=5.0):
            pass

    a = AlertEngine(store, interval=30, notifier=Notes(), allow_private_webhooks=True)
    b = AlertEngine(store, interval=30, notifier=Notes(), allow_private_webhooks=True)
    rule = parse_rule(
        {
            "name": "any call",
            "measure": "calls",
            "window": "1h",
            "op": ">=",
            "threshold": 0,
            "webhook": "http://127.0.0.1:9/hook",
        }  # fmt: skip
    )
    a.create(rule)
    a.evaluate()
    b.evaluate()
    assert a.leader and not b.leader
    assert sent == ["firing"]  # once, though both servers saw the transition
    assert [s["state"] for s in b.states()] == ["firing"]
    assert len(store.alert_events()) == 1
    store.close()
