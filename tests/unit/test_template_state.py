"""The prompt miner's saved state is plain JSON rebuilt into drain3's objects: a restored
miner matches as the saved one did, and a jsonpickle payload in the store is refused
(never deserialized into objects)."""

from __future__ import annotations

import base64
import zlib
from datetime import UTC, datetime

import jsonpickle
import orjson
import pytest

from gensight.enrich.templates import (
    Templater,
    _new_miner,
    load_state_json,
    patterns_from_state,
    state_json,
)
from gensight.model.records import CallRecord

PROMPTS = [
    "Customer Alice asks where order A-12345 is",
    "Customer Bob asks where order A-99881 is",
    "Translate to French: the kettle is delivered to Paris",
    "Translate to French: the lamp is delivered to Oslo",
    "Count orders of drill in Lima since 2026-03-12",
]


def _call(i: int, text: str) -> CallRecord:
    return CallRecord(
        id=f"c{i}", trace_id=f"{i:032x}", span_id=f"{i:016x}", ts=datetime.now(UTC),
        duration_ms=1.0, source="otlp", operation="chat",
        input_messages=[{"role": "user", "content": text}],
    )  # fmt: skip


def test_a_restored_miner_matches_as_the_saved_one():
    miner = _new_miner()
    for p in PROMPTS:
        miner.add_log_message(p)
    text = state_json(miner)
    data = orjson.loads(text)
    assert "py/object" not in text and data["counter"] == miner.drain.clusters_counter
    again = _new_miner()
    load_state_json(again, text)
    for p in ["Customer Chen asks where order A-55555 is", "Translate to French: the x is y z"]:
        assert again.add_log_message(p)["cluster_id"] == miner.add_log_message(p)["cluster_id"]
    new = again.add_log_message("something else entirely with other words")
    assert new["cluster_id"] == len(miner.drain.clusters) + 1
    pats = patterns_from_state(text)
    assert any("<*>" in v["pattern"] or "<ID>" in v["pattern"] for v in pats.values())


class _Boom:
    def __setstate__(self, state):  # jsonpickle would call this on load
        raise AssertionError("a stored state was deserialized into objects")


def test_a_jsonpickle_state_is_refused_and_the_miner_starts_afresh(caplog):
    payload = jsonpickle.dumps({"x": _Boom()}, keys=True).encode()
    for bad in [payload.decode(), base64.b64encode(zlib.compress(payload)).decode(), "[1,2]",
                orjson.dumps({"format": "gensight-drain-1", "counter": 1,
                              "clusters": [[1, "not a list", 1]]}).decode()]:  # fmt: skip
        with pytest.raises(ValueError):
            patterns_from_state(bad)
        saved: dict[str, str] = {}
        t = Templater(load=lambda _n, b=bad: b, save=saved.__setitem__)
        calls = [_call(i, p) for i, p in enumerate(PROMPTS)]
        t.assign(calls)
        assert all(c.template_id and c.template_id.startswith("mined-") for c in calls)
        assert orjson.loads(saved["prompts"])["format"] == "gensight-drain-1"
    assert "could not load the saved state" in caplog.text
