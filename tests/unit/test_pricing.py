"""Pricing: our costs against genai-prices' own ``calc_price``, overrides, fallbacks."""

from __future__ import annotations

import random
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from genai_prices import types as gp_types
from genai_prices.data import providers as gp_providers

from gensight.enrich.pricing import Pricer, plan_from_model_price
from gensight.model.records import CallRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TS = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return Pricer()


def expected(
    model: str,
    provider_id: str | None,
    *,
    input_tokens: int = 0,
    output_tokens: int | None = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    ts: datetime = TS,
) -> float:
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens or 0}
    if cache_read_tokens:
        usage["cache_read_tokens"] = cache_read_tokens
    if cache_write_tokens:
        usage["cache_write_tokens"] = cache_write_tokens
    if reasoning_tokens:
        usage["output_reasoning_tokens"] = reasoning_tokens
    calc = calc_price(Usage(**usage), model, provider_id=provider_id, genai_request_timestamp=ts)
    return float(calc.total_price)


def call(**kw) -> CallRecord:
    base = dict(
        id="c1",
        trace_id="t" * 32,
        span_id="s" * 16,
        ts=TS,
        duration_ms=100.0,
        source="otlp",
    )
    base.update(kw)
    return CallRecord(**base)


# (gensight provider, model, genai-prices provider id, usage)
REAL = [
    ("openai", "gpt-4o-mini", "openai", dict(input_tokens=1200, output_tokens=300)),
    ("openai", "gpt-4o-mini-2024-07-18", "openai", dict(input_tokens=1200, output_tokens=300)),
    (
        "openai",
        "gpt-4o",
        "openai",
        dict(input_tokens=5000, output_tokens=400, cache_read_tokens=3072),
    ),
    (
        "openai",
        "o3-mini",
        "openai",
        dict(input_tokens=900, output_tokens=2000, reasoning_tokens=1500),
    ),
    (
        "openai",
        "o1-2024-12-17",
        "openai",
        dict(input_tokens=900, output_tokens=5000, reasoning_tokens=4000),
    ),
    ("openai", "text-embedding-3-small", "openai", dict(input_tokens=800, output_tokens=None)),
    (None, "text-embedding-3-large", "openai", dict(input_tokens=800, output_tokens=None)),
    (
        "deepseek",
        "deepseek-chat",
        "deepseek",
        dict(input_tokens=10_000, output_tokens=700, cache_read_tokens=6000),
    ),
    (
        "deepseek",
        "deepseek-reasoner",
        "deepseek",
        dict(input_tokens=500, output_tokens=4000, reasoning_tokens=3500),
    ),
    ("azure.ai.openai", "gpt-4o-2024-08-06", "azure", dict(input_tokens=3000, output_tokens=100)),
    (
        "azure",
        "gpt-4o-mini",
        "azure",
        dict(input_tokens=3000, output_tokens=100, cache_read_tokens=1024),
    ),
    (
        "anthropic",
        "claude-3-5-sonnet-20241022",
        "anthropic",
        dict(
            input_tokens=20_000, output_tokens=500, cache_read_tokens=8000, cache_write_tokens=4000
        ),
    ),
    # tiered: over 200k input tokens the whole call pays the higher rate
    (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "anthropic",
        dict(
            input_tokens=250_000,
            output_tokens=1000,
            cache_read_tokens=100_000,
            cache_write_tokens=50_000,
        ),
    ),
    ("gcp.gemini", "gemini-1.5-pro", "google", dict(input_tokens=150_000, output_tokens=1000)),
    ("gcp.vertex_ai", "gemini-2.0-flash", "google", dict(input_tokens=1000, output_tokens=1000)),
    (
        "aws.bedrock",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "aws",
        dict(input_tokens=1000, output_tokens=50),
    ),
    ("mistral_ai", "mistral-large-latest", "mistral", dict(input_tokens=1000, output_tokens=50)),
    ("x_ai", "grok-3", "x-ai", dict(input_tokens=1000, output_tokens=50, cache_read_tokens=500)),
    (
        "moonshot_ai",
        "kimi-k2-0905-preview",
        "moonshotai",
        dict(input_tokens=1000, output_tokens=50),
    ),
    ("groq", "llama-3.3-70b-versatile", "groq", dict(input_tokens=1000, output_tokens=50)),
    # per-request fee
    ("perplexity", "sonar", "perplexity", dict(input_tokens=1000, output_tokens=50)),
    # reasoning tokens at their own rate
    (
        "perplexity",
        "sonar-deep-research",
        "perplexity",
        dict(input_tokens=1000, output_tokens=5000, reasoning_tokens=4000),
    ),
]


