"""The upstreams the gateway may reach, and which provider each one is.

Only upstreams configured with ``--upstream NAME=URL`` (or ``--upstreams-file``) are
ever contacted: a request names an upstream, never a host, so the gateway is not an
open proxy. An upstream may have its own key (``--upstream-key NAME=ENV_VAR``), sent in
place of the client's, and a fallback (``--fallback NAME=OTHER``) for that upstream only.

An upstream speaks one wire format (``WIRES``): ``openai`` (the default; its URL is the
API base, ``…/v1``, and ``/p/NAME/v1/PATH`` goes to ``URL/PATH``), or a provider's own:
``anthropic`` (Messages) or ``gemini`` (generateContent), said as
``NAME=anthropic:https://api.anthropic.com``. A native upstream's URL is the base its
own client uses, and ``/p/NAME/PATH`` goes to ``URL/PATH`` (``/v1/messages``,
``/v1beta/models/…:generateContent``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
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
    #: The upstream's own key (from its environment variable); never in repr or records.
    key: str | None = field(default=None, repr=False, compare=False)

    def auth_header(self) -> tuple[str, str] | None:
        """The header carrying this upstream's own key, in its provider's spelling."""
        if self.key is None:
            return None
        if self.provider == "azure.ai.openai":
            return "api-key", self.key
        if self.provider == "anthropic" or self.wire == "anthropic":
            return "x-api-key", self.key
        if self.wire == "gemini":
            return "x-goog-api-key", self.key
        return "authorization", f"Bearer {self.key}"

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


#: Request headers that carry a client's credential to a provider.
CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")


def read_file(path: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``(urls, key variables, fallbacks)`` of an upstreams TOML file::

    [upstreams.azure]
    url = "https://RES.openai.azure.com/openai"
    key_env = "AZURE_OPENAI_API_KEY"

    [upstreams.openai]
    url = "https://api.openai.com/v1"
    fallback = "azure"
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"--upstreams-file {path}: {e}") from None
    table = data.get("upstreams")
    if not isinstance(table, dict):
        raise ValueError(f"--upstreams-file {path}: no [upstreams.NAME] tables")
    urls: dict[str, str] = {}
    keys: dict[str, str] = {}
    fallbacks: dict[str, str] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ValueError(f'--upstreams-file {path}: [upstreams.{name}] needs url = "..."')
        unknown = set(entry) - {"url", "key_env", "fallback"}
        if unknown:
            raise ValueError(
                f"--upstreams-file {path}: [upstreams.{name}] has unknown "
                f"{', '.join(sorted(unknown))} (url, key_env, fallback)"
            )
        urls[name] = entry["url"]
        for field_name, target in (("key_env", keys), ("fallback", fallbacks)):
            value = entry.get(field_name)
            if value is not None:
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(
                        f"--upstreams-file {path}: [upstreams.{name}] {field_name} is not a name"
                    )
                target[name] = value.strip()
    return urls, keys, fallbacks


def configure(
    urls: Mapping[str, str],
    keys: Mapping[str, str],
    fallbacks: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Upstream], dict[str, Upstream]]:
    """The upstreams by name (each with its key read from its variable) and the fallback
    of each upstream that has one. ``ValueError`` names what is wrong."""
    env = os.environ if environ is None else environ
    upstreams = {name: Upstream.from_config(name, url) for name, url in urls.items()}
    known = ", ".join(sorted(upstreams))
    for name, var in keys.items():
        if name not in upstreams:
            raise ValueError(f"--upstream-key {name}={var}: {name!r} is not an upstream ({known})")
        value = env.get(var, "").strip()
        if not value:
            raise ValueError(
                f"--upstream-key {name}={var}: the environment variable {var} is not set"
            )
        upstreams[name] = replace(upstreams[name], key=value)
    chosen: dict[str, Upstream] = {}
    for name, other in fallbacks.items():
        for n in (name, other):
            if n not in upstreams:
                raise ValueError(
                    f"--fallback {name}={other}: {n!r} is not a configured upstream "
                    f"(configured: {known})"
                )
        if name == other:
            raise ValueError(f"--fallback {name}={other}: an upstream cannot fall back to itself")
        chosen[name] = upstreams[other]
    return upstreams, chosen
