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
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yarl import URL

from gensight.conventions.errors import classify_answer
from gensight.model.records import CallRecord, ContentEvent, SpanRecord
from gensight.model.settings import Settings
from gensight.receive.gateway import forward, policy, record, routes, uploads
from gensight.receive.gateway.calibrate import Calibration
from gensight.receive.gateway.call import Call
from gensight.receive.gateway.capture import Capture
from gensight.receive.gateway.errors import Failure, openai_error, send_json, wire_error
from gensight.receive.gateway.gemini import retry_delay
from gensight.receive.gateway.upstreams import CREDENTIAL_HEADERS, Upstream, configure, read_file
from gensight.receive.gateway.wires import capture_for

log = logging.getLogger("gensight.receive.gateway")

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
        max_upload: int = 512 * 1024 * 1024,
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
        #: Bodies that are not JSON (files, audio, batch input) are streamed up to this.
        self.max_upload = max_upload
        self.capture_content = capture_content
        #: Upstreams (and api-versions: Azure's older ones) that answered 400 to the
        #: injected ``stream_options``: asked without it.
        self.plain_streams: set[tuple[str, str | None]] = set()
        #: What each upstream's own token counts taught the gateway's estimates.
        self.calibration = Calibration()
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
    def _open(
        self, scope: Scope
    ) -> tuple[Call, str, Upstream | None, bytes | None, list[tuple[str, str]]]:
        """The call a request starts: its upstream (None: unknown) and the path to ask."""
        start = time.perf_counter()
        ts = datetime.now(UTC)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        name, rest = routes.split(raw_path, self.upstreams)
        upstream = self.upstreams.get(name)
        method: str = scope["method"]
        headers, meta = forward.request_headers(scope["headers"])
        bound = (scope.get("state") or {}).get("gensight_app")
        if bound:  # a key bound to an app (ingest@APP:KEY): its calls are that app's
            meta[b"x-gensight-app"] = bound.encode()
        path = (rest if rest is not None else raw_path).decode("latin-1")
        cap = capture_for(upstream, method, path, b"") if upstream else Capture(method, path, b"")
        call = Call(start, ts, method, path, cap, meta)
        call.route = scope["path"]
        call.query = scope.get("query_string") or b""
        call.target = upstream
        return call, name, upstream, rest, headers

    async def refuse(
        self, scope: Scope, send: Send, status: int, message: str, type_: str, code: str
    ) -> None:
        """Answer a gateway request the server refuses before the gateway sees it (a
        missing or wrong key, a key without the scope) and record it."""
        call, _name, upstream, _rest, _headers = self._open(scope)
        # Who sent it is unproven: its X-Gensight-* headers (app, user, session, trace)
        # are not taken, so nobody without a key can write into an app's figures.
        call.meta = {}
        answer = _Answer(send, call)
        body = wire_error(upstream.wire if upstream else None, status, message, type_, code)
        try:
            await self._answer(call, answer, status, "auth", message, code, body)
        finally:
            await answer.release()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Proxy one request to the upstream its path names and record it."""
        call, name, upstream, rest, headers = self._open(scope)
        answer = _Answer(send, call)
        try:
            await self._handle(scope, receive, answer, call, name, upstream, rest, headers)
        finally:
            await answer.release()  # the answer's last bytes, once the call is journaled

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: Call,
        name: str,
        upstream: Upstream | None,
        rest: bytes | None,
        headers: list[tuple[str, str]],
    ) -> None:
        if upstream is None:
            known = ", ".join(sorted(self.upstreams)) or "(none)"
            message = (
                f"Unknown upstream {name!r}. Configured upstreams: {known} "
                "(add one with gensight serve --upstream NAME=URL)."
            )
            body = openai_error(message, "invalid_request_error", "unknown_upstream")
            await self._answer(
                call, send, 404, "invalid_request", message, "unknown_upstream", body
            )
            return
        wire = upstream.wire
        if rest is None:
            message = f"Invalid URL ({call.method} {scope['path']})."
            body = wire_error(wire, 404, message, "invalid_request_error", "not_found")
            await self._answer(call, send, 404, "invalid_request", message, "not_found", body)
            return
        method = call.method
        streamed = uploads.is_upload(scope["headers"])
        limit = self.max_upload if streamed else self.max_body
        length = uploads.content_length(scope["headers"])
        if length is not None and length > limit:
            await self._too_large(call, send, wire, limit, streamed)
            return
        data: bytes | uploads.Upload | None
        if streamed:
            data = uploads.Upload(receive, limit, length)
            if length is not None:  # sent as it came, not re-chunked
                headers.append(("content-length", str(length)))
        else:
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > limit:
                    await self._too_large(call, send, wire, limit, streamed)
                    return
                if not message.get("more_body"):
                    break
            call.capture = capture_for(upstream, method, call.path, bytes(body))
            data = None
        target = rest + (b"?" + call.query if call.query else b"")
        if self.budget is not None and call.capture.is_call:
            refusal = self.budget(
                record.header_text(call.meta.get(b"x-gensight-app")), record.user_of(call)
            )
            if refusal is not None:
                call.budget_rule = refusal.rule_id
                self._count("gateway_budget_refusals")
                body = wire_error(wire, 429, refusal.message, "budget_exceeded", "budget_exceeded")
                # retrying cannot help until the budget resets: tell OpenAI clients
                await self._answer(
                    call, send, 429, "rate_limit", refusal.message, "budget_exceeded", body, True
                )
                return

        task = asyncio.current_task()
        # A client leaving cancels its request upstream (a stream, or a long non-streamed
        # answer it stopped waiting for) and the call is recorded as cancelled. An upload
        # is watched once its body is in (its reader sees a disconnect before that).
        watcher: asyncio.Task | None = None
        if isinstance(data, uploads.Upload):
            data.on_done = lambda: self._watch(receive, call, task)
        else:
            watcher = self._watch(receive, call, task)
        try:
            await self._exchange(upstream, method, target, CIMultiDict(headers), call, send, data)
        except asyncio.CancelledError:
            if not call.disconnected or task is None:
                raise
            task.uncancel()
            call.error_class = "cancelled"
            call.error_message = "the client disconnected before the answer was complete"
        finally:
            if watcher is not None:
                watcher.cancel()
            if isinstance(data, uploads.Upload) and data.watcher is not None:
                data.watcher.cancel()
            try:
                await self._record(call)
            except Exception:  # fail-open: recording never breaks a call
                self._count("gateway_record_errors")
                log.exception("could not record a gateway call")

    def _watch(self, receive: Receive, call: Call, task: asyncio.Task | None) -> asyncio.Task:
        return asyncio.create_task(self._watch_disconnect(receive, call, task))

    async def _too_large(
        self, call: Call, send: Send, wire: str, limit: int, upload: bool, then_record: bool = True
    ) -> None:
        """413 in the wire's shape; the connection is closed (the rest of the body unread).
        ``then_record``: False when the request's own course records the call (once)."""
        what = "an upload" if upload else "a request body"
        flag = "--max-upload" if upload else "--max-body"
        message = f"Gensight gateway: {what} may have at most {limit} bytes ({flag})."
        body = wire_error(wire, 413, message, "invalid_request_error", "request_too_large")
        await self._answer(
            call, send, 413, "invalid_request", message, "request_too_large", body,
            close=True, then_record=then_record,
        )  # fmt: skip

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
        upload: uploads.Upload | None = None,
    ) -> None:
        """Try the upstream (then the fallback) until an answer can be forwarded; an
        upload is streamed to the upstream addressed, once (it cannot be sent twice)."""
        targets = [upstream] if upload else policy.targets(upstream, self.fallbacks)
        version = routes.api_version(call.query)
        retries = 0 if upload else self.retries
        cap = call.capture
        failure: Failure | None = None
        waited = 0.0  # seconds slept between tries, within --retry-max-wait
        for ti, up in enumerate(targets):
            final_target = ti == len(targets) - 1
            url = URL(up.url + target.decode("latin-1"), encoded=True)
            sent = policy.credentials(headers, upstream, up, CREDENTIAL_HEADERS)
            n = -1
            while n < retries:
                n += 1
                data = upload or cap.body_for((up.name, version) not in self.plain_streams) or None
                call.target = up
                span = record.attempt_span(call, up, method)
                attempt_start = time.perf_counter()
                try:
                    resp = await forward.request(self.session(), method, url, sent, data)
                except Failure as f:
                    failure = f
                    call.upstream_request_id, call.ratelimit = None, {}
                    record.end_attempt(span, attempt_start, None, f.error_class, f.message)
                    if upload is not None and upload.too_large:
                        await self._too_large(call, send, up.wire, upload.limit, True, False)
                        return
                    if upload is not None and upload.disconnected:
                        call.error_class = "cancelled"
                        call.error_message = "the client disconnected during its upload"
                        return
                    if not f.retryable:  # e.g. no answer in time: trying again doubles the wait
                        await self._fail(f, call, send)
                        return
                    if n < retries:
                        wait = policy.backoff(n, None, self.retry_backoff)
                        waited += wait
                        await asyncio.sleep(wait)
                    continue
                status = resp.status
                record.note_answer(call, span, resp.headers)
                if status == 400 and cap.injected_usage:
                    raw, err = await forward.read_error(resp)
                    record.end_attempt(span, attempt_start, status, "invalid_request", err)
                    if "stream_options" in err:
                        # Azure OpenAI before 2024-09-01-preview, some self-hosted servers:
                        # ask again as the client did (not a retry), and remember.
                        self.plain_streams.add((up.name, version))
                        n -= 1
                        continue
                    await forward.send_read(resp, raw, err, call, send)
                    return
                if not policy.retryable_status(status) or (final_target and n == retries):
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
                if policy.give_up(n, retries, resp.headers, err, wait, left):
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

    async def _answer(
        self,
        call: Call,
        send: Send,
        status: int,
        error_class: str,
        message: str,
        code: str,
        body: bytes,
        no_retry: bool = False,
        close: bool = False,
        then_record: bool = True,
    ) -> None:
        """Answer a request the gateway refuses without asking any upstream, and record
        it: a failed call (or span) of ``error_class``, ``gensight.refusal`` its ``code``."""
        call.http_status = status
        call.error_class = error_class
        call.error_message = message
        call.refusal = code
        call.done = True
        self._count("gateway_refusals")
        try:
            extra = [(b"connection", b"close")] if close else []
            await send_json(send, status, body, no_retry, extra)
            call.response_started = True
        finally:
            if then_record:
                try:
                    await self._record(call)
                except Exception:  # fail-open, as for every call
                    self._count("gateway_record_errors")
                    log.exception("could not record a refused gateway call")

    async def _record(self, call: Call) -> None:
        """Build the call's records and hand them to the pipeline (never waits on it)."""
        calls, spans = await record.build(call, self.capture_content, self.calibration)
        try:
            self.submit(calls, spans, ())
        except Exception:  # fail-open: the pipeline counts its own drops
            self._count("gateway_submit_errors")
            log.exception("pipeline refused a gateway record")


