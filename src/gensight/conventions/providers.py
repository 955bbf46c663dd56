"""The one provider table: host → provider, alias → provider, provider → price id.

Every part that names a provider reads it here: the gateway (an upstream's URL and
name), the SDK (a client's base URL), the OTLP mappers (``gen_ai.provider.name`` and
the other conventions' spellings, plus ``server.address``) and pricing (genai-prices'
provider ids). So a call to ``api.deepseek.com`` is ``deepseek`` whoever records it.

Provider names use ``gen_ai.provider.name`` spelling: the semantic conventions'
well-known values (``openai``, ``azure.ai.openai``, ``azure.ai.inference``, ``anthropic``,
``aws.bedrock``, ``cohere``, ``deepseek``, ``gcp.gemini``, ``gcp.gen_ai``,
``gcp.vertex_ai``, ``groq``, ``ibm.watsonx.ai``, ``mistral_ai``, ``perplexity``,
``x_ai``) and, for providers the conventions do not list, ``moonshot_ai``,
``openrouter``, ``together_ai``, ``fireworks_ai`` … Self-hosted servers have their own
names (``ollama``, ``vllm``, ``llama.cpp``, ``lm_studio`` …): see ``SELF_HOSTED``.

Self-hosted calls: ``self_hosted_reason(provider, server_address)`` says whether a
call ran on a server of the user's own (a self-hosted provider, or a loopback,
private, link-local or ``*.local``/``*.internal``/``localhost`` address); such calls
are never priced from the public price list (see ``gensight.enrich.pricing``).

Imports nothing heavy (the SDK imports this module into the app's process).
"""

from __future__ import annotations

import ipaddress
from typing import Any

#: Host (exact, or a suffix when it starts with ".") → provider. A host matches an
#: entry when it equals it or ends with "." + it.
HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure.ai.openai"),
    ("cognitiveservices.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.inference"),
    ("models.inference.ai.azure.com", "azure.ai.inference"),
    ("api.anthropic.com", "anthropic"),
    ("api.deepseek.com", "deepseek"),
    ("api.moonshot.ai", "moonshot_ai"),
    ("api.moonshot.cn", "moonshot_ai"),
    ("api.x.ai", "x_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.perplexity.ai", "perplexity"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
    ("api.cerebras.ai", "cerebras"),
)

#: Servers people run themselves (canonical names): never priced from the public list.
SELF_HOSTED = frozenset(
    {
        "ollama",
        "vllm",
        "llama.cpp",
        "llamafile",
        "lm_studio",
        "localai",
        "tgi",
        "sglang",
        "gpt4all",
        "koboldcpp",
        "text_generation_webui",
    }
)

#: Other spellings (lowercase, spaces as "_") → provider. Conventions, SDKs and
#: upstream names spell providers many ways; the canonical names map to themselves.
ALIASES: dict[str, str] = {
    # OpenAI and Azure
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure.ai.openai": "azure.ai.openai",
    "azure.ai.inference": "azure.ai.inference",
    "az.ai.inference": "azure.ai.inference",
    "az_ai_inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    # Anthropic, AWS
    "anthropic": "anthropic",
    "aws.bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    # Google
    "gcp.gemini": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_ai_studio": "gcp.gemini",
    "gcp.gen_ai": "gcp.gen_ai",
    "google": "gcp.gen_ai",
    "gcp.vertex_ai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    # Mistral, xAI, DeepSeek, Moonshot
    "mistral_ai": "mistral_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "x_ai": "x_ai",
    "xai": "x_ai",
    "x-ai": "x_ai",
    "grok": "x_ai",
    "deepseek": "deepseek",
    "moonshot_ai": "moonshot_ai",
    "moonshotai": "moonshot_ai",
    "moonshot": "moonshot_ai",
    "kimi": "moonshot_ai",
    # others
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "together_ai": "together_ai",
    "together": "together_ai",
    "togetherai": "together_ai",
    "together.ai": "together_ai",
    "together-ai": "together_ai",
    "fireworks_ai": "fireworks_ai",
    "fireworks": "fireworks_ai",
    "fireworksai": "fireworks_ai",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "zhipuai": "zhipuai",
    "minimax": "minimax",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    # self-hosted servers
    "ollama": "ollama",
    "vllm": "vllm",
    "llama.cpp": "llama.cpp",
    "llama_cpp": "llama.cpp",
    "llamacpp": "llama.cpp",
    "llama-cpp": "llama.cpp",
    "llamafile": "llamafile",
    "lm_studio": "lm_studio",
    "lmstudio": "lm_studio",
    "lm-studio": "lm_studio",
    "localai": "localai",
    "local_ai": "localai",
    "tgi": "tgi",
    "text-generation-inference": "tgi",
    "text_generation_inference": "tgi",
    "huggingface_tgi": "tgi",
    "sglang": "sglang",
    "gpt4all": "gpt4all",
    "koboldcpp": "koboldcpp",
    "text-generation-webui": "text_generation_webui",
    "text_generation_webui": "text_generation_webui",
}

