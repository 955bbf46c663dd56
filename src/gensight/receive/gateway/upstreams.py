"""The upstreams the gateway may reach, and which provider each one is.

Only upstreams configured with ``--upstream NAME=URL`` are ever contacted: a request
names an upstream, never a host, so the gateway is not an open proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gensight.conventions.spans import normalize_provider

# Hosts whose provider is known (suffix match), in gen_ai.provider.name spelling.
_HOST_PROVIDERS = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("api.deepseek.com", "deepseek"),
    ("api.moonshot.ai", "moonshot_ai"),
    ("api.moonshot.cn", "moonshot_ai"),
    ("api.x.ai", "x_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
    ("api.perplexity.ai", "perplexity"),
)

# Upstream names that say which provider they are.
_NAME_PROVIDERS = {
    "kimi": "moonshot_ai",
    "azure-openai": "azure.ai.openai",
    "grok": "x_ai",
    "gemini": "gcp.gemini",
}


def provider_for(name: str, url: str) -> str:
    """The provider of an upstream: from its host when known, else from its name."""
    host = (urlsplit(url).hostname or "").lower()
    for suffix, provider in _HOST_PROVIDERS:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            return provider
    key = name.strip().lower()
    if key.startswith("azure"):
        return "azure.ai.openai"
    return _NAME_PROVIDERS.get(key) or normalize_provider(key) or key


@dataclass(frozen=True, slots=True)
class Upstream:
    """One configured upstream: ``name`` (the route), ``url`` (its base, e.g. ``…/v1``),
    ``provider`` (gen_ai.provider.name spelling), ``host`` (its host name) and
    ``address`` (its URL without credentials or query, for records and messages)."""

    name: str
    url: str
    provider: str
    host: str
    address: str

    @classmethod
    def from_config(cls, name: str, url: str) -> Upstream:
        """An upstream from a ``NAME=URL`` setting (trailing slash dropped)."""
        url = url.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream {name!r}: {url!r} is not an http(s) URL")
        port = f":{parts.port}" if parts.port else ""
        return cls(
            name=name,
            url=url,
            provider=provider_for(name, url),
            host=parts.hostname,
            address=f"{parts.scheme}://{parts.hostname}{port}{parts.path}",
        )
