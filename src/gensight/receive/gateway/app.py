"""The gateway's ASGI entry: routing, one request's course, the retry loop, recording.

``GatewayMiddleware`` sends ``/openai/v1/…`` and ``/p/{name}/v1/…`` straight to
``Gateway.handle``, which reads the request, asks the budget, tries the upstream
(``policy`` decides retries and fallback, ``forward`` streams the answer) and then
hands the call's records (``record``) to the pipeline without waiting. A client that
goes away cancels the upstream request. Recording never fails a call (fail-open).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
from multidict import CIMultiDict
from starlette.types import ASGIApp, Receive, Scope, Send
from yarl import URL

from gensight.conventions.errors import classify_answer
from gensight.model.records import CallRecord, ContentEvent, SpanRecord
from gensight.model.settings import Settings
from gensight.receive.gateway import forward, policy, record
from gensight.receive.gateway.call import Call
from gensight.receive.gateway.errors import Failure, openai_error, send_json, wire_error
from gensight.receive.gateway.gemini import retry_delay
from gensight.receive.gateway.upstreams import CREDENTIAL_HEADERS, Upstream, configure, read_file
from gensight.receive.gateway.wires import capture_for

log = logging.getLogger("gensight.receive.gateway")

#: ``/anthropic/…`` and ``/gemini/…`` go to the upstream of that name (a native wire).
NATIVE_ROUTES = ("anthropic", "gemini")

Submit = Callable[[Sequence[CallRecord], Sequence[SpanRecord], Sequence[ContentEvent]], bool]


class Refusal(Protocol):
    """Why a budget refuses a call: the rule's id and the message the client gets."""

    rule_id: str
    message: str


#: Asked before each call with the call's (app, user): a refusal, or None to go ahead.
Budget = Callable[[str | None, str | None], Refusal | None]