#: Provider → genai-prices provider id, where they differ from the provider name.
PRICE_IDS: dict[str, str] = {
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "moonshot_ai": "moonshotai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}

#: Host name suffixes of machines on the user's own network.
_LOCAL_SUFFIXES = (".local", ".internal", ".localhost", ".lan", ".home.arpa")


def _key(value: str) -> str:
    return value.strip().lower().replace(" ", "_")


def normalize_provider(value: Any) -> str | None:
    """A provider name in ``gen_ai.provider.name`` spelling (openai, azure.ai.openai, …).

    Known spellings of every convention map to one name; an unknown one is kept,
    lowercased. None or blank: None.
    """
    if value is None:
        return None
    key = _key(str(value))
    return ALIASES.get(key, key) or None


def provider_for_host(host: str | None) -> str | None:
    """The provider serving ``host`` (a host name, no port), or None when unknown."""
    if not host:
        return None
    host = host.strip().lower().rstrip(".")
    for suffix, provider in HOSTS:
        if host == suffix or host.endswith("." + suffix):
            return provider
    return None


def price_id(provider: str | None) -> str | None:
    """genai-prices' provider id for a provider name in any spelling (else that name)."""
    name = normalize_provider(provider)
    if name is None:
        return None
    return PRICE_IDS.get(name, name)


def is_self_hosted_provider(provider: str | None) -> bool:
    """Whether the provider is a server people run themselves (ollama, vllm, …)."""
    return normalize_provider(provider) in SELF_HOSTED


def host_of(address: str | None) -> str | None:
    """The host of a ``server.address``-like value (``host``, ``host:port``, ``[::1]:8080``,
    or a URL such as OpenLIT's ``gen_ai.endpoint``)."""
    if not address:
        return None
    a = address.strip().lower()
    if "://" in a:
        a = a.split("://", 1)[1]
    a = a.split("/", 1)[0].rsplit("@", 1)[-1]
    if a.startswith("["):  # [v6]:port
        return a[1:].split("]", 1)[0] or None
    if a.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        a = a.split(":", 1)[0]
    return a or None


def is_private_host(host: str | None) -> bool:
    """Whether a host is on the user's own machine or network: loopback, RFC 1918,
    link-local, unique-local (fc00::/7), unspecified, ``localhost`` or ``*.local`` /
    ``*.internal`` / ``*.localhost`` / ``*.lan`` / ``*.home.arpa``."""
    if not host:
        return False
    h = host.strip().lower().rstrip(".")
    if h in ("localhost", "host.docker.internal") or h.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        ip = ipaddress.ip_address(h.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return False  # a public-looking name: its address is not ours to resolve
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified


def self_hosted_reason(provider: str | None, server_address: str | None) -> str | None:
    """Why a call is self-hosted (``"self_hosted_provider"`` or ``"private_address"``),
    or None when it went to a public service (or nothing says otherwise)."""
    if is_self_hosted_provider(provider):
        return "self_hosted_provider"
    if is_private_host(host_of(server_address)):
        return "private_address"
    return None
