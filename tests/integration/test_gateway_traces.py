"""Every gateway answer leaves a trace (issue 14.8): refusals are recorded, the
upstream's request id and rate-limit headers are kept, every answer to a call names its
record (``X-Gensight-Call-Id``), and uploads stream within their own limit.

Real `openai` clients (and raw httpx where a client cannot say it) → Gensight → the fake
upstream; what was recorded is read back through the JSON API.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gensight.model.settings import Settings
from tests.integration.test_gateway import KEY, Gateway, _meta, _session

HI = [{"role": "user", "content": "Say hi"}]
ADMIN = "gk-admin-0123456789abcdef"
READER = "gk-read-0123456789abcdef"
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Any]:
    made: list[Gateway] = []

    def make(**settings: Any) -> Gateway:
        settings.setdefault("retry_backoff", 0.01)
        settings.setdefault("flush_interval", 0.02)
        g = Gateway(Settings(data_dir=tmp_path / f"gw{len(made)}", **settings))
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


@pytest.fixture(scope="module")
def gw(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Settings(
            data_dir=tmp_path_factory.mktemp("gw-traces"),
            upstreams={"openai": upstream.state.url},
            retry_backoff=0.01,
            flush_interval=0.02,
            max_body="64KiB",
            max_upload="4MiB",
        )
    )
    yield g
    g.stop()


def _by_id(g: Gateway, call_id: str, api: httpx.Client | None = None) -> dict[str, Any]:
    """The call stored under ``call_id`` (waiting for the writer)."""
    api = api or g.api
    deadline = time.monotonic() + 10
    while True:
        g.app.state.pipeline.flush()
        r = api.get(f"/api/calls/{call_id}")
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()
        time.sleep(0.05)


def _count(g: Gateway, session: str, api: httpx.Client | None = None) -> int:
    g.app.state.pipeline.flush()
    time.sleep(0.1)
    g.app.state.pipeline.flush()
    r = (api or g.api).get("/api/calls", params={"session": session})
    return len(r.json()["items"])


def _traceparent() -> dict[str, str]:
    return {"traceparent": f"00-{TRACE}-{_session()[2:].ljust(16, '0')[:16]}-01"}


# ------------------------------------------------------------ X-Gensight-Call-Id


def test_every_answer_names_its_record_and_a_score_by_that_id_lands_on_it(gw: Gateway) -> None:
    s = _session()
    client = gw.openai(default_headers=_meta(s))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    plain_id = raw.headers["x-gensight-call-id"]
    assert raw.parse().choices[0].message.content
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, stream=True
    )
    stream_id = raw.headers["x-gensight-call-id"]
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse())
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x")
    embed_id = raw.headers["x-gensight-call-id"]
    assert len({plain_id, stream_id, embed_id}) == 3
    stored = {c["id"]: c for c in gw.calls(s, 3)}
    assert set(stored) == {plain_id, stream_id, embed_id}
    assert stored[stream_id]["stream"] is True
    assert stored[embed_id]["operation"] == "embeddings"
    # issue 20: the app passes the id back with its user's thumbs-up
    r = gw.api.post(
        "/api/scores", json={"call_id": stream_id, "name": "helpful", "value": 1, "source": "user"}
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 10
    while not _by_id(gw, stream_id)["scores"] and time.monotonic() < deadline:
        time.sleep(0.05)
    scores = _by_id(gw, stream_id)["scores"]
    assert [(x["name"], x["value"], x["source"]) for x in scores] == [("helpful", 1.0, "user")]
    assert _by_id(gw, plain_id)["scores"] == []
    listed = gw.api.get("/api/calls", params={"session": s, "score": "helpful"}).json()["items"]
    assert [c["id"] for c in listed] == [stream_id]


def test_a_request_that_is_not_a_call_gets_no_call_id(gw: Gateway) -> None:
    r = httpx.get(f"{gw.url}/openai/v1/models", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    assert "x-gensight-call-id" not in r.headers


# ----------------------------------------------- the upstream's request id, rate limits


def test_upstreams_request_id_and_rate_limit_headers_are_stored(gw: Gateway) -> None:
    s = _session()
    client = gw.openai(default_headers=_meta(s))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    c = _by_id(gw, raw.headers["x-gensight-call-id"])
    assert c["upstream_request_id"] == raw.headers["x-request-id"]
    assert c["upstream_request_id"].startswith("req_")
    attrs = c["attributes"]
    assert attrs["http.response.header.x-ratelimit-remaining-requests"] == "9999"
    assert attrs["http.response.header.x-ratelimit-remaining-tokens"] == "29999000"
    assert attrs["http.response.header.x-ratelimit-reset-requests"] == "6ms"
    # a 429's own headers are what the call says (the gateway answers with the last one)
    with pytest.raises(openai.RateLimitError) as e:
        gw.openai(default_headers=_meta(s, **{"x-fake-status": "429"})).chat.completions.create(
            model="gpt-4o-mini", messages=HI
        )
    c = _by_id(gw, e.value.response.headers["x-gensight-call-id"])
    assert c["upstream_request_id"] == e.value.response.headers["x-request-id"]
    assert c["attributes"]["http.response.header.x-ratelimit-remaining-requests"] == "0"
    assert c["attempts"] == 3


# ------------------------------------------------------------------- refusals


def test_unknown_upstream_and_unknown_paths_are_refused_in_openais_shape_and_recorded(
    gw: Gateway,
) -> None:
    s = _session()
    client = openai.OpenAI(
        base_url=f"{gw.url}/p/nope/v1", api_key=KEY, max_retries=0, default_headers=_meta(s)
    )
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert e.value.code == "unknown_upstream" and "'nope'" in e.value.message
    c = _by_id(gw, e.value.response.headers["x-gensight-call-id"])
    assert (c["status"], c["error_class"], c["http_status"]) == ("error", "invalid_request", 404)
    assert c["operation"] == "chat" and c["attributes"]["gensight.refusal"] == "unknown_upstream"
    assert c["attempts"] == 0
    for path in ("/openai/chat/completions", "/p/openai/chat/completions", "/openai/v2/x"):
        r = httpx.post(gw.url + path, json={"model": "m"}, headers=_meta(s))
        assert r.status_code == 404, path
        err = r.json()["error"]  # OpenAI's shape, not the web framework's {"detail": …}
        assert set(err) == {"message", "type", "param", "code"} and "detail" not in r.json()
    assert _count(gw, s) == 3  # each once; /openai/v2/x names no call: a span only


def test_bodies_over_the_limit_are_refused_with_413_and_recorded(
    gw: Gateway, upstream: Any
) -> None:
    before = len(upstream.state.log.entries)
    s = _session()
    client = gw.openai(default_headers=_meta(s))
    big = [{"role": "user", "content": "x" * 70_000}]
    with pytest.raises(openai.APIStatusError) as e:  # Content-Length says it at once
        client.chat.completions.create(model="gpt-4o-mini", messages=big)
    assert e.value.status_code == 413 and e.value.code == "request_too_large"
    assert "--max-body" in e.value.message
    c = _by_id(gw, e.value.response.headers["x-gensight-call-id"])
    assert (c["error_class"], c["http_status"]) == ("invalid_request", 413)
    assert c["attributes"]["gensight.refusal"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: found out on the way
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 8192
        yield b'"}]}'

    r = httpx.post(
        f"{gw.url}/openai/v1/chat/completions",
        content=chunks(),
        headers={**_meta(s), "content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert _by_id(gw, r.headers["x-gensight-call-id"])["http_status"] == 413
    assert _count(gw, s) == 2
    assert len(upstream.state.log.entries) == before  # no upstream was asked


def test_missing_wrong_and_unscoped_keys_are_refused_and_recorded(
    upstream: Any, make_gateway: Any
) -> None:
    g = make_gateway(
        upstreams={"openai": upstream.state.url, "anthropic": "anthropic:" + upstream.state.url},
        api_keys=f"admin:{ADMIN},read:{READER}",
    )
    admin = httpx.Client(base_url=g.url, headers={"x-gensight-key": ADMIN})
    s = _session()
    ids = []
    for key, status in ((None, 401), ("gk-wrong-0123456789abcdef", 401), (READER, 403)):
        headers = _meta(s, **{"X-Gensight-App": "checkout"}) | (
            {"x-gensight-key": key} if key else {}
        )
        client = g.openai(default_headers=headers)
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert e.value.status_code == status
        ids.append(e.value.response.headers["x-gensight-call-id"])
    for call_id, code in zip(ids, ("invalid_api_key", "invalid_api_key", "insufficient_scope"),
                             strict=True):  # fmt: skip
        c = _by_id(g, call_id, admin)
        assert (c["error_class"], c["attributes"]["gensight.refusal"]) == ("auth", code)
        # a sender without the key cannot write into a session's (or an app's) figures
        assert c["session"] is None and c["app"] is None
    # a native wire's refusal comes in that wire's shape
    r = httpx.post(f"{g.url}/anthropic/v1/messages", json={"model": "claude"}, headers=_meta(s))
    assert r.status_code == 401
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
    admin.close()


def test_native_routes_take_bodies_as_large_as_openais(upstream: Any, make_gateway: Any) -> None:
    """``/anthropic/…`` and ``/gemini/…`` are the gateway's: --max-body, not the UI's 16 KiB."""
    g = make_gateway(upstreams={"anthropic": "anthropic:http://127.0.0.1:9"})
    r = httpx.post(
        f"{g.url}/anthropic/v1/messages",
        json={
            "model": "claude-sonnet-4",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "z" * 40_000}],
        },  # fmt: skip
        headers={"x-api-key": KEY},
    )
    assert r.status_code == 502  # it went for the upstream (nothing listens there)
    assert r.json()["type"] == "error"


# -------------------------------------------------------------------- uploads


def test_an_upload_larger_than_max_body_is_streamed_to_the_upstream(
    gw: Gateway, upstream: Any
) -> None:
    content = bytes(range(256)) * (3 * 1024 * 4)  # 3 MiB, far over --max-body (64 KiB)
    client = gw.openai(default_headers=_traceparent())
    f = client.files.create(file=("batch.jsonl", io.BytesIO(content)), purpose="batch")
    assert f.bytes == len(content) and f.filename == "batch.jsonl" and f.purpose == "batch"
    ex = upstream.state.log.last("/v1/files")
    assert ex.body["sha256"] == hashlib.sha256(content).hexdigest()  # nothing lost

    # streamed, not buffered: the upstream has bytes before the client sent them all
    seen: list[int] = []
    n0 = len(upstream.state.log.entries)

    def body() -> Iterator[bytes]:
        yield b'--b0undary\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        yield b"Content-Type: application/octet-stream\r\n\r\n" + b"a" * 200_000
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            new = upstream.state.log.entries[n0:]
            if new and new[0].path == "/v1/files" and new[0].received > 0:
                seen.append(new[0].received)
                break
            time.sleep(0.01)
        yield b"b" * 200_000 + b"\r\n--b0undary--\r\n"

    r = httpx.post(
        f"{gw.url}/openai/v1/files",
        content=body(),
        headers={
            "authorization": f"Bearer {KEY}",
            "content-type": "multipart/form-data; boundary=b0undary",
        },
        timeout=20,
    )
    assert r.status_code == 200 and r.json()["bytes"] == 400_000
    assert seen and seen[0] < 400_000


def test_an_upload_over_max_upload_is_refused_in_the_wires_shape_and_recorded(
    gw: Gateway, upstream: Any
) -> None:
    before = len(upstream.state.log.entries)
    client = gw.openai(default_headers=_traceparent())
    with pytest.raises(openai.APIStatusError) as e:
        client.files.create(file=("big.jsonl", io.BytesIO(b"z" * (5 << 20))), purpose="batch")
    assert e.value.status_code == 413 and e.value.code == "request_too_large"
    assert "--max-upload" in e.value.message
    assert len(upstream.state.log.entries) == before  # refused before asking the upstream

    def body() -> Iterator[bytes]:  # no Content-Length: cut off on the way
        yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        for _ in range(5):
            yield b"q" * (1 << 20)

    gateway = gw.app.state.gateway
    submit, handed = gateway.submit, []

    def counting(calls: Any, spans: Any, events: Any) -> bool:
        handed.extend(sp.span_id for sp in spans if sp.kind == "server")
        return submit(calls, spans, events)

    gateway.submit = counting
    tp = _traceparent()
    r = httpx.post(
        f"{gw.url}/openai/v1/files",
        content=body(),
        headers={**tp, "content-type": "multipart/form-data; boundary=b0undary"},
        timeout=20,
    )
    gateway.submit = submit
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert len(handed) == 1  # recorded once, not once by the refusal and again at the end
    deadline = time.monotonic() + 10
    while True:
        refused = [
            sp for sp in gw.trace(TRACE)["spans"]
            if sp["kind"] == "server" and sp["attributes"].get("gensight.refusal")
        ]  # fmt: skip
        if len(refused) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(refused) == 2
    assert {sp["attributes"]["http.response.status_code"] for sp in refused} == {413}
