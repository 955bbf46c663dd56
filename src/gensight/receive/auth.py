"""Keys, scopes and browser sessions: who may ingest, read and change what.

Keys come from ``--api-key KEY`` (full access) and ``--api-keys`` /
``GENSIGHT_API_KEYS``: a comma-separated list of ``SCOPE:KEY`` (``ingest:k1,read:k2,
admin:k3``; several scopes joined with ``+``: ``read+ingest:k4``). ``admin`` implies
``read`` and ``ingest``. An ingest key may be bound to an app, ``ingest@checkout:k5``:
gateway calls and OTLP sent with it are app ``checkout``'s whatever their headers or
resources say, so an app blocked by a budget cannot unblock itself by renaming, nor make
another app's budget fire.

Surfaces and the scope each needs:

- ``ingest``: OTLP ``/v1/traces|logs|metrics`` (HTTP and gRPC) and the gateway
  (``/openai/v1/…``, ``/anthropic/…``, ``/gemini/…``, ``/azure/{name}/…``, ``/p/{name}/…``).
- ``read``: the UI pages, ``GET /api/*``, ``/metrics``, ``/openapi.json``.
- ``annotate`` (#20): scores: ``POST /api/scores`` (an ``ingest`` key may send them too:
  an app's thumbs-up travels with its telemetry key) and the call page's annotation
  form, ``POST /calls/{id}/scores``.
- ``admin``: every other method on the API and UI (alert rules, ``/api/import``), and
  everything ``annotate`` may do.

A key travels as ``Authorization: Bearer KEY`` or ``X-Gensight-Key: KEY`` (the gateway
takes only the latter: its ``Authorization`` belongs to the upstream), or, for a
browser, as the session cookie set by ``POST /login``. Missing or wrong: 401; right but
without the scope: 403 (on gateway paths in the error shape of the upstream's wire, and
recorded as a failed call by the gateway, ``AuthMiddleware(refuse=…)``). Unauthenticated page
loads are redirected to ``/login``. ``GET /api/health`` answers everyone, but without a
``read`` key only with ``{"status": …}`` (for load balancer probes).

Comparison is constant-time: the offered key's SHA-256 is compared with
``hmac.compare_digest`` against every configured key's digest, without stopping at a
match, so neither the time taken nor its variation tells which (or whether an early)
key matched. Keys are never logged and never stored; only their digests are kept.

The session cookie is ``EXPIRY.NONCE.MAC`` with ``MAC = HMAC-SHA256(sha256(key),
"gensight-session:EXPIRY:NONCE")``: it carries no key, is checked against every
configured key the same constant-time way, dies with its key (remove a key from the
configuration and its sessions stop working) and after ``SESSION_SECONDS``; ``/logout``
also revokes it in this process.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SCOPES = ("ingest", "read", "admin", "annotate")
COOKIE = "gensight_session"
SESSION_SECONDS = 7 * 24 * 3600

_IMPLIES = {
    "admin": frozenset(SCOPES),
    "read": frozenset({"read"}),
    "ingest": frozenset({"ingest"}),
    "annotate": frozenset({"annotate"}),
}


class KeyConfigError(ValueError):
    """A malformed ``--api-keys`` entry (the message never contains the key)."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One configured key: its SHA-256 digest and the scopes it grants."""

    digest: bytes
    scopes: frozenset[str]
    label: str  # "api-key" or "api-keys[2]": for messages, never the key itself
    #: ``ingest@checkout:K``: what this key sends is app ``checkout``'s, whatever it says.
    app: str | None = None


def parse_api_keys(text: str | None) -> list[tuple[str, frozenset[str]]]:
    """``"ingest:k1,read+ingest:k2"`` as ``[(key, scopes)]`` (``admin`` expanded)."""
    return [(key, scopes) for key, scopes, _app in parse_bound_keys(text)]


def parse_bound_keys(text: str | None) -> list[tuple[str, frozenset[str], str | None]]:
    """``"ingest@checkout:k1,read:k2"`` as ``[(key, scopes, bound app or None)]``."""
    out: list[tuple[str, frozenset[str], str | None]] = []
    if not text:
        return out
    for i, item in enumerate(text.replace("\n", ",").split(",")):
        item = item.strip()
        if not item:
            continue
        names, sep, key = item.partition(":")
        key = key.strip()
        if not sep or not key:
            raise KeyConfigError(
                f"api-keys entry {i + 1} is not SCOPE:KEY (scopes: {', '.join(SCOPES)})"
            )
        names, at, app = names.partition("@")
        app = app.strip()
        if at and (not app or names.strip().lower() != "ingest"):
            raise KeyConfigError(
                f"api-keys entry {i + 1}: only an ingest key binds to an app (ingest@APP:KEY)"
            )
        scopes: set[str] = set()
        for name in names.split("+"):
            name = name.strip().lower()
            if name not in _IMPLIES:
                raise KeyConfigError(
                    f"api-keys entry {i + 1}: unknown scope {name!r} ({', '.join(SCOPES)})"
                )
            scopes |= _IMPLIES[name]
        out.append((key, frozenset(scopes), app or None))
    return out


