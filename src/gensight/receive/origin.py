"""Cross-site request refusal: a page on another origin must not change anything here.

A browser sends ``Origin`` (and ``Sec-Fetch-Site``) with every cross-origin write, and
cookies only to the site they came from; so a write is refused (403) when:

- its ``Origin`` is not this server (``null`` included) or ``Sec-Fetch-Site`` says
  ``cross-site`` / ``same-site`` (another port of the same host is another origin);
- it was authenticated by the session cookie and carries no proof of coming from this
  server's own pages: a matching ``Origin``, ``Sec-Fetch-Site: same-origin``, or a header
  a form cannot set and another origin cannot send without a CORS grant
  (``X-Requested-With``);
- it is a cookie-authenticated write to ``/api/*`` whose ``Content-Type`` is not
  ``application/json`` (a form or ``no-cors`` fetch cannot send JSON).

Scripts (curl, the SDK, exporters) send none of these headers and authenticate with a key
header, so they are unaffected. Behind a reverse proxy (``--trusted-proxy``), the origin
compared with is ``X-Forwarded-Proto://X-Forwarded-Host``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gensight.receive.auth import GATEWAY_PREFIXES

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _netloc(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    host, sep, port = netloc.rpartition(":")
    if not sep or "]" in port:  # no port (an IPv6 literal's colons are inside [])
        return netloc
    return host if _DEFAULT_PORTS.get(scheme) == port else netloc


def this_origin(headers: dict[bytes, bytes], scheme: str, trusted_proxy: bool) -> str:
    """``scheme://host[:port]`` of this server as the browser addressed it."""
    host = headers.get(b"host", b"").decode("latin-1")
    if trusted_proxy:
        fwd_host = headers.get(b"x-forwarded-host")
        fwd_proto = headers.get(b"x-forwarded-proto")
        if fwd_host:
            host = fwd_host.decode("latin-1").split(",")[0].strip()
        if fwd_proto:
            scheme = fwd_proto.decode("latin-1").split(",")[0].strip().lower()
    return f"{scheme}://{_netloc(scheme, host)}"


def origin_matches(origin: str, expected: str) -> bool:
    """Whether an ``Origin`` header value names ``expected`` (from ``this_origin``)."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc:
        return False
    return f"{parts.scheme.lower()}://{_netloc(parts.scheme.lower(), parts.netloc)}" == expected


def cross_site_refusal(
    headers: dict[bytes, bytes], scheme: str, trusted_proxy: bool, session: bool
) -> str | None:
    """Why a write must be refused as cross-site (None: it may go on)."""
    expected = this_origin(headers, scheme, trusted_proxy)
    origin = headers.get(b"origin")
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
    if origin is not None and not origin_matches(origin.decode("latin-1"), expected):
        return f"cross-site request refused: Origin {origin.decode('latin-1')!r} is not this server"
    if site in ("cross-site", "same-site"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    if session and origin is None and site != "same-origin" and b"x-requested-with" not in headers:
        return (
            "a cookie-authenticated write needs a same-origin Origin or Sec-Fetch-Site "
            "header (or X-Requested-With)"
        )
    return None


class OriginGuard:
    """Refuses cross-site writes (see the module docstring); runs inside ``AuthMiddleware``,
    which says in ``scope["state"]["gensight_session"]`` whether the cookie authenticated."""

    def __init__(self, app: ASGIApp, trusted_proxy: bool = False) -> None:
        self.app = app
        self.trusted_proxy = trusted_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(GATEWAY_PREFIXES):  # cookies are never read there
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        session = bool(scope.get("state", {}).get("gensight_session"))
        why = cross_site_refusal(headers, scope.get("scheme", "http"), self.trusted_proxy, session)
        if why is None and session and path.startswith("/api/"):
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if scope.get("method") in ("POST", "PUT", "PATCH") and ctype != b"application/json":
                why = "a cookie-authenticated API write must be Content-Type: application/json"
        if why is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": why}, status_code=403)(scope, receive, send)