class _Answer:
    """The client's ``send`` for one gateway call: adds ``X-Gensight-Call-Id`` to the
    answer of a call (the id its record is stored under: ``GET /api/calls/{id}``,
    ``POST /api/scores``) and holds back the answer's last message until ``release``.

    The gateway records a call once its answer is complete, and that record is journaled
    before the client has the answer's last byte: a client that got a whole answer has a
    call that survives a crash (SIGKILL, OOM) right after, as an acknowledged OTLP batch
    does. The wait is the record's own building and journal write, at the answer's end
    only (time to first token is untouched).
    """

    __slots__ = ("_send", "_call", "_last")

    def __init__(self, send: Send, call: Call) -> None:
        self._send = send
        self._call = call
        self._last: Message | None = None

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._call.capture.is_call:
                header = (b"x-gensight-call-id", self._call.id.encode())
                message["headers"] = [*message.get("headers", ()), header]
        elif kind == "http.response.body" and not message.get("more_body"):
            self._last = message
            return
        await self._send(message)

    async def release(self) -> None:
        """Send the held last message (once)."""
        last, self._last = self._last, None
        if last is not None:
            await self._send(last)


class GatewayMiddleware:
    """Serves the gateway's paths ahead of the rest of the app.

    A proxy's overhead is per request, so gateway requests skip the web framework's
    routing and middleware (the key check, added outside this, still applies): every
    path under ``routes.PREFIXES`` goes straight to ``Gateway.handle``, which answers
    a wrong one itself, in its wire's error shape.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and routes.is_gateway_path(scope["path"]):
            await self.gateway.handle(scope, receive, send)
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
        max_upload=settings.max_upload,
        capture_content=settings.capture_content,
    )