@pytest.mark.parametrize(("provider", "model", "gp_id", "usage"), REAL)
def test_cost_matches_genai_prices(pricer, provider, model, gp_id, usage):
    want = expected(model, gp_id, **usage)
    assert want > 0
    got, source = pricer.cost(provider=provider, model=model, ts=TS, **usage)
    assert source == "computed"
    assert got == pytest.approx(want, rel=1e-12)

    # and through a record, with the same model as the response model
    c = call(provider=provider, request_model=model, response_model=model, **usage)
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (got, "computed")


@pytest.mark.parametrize("hour", [3, 12, 20])
def test_time_of_day_prices(pricer, hour):
    """DeepSeek's off-peak discount: the call's start time picks the price."""
    ts = datetime(2025, 6, 2, hour, 0, tzinfo=UTC)
    usage = dict(input_tokens=10_000, output_tokens=1000, cache_read_tokens=2000)
    c = call(provider="deepseek", request_model="deepseek-chat", ts=ts, **usage)
    pricer.price(c)
    assert c.cost_usd == pytest.approx(expected("deepseek-chat", "deepseek", ts=ts, **usage))


def test_cache_reads_and_reasoning_are_inside_the_totals(pricer):
    base, _ = pricer.cost(provider="openai", model="gpt-4o", input_tokens=10_000, output_tokens=0)
    cached, _ = pricer.cost(
        provider="openai",
        model="gpt-4o",
        input_tokens=10_000,
        output_tokens=0,
        cache_read_tokens=10_000,
    )
    assert base == pytest.approx(10_000 * 2.5 / 1e6)
    assert cached == pytest.approx(10_000 * 1.25 / 1e6)  # all cached: half price, not extra
    plain, _ = pricer.cost(provider="openai", model="o3-mini", input_tokens=0, output_tokens=1000)
    reasoned, _ = pricer.cost(
        provider="openai", model="o3-mini", input_tokens=0, output_tokens=1000, reasoning_tokens=900
    )
    assert plain == reasoned  # reasoning tokens are output tokens, not on top of them


def test_inconsistent_counts_do_not_fail(pricer):
    # more cached than input tokens (a producer that reports uncached input only)
    got, source = pricer.cost(
        provider="openai", model="gpt-4o", input_tokens=100, output_tokens=0, cache_read_tokens=1000
    )
    assert source == "computed"
    assert got == pytest.approx(
        expected("gpt-4o", "openai", input_tokens=1000, cache_read_tokens=1000)
    )


def test_response_model_first_then_request_model(pricer):
    c = call(
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o-mini-2024-07-18",
        input_tokens=1000,
        output_tokens=100,
    )
    pricer.price(c)
    assert c.cost_usd == pytest.approx(
        expected("gpt-4o-mini", "openai", input_tokens=1000, output_tokens=100)
    )

    # Azure: the request "model" is a deployment name; the response names the model
    c = call(
        provider="azure.ai.openai",
        request_model="prod-chat",
        response_model="gpt-4o-2024-08-06",
        input_tokens=1000,
        output_tokens=100,
    )
    pricer.price(c)
    assert c.cost_source == "computed"
    assert c.cost_usd == pytest.approx(
        expected("gpt-4o", "azure", input_tokens=1000, output_tokens=100)
    )

    # response model unknown to the price data: the request model is used
    c = call(
        provider="openai",
        request_model="gpt-4o-mini",
        response_model="some-gateway-alias",
        input_tokens=1000,
        output_tokens=100,
    )
    pricer.price(c)
    assert c.cost_usd == pytest.approx(
        expected("gpt-4o-mini", "openai", input_tokens=1000, output_tokens=100)
    )


