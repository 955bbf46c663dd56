"""The upstreams the gateway may reach, and which provider each one is.

Only upstreams configured with ``--upstream NAME=URL`` are ever contacted: a request
names an upstream, never a host, so the gateway is not an open proxy.

An upstream speaks one wire format (``WIRES``): ``openai`` (the default; its URL is the
API base, ``…/v1``, and ``/p/NAME/v1/PATH`` goes to ``URL/PATH``), or a provider's own:
``anthropic`` (Messages) or ``gemini`` (generateContent), said as
``NAME=anthropic:https://api.anthropic.com``. A native upstream's URL is the base its
own client uses, and ``/p/NAME/PATH`` goes to ``URL/PATH`` (``/v1/messages``,
``/v1beta/models/…:generateContent``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gensight.conventions.providers import normalize_provider, provider_for_host

#: The wire formats the gateway reads, and the provider each implies on an unknown host.
WIRES = {"openai": None, "anthropic": "anthropic", "gemini": "gcp.gemini"}


def split_wire(value: str) -> tuple[str, str]:
    """``(wire, url)`` of an upstream setting: ``anthropic:https://…`` or a plain URL."""
    wire, sep, rest = value.partition(":")
    if sep and wire in WIRES and rest.startswith(("http://", "https://")):
        return wire, rest
    return "openai", value


def provider_for(name: str, url: str, wire: str = "openai") -> str:
    """The provider of an upstream: from its host when known (the one provider table,
    ``gensight.conventions.providers``), else from its wire format when native, else from
    its name (``kimi``, ``ollama`` …)."""
    provider = provider_for_host(urlsplit(url).hostname) or WIRES.get(wire)
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
    ``address`` (its URL without credentials or query, for records and messages),
    ``wire`` (the API format it speaks, a key of ``WIRES``)."""

    name: str
    url: str
    provider: str
    host: str
    address: str
    wire: str = "openai"

    @classmethod
    def from_config(cls, name: str, url: str) -> Upstream:
        """An upstream from a ``NAME=[WIRE:]URL`` setting (trailing slash dropped)."""
        wire, url = split_wire(url)
        url = url.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream {name!r}: {url!r} is not an http(s) URL")
        port = f":{parts.port}" if parts.port else ""
        return cls(
            name=name,
            url=url,
            provider=provider_for(name, url, wire),
            host=parts.hostname,
            address=f"{parts.scheme}://{parts.hostname}{port}{parts.path}",
            wire=wire,
        )
