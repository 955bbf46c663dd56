"""Azure OpenAI through the gateway (issue 14.9): the real ``openai.AzureOpenAI`` client at
``azure_endpoint=http://GATEWAY/azure/NAME`` reaches ``--upstream NAME=https://RES…``
(here the fake Azure resource); deployment and api-version are record fields and
filters; unknown deployments, upstreams and paths answer in OpenAI's error shape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gensight.demo import ServerThread
from gensight.demo.upstream.azure import create_azure_app
from gensight.model.settings import Settings
from tests.integration.test_gateway import Gateway, _meta, _session

AZURE_KEY = "az-" + "0123456789abcdef" * 2
HI = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def azure() -> Iterator[Any]:
    app = create_azure_app(api_key=AZURE_KEY)
    with ServerThread(app) as srv:
        app.state.url = srv.url
        yield app


@pytest.fixture(scope="module")
def gw(azure: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Settings(
            data_dir=tmp_path_factory.mktemp("gw-azure"),
            upstreams={"azure": azure.state.url, "eastus": azure.state.url + "/openai"},
            retry_backoff=0.01,
            flush_interval=0.02,
        )
    )
    yield g
    g.stop()


def _client(g: Gateway, session: str, name: str = "azure", **kw: Any) -> openai.AzureOpenAI:
    kw.setdefault("api_version", "2024-10-21")
    return openai.AzureOpenAI(
        azure_endpoint=f"{g.url}/azure/{name}",
        api_key=AZURE_KEY,
        max_retries=0,
        default_headers=_meta(session),
        **kw,
    )


def test_azure_openai_client_chat_streamed_and_not(gw: Gateway, azure: Any) -> None:
    s = _session()
    client = _client(gw, s)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert r.model == "gpt-4o-mini-2024-07-18" and r.choices[0].message.content
    text = ""
    for chunk in client.chat.completions.create(model="chat-prod", messages=HI, stream=True):
        if chunk.choices:  # Azure's first chunk holds only the prompt's filter results
            text += chunk.choices[0].delta.content or ""
    assert text
    ex = azure.state.log.last("/v1/chat/completions")
    assert ex.headers["api-key"] == AZURE_KEY  # the client's key reached its upstream
    plain, streamed = gw.calls(s, 2)
    assert (plain["deployment"], plain["api_version"]) == ("gpt-4o-mini", "2024-10-21")
    assert plain["provider"] == "azure.ai.openai"
    assert plain["response_model"] == "gpt-4o-mini-2024-07-18"
    assert plain["input_tokens"] > 0 and plain["tokens_estimated"] is False
    assert streamed["deployment"] == "chat-prod" and streamed["stream"] is True
    assert streamed["response_model"] == "gpt-4o-2024-08-06"
    assert streamed["output_tokens"] == ex.usage["completion_tokens"]
    assert streamed["tokens_estimated"] is False  # 2024-10-21 takes stream_options
    assert streamed["upstream_request_id"]  # Azure's apim-request-id / x-request-id
    # the deployment and api-version are filters, on the API and the overview
    for params in ({"deployment": "chat-prod"}, {"api_version": "2024-10-21"}):
        items = gw.api.get("/api/calls", params={"session": s, **params}).json()["items"]
        assert len(items) == (1 if "deployment" in params else 2)
    page = gw.api.get(f"/calls/{streamed['id']}").text  # the call's page names them too
    assert 'href="/calls?deployment=chat-prod"' in page and "2024-10-21" in page
    assert streamed["upstream_request_id"] in page
    overview = gw.api.get("/api/stats/overview", params={"deployment": "gpt-4o-mini"})
    assert overview.status_code == 200 and overview.json()["totals"]["calls"] >= 1


def test_older_api_version_rejecting_stream_options_still_streams(gw: Gateway) -> None:
    s = _session()
    client = _client(gw, s, "eastus", api_version="2024-06-01")  # URL ending in /openai
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    c = gw.call(s)
    assert c["status"] == "ok" and c["api_version"] == "2024-06-01"
    assert c["tokens_estimated"] is True and c["output_tokens"] > 0


def test_embeddings_and_responses_name_their_deployment(gw: Gateway) -> None:
    s = _session()
    client = _client(gw, s, api_version="2025-03-01-preview")
    e = client.embeddings.create(model="embed", input="hello")
    assert len(e.data[0].embedding) > 0
    r = client.responses.create(model="gpt-4o-mini", input="Say hi")
    assert r.output_text
    emb, resp = gw.calls(s, 2)
    assert (emb["operation"], emb["deployment"]) == ("embeddings", "embed")
    assert (resp["operation"], resp["deployment"]) == ("responses", "gpt-4o-mini")
    assert resp["api_version"] == "2025-03-01-preview"


def test_unknown_deployment_upstream_and_path_answer_in_openais_shape(gw: Gateway) -> None:
    s = _session()
    with pytest.raises(openai.NotFoundError) as e:
        _client(gw, s).chat.completions.create(model="nope", messages=HI)
    assert e.value.code == "DeploymentNotFound"  # Azure's own answer, passed through
    with pytest.raises(openai.NotFoundError) as e:
        _client(gw, s, "westeu").chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert e.value.code == "unknown_upstream" and "'westeu'" in e.value.message
    for path in ("/azure/azure", "/azure/azure/", "/azure/"):
        r = httpx.post(gw.url + path, json={}, headers=_meta(s))
        assert r.status_code == 404, path
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.post(  # no api-version: Azure's 404
        f"{gw.url}/azure/azure/openai/deployments/gpt-4o-mini/chat/completions",
        json={"messages": HI},
        headers={"api-key": AZURE_KEY},
    )
    assert r.status_code == 404 and r.json()["error"]["message"] == "Resource not found"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gw.app.state.pipeline.flush()
        items = gw.api.get("/api/calls", params={"session": s}).json()["items"]
        if len(items) >= 2:
            break
        time.sleep(0.05)
    by_dep = {c.get("deployment"): c for c in items}
    assert by_dep["nope"]["http_status"] == 404
    assert by_dep["nope"]["error_class"] == "invalid_request"