#: Shorter keys can be guessed (and are refused at start).
MIN_KEY_LENGTH = 16


def _check_length(key: str, label: str) -> None:
    if len(key) < MIN_KEY_LENGTH:
        raise KeyConfigError(
            f"{label} is shorter than {MIN_KEY_LENGTH} characters: use a long random key "
            "(e.g. the output of `openssl rand -hex 16`)"
        )


def _digest(key: bytes | str) -> bytes:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


class Keyring:
    """The configured keys; empty means no authentication (everything allowed)."""

    def __init__(self, api_key: str | None = None, api_keys: str | None = None) -> None:
        entries: list[KeyEntry] = []
        if api_key:
            _check_length(api_key, "--api-key")
            entries.append(KeyEntry(_digest(api_key), frozenset(SCOPES), "api-key"))
        for i, (key, scopes, app) in enumerate(parse_bound_keys(api_keys)):
            _check_length(key, f"--api-keys entry {i + 1}")
            entries.append(KeyEntry(_digest(key), scopes, f"api-keys[{i + 1}]", app))
        self.entries = tuple(entries)
        self._revoked: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.entries)

    # -- keys -------------------------------------------------------------------------
    def match(self, offered: bytes | str | None) -> KeyEntry | None:
        """The entry whose key is ``offered``, comparing with every entry (constant time)."""
        if offered is None or not self.entries:
            return None
        d = _digest(offered)
        found: KeyEntry | None = None
        for entry in self.entries:  # no early exit: every digest is compared
            if hmac.compare_digest(d, entry.digest) and found is None:
                found = entry
        return found

    # -- browser sessions -------------------------------------------------------------
    def make_session(self, entry: KeyEntry, now: float | None = None) -> str:
        """A cookie value for a session of ``entry``'s key."""
        expiry = int((now if now is not None else time.time()) + SESSION_SECONDS)
        nonce = secrets.token_urlsafe(12)
        return f"{expiry}.{nonce}.{_session_mac(entry.digest, expiry, nonce)}"

    def check_session(self, token: str | None, now: float | None = None) -> KeyEntry | None:
        """The key entry a session cookie was made for (None: bad, expired or revoked)."""
        if not token or not self.entries:
            return None
        parts = token.split(".")
        if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()) or len(parts[0]) > 12:
            return None
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        if expiry < (now if now is not None else time.time()):
            return None
        found: KeyEntry | None = None
        for entry in self.entries:  # every key checked, no early exit
            expected = _session_mac(entry.digest, expiry, nonce)
            if hmac.compare_digest(expected.encode(), mac.encode()) and found is None:
                found = entry
        if found is not None and self._is_revoked(nonce):
            return None
        return found

    def revoke_session(self, token: str | None) -> None:
        """Forget a session (``/logout``), for as long as this process runs."""
        if not token or self.check_session(token) is None:
            return
        expiry, nonce, _ = token.split(".")
        with self._lock:
            self._revoked[nonce] = float(expiry)
            now = time.time()
            while self._revoked and (
                len(self._revoked) > 10_000 or next(iter(self._revoked.values())) < now
            ):
                self._revoked.popitem(last=False)

    def _is_revoked(self, nonce: str) -> bool:
        with self._lock:
            return nonce in self._revoked


def _session_mac(digest: bytes, expiry: int, nonce: str) -> str:
    msg = f"gensight-session:{expiry}:{nonce}".encode()
    return hmac.new(digest, msg, hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    h = host.strip().strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # a host name: may resolve to anything


def bind_refusal(host: str, keyring: Keyring, insecure: bool) -> str | None:
    """Why ``gensight serve`` must not start on ``host`` (None when it may)."""
    if keyring or insecure or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without a key: anyone who can reach this address could "
        "read every stored prompt and send calls through the gateway. Set --api-key KEY or "
        "--api-keys 'ingest:K1,read:K2,admin:K3' (GENSIGHT_API_KEY / GENSIGHT_API_KEYS), "
        "bind --host 127.0.0.1, or pass --insecure if something else guards this address."
    )


# -- the ASGI check in front of everything ------------------------------------------------

_PUBLIC_EXACT = frozenset({"/login", "/logout", "/api/health", "/favicon.ico"})
#: Every path under these is the gateway's (``gateway.routes``).
GATEWAY_PREFIXES = ("/openai/", "/anthropic/", "/gemini/", "/azure/", "/p/")
_NOT_PAGES = ("/api/", "/v1/", *GATEWAY_PREFIXES)