@pytest.mark.parametrize(
    ("provider", "model", "gp_id"),
    [
        ("OpenAI", "gpt-4o", "openai"),  # OpenInference / OpenLLMetry spelling
        ("openai", "GPT-4o", "openai"),
        ("Azure", "gpt-4o-mini", "azure"),
        ("azure_openai", "gpt-4o-mini", "azure"),  # OpenLIT
        ("Anthropic", "claude-3-5-haiku-latest", "anthropic"),
        ("gcp.gen_ai", "gemini-2.5-flash", "google"),
        ("vertexai", "gemini-2.0-flash", "google"),
        ("Mistral AI", "mistral-large-latest", "mistral"),
        ("mistralai", "mistral-large-latest", "mistral"),
        ("xai", "grok-3", "x-ai"),
        ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together"),
        # unknown or missing provider: genai-prices matches the model name
        (None, "claude-3-haiku", "anthropic"),
        (None, "gpt-4o-mini-2024-07-18", "openai"),
        ("", "deepseek-chat", "deepseek"),
        ("some-new-cloud", "gemini-2.0-flash", "google"),
        (None, "openai/gpt-4o", "openai"),  # vendor/model spelling
        ("litellm", "anthropic/claude-3-haiku", "anthropic"),
        # OpenAI client instrumentations call every OpenAI-compatible service "openai"
        ("openai", "deepseek-chat", "deepseek"),
        ("openai", "kimi-k2-0905-preview", "moonshotai"),
    ],
)
def test_provider_names(pricer, provider, model, gp_id):
    got, source = pricer.cost(
        provider=provider, model=model, input_tokens=1000, output_tokens=1000, ts=TS
    )
    assert source == "computed"
    bare = model.split("/", 1)[1] if "/" in model and gp_id != "together" else model
    assert got == pytest.approx(expected(bare, gp_id, input_tokens=1000, output_tokens=1000))


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "my-finetune-that-does-not-exist"),
        (None, "llama3"),
        ("groq", "gpt-4o"),  # a known provider that does not sell this model
        ("ollama", "gpt-oss:20b"),  # self-hosted: public prices do not apply
        ("vllm", "gpt-4o"),
        ("openai", None),
        ("openai", "whisper-1"),  # priced per minute of audio, not per token
    ],
)
def test_unknown(pricer, provider, model):
    assert pricer.cost(provider=provider, model=model, input_tokens=10, output_tokens=10) == (
        None,
        "unknown",
    )
    c = call(provider=provider, request_model=model, input_tokens=10, output_tokens=10)
    c.cost_usd = 0.0  # whatever was there is replaced
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (None, "unknown")


def test_no_usage_is_unknown(pricer):
    assert pricer.cost(
        provider="openai", model="gpt-4o", input_tokens=None, output_tokens=None
    ) == (
        None,
        "unknown",
    )
    c = call(provider="openai", request_model="gpt-4o")
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (None, "unknown")
    # only one side reported: still priced
    got, source = pricer.cost(
        provider="openai", model="gpt-4o", input_tokens=None, output_tokens=100
    )
    assert (got, source) == (pytest.approx(100 * 10 / 1e6), "computed")


def test_reported_fallback(pricer):
    c = call(
        provider="acme",
        request_model="acme-internal-model-7",
        input_tokens=10,
        output_tokens=5,
        reported_cost_usd=0.0123,
    )
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (0.0123, "reported")

    # a self-hosted server's "reported" cost comes from a public list too: not used
    c = call(
        provider="ollama",
        request_model="llama3",
        input_tokens=10,
        output_tokens=5,
        reported_cost_usd=0.0123,
    )
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (None, "unknown")
    assert c.attributes["gensight.cost_reason"] == "self_hosted"

    c = call(provider="openai", request_model="gpt-4o", reported_cost_usd=0.5)  # no usage
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (0.5, "reported")

    # our price data wins over the producer's figure
    c = call(
        provider="openai",
        request_model="gpt-4o",
        input_tokens=1000,
        output_tokens=0,
        reported_cost_usd=9.0,
    )
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (pytest.approx(0.0025), "computed")


# -- overrides -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def custom() -> Pricer:
    return Pricer(FIXTURES / "prices.toml")