class Gateway:
    """The proxy for a set of upstreams; one instance per server."""

    def __init__(
        self,
        upstreams: dict[str, str],
        submit: Submit,
        counters: dict[str, int],
        *,
        retries: int = 2,
        fallback: dict[str, str] | None = None,
        upstream_keys: dict[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        retry_backoff: float = 0.5,
        retry_max_wait: float = 30.0,
        max_body: int = 16 * 1024 * 1024,
        capture_content: bool = True,
    ) -> None:
        self.upstreams, self.fallbacks = configure(upstreams, upstream_keys or {}, fallback or {})
        self.submit = submit
        self.counters = counters
        self.retries = max(0, retries)
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self.retry_backoff = retry_backoff
        self.retry_max_wait = retry_max_wait
        self.max_body = max_body
        self.capture_content = capture_content
        #: Upstreams that answered 400 to the injected ``stream_options``: asked without it.
        self.plain_streams: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Budgets (``gensight.alerts.budget``): consulted per call, before any upstream is.
        self.budget: Budget | None = None

    # -- lifecycle -------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        """The pooled client of the running loop (made on first use)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # no pool cap: the upstream's own limits apply
                ttl_dns_cache=300,
                keepalive_timeout=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                auto_decompress=False,  # bytes reach the client exactly as sent
                cookie_jar=aiohttp.DummyCookieJar(),  # never share one client's cookies
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                raise_for_status=False,
            )
            self._loop = loop
        return self._session

    async def start(self) -> None:
        """Open the client pool.

        Token vocabularies (~90 MB) are not loaded here: most upstreams report usage,
        so one is loaded, in a worker thread, the first time a call needs estimating.
        """
        self.session()

    async def close(self) -> None:
        """Close the client pool."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- request ---------------------------------------------------------------
    async def handle(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """Proxy one request to the upstream called ``name`` and record it."""
        start = time.perf_counter()
        ts = datetime.now(UTC)
        upstream = self.upstreams.get(name)
        if upstream is None:
            known = ", ".join(sorted(self.upstreams)) or "(none)"
            await send_json(
                send,
                404,
                openai_error(
                    f"Unknown upstream {name!r}. Configured upstreams: {known} "
                    "(add one with gensight serve --upstream NAME=URL).",
                    "invalid_request_error",
                    "unknown_upstream",
                ),
            )
            return
        # The path after the route's prefix (``/openai``, ``/p/NAME``…), still
        # percent-encoded as the client sent it; after ``…/v1`` for the OpenAI wire.
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        slash = raw_path.find(b"/", 3 if raw_path.startswith(b"/p/") else 1)
        rest = raw_path[slash:] if slash != -1 else b""
        if upstream.wire == "openai":
            rest = rest[3:] if rest.startswith(b"/v1/") else b""
        if not rest.startswith(b"/"):
            body = wire_error(upstream.wire, 404, "Not found.", "invalid_request_error")
            await send_json(send, 404, body)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await send_json(
                    send,
                    413,
                    wire_error(
                        upstream.wire,
                        413,
                        f"Request body exceeds the gateway's limit of {self.max_body} bytes.",
                        "invalid_request_error",
                        "request_too_large",
                    ),
                )
                return
            if not message.get("more_body"):
                break

        method: str = scope["method"]
        headers, meta = forward.request_headers(scope["headers"])
        bound = (scope.get("state") or {}).get("gensight_app")
        if bound:  # a key bound to an app (ingest@APP:KEY): its calls are that app's
            meta[b"x-gensight-app"] = bound.encode()
        path = rest.decode("latin-1")
        call = Call(start, ts, method, path, capture_for(upstream, method, path, bytes(body)), meta)
        call.route = scope["path"]
        query: bytes = scope.get("query_string") or b""
        target = rest + (b"?" + query if query else b"")
        if self.budget is not None and call.capture.is_call:
            refusal = self.budget(
                record.header_text(meta.get(b"x-gensight-app")), record.user_of(call)
            )
            if refusal is not None:
                await self._refuse(refusal, upstream, call, send)
                return

        task = asyncio.current_task()
        # A client leaving cancels its request upstream (a stream, or a long non-streamed
        # answer it stopped waiting for) and the call is recorded as cancelled.
        watcher = asyncio.create_task(self._watch_disconnect(receive, call, task))
        try:
            await self._exchange(upstream, method, target, CIMultiDict(headers), call, send)
        except asyncio.CancelledError:
            if not call.disconnected or task is None:
                raise
            task.uncancel()
            call.error_class = "cancelled"
            call.error_message = "the client disconnected before the answer was complete"
        finally:
            watcher.cancel()
            try:
                await self._record(call)
            except Exception:  # fail-open: recording never breaks a call
                self._count("gateway_record_errors")
                log.exception("could not record a gateway call")

    @staticmethod
    async def _watch_disconnect(receive: Receive, call: Call, task: asyncio.Task | None) -> None:
        """Cancel the request's task when its client goes away before the answer is done."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not call.done and task is not None:
            call.disconnected = True
            task.cancel()

    async def _exchange(
        self,
        upstream: Upstream,
        method: str,
        target: bytes,
        headers: CIMultiDict[str],
        call: Call,
        send: Send,
    ) -> None:
        """Try the upstream (then the fallback) until an answer can be forwarded."""
        targets = policy.targets(upstream, self.fallbacks)
        cap = call.capture
        failure: Failure | None = None
        waited = 0.0  # seconds slept between tries, within --retry-max-wait
        for ti, up in enumerate(targets):
            final_target = ti == len(targets) - 1
            url = URL(up.url + target.decode("latin-1"), encoded=True)
            sent = policy.credentials(headers, upstream, up, CREDENTIAL_HEADERS)
            n = -1
            while n < self.retries:
                n += 1
                data = cap.body_for(up.name not in self.plain_streams) or None
                call.target = up
                span = record.attempt_span(call, up, method)
                attempt_start = time.perf_counter()
                try:
                    resp = await forward.request(self.session(), method, url, sent, data)
                except Failure as f:
                    failure = f
                    record.end_attempt(span, attempt_start, None, f.error_class, f.message)
                    if not f.retryable:  # e.g. no answer in time: trying again doubles the wait
                        await self._fail(f, call, send)
                        return
                    if n < self.retries:
                        wait = policy.backoff(n, None, self.retry_backoff)
                        waited += wait
                        await asyncio.sleep(wait)
                    continue
                status = resp.status
                if status == 400 and cap.injected_usage:
                    raw, err = await forward.read_error(resp)
                    record.end_attempt(span, attempt_start, status, "invalid_request", err)
                    if "stream_options" in err:
                        # Azure OpenAI before 2024-09-01-preview, some self-hosted servers:
                        # ask again as the client did (not a retry), and remember.
                        self.plain_streams.add(up.name)
                        n -= 1
                        continue
                    await forward.send_read(resp, raw, err, call, send)
                    return
                if not policy.retryable_status(status) or (final_target and n == self.retries):
                    final = status >= 400 and len(call.attempts) > 1
                    try:
                        await forward.forward(resp, call, send, span, attempt_start, final)
                    finally:
                        resp.close()
                    return
                # A failed attempt: keep its error for the trace, then retry or move on.
                raw, err = await forward.read_error(resp)
                error_class, _code = classify_answer(status, err)
                record.end_attempt(span, attempt_start, status, error_class, err)
                if error_class not in policy.RETRYABLE_CLASSES:
                    # e.g. a validation error sent as 500 (llama.cpp, vLLM): asking again
                    # gets the same answer, and so would the client's own retries
                    await forward.send_read(resp, raw, err, call, send, final=True)
                    return
                delay = policy.retry_after(resp.headers)
                if delay is None and up.wire == "gemini":  # Google's RetryInfo.retryDelay
                    delay = retry_delay(err)
                wait = policy.backoff(n, delay, self.retry_backoff)
                left = self.retry_max_wait - waited
                if policy.give_up(n, self.retries, resp.headers, err, wait, left):
                    if final_target:  # nowhere else to go: this is the answer
                        # Retried already, or retrying cannot help: the client's SDK is
                        # told not to try again (its 2 retries would triple ours). A long
                        # Retry-After on a first answer is passed on as it came.
                        final = len(call.attempts) > 1 or "insufficient_quota" in err
                        await forward.send_read(resp, raw, err, call, send, final=final)
                        return
                    break  # on to the fallback
                waited += wait
                await asyncio.sleep(wait)
        assert failure is not None
        await self._fail(failure, call, send)

    async def _fail(self, failure: Failure, call: Call, send: Send) -> None:
        """Answer a request no upstream answered: 504 for timeouts, 502 otherwise."""
        up = call.target
        where = f"upstream {up.name!r} ({up.address})" if up else "the upstream"
        status = 504 if failure.error_class == "timeout" else 502
        message = f"Gensight gateway: {where} failed: {failure.message}"
        call.error_class = failure.error_class
        call.error_message = message
        call.http_status = status
        call.done = True
        code = "upstream_timeout" if status == 504 else "upstream_connection_error"
        # after the gateway's own retries, the client's SDK should not add its own
        retried = len(call.attempts) > 1
        wire = up.wire if up else None
        body = wire_error(wire, status, message, "upstream_error", code)
        await send_json(send, status, body, retried)
        call.response_started = True

    async def _refuse(self, refusal: Refusal, upstream: Upstream, call: Call, send: Send) -> None:
        """Answer a call over budget with a 429 ``budget_exceeded`` and record it.

        The upstream is never contacted (the call has no attempt spans); the record's
        ``error_class`` is ``rate_limit`` (what a 429 is, and what OpenAI clients raise),
        with ``gensight.budget_rule`` naming the rule that refused it.
        """
        body = wire_error(upstream.wire, 429, refusal.message, "budget_exceeded", "budget_exceeded")
        call.target = upstream
        call.http_status = 429
        call.error_class = "rate_limit"
        call.error_message = refusal.message
        call.budget_rule = refusal.rule_id
        call.done = True
        self._count("gateway_budget_refusals")
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        # retrying cannot help until the budget resets: tell OpenAI clients
                        (b"x-should-retry", b"false"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            call.response_started = True
        finally:
            try:
                await self._record(call)
            except Exception:  # fail-open, as for every call
                self._count("gateway_record_errors")
                log.exception("could not record a refused gateway call")

    async def _record(self, call: Call) -> None:
        """Build the call's records and hand them to the pipeline (never waits on it)."""
        calls, spans = await record.build(call, self.capture_content)
        try:
            self.submit(calls, spans, ())
        except Exception:  # fail-open: the pipeline counts its own drops
            self._count("gateway_submit_errors")
            log.exception("pipeline refused a gateway record")


class GatewayMiddleware:
    """Serves the gateway's paths ahead of the rest of the app.

    A proxy's overhead is per request, so gateway requests skip the web framework's
    routing and middleware (the key check, added outside this, still applies):
    ``/openai/v1/…``, ``/anthropic/…``, ``/gemini/…`` and ``/p/{name}/…`` go straight to
    ``Gateway.handle``.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/openai/v1/"):
                await self.gateway.handle(scope, receive, send, "openai")
                return
            for name in NATIVE_ROUTES:
                if path.startswith(name, 1) and path[len(name) + 1 : len(name) + 2] == "/":
                    await self.gateway.handle(scope, receive, send, name)
                    return
            if path.startswith("/p/"):
                name, _, rest = path[3:].partition("/")
                up = self.gateway.upstreams.get(name)
                if name and (rest.startswith("v1/") or (up is not None and up.wire != "openai")):
                    await self.gateway.handle(scope, receive, send, name)
                    return
        await self.app(scope, receive, send)


def from_settings(settings: Settings, submit: Submit, counters: dict[str, int]) -> Gateway:
    """A gateway configured from the server's ``Settings`` (and its upstreams file)."""
    urls, keys, fallbacks = dict(settings.upstreams), {}, {}
    if settings.upstreams_file is not None:
        urls, keys, fallbacks = read_file(settings.upstreams_file)
        urls = {**settings.upstreams, **urls}
    return Gateway(
        urls,
        submit,
        counters,
        retries=settings.retries,
        fallback={**fallbacks, **settings.fallback},
        upstream_keys={**keys, **settings.upstream_keys},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.upstream_timeout,
        retry_backoff=settings.retry_backoff,
        retry_max_wait=settings.retry_max_wait,
        max_body=settings.max_body,
        capture_content=settings.capture_content,
    )