#: The gateway's answer to a request refused here: ``(scope, send, status, message,
#: error type, code)``; it answers in its wire's shape and records the refusal.
GatewayRefusal = Callable[[Scope, Send, int, str, str, str], Awaitable[None]]


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs (None: open to everyone)."""
    if path in _PUBLIC_EXACT or path.startswith("/static/"):
        return None
    if path.startswith(GATEWAY_PREFIXES) or path.startswith("/v1/"):
        return "ingest"
    if method in ("GET", "HEAD"):
        return "read"
    if path == "/api/scores" or (path.startswith("/calls/") and path.endswith("/scores")):
        return "annotate"
    return "admin"


def allowed(need: str, path: str, scopes: frozenset[str]) -> bool:
    """Whether ``scopes`` grant ``need`` on ``path`` (an ingest key may send scores)."""
    if need in scopes:
        return True
    return need == "annotate" and path == "/api/scores" and "ingest" in scopes


def _is_page(method: str, path: str) -> bool:
    return (
        method in ("GET", "HEAD")
        and not path.startswith(_NOT_PAGES)
        and path not in ("/metrics", "/openapi.json")
    )


def openai_error(message: str, type_: str, code: str) -> bytes:
    """The OpenAI API's error shape (as ``gateway.errors.openai_error``), for gateway paths."""
    err = {"message": message, "type": type_, "param": None, "code": code}
    return json.dumps({"error": err}).encode()


def _cookie(raw: bytes | None) -> str | None:
    if not raw:
        return None
    for part in raw.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


class AuthMiddleware:
    """Checks every HTTP request against the keyring (see the module docstring).

    Sets ``request.state.gensight_scopes`` (the caller's scopes, empty when anonymous)
    and ``request.state.gensight_session`` (whether a login cookie authenticated it).
    """

    def __init__(
        self, app: ASGIApp, keyring: Keyring, refuse: GatewayRefusal | None = None
    ) -> None:
        self.app = app
        self.keyring = keyring
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        gateway = path.startswith(GATEWAY_PREFIXES)
        offered: bytes | None = None
        cookie: bytes | None = None
        for name, value in scope.get("headers") or ():
            if name == b"x-gensight-key":
                offered = value
            elif name == b"authorization" and not gateway and offered is None:
                if value[:7].lower() == b"bearer ":
                    offered = value[7:].strip()
            elif name == b"cookie" and not gateway:
                cookie = value
        entry = None
        session = False
        if offered is not None:
            entry = self.keyring.match(offered)
        elif cookie is not None:
            entry = self.keyring.check_session(_cookie(cookie))
            session = entry is not None
        state = scope.setdefault("state", {})
        state["gensight_scopes"] = entry.scopes if entry is not None else frozenset()
        state["gensight_app"] = entry.app if entry is not None else None
        state["gensight_session"] = session
        need = required_scope(method, path)
        if need is None or (entry is not None and allowed(need, path, entry.scopes)):
            await self.app(scope, receive, send)
            return
        if gateway and self.refuse is not None:
            if entry is None:
                message = "Missing or wrong Gensight key: send it as X-Gensight-Key."
                await self.refuse(scope, send, 401, message, "invalid_request_error",
                                  "invalid_api_key")  # fmt: skip
            else:
                message = f"Gensight: this key lacks the {need!r} scope."
                await self.refuse(scope, send, 403, message, "permission_error",
                                  "insufficient_scope")  # fmt: skip
            return
        if entry is None:
            if offered is None and _is_page(method, path):
                target = path + (
                    ("?" + scope["query_string"].decode("latin-1"))
                    if scope.get("query_string")
                    else ""
                )
                response: Response = RedirectResponse(
                    "/login?" + urlencode({"next": target}), status_code=303
                )
            elif gateway:
                response = Response(
                    openai_error(
                        "Missing or wrong Gensight key: send it as X-Gensight-Key.",
                        "invalid_request_error",
                        "invalid_api_key",
                    ),
                    status_code=401,
                    media_type="application/json",
                )
            else:
                response = JSONResponse(
                    {"detail": "missing or wrong Gensight key (X-Gensight-Key or Bearer)"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="gensight"'},
                )
        else:
            message = f"this key lacks the {need!r} scope"
            if gateway:
                response = Response(
                    openai_error(f"Gensight: {message}.", "permission_error", "insufficient_scope"),
                    status_code=403,
                    media_type="application/json",
                )
            elif _is_page(method, path) or session:
                response = PlainTextResponse(f"Forbidden: {message}.", status_code=403)
            else:
                response = JSONResponse({"detail": message, "scope": need}, status_code=403)
        await response(scope, receive, send)