def test_override_new_model(custom):
    got, source = custom.cost(
        provider="vllm", model="my-llama-70b", input_tokens=1_000_000, output_tokens=500_000
    )
    assert source == "override"
    assert got == pytest.approx(0.6 + 0.4)
    c = call(provider=None, request_model="My-Llama-70B", input_tokens=2_000_000, output_tokens=0)
    custom.price(c)
    assert (c.cost_usd, c.cost_source) == (pytest.approx(1.2), "override")


def test_override_cache_rates(custom):
    # 1M input of which 400k cache reads and 100k cache writes, 0 output
    got, source = custom.cost(
        provider=None,
        model="my-llama-70b",
        input_tokens=1_000_000,
        output_tokens=0,
        cache_read_tokens=400_000,
        cache_write_tokens=100_000,
    )
    assert source == "override"
    assert got == pytest.approx(0.5 * 0.6 + 0.4 * 0.06 + 0.1 * 0.75)


def test_override_known_model_for_one_provider(custom):
    # openai's gpt-4o, also as a dated snapshot (matched through genai-prices' model id)
    for model in ("gpt-4o", "gpt-4o-2024-08-06"):
        got, source = custom.cost(
            provider="OpenAI", model=model, input_tokens=1_000_000, output_tokens=1_000_000
        )
        assert (got, source) == (pytest.approx(10.0), "override")
    # provider unknown: genai-prices matches the model to openai, so the override applies
    assert custom.cost(provider=None, model="gpt-4o", input_tokens=1_000_000, output_tokens=0) == (
        pytest.approx(2.0),
        "override",
    )
    # the same model on Azure keeps the price data's price
    got, source = custom.cost(
        provider="azure.ai.openai", model="gpt-4o", input_tokens=1_000_000, output_tokens=0
    )
    assert source == "computed"
    assert got == pytest.approx(expected("gpt-4o", "azure", input_tokens=1_000_000))
    # models the file does not list are unaffected
    got, source = custom.cost(
        provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=0
    )
    assert source == "computed"
    # cache reads of an override without cache_read are charged at the input rate
    assert custom.cost(
        provider="openai",
        model="gpt-4o",
        input_tokens=1_000_000,
        output_tokens=0,
        cache_read_tokens=500_000,
    ) == (pytest.approx(2.0), "override")


def test_override_provider_list(custom):
    for provider in ("ollama", "vllm"):
        assert custom.cost(
            provider=provider, model="local-qwen", input_tokens=1_000_000, output_tokens=0
        ) == (
            pytest.approx(0.05),
            "override",
        )
    assert custom.cost(
        provider="llama.cpp", model="local-qwen", input_tokens=10, output_tokens=0
    ) == (
        None,
        "unknown",
    )


def test_override_beats_reported(custom):
    c = call(
        provider="vllm",
        request_model="my-llama-70b",
        input_tokens=1_000_000,
        output_tokens=0,
        reported_cost_usd=7.0,
    )
    custom.price(c)
    assert (c.cost_usd, c.cost_source) == (pytest.approx(0.6), "override")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[models."m"]\ninput = 1\n', r'\[models\."m"\]: missing "output"'),
        ('[models."m"]\noutput = 1\n', r'\[models\."m"\]: missing "input"'),
        (
            '[models."m"]\ninput = -1\noutput = 1\n',
            r'\[models\."m"\]: "input" must be a non-negative number',
        ),
        ('[models."m"]\ninput = "0.5"\noutput = 1\n', r'\[models\."m"\]: "input" must be'),
        ('[models."m"]\ninput = 1\noutput = true\n', r'\[models\."m"\]: "output" must be'),
        ('[models."m"]\ninput = 1\noutput = nan\n', r'\[models\."m"\]: "output" must be'),
        ('[models."m"]\ninput = 1\noutput = 1\ncache_read = -0.1\n', r'"cache_read" must be'),
        (
            '[models."m"]\ninput = 1\noutput = 1\ncached = 0.1\n',
            r'\[models\."m"\]: unknown key "cached"',
        ),
        (
            '[models."m"]\ninput = 1\noutput = 1\nprovider = 3\n',
            r'\[models\."m"\]: "provider" must be',
        ),
        ('[models."m"]\ninput = 1\noutput = 1\nprovider = []\n', r'"provider" must be'),
        (
            '[models."M"]\ninput = 1\noutput = 1\n[models."m"]\ninput = 1\noutput = 1\n',
            "listed twice",
        ),
        ("[models]\nm = 3\n", r'\[models\."m"\]: must be a table'),
        ('[model."m"]\ninput = 1\noutput = 1\n', 'unknown top-level key "model"'),
        ("models = 3\n", '"models" must be a table'),
        ('[models."m"\ninput = 1\n', "invalid TOML"),
    ],
)
def test_bad_overrides(tmp_path, text, message):
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        Pricer(path)
    assert str(path) in str(e.value)


