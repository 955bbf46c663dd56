"""``/login`` and ``/logout``: a browser session for the UI when keys are configured.

``GET /login`` shows a form asking for a key; ``POST /login`` checks it (it needs the
``read`` scope) and sets the session cookie (``gensight.receive.auth``: a signed token, never the
key) as ``HttpOnly; SameSite=Strict`` (plus ``Secure`` over https), then redirects to
``next`` (a path on this server only). ``/logout`` revokes the session and clears the
cookie. Without configured keys both just lead to ``/``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gensight.receive.auth import COOKIE, SESSION_SECONDS, Keyring
from gensight.web.alerts_page import _same_origin
from gensight.web.render import error_page, render

router = APIRouter(include_in_schema=False)


def _keyring(request: Request) -> Keyring | None:
    keyring = getattr(request.app.state, "keyring", None)
    return keyring if keyring else None


class LoginLimiter:
    """At most ``failures`` failed sign-ins per client address in ``window`` seconds; then
    ``/login`` answers 429 with ``Retry-After`` for that address until the oldest expires."""

    def __init__(self, failures: int = 10, window: float = 60.0, max_clients: int = 10_000):
        self.failures = failures
        self.window = window
        self.max_clients = max_clients
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> float | None:
        """Seconds until ``client`` may try again (None: it may now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.get(client)
            while times and times[0] <= now - self.window:
                times.popleft()
            if times and len(times) >= self.failures:
                return times[0] + self.window - now
        return None

    def failed(self, client: str, now: float | None = None) -> None:
        """Count one failed sign-in of ``client``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.pop(client, None) or deque()
            times.append(now)
            self._seen[client] = times  # most recent last
            while len(self._seen) > self.max_clients:
                self._seen.popitem(last=False)


def _limiter(request: Request) -> LoginLimiter:
    state = request.app.state
    if getattr(state, "login_limiter", None) is None:
        state.login_limiter = LoginLimiter()
    return state.login_limiter


def _client(request: Request) -> str:
    settings = getattr(request.app.state, "settings", None)
    if settings is not None and settings.trusted_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:  # the hop our proxy added is the last one
            return forwarded.split(",")[-1].strip()
    return request.client.host if request.client else "unknown"


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this server, else ``/`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(c in target for c in "\r\n\\"):
        return "/"
    return target


def _form(request: Request, status_code: int, next_: str, error: str | None) -> HTMLResponse:
    return render(request, "login.html", status_code=status_code, next=next_, error=error)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The key form (straight to ``next`` when no keys are configured)."""
    next_ = safe_next(request.query_params.get("next"))
    if _keyring(request) is None:
        return RedirectResponse(next_, status_code=303)
    return _form(request, 200, next_, None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the key; on success set the session cookie and go to ``next``."""
    keyring = _keyring(request)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    next_ = safe_next(form.get("next"))
    if keyring is None:
        return RedirectResponse(next_, status_code=303)
    if not _same_origin(request):
        return error_page(request, 403, "Refused", "a form from another site cannot sign in")
    limiter, client = _limiter(request), _client(request)
    wait = limiter.retry_after(client)
    if wait is not None:
        response = _form(
            request, 429, next_, f"Too many failed sign-ins: try again in {math.ceil(wait)} s."
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    entry = keyring.match(form.get("key", "").strip() or None)
    if entry is None:
        limiter.failed(client)
        return _form(request, 401, next_, "That key is not valid.")
    if "read" not in entry.scopes:
        return _form(request, 403, next_, "That key cannot read (it has no read scope).")
    response = RedirectResponse(next_, status_code=303)
    response.set_cookie(
        COOKIE,
        keyring.make_session(entry),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.api_route("/logout", methods=["GET", "POST"], response_class=HTMLResponse)
def logout(request: Request) -> Response:
    """End the session: revoke its token here and clear the cookie."""
    keyring = _keyring(request)
    if keyring is not None:
        keyring.revoke_session(request.cookies.get(COOKIE))
    response = RedirectResponse("/login" if keyring is not None else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
