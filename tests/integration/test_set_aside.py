"""A batch the store keeps refusing for a reason other than an outage is set aside, and
it shows: the ``set_aside`` counter in /api/health and /metrics, and the file under
DATA_DIR/set-aside; calls after it are stored as usual. Both stores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.server import STORES
from tests.support.stores import fresh_chdb_store


class BuggyStore:
    """A real store whose write raises AttributeError for one record (as code meeting a
    record it does not expect would); everything else goes to the real store."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write(self, calls, spans, events) -> None:
        if any(c.id == "poison" for c in calls):
            raise AttributeError("'NoneType' object has no attribute 'isoformat'")
        self.inner.write(calls, spans, events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _lines(*ids: str) -> bytes:
    return b"".join(
        orjson.dumps({"id": i, "trace_id": "ab" * 16, "span_id": "cd" * 8, "app": "set-aside",
                      "ts": "2026-12-01T10:00:00+00:00", "duration_ms": 5.0, "source": "gateway",
                      "request_model": "gpt-4o-mini"}) + b"\n"
        for i in ids
    )  # fmt: skip


@pytest.mark.parametrize("kind", STORES)
def test_a_poison_record_is_set_aside_visibly_and_the_rest_is_stored(
    kind: str, tmp_path: Path, chdb_path: Path
):
    inner = DuckDBStore(tmp_path / "s.duckdb") if kind == "duckdb" else fresh_chdb_store(chdb_path)
    app = create_app(Settings(data_dir=tmp_path, flush_interval=0.01), store=BuggyStore(inner))
    ndjson = {"content-type": "application/x-ndjson"}
    with TestClient(app) as c:
        assert (
            c.post(
                "/api/import", content=_lines("poison", "ok-1", "ok-2"), headers=ndjson
            ).status_code
            == 202
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and c.get("/api/health").json()["queue"]["set_aside"] < 1:
            time.sleep(0.05)
        assert c.post("/api/import", content=_lines("ok-3"), headers=ndjson).status_code == 202
        assert app.state.pipeline.flush(20)
        health = c.get("/api/health").json()
        assert health["queue"]["set_aside"] == 1 and health["dropped"] == 0
        metrics = c.get("/metrics").text
        assert "gensight_writer_set_aside_records_total 1.0" in metrics
        assert "gensight_journal_damaged_entries_total 0.0" in metrics
        params = {"app": "set-aside", "since": "2026-11-01T00:00:00Z", "limit": 100}
        ids = sorted(x["id"] for x in c.get("/api/calls", params=params).json()["items"])
        assert ids == ["ok-1", "ok-2", "ok-3"]
    (kept,) = (tmp_path / "set-aside").glob("calls-*.jsonl")
    (line,) = kept.read_bytes().splitlines()
    assert orjson.loads(line)["id"] == "poison"
    assert "AttributeError" in orjson.loads(line)["_set_aside"]["reason"]