def test_missing_overrides_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        Pricer(tmp_path / "nope.toml")


def test_empty_overrides_file(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text("# nothing yet\n")
    assert (
        Pricer(path).cost(provider="openai", model="gpt-4o", input_tokens=1, output_tokens=1)[1]
        == "computed"
    )


# -- offline, fast, faithful ------------------------------------------------------------


def test_never_touches_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("pricing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    import genai_prices.update_prices as update_prices

    monkeypatch.setattr(update_prices.UpdatePrices, "fetch", no_network)
    p = Pricer()
    for provider, model, _, usage in REAL:
        p.cost(provider=provider, model=model, **usage)
    p.cost(provider=None, model="no-such-model", input_tokens=1, output_tokens=1)
    # genai-prices' only network path is its background updater; it was never started
    assert update_prices._shared_updater.thread is None
    assert update_prices._shared_updater.ref_count == 0


def test_cached_price_is_fast(pricer):
    c = call(
        provider="openai",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        input_tokens=1000,
        output_tokens=200,
        cache_read_tokens=100,
    )
    pricer.price(c)
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        pricer.price(c)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 50e-6  # ~0.5 µs measured; a cache miss costs milliseconds


def test_every_model_in_the_price_data_matches_calc_price():
    """Our float coefficients reproduce genai-prices' Decimal arithmetic for every price."""
    rng = random.Random(7)
    checked = 0
    for provider in gp_providers:
        for model in provider.models:
            prices = model.prices
            model_prices = (
                [prices] if isinstance(prices, gp_types.ModelPrice) else [c.prices for c in prices]
            )
            for mp in model_prices:
                plan = plan_from_model_price(mp)
                if plan is None:
                    continue
                for _ in range(4):
                    i = rng.choice([0, 1000, 128_001, 200_001, 272_001, 2_000_000]) + rng.randint(
                        0, 99
                    )
                    r = rng.randint(0, i)
                    w = rng.randint(0, i - r)
                    o = rng.randint(0, 50_000)
                    z = rng.randint(0, o)
                    usage = Usage(
                        input_tokens=i,
                        output_tokens=o,
                        cache_read_tokens=r,
                        cache_write_tokens=w,
                        output_reasoning_tokens=z,
                    )
                    want = float(mp.calc_price(usage)["total_price"])
                    assert plan.cost(i, o, r, w, z) == pytest.approx(want, rel=1e-9, abs=1e-15), (
                        provider.id,
                        model.id,
                    )
                    checked += 1
    assert checked > 5000


# -- self-hosted servers -------------------------------------------------------------


@pytest.fixture(scope="module")
def public_only() -> Pricer:
    """A pricer without the tests' GENSIGHT_PRICED_HOSTS (loopback = self-hosted)."""
    return Pricer(priced_hosts=())


@pytest.mark.parametrize(
    "address",
    [
        "localhost",
        "127.0.0.1",
        "::1",
        "10.0.0.7",
        "192.168.1.5",
        "fd00::5",
        "gpu.local",
        "ollama.internal",
        "http://localhost:11434",
    ],  # fmt: skip
)
def test_a_model_on_a_private_address_is_not_priced_publicly(public_only, address):
    # what openai-v2 reports for Ollama: provider "openai", the model's own name
    c = call(provider="openai", request_model="deepseek-r1", response_model="deepseek-r1",
             input_tokens=50_000, output_tokens=20_000, server_address=address)  # fmt: skip
    public_only.price(c)
    assert (c.cost_usd, c.cost_source) == (None, "unknown")
    assert c.attributes["gensight.cost_reason"] == "self_hosted"
    got = public_only.cost(
        provider="openai", model="gpt-4o-mini", input_tokens=10, output_tokens=10,
        server_address=address,
    )  # fmt: skip
    assert got == (None, "unknown")
    # the same call to a public address is priced (so the refusal is the address's)
    public = call(provider="openai", request_model="gpt-4o-mini", input_tokens=50_000,
                  output_tokens=20_000, server_address="api.openai.com")  # fmt: skip
    public_only.price(public)
    assert public.cost_source == "computed" and public.cost_usd > 0
    assert "gensight.cost_reason" not in (public.attributes or {})


def test_priced_hosts_and_overrides_price_a_private_address(tmp_path):
    priced = Pricer(priced_hosts=["10.0.0.7:8080", "proxy.internal"])
    for address in ("10.0.0.7", "10.0.0.7:443", "proxy.internal"):
        c = call(provider="openai", request_model="gpt-4o-mini", input_tokens=1000,
                 output_tokens=100, server_address=address)  # fmt: skip
        priced.price(c)
        assert c.cost_source == "computed"
        assert c.cost_usd == pytest.approx(expected("gpt-4o-mini", "openai", input_tokens=1000,
                                                    output_tokens=100, ts=TS))  # fmt: skip
    other = call(provider="openai", request_model="gpt-4o-mini", input_tokens=1000,
                 output_tokens=100, server_address="10.0.0.8")  # fmt: skip
    priced.price(other)
    assert other.cost_source == "unknown"
    # a self-hosted provider stays self-hosted, whatever its address
    named = call(provider="ollama", request_model="gpt-4o-mini", input_tokens=1000,
                 output_tokens=100, server_address="10.0.0.7")  # fmt: skip
    priced.price(named)
    assert (named.cost_usd, named.cost_source) == (None, "unknown")

    prices = tmp_path / "prices.toml"
    prices.write_text('[models."deepseek-r1"]\ninput = 0.1\noutput = 0.2\n')
    mine = Pricer(prices, priced_hosts=())
    c = call(provider="openai", request_model="deepseek-r1", input_tokens=1_000_000,
             output_tokens=1_000_000, server_address="localhost:11434")  # fmt: skip
    mine.price(c)
    assert (c.cost_usd, c.cost_source) == (pytest.approx(0.3), "override")


def test_env_names_the_priced_hosts(monkeypatch):
    monkeypatch.setenv("GENSIGHT_PRICED_HOSTS", " gw.local , 10.9.9.9 ")
    p = Pricer()
    assert not p.self_hosted("openai", "gw.local:8443")
    assert not p.self_hosted("openai", "10.9.9.9")
    assert p.self_hosted("openai", "127.0.0.1")
    monkeypatch.delenv("GENSIGHT_PRICED_HOSTS")
    assert Pricer().self_hosted("openai", "gw.local")


# -- implausible usage -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_tokens", -5),
        ("output_tokens", -1),
        ("input_tokens", 10**10),
        ("cache_read_tokens", -100),
        ("reasoning_tokens", 2 * 10**9),
    ],
)
def test_implausible_counts_are_refused_not_priced(pricer, field, value):
    c = call(provider="openai", request_model="gpt-4o-mini",
             **{"input_tokens": 100, "output_tokens": 10, field: value})  # fmt: skip
    pricer.price(c)
    assert getattr(c, field) is None
    assert c.attributes[f"gensight.refused.{field}"] == value
    assert c.cost_usd is None or c.cost_usd >= 0


def test_a_negative_reported_cost_is_refused(pricer):
    c = call(provider="acme", request_model="acme-internal-model-7", reported_cost_usd=-1e6)
    pricer.price(c)
    assert (c.cost_usd, c.cost_source) == (None, "unknown")
    assert c.reported_cost_usd is None
    assert c.attributes["gensight.refused.reported_cost_usd"] == -1e6
    assert pricer.cost(provider="openai", model="gpt-4o", input_tokens=-10, output_tokens=5) == (
        None,
        "unknown",
    )
