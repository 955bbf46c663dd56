"""The upstreams the gateway may reach, and which provider each one is.

Only upstreams configured with ``--upstream NAME=URL`` are ever contacted: a request
names an upstream, never a host, so the gateway is not an open proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gensight.conventions.providers import normalize_provider, provider_for_host


def provider_for(name: str, url: str) -> str:
    """The provider of an upstream: from its host when known (the one provider table,
    ``gensight.conventions.providers``), else from its name (``kimi``, ``ollama`` …)."""
    provider = provider_for_host(urlsplit(url).hostname)
    if provider is not None:
        return provider
    key = name.strip().lower()
    if key.startswith("azure"):
        return "azure.ai.openai"
    return normalize_provider(key) or key


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
