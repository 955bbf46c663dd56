"""Which upstream a gateway path names, and the path it asks of that upstream.

Every path under a gateway prefix belongs to the gateway, so a wrong one is answered
(and recorded) by it in its wire's error shape, never by the web app's ``{"detail"}``:

- ``/openai/v1/PATH`` → upstream ``openai``, ``URL/PATH``;
- ``/anthropic/PATH``, ``/gemini/PATH`` → that upstream, ``URL/PATH`` (their own SDK's path);
- ``/azure/NAME/PATH`` → upstream ``NAME``, ``URL/PATH``: Azure OpenAI's resource URL
  (``https://RES.openai.azure.com``) and the path ``AzureOpenAI`` sends
  (``/openai/deployments/DEPLOYMENT/chat/completions?api-version=…``);
- ``/p/NAME/v1/PATH`` (OpenAI wire) or ``/p/NAME/PATH`` (native wires) → upstream ``NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs

from gensight.receive.auth import GATEWAY_PREFIXES
from gensight.receive.gateway.upstreams import Upstream

#: ``/anthropic/…`` and ``/gemini/…`` go to the upstream of that name (a native wire).
NATIVE_ROUTES = ("anthropic", "gemini")

#: The path prefixes the gateway serves (every path below them is the gateway's).
PREFIXES = GATEWAY_PREFIXES


def is_gateway_path(path: str) -> bool:
    """Whether ``path`` is the gateway's."""
    return path.startswith(PREFIXES)


def split(raw_path: bytes, upstreams: Mapping[str, Upstream]) -> tuple[str, bytes | None]:
    """``(upstream name, path to ask of it)`` of a gateway path, still percent-encoded as
    the client sent it; the path is None when the upstream serves no such path."""
    if raw_path.startswith((b"/p/", b"/azure/")):
        start = raw_path.find(b"/", 1) + 1
        end = raw_path.find(b"/", start)
        name = raw_path[start : end if end != -1 else None].decode("latin-1")
        rest = raw_path[end:] if end != -1 else b""
        up = upstreams.get(name)
        if raw_path.startswith(b"/azure/"):
            if up is not None and up.url.endswith("/openai") and rest.startswith(b"/openai/"):
                rest = rest[7:]  # the upstream's URL already ends where the SDK's path begins
            return name, rest if rest.startswith(b"/") and rest != b"/" else None
        if up is None or up.wire == "openai":
            return name, rest[3:] if rest.startswith(b"/v1/") else None
        return name, rest if rest.startswith(b"/") else None
    slash = raw_path.find(b"/", 1)
    name = raw_path[1:slash].decode("latin-1")
    rest = raw_path[slash:]
    if name == "openai":
        return name, rest[3:] if rest.startswith(b"/v1/") else None
    return name, rest if rest != b"/" else None


def api_version(query: bytes) -> str | None:
    """The ``api-version`` of a query string (Azure OpenAI's), if it has one."""
    if b"api-version=" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get("api-version")
    return values[0][:64] if values else None
