"""One provider table: the gateway, the SDK and the OTLP mapper name every known host
and alias the same provider, and pricing finds each one's genai-prices id."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.conventions import providers as P
from gensight.receive.gateway.upstreams import Upstream, provider_for
from gensight.receive.otlp.decode import traces_to_records
from gensight.sdk.telemetry import Target
from tests.support.otlp_payloads import record_spans, traces_protobuf

HOSTS = sorted({host for host, _ in P.HOSTS})


def sdk_provider(base_url: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    return Target(client._base_url, client, None, None).provider


def otlp_provider(attributes: dict[str, Any]) -> str | None:
    """What the mapper records for a chat span as openai-v2 sends it."""

    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("chat m") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", "m")
            for k, v in attributes.items():
                span.set_attribute(k, v)

    req = trace_service_pb2.ExportTraceServiceRequest.FromString(
        traces_protobuf(record_spans(build))
    )
    (call,), _, _, _ = traces_to_records(req)
    return call.provider


@pytest.mark.parametrize("host", HOSTS)
def test_gateway_sdk_and_mapper_agree_on_each_known_host(host):
    expected = P.provider_for_host(host)
    assert expected is not None
    url = f"https://{host}/v1"
    gateway = Upstream.from_config("up", url).provider
    assert gateway == expected
    assert sdk_provider(url) == expected
    # OpenAI client instrumentations call every OpenAI-compatible service "openai"
    assert otlp_provider({"gen_ai.system": "openai", "server.address": host}) == expected
    assert otlp_provider({"server.address": host}) == expected
    # a subdomain (Azure resources, regional endpoints) is the same provider
    sub = "myres." + host
    assert provider_for("up", f"https://{sub}/v1") == sdk_provider(f"https://{sub}/v1")
    assert provider_for("up", f"https://{sub}/v1") == expected


@pytest.mark.parametrize("alias", sorted(P.ALIASES))
def test_gateway_and_mapper_agree_on_each_alias(alias):
    expected = P.ALIASES[alias]
    assert P.normalize_provider(alias) == expected
    assert P.normalize_provider(alias.upper()) == expected
    assert otlp_provider({"gen_ai.provider.name": alias}) == expected
    if not alias.startswith("azure"):  # an upstream named azure* is Azure OpenAI
        assert provider_for(alias, "http://127.0.0.1:9/v1") == expected
    # every canonical name is its own alias, and pricing knows its id
    assert P.ALIASES[expected] == expected
    assert P.price_id(alias) == P.PRICE_IDS.get(expected, expected)


def test_a_known_host_wins_over_the_upstream_name_and_unknown_ones_are_kept():
    assert provider_for("kimi", "https://api.deepseek.com/v1") == "deepseek"
    assert provider_for("Acme-LLM", "https://llm.acme.example/v1") == "acme-llm"
    assert P.normalize_provider("  ") is None and P.normalize_provider(None) is None
    assert sdk_provider("https://llm.acme.example/v1") == "openai"  # the client's flavour


def test_price_ids_are_genai_prices_providers():
    from genai_prices.data_snapshot import get_snapshot

    ids = {p.id for p in get_snapshot().providers}
    public = {p for p in set(P.ALIASES.values()) if p not in P.SELF_HOSTED}
    missing = {p for p in public if P.price_id(p) not in ids}
    assert missing == {"ibm.watsonx.ai"}  # the one provider genai-prices does not list


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:11434", True),
        ("localhost", True),
        ("localhost:8000", True),
        ("http://localhost:11434/v1", True),  # OpenLIT's gen_ai.endpoint
        ("::1", True),
        ("[::1]:8080", True),
        ("10.1.2.3", True),
        ("172.16.0.9", True),
        ("192.168.1.20:1234", True),
        ("169.254.10.1", True),
        ("fe80::1%eth0", True),
        ("fd12:3456::1", True),  # fc00::/7
        ("0.0.0.0", True),
        ("gpu-box.local", True),
        ("vllm.svc.internal", True),
        ("::ffff:10.0.0.1", True),
        ("api.openai.com", False),
        ("8.8.8.8", False),
        ("2606:4700::1111", False),
        ("local.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_private_addresses(address, private):
    assert P.is_private_host(P.host_of(address)) is private
    reason = P.self_hosted_reason("openai", address)
    assert reason == ("private_address" if private else None)


def test_self_hosted_providers():
    for name in ("ollama", "vLLM", "llama.cpp", "llama_cpp", "LM Studio", "lmstudio", "localai",
                 "text-generation-inference", "tgi", "sglang"):  # fmt: skip
        assert P.is_self_hosted_provider(name), name
        assert P.self_hosted_reason(name, "api.example.com") == "self_hosted_provider"
    for name in ("openai", "deepseek", "azure", None):
        assert not P.is_self_hosted_provider(name)
