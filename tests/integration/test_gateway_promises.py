"""The gateway keeps its promises (issue 14): real `openai` clients → Gensight → fake
upstreams that behave like the providers named (Azure's stream_options 400, gzipped SSE,
a slow first token after an early role chunk, validation errors as 500, long 429s).

Each test would fail on the gateway before issue 14.
"""

from __future__ import annotations

import json
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
