"""Scores in OTLP forwarding (#20): a `gensight serve` forwarding to another one, whose OTLP
ingest reads the forwarded ``gen_ai.evaluation.result`` events back into the same scores,
joined to the same calls; and the events' shape on the wire (a loopback sink)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from gensight.conventions.otlp_values import attributes
from gensight.export.otlp_scores import encode_scores, logs_url
from gensight.model.records import Score
from tests.integration.test_forward import gateway_client
from tests.support.server import Server, store_args
from tests.support.sinks import Receiver


def _wait(fetch: Any, ok: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = fetch()
    return value


def _strip(s: dict[str, Any]) -> tuple:
    return (s["id"], s["target"], s["target_id"], s["name"], s["value"], s["label"],
            s["comment"], s["source"], s["author"], s["app"])  # fmt: skip


def test_forwarded_scores_arrive_as_the_same_scores_of_the_same_calls(
    tmp_path: Path, upstream: Any
) -> None:
    b_dir = tmp_path / "b"
    b = Server(b_dir, *store_args("chdb", b_dir))  # the other backend: a Gensight on chDB
    a = Server(tmp_path / "a", "--upstream", f"openai={upstream.state.url}",
               "--forward-otlp", b.url)  # fmt: skip
    try:
        client = gateway_client(a, "forwarding-app")
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Judge me"}]
        )
        (call,) = a.wait_calls(1, app="forwarding-app")
        assert call["response_id"] == answer.id
        early_call = "00000000000000aa"  # scored before any such call exists
        sent = [
            {"call_id": call["id"], "name": "thumbs", "value": 0, "label": "down",
             "comment": "wrong <b>invoice</b>", "source": "user", "author": "u-1"},
            {"trace_id": call["trace_id"], "name": "resolved", "label": "no", "source": "human"},
            {"session": "s-1", "name": "csat", "value": 2},
            {"call_id": early_call, "name": "helpful", "value": 0.5, "source": "eval"},
        ]  # fmt: skip
        r = a.client.post("/api/scores", json=sent)
        assert r.status_code == 202, r.text
        ids = r.json()["ids"]
        mine = _wait(
            lambda: a.client.get("/api/scores", params={"limit": 10}).json()["items"],
            lambda s: len(s) == 4,
        )
        theirs = _wait(
            lambda: b.client.get("/api/scores", params={"limit": 10}).json()["items"],
            lambda s: len(s) == 4,
        )
        assert sorted(s["id"] for s in theirs) == sorted(ids)
        # the same scores; one sent without an app is its call's there (the event's resource)
        assert all(s["app"] is None for s in mine)
        apps = {call["id"]: "forwarding-app"}
        assert sorted(map(_strip, theirs)) == sorted(
            _strip({**s, "app": apps.get(s["target_id"])}) for s in mine
        )
        # joined to the forwarded call there, through its span's context
        there = _wait(
            lambda: b.client.get(f"/api/calls/{call['id']}"),
            lambda r: r.status_code == 200 and len(r.json()["scores"]) == 1,
        ).json()
        (score,) = there["scores"]
        assert (score["name"], score["value"], score["trace_id"]) == (
            "thumbs",
            0.0,
            call["trace_id"],
        )
        trace = b.client.get(f"/api/traces/{call['trace_id']}").json()
        assert {(s["target"], s["name"]) for s in trace["scores"]} == {
            ("trace", "resolved"),
            ("call", "thumbs"),
        }
        health = a.client.get("/api/health").json()["forward"]
        assert health["scores_sent"] == 4 and health["scores_failed"] == 0
    finally:
        a.stop()
        b.stop()


def test_the_events_follow_the_semantic_conventions_on_the_wire(
    tmp_path: Path, upstream: Any
) -> None:
    with Receiver() as sink:
        srv = Server(
            tmp_path / "data",
            "--upstream", f"openai={upstream.state.url}",
            "--forward-otlp", f"{sink.url}/otel",
            "--forward-header", "X-Team=llm",
        )  # fmt: skip
        try:
            client = gateway_client(srv, "wire-app")
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
            (call,) = srv.wait_calls(1, app="wire-app")
            body = {"call_id": call["id"], "name": "relevance", "value": 0.75, "comment": "ok"}
            assert srv.client.post("/api/scores", json=body).status_code == 202
            logs = _wait(
                lambda: [r for r in sink.requests if r["path"] == "/otel/v1/logs"],
                lambda got: len(got) == 1,
            )
        finally:
            srv.stop()
    (request,) = logs
    assert request["headers"]["content-type"] == "application/x-protobuf"
    assert request["headers"]["x-team"] == "llm"
    req = ExportLogsServiceRequest.FromString(request["body"])
    (rl,) = req.resource_logs
    assert attributes(rl.resource.attributes)["service.name"] == "wire-app"
    (record,) = rl.scope_logs[0].log_records
    assert record.event_name == "gen_ai.evaluation.result"
    assert (record.trace_id.hex(), record.span_id.hex()) == (call["trace_id"], call["span_id"])
    attrs = attributes(record.attributes)
    assert attrs["gen_ai.evaluation.name"] == "relevance"
    assert attrs["gen_ai.evaluation.score.value"] == 0.75
    assert attrs["gen_ai.evaluation.explanation"] == "ok"
    assert "gen_ai.evaluation.score.label" not in attrs  # none given: left out
    assert attrs["gensight.score.call_id"] == call["id"]


def test_encoding_without_a_stored_call_and_the_logs_url() -> None:
    ts = datetime(2026, 12, 1, 10, tzinfo=UTC)
    scores = [
        Score(id="s1", ts=ts, target="call", target_id="c-1", name="h", value=1.0,
              trace_id="ab" * 16),
        Score(id="s2", ts=ts, target="call", target_id="c-2", name="h", label="bad"),
        Score(id="s3", ts=ts, target="trace", target_id="cd" * 16, name="r", label="yes"),
    ]  # fmt: skip
    req = ExportLogsServiceRequest.FromString(
        encode_scores(scores, {"c-1": ("ef" * 16, "01" * 8, "shop")})
    )
    shop, unknown = req.resource_logs  # a score without an app takes its call's
    assert attributes(shop.resource.attributes)["service.name"] == "shop"
    assert attributes(unknown.resource.attributes)["service.name"] == "unknown_service"
    records = [*shop.scope_logs[0].log_records, *unknown.scope_logs[0].log_records]
    ids = [(r.trace_id.hex(), r.span_id.hex()) for r in records]
    assert ids == [("ef" * 16, "01" * 8), ("", ""), ("cd" * 16, "")]
    assert records[0].time_unix_nano == int(ts.timestamp()) * 10**9
    assert logs_url("http://x:9529/otel") == "http://x:9529/otel/v1/logs"
    assert logs_url("http://x:4318/v1/traces") == "http://x:4318/v1/logs"
