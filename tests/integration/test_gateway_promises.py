"""The gateway keeps its promises (issue 14): real `openai` clients → Gensight → fake
upstreams that behave like the providers named (Azure's stream_options 400, gzipped SSE,
a slow first token after an early role chunk, validation errors as 500, long 429s).

Each test would fail on the gateway before issue 14.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gensight.demo import ServerThread, UpstreamConfig
from gensight.demo import create_app as upstream_app
from gensight.demo.serve import free_port
from gensight.model.settings import Settings
from tests.integration.test_gateway import KEY, Gateway, _meta, _session

UPSTREAM_KEY = "sk-backup-" + "0therK3y" * 4


@pytest.fixture
def make_upstream() -> Iterator[Any]:
    """Start fake upstreams of the test's own (``app.state.url`` is the ``/v1`` base)."""
    started: list[ServerThread] = []

    def make(**config: Any) -> Any:
        app = upstream_app(UpstreamConfig(retry_after_s=0, **config))
        srv = ServerThread(app).start()
        started.append(srv)
        app.state.url = srv.url + "/v1"
        return app

    yield make
    for srv in started:
        srv.stop()


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
def gw14(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway shared by the tests that need nothing special of it."""
    g = Gateway(
        Settings(
            data_dir=tmp_path_factory.mktemp("gw14"),
            upstreams={"openai": upstream.state.url},
            retry_backoff=0.01,
            flush_interval=0.02,
        )
    )
    yield g
    g.stop()


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


HI = [{"role": "user", "content": "hi"}]


# ---------------------------------------------------------------- 1. fallback and keys


def test_fallback_is_per_upstream_and_uses_the_fallbacks_own_key(
    make_upstream: Any, make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = make_upstream(api_key=UPSTREAM_KEY)
    monkeypatch.setenv("GW14_BACKUP_KEY", UPSTREAM_KEY)
    g = make_gateway(
        upstreams={"openai": _dead_url(), "local": _dead_url(), "backup": backup.state.url},
        fallback={"openai": "backup"},
        upstream_keys={"backup": "GW14_BACKUP_KEY"},
        retries=0,
    )
    s = _session()
    r = g.openai(default_headers=_meta(s)).chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert r.choices[0].message.content
    ex = backup.state.log.last("/v1/chat/completions")
    # the fallback got its own key, never the client's
    assert ex.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert KEY not in json.dumps(ex.headers)
    c = g.call(s)
    assert c["attributes"]["gensight.upstream"] == "backup"
    assert UPSTREAM_KEY not in json.dumps(c)

    # a self-hosted upstream without a configured pair never falls back
    before = len(backup.state.log)
    s2 = _session()
    with pytest.raises(openai.APIError):
        g.openai("local", default_headers=_meta(s2)).chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "confidential plan"}]
        )
    assert len(backup.state.log) == before
    assert g.call(s2)["status"] == "error"


def test_fallback_without_a_key_of_its_own_never_gets_the_clients(
    upstream: Any, make_gateway: Any
) -> None:
    g = make_gateway(
        upstreams={"openai": _dead_url(), "backup": upstream.state.url},
        fallback={"openai": "backup"},
        retries=0,
    )
    s = _session()
    g.openai(default_headers=_meta(s)).chat.completions.create(model="gpt-4o-mini", messages=HI)
    ex = upstream.state.log.last("/v1/chat/completions")
    assert "authorization" not in ex.headers
    assert KEY not in json.dumps(ex.headers)


def test_addressed_upstream_with_a_key_gets_it_in_its_providers_header(
    make_upstream: Any, make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    azure = make_upstream()
    monkeypatch.setenv("GW14_AZURE_KEY", UPSTREAM_KEY)
    g = make_gateway(
        upstreams={"azure": azure.state.url}, upstream_keys={"azure": "GW14_AZURE_KEY"}
    )
    g.openai("azure").chat.completions.create(model="gpt-4o-mini", messages=HI)
    ex = azure.state.log.last("/v1/chat/completions")
    assert ex.headers["api-key"] == UPSTREAM_KEY
    assert "authorization" not in ex.headers


def test_bare_fallback_name_and_missing_key_variable_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FROM=TO"):
        Settings(data_dir=tmp_path, fallback="azure")
    from gensight.web.app import create_app

    with pytest.raises(ValueError, match="GW14_UNSET_VARIABLE is not set"):
        create_app(
            Settings(
                data_dir=tmp_path / "a",
                upstreams={"openai": "http://127.0.0.1:9/v1"},
                upstream_keys={"openai": "GW14_UNSET_VARIABLE"},
            )
        )
    with pytest.raises(ValueError, match="not a configured upstream"):
        create_app(Settings(data_dir=tmp_path / "b", fallback={"openai": "nope"}))


def test_upstreams_file(make_upstream: Any, make_gateway: Any, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    backup = make_upstream(api_key=UPSTREAM_KEY)
    monkeypatch.setenv("GW14_FILE_KEY", UPSTREAM_KEY)
    f = tmp_path / "upstreams.toml"
    f.write_text(
        f'[upstreams.openai]\nurl = "{_dead_url()}"\nfallback = "backup"\n\n'
        f'[upstreams.backup]\nurl = "{backup.state.url}"\nkey_env = "GW14_FILE_KEY"\n'
    )
    g = make_gateway(upstreams_file=f, retries=0)
    r = g.openai().chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert r.choices[0].message.content
    assert backup.state.log.last().headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


# ---------------------------------------------------------------- 2. stream_options


def test_upstream_rejecting_stream_options_is_asked_again_without_and_remembered(
    make_upstream: Any, make_gateway: Any
) -> None:
    azure = make_upstream(reject_stream_options=True)
    g = make_gateway(upstreams={"azure": azure.state.url})
    for _ in range(2):
        s = _session()
        stream = g.openai("azure", default_headers=_meta(s)).chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        assert text
        c = g.call(s)
        assert c["status"] == "ok" and c["tokens_estimated"] is True
        assert c["input_tokens"] > 0 and c["output_tokens"] > 0
    bodies = [ex.body for ex in azure.state.log if ex.path == "/v1/chat/completions"]
    # first call: rejected, then asked as the client did; second: asked plainly at once
    assert ["stream_options" in b for b in bodies] == [True, False, False]


def test_gzipped_stream_loses_the_usage_chunk_the_client_did_not_ask_for(
    make_upstream: Any, make_gateway: Any
) -> None:
    up = make_upstream(gzip_sse=True)
    g = make_gateway(upstreams={"openai": up.state.url})
    s = _session()
    stream = g.openai(default_headers=_meta(s)).chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True
    )
    # the usual loop: a `choices: []` chunk would raise IndexError here
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    ex = up.state.log.last("/v1/chat/completions")
    assert ex.headers["accept-encoding"] and "gzip" in ex.headers["accept-encoding"]
    assert text == "".join(e["choices"][0]["delta"].get("content") or ""
                           for e in ex.events() if e["choices"])  # fmt: skip
    c = g.call(s)
    assert c["tokens_estimated"] is False
    assert c["output_tokens"] == ex.usage["completion_tokens"]


@pytest.mark.parametrize("path", ["chat/completions", "completions"])
def test_stream_without_include_usage_reaches_the_client_as_direct(
    upstream: Any, make_gateway: Any, path: str
) -> None:
    g = make_gateway(upstreams={"openai": upstream.state.url})
    body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": True}
    if path == "completions":
        body = {**body, "model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
    else:
        body["messages"] = HI

    def events(base: str) -> list[dict[str, Any]]:
        with httpx.stream(
            "POST", f"{base}/{path}", json=body, headers={"x-gensight-session": s}
        ) as r:
            raw = r.read()
        return [json.loads(p[6:]) for p in raw.decode().split("\n\n") if p.startswith("data: {")]

    s = _session()
    direct = events(upstream.state.url)
    via = events(f"{g.url}/openai/v1")
    assert [sorted(e) for e in via] == [sorted(e) for e in direct]
    assert all("usage" not in e for e in via)
    # the gateway still asked for usage, and recorded it
    assert upstream.state.log.last().body["stream_options"] == {"include_usage": True}
    c = g.call(s)
    assert c["tokens_estimated"] is False
    assert c["output_tokens"] == upstream.state.log.last().usage["completion_tokens"]


# ---------------------------------------------------------------- 3. TTFT


@pytest.mark.parametrize("kind", ["chat", "chat-tools", "responses"])
def test_ttft_is_the_first_token_not_the_first_byte(gw14: Gateway, kind: str) -> None:
    s = _session()
    client = gw14.openai(default_headers={**_meta(s), "x-fake-first-token-ms": "600"})
    started = time.perf_counter()
    if kind == "responses":
        stream: Any = client.responses.create(model="gpt-4o-mini", input="hi", stream=True)
        first_text = next(e for e in stream if e.type == "response.output_text.delta")
    else:
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "user", "content": "weather in Paris?" if "tools" in kind else "hi"}
            ],
            stream=True,
            **({"tools": tools} if "tools" in kind else {}),
        )
        first_text = next(
            ch for ch in stream
            if ch.choices and (ch.choices[0].delta.content
                               or (ch.choices[0].delta.tool_calls or [None])[0]
                               and ch.choices[0].delta.tool_calls[0].function.arguments)
        )  # fmt: skip
    seen_ms = (time.perf_counter() - started) * 1000
    assert first_text
    for _ in stream:
        pass
    c = gw14.call(s)
    # the early role chunk / response.created came at once; the first token after 600 ms
    assert 600 <= c["ttft_ms"] <= seen_ms


# ---------------------------------------------------------------- 4. error classes


def test_validation_error_sent_as_500_is_invalid_request_and_not_retried(
    gw14: Gateway, upstream: Any
) -> None:
    s = _session()
    before = len(upstream.state.log)
    client = gw14.openai(default_headers=_meta(s), max_retries=2)  # the SDK's default
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="fake-500-validation", messages=HI)
    assert e.value.response.headers["x-should-retry"] == "false"
    assert len(upstream.state.log) == before + 1  # neither the gateway nor the SDK retried
    c = gw14.call(s)
    assert (c["error_class"], c["http_status"], c["attempts"]) == ("invalid_request", 500, 1)


@pytest.mark.parametrize(
    ("model", "error_class", "code"),
    [
        ("fake-400-context", "invalid_request", "context_length_exceeded"),
        ("fake-400-filter", "invalid_request", "content_filter"),
        ("fake-429-quota", "rate_limit", "insufficient_quota"),
    ],
)
def test_provider_error_codes_are_kept(
    gw14: Gateway, model: str, error_class: str, code: str
) -> None:
    s = _session()
    with pytest.raises(openai.APIStatusError):
        gw14.openai(default_headers=_meta(s)).chat.completions.create(model=model, messages=HI)
    c = gw14.call(s)
    assert (c["error_class"], c["attributes"]["gensight.error_code"]) == (error_class, code)


def test_upstream_dying_mid_stream_reaches_the_client_as_it_would_directly(
    gw14: Gateway, upstream: Any
) -> None:
    def fail(base_url: str) -> BaseException:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True,
            extra_headers={**_meta(s), "x-fake-disconnect-after": "3"},
        )  # fmt: skip
        with pytest.raises(Exception) as e:
            for _ in stream:
                pass
        return e.value

    s = _session()
    direct = fail(upstream.state.url)
    via = fail(f"{gw14.url}/openai/v1")
    assert type(via) is type(direct)
    assert not isinstance(via, openai.APIStatusError)
    c = gw14.call(s)
    assert c["error_class"] == "connection"
    assert "aiohttp" not in c["error_message"] and "Error:" not in c["error_message"]


def test_connection_refused_names_the_upstream_without_client_internals(make_gateway: Any) -> None:
    g = make_gateway(upstreams={"openai": _dead_url()}, retries=0)
    with pytest.raises(openai.APIError) as e:
        g.openai().chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert "could not connect to 127.0.0.1:" in str(e.value)
    assert not any(w in str(e.value) for w in ("aiohttp", "ClientConnectorError", "ssl:"))


# ---------------------------------------------------------------- 5. retries


def test_persistent_429_makes_three_upstream_requests_not_nine(
    gw14: Gateway, upstream: Any
) -> None:
    s = _session()
    client = gw14.openai(max_retries=2)  # the SDK's default
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, extra_headers={**_meta(s), "x-fake-status": "429"}
        )
    assert e.value.response.headers["x-should-retry"] == "false"
    c = gw14.call(s)  # one record: the SDK did not come back for more
    assert (c["error_class"], c["attempts"]) == ("rate_limit", 3)


def test_long_retry_after_goes_to_the_client_at_once(gw14: Gateway) -> None:
    s = _session()
    client = gw14.openai(max_retries=0, timeout=5)
    started = time.perf_counter()
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HI,
            extra_headers={**_meta(s), "x-fake-status": "429", "x-fake-retry-after": "20"},
        )
    assert time.perf_counter() - started < 3
    assert e.value.response.headers["retry-after"] == "20"
    # nothing retried yet: the client's SDK may honour Retry-After itself
    assert "x-should-retry" not in e.value.response.headers
    assert gw14.call(s)["attempts"] == 1


# ---------------------------------------------------------------- 6. abandoned calls


def test_client_timing_out_on_a_non_streamed_call_cancels_it(gw14: Gateway, upstream: Any) -> None:
    s = _session()
    client = gw14.openai(max_retries=0, timeout=1.0)
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HI,
            extra_headers={**_meta(s), "x-fake-latency-ms": "4000"},
        )
    c = gw14.call(s)
    assert (c["status"], c["error_class"]) == ("error", "cancelled")
    assert c["duration_ms"] < 2500  # not the 4 s the upstream would have taken
    ex = upstream.state.log.last("/v1/chat/completions")
    deadline = time.monotonic() + 3
    while not ex.abandoned and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ex.abandoned  # the gateway hung up on the upstream too
    assert time.perf_counter() - started < 4


# ---------------------------------------------------------------- 7. budgets see who calls


def _block(g: Gateway, **filters: str) -> str:
    rule = {"name": "cap", "measure": "cost_usd", "window": "1h", "filters": filters,
            "op": ">", "threshold": 0.0000001, "action": "block"}  # fmt: skip
    r = g.api.post("/api/alert-rules", json=rule)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _wait_firing(g: Gateway, rule_id: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        g.app.state.pipeline.flush()
        (st,) = [a for a in g.api.get("/api/alerts").json() if a["rule_id"] == rule_id]
        if st["state"] == "firing":
            return
        time.sleep(0.1)
    raise AssertionError(f"rule {rule_id} never fired")


def test_per_user_budget_sees_the_openai_user_field(upstream: Any, make_gateway: Any) -> None:
    g = make_gateway(upstreams={"openai": upstream.state.url}, alert_interval=0.2)
    rule_id = _block(g, user="intern")
    client = g.openai()
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, user="intern")
    _wait_firing(g, rule_id)
    with pytest.raises(openai.RateLimitError, match="Budget exceeded"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, user="intern")
    with pytest.raises(openai.RateLimitError, match="Budget exceeded"):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, safety_identifier="intern")
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, user="someone-else")


def test_a_key_bound_to_an_app_cannot_rename_itself_out_of_its_budget(
    upstream: Any, make_gateway: Any
) -> None:
    bound, other = "ingest-checkout-" + "k" * 20, "ingest-free-" + "f" * 20
    g = make_gateway(
        upstreams={"openai": upstream.state.url},
        alert_interval=0.2,
        api_keys=f"ingest@checkout:{bound},ingest:{other},admin:admin-key-{'a' * 20}",
    )
    g.api.headers["X-Gensight-Key"] = f"admin-key-{'a' * 20}"
    rule_id = _block(g, app="checkout")

    def client(key: str, app: str) -> openai.OpenAI:
        return g.openai(default_headers={"X-Gensight-Key": key, "X-Gensight-App": app})

    s = _session()
    client(bound, "renamed").chat.completions.create(
        model="gpt-4o-mini", messages=HI, extra_headers={"X-Gensight-Session": s}
    )
    assert g.call(s)["app"] == "checkout"  # whatever the header said
    _wait_firing(g, rule_id)
    with pytest.raises(openai.RateLimitError, match="Budget exceeded"):
        client(bound, "something-else").chat.completions.create(model="gpt-4o-mini", messages=HI)
    # an unbound key's calls are the app its header names
    client(other, "shop").chat.completions.create(model="gpt-4o-mini", messages=HI)


def test_otlp_sent_with_a_bound_key_is_that_apps(make_gateway: Any) -> None:
    from tests.support.otlp_payloads import hex_trace_id, record_spans, traces_protobuf

    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o-mini",
                                 "gen_ai.usage.input_tokens": 10,
                                 "gen_ai.usage.output_tokens": 5})  # fmt: skip

    key = "ingest-checkout-" + "k" * 20
    g = make_gateway(api_keys=f"ingest@checkout:{key},read:read-key-{'r' * 20}")
    spans = record_spans(build, service="other-app")
    body, trace_id = traces_protobuf(spans), hex_trace_id(spans[0])
    r = g.api.post(
        "/v1/traces",
        content=body,
        headers={"X-Gensight-Key": key, "content-type": "application/x-protobuf"},
    )
    assert r.status_code == 200, r.text
    g.api.headers["X-Gensight-Key"] = f"read-key-{'r' * 20}"
    deadline = time.monotonic() + 10
    while not (t := g.api.get(f"/api/traces/{trace_id}")).is_success:
        assert time.monotonic() < deadline
        g.app.state.pipeline.flush()
        time.sleep(0.05)
    assert {c["app"] for c in t.json()["calls"]} == {"checkout"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_whole_answer_reaches_the_client_only_once_its_call_is_journaled(
    upstream: Any, make_gateway: Any, stream: bool
) -> None:
    """A client that has a whole answer has a call that survives a crash right after (a
    SIGKILL, the OOM killer): the gateway journals the record before the answer's last
    byte. Here the journal write is slow (a busy disk): the client must not get the end
    of its answer before that write is done."""
    g = make_gateway(upstreams={"openai": upstream.state.url})
    journal = g.app.state.pipeline.journal
    real_append = journal.append
    journaled: list[str] = []

    def slow_append(kind: str, payload: bytes):
        time.sleep(0.3)
        entry = real_append(kind, payload)
        journaled.append(kind)
        return entry

    journal.append = slow_append
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "stream": stream}  # fmt: skip
    with httpx.Client(base_url=g.url, timeout=10) as c:
        r = c.post("/openai/v1/chat/completions", json=body,
                   headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
        assert r.status_code == 200
        assert len(journaled) == 1  # in the journal before the answer was whole
        if stream:
            assert r.text.rstrip().endswith("data: [DONE]")
        else:
            assert r.json()["choices"][0]["message"]["content"]
