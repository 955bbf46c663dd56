"""The recording proxy: one raw ASGI handler in front of one pooled aiohttp client.

A request is read whole (request bodies are small), forwarded with its headers
(hop-by-hop and ``X-Gensight-*`` aside) to the named upstream, and the answer is
streamed back as it arrives: status, headers and bytes unchanged, except that a
streamed chat completion asks the upstream for usage and the client does not see
that extra chunk unless it asked for it. Upstream 429s, 5xx and connection failures
are retried (and then sent to the fallback upstream) while nothing has reached the
client yet. A client that goes away cancels the upstream request.

Only once the answer is complete (or cut) is the call recorded: one ``CallRecord``,
a server span for the gateway and a client span per upstream attempt, handed to the
pipeline without waiting. Recording never fails a call (fail-open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import orjson
from multidict import CIMultiDict
from starlette.types import Receive, Scope, Send
from yarl import URL

from gensight.conventions.errors import classify
from gensight.enrich import tokens
from gensight.model.records import CallRecord, ContentEvent, SpanRecord
from gensight.receive.gateway.capture import Capture
from gensight.receive.gateway.sse import SSESplitter, parse_event
from gensight.receive.gateway.upstreams import Upstream

log = logging.getLogger("gensight.receive.gateway")

Submit = Callable[[Sequence[CallRecord], Sequence[SpanRecord], Sequence[ContentEvent]], bool]


class Refusal(Protocol):
    """Why a budget refuses a call: the rule's id and the message the client gets."""

    rule_id: str
    message: str


#: Asked before each call with the call's (app, user): a refusal, or None to go ahead.
Budget = Callable[[str | None, str | None], Refusal | None]

# RFC 9110 §7.6.1 connection-specific headers, never forwarded either way.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Request headers the gateway sets itself (host, length) or consumes (its own).
_REQUEST_DROP = _HOP_BY_HOP | {b"host", b"content-length", b"expect", b"x-gensight-key"}
# The server adds its own Date; two would reach the client.
_RESPONSE_DROP = _HOP_BY_HOP | {b"date"}

_META_PREFIX = b"x-gensight-"

try:  # decode brotli responses for recording only where the module is installed
    import brotli as _brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None
_DECODABLE = {"gzip", "x-gzip", "deflate", "identity"} | ({"br"} if _brotli else set())

#: How much of an answer is kept for reading (the client always gets all of it).
MAX_CAPTURE = 32 * 1024 * 1024
#: How much of an upstream error body is kept as ``error_message``.
MAX_ERROR_MESSAGE = 8192


class _Failure(Exception):
    """An attempt that produced no response: ``error_class`` is connection or timeout."""

    def __init__(self, error_class: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.retryable = retryable


class _Call:
    """Per-request state shared by the forwarding code and the recorder."""

    __slots__ = (
        "attempts",
        "budget_rule",
        "capture",
        "disconnected",
        "done",
        "error_class",
        "error_message",
        "first_byte",
        "http_status",
        "meta",
        "method",
        "path",
        "response_started",
        "route",
        "start",
        "target",
        "ts",
    )

    def __init__(
        self,
        start: float,
        ts: datetime,
        method: str,
        path: str,
        capture: Capture,
        meta: dict[bytes, bytes],
    ) -> None:
        self.ts = ts
        self.start = start
        self.method = method
        self.path = path
        self.capture = capture
        self.meta = meta
        self.route = path
        self.attempts: list[SpanRecord] = []
        self.target: Upstream | None = None
        self.http_status: int | None = None
        self.first_byte: float | None = None
        self.response_started = False
        self.done = False
        self.disconnected = False
        self.error_class: str | None = None
        self.error_message: str | None = None
        self.budget_rule: str | None = None

    def elapsed_ms(self, since: float | None = None) -> float:
        return (time.perf_counter() - (self.start if since is None else since)) * 1000.0


def openai_error(message: str, type_: str, code: str | None = None) -> bytes:
    """An error body in the OpenAI API's shape, which every OpenAI client understands."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _decoder(encoding: str | None) -> Callable[[bytes], bytes] | None:
    """An incremental decoder for a Content-Encoding (None for identity)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return None
    if enc in ("gzip", "x-gzip", "deflate"):
        d = zlib.decompressobj(wbits=47)  # gzip or zlib, auto-detected
        return d.decompress
    if enc == "br" and _brotli is not None:
        return _brotli.Decompressor().process
    return lambda chunk: b""  # unknown coding: forwarded, not read


def _accept_encoding(value: bytes) -> bytes | None:
    """The client's Accept-Encoding, limited to codings the gateway can read back."""
    kept = []
    for item in value.decode("latin-1").split(","):
        coding = item.split(";", 1)[0].strip().lower()
        if coding in _DECODABLE:
            kept.append(item.strip())
    return ", ".join(kept).encode("latin-1") if kept else None


def _retry_after(headers: Any) -> float | None:
    """Seconds a 429/503 asks to wait (``retry-after-ms``, ``Retry-After`` secs or date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _new_id(bits: int) -> str:
    return ("%032x" if bits == 128 else "%016x") % random.getrandbits(bits)


def parse_traceparent(value: bytes | None) -> tuple[str, str] | None:
    """``(trace_id, parent span id)`` of a valid W3C ``traceparent``, else None."""
    if not value or len(value) < 55:
        return None
    try:
        parts = value.decode("ascii").strip().lower().split("-")
    except UnicodeDecodeError:
        return None
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    trace_id, span_id = parts[1], parts[2]
    if len(trace_id) != 32 or len(span_id) != 16:
        return None
    try:
        if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
            return None
    except ValueError:
        return None
    return trace_id, span_id


class Gateway:
    """The proxy for a set of upstreams; one instance per server."""

    def __init__(
        self,
        upstreams: dict[str, str],
        submit: Submit,
        counters: dict[str, int],
        *,
        retries: int = 2,
        fallback: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        retry_backoff: float = 0.5,
        retry_max_wait: float = 30.0,
        max_body: int = 16 * 1024 * 1024,
        capture_content: bool = True,
    ) -> None:
        self.upstreams = {name: Upstream.from_config(name, url) for name, url in upstreams.items()}
        if fallback is not None and fallback not in self.upstreams:
            raise ValueError(
                f"--fallback {fallback!r} is not a configured upstream "
                f"(configured: {', '.join(sorted(self.upstreams))})"
            )
        self.submit = submit
        self.counters = counters
        self.retries = max(0, retries)
        self.fallback = self.upstreams[fallback] if fallback else None
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self.retry_backoff = retry_backoff
        self.retry_max_wait = retry_max_wait
        self.max_body = max_body
        self.capture_content = capture_content
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
            await _send_json(
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
        # The path after ``…/v1``, still percent-encoded as the client sent it.
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if raw_path.startswith(b"/p/"):
            slash = raw_path.find(b"/", 3)
            rest = raw_path[slash + 3 :] if slash != -1 else b""
        else:
            rest = raw_path.partition(b"/v1")[2]
        if not rest.startswith(b"/"):
            await _send_json(send, 404, openai_error("Not found.", "invalid_request_error"))
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _send_json(
                    send,
                    413,
                    openai_error(
                        f"Request body exceeds the gateway's limit of {self.max_body} bytes.",
                        "invalid_request_error",
                        "request_too_large",
                    ),
                )
                return
            if not message.get("more_body"):
                break

        method: str = scope["method"]
        headers: list[tuple[str, str]] = []
        meta: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            if key.startswith(_META_PREFIX):
                meta[key] = value
            elif key == b"traceparent":
                meta[key] = value
                headers.append(("traceparent", value.decode("latin-1")))
            elif key == b"accept-encoding":
                value = _accept_encoding(value)
                if value:
                    headers.append(("accept-encoding", value.decode("latin-1")))
            elif key not in _REQUEST_DROP:
                headers.append((key.decode("latin-1"), value.decode("latin-1")))
        path = rest.decode("latin-1")
        call = _Call(start, ts, method, path, Capture(method, path, bytes(body)), meta)
        call.route = scope["path"]
        query: bytes = scope.get("query_string") or b""
        target = rest + (b"?" + query if query else b"")
        if self.budget is not None and call.capture.is_call:
            refusal = self.budget(
                _text(meta.get(b"x-gensight-app")), _text(meta.get(b"x-gensight-user"))
            )
            if refusal is not None:
                await self._refuse(refusal, upstream, call, send)
                return

        task = asyncio.current_task()
        # A client leaving a stream cancels it upstream. Non-streamed answers are not
        # watched: a task per request costs more than the rare early hang-up saves.
        watcher = (
            asyncio.create_task(self._watch_disconnect(receive, call, task))
            if call.capture.stream
            else None
        )
        try:
            await self._exchange(upstream, method, target, CIMultiDict(headers), call, send)
        except asyncio.CancelledError:
            if not call.disconnected or task is None:
                raise
            task.uncancel()
            call.error_class = "cancelled"
            call.error_message = "the client disconnected before the answer was complete"
        finally:
            if watcher is not None:
                watcher.cancel()
            try:
                await self._record(call)
            except Exception:  # fail-open: recording never breaks a call
                self._count("gateway_record_errors")
                log.exception("could not record a gateway call")

    @staticmethod
    async def _watch_disconnect(receive: Receive, call: _Call, task: asyncio.Task | None) -> None:
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
        call: _Call,
        send: Send,
    ) -> None:
        """Try the upstream (then the fallback) until an answer can be forwarded."""
        targets = [upstream]
        if self.fallback is not None and self.fallback is not upstream:
            targets.append(self.fallback)
        data = call.capture.upstream_body or None
        failure: _Failure | None = None
        for ti, up in enumerate(targets):
            final_target = ti == len(targets) - 1
            url = URL(up.url + target.decode("latin-1"), encoded=True)
            for n in range(self.retries + 1):
                call.target = up
                span = self._attempt_span(call, up, method)
                attempt_start = time.perf_counter()
                try:
                    resp = await self._request(method, url, headers, data)
                except _Failure as f:
                    failure = f
                    self._end_attempt(span, attempt_start, None, f.error_class, f.message)
                    if not f.retryable:  # e.g. no answer in time: trying again doubles the wait
                        await self._fail(f, call, send)
                        return
                    if n < self.retries:
                        await asyncio.sleep(self._backoff(n, None))
                    continue
                status = resp.status
                if not (status == 429 or status >= 500) or (final_target and n == self.retries):
                    try:
                        await self._forward(resp, call, send, span, attempt_start)
                    finally:
                        resp.close()
                    return
                # A failed attempt: keep its error for the trace, then retry or move on.
                raw, err = await self._read_error(resp)
                self._end_attempt(span, attempt_start, status, classify(status), err)
                delay = _retry_after(resp.headers)
                give_up = (
                    n == self.retries
                    or resp.headers.get("x-should-retry") == "false"
                    or "insufficient_quota" in err
                    or (delay is not None and delay > self.retry_max_wait)
                )
                if give_up:
                    if final_target:  # nowhere else to go: this is the answer
                        await self._send_read(resp, raw, err, call, send)
                        return
                    break  # on to the fallback
                await asyncio.sleep(self._backoff(n, delay))
        assert failure is not None
        await self._fail(failure, call, send)

    async def _request(
        self, method: str, url: URL, headers: CIMultiDict[str], data: bytes | None
    ) -> aiohttp.ClientResponse:
        try:
            return await self.session().request(
                method, url, headers=headers, data=data, allow_redirects=False
            )
        except aiohttp.ConnectionTimeoutError as e:
            raise _Failure("timeout", f"connecting timed out: {e}", True) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise _Failure("timeout", f"no answer in time: {e or 'read timeout'}", False) from None
        except (aiohttp.ClientConnectionError, OSError) as e:
            raise _Failure("connection", f"{type(e).__name__}: {e}", True) from None
        except aiohttp.ClientError as e:
            raise _Failure("connection", f"{type(e).__name__}: {e}", False) from None

    def _backoff(self, n: int, retry_after: float | None) -> float:
        """Seconds before retry ``n + 1``: Retry-After when given, else exponential + jitter."""
        if retry_after is not None:
            return retry_after
        base = min(self.retry_backoff * (2**n), 8.0)
        return base * (0.5 + random.random() / 2)

    async def _read_error(self, resp: aiohttp.ClientResponse) -> tuple[bytes, str]:
        """The raw bytes of an error answer and its text (decoded, shortened)."""
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            return b"", f"(error body unreadable: {type(e).__name__})"
        finally:
            resp.release()
        text = raw
        decode = _decoder(resp.headers.get("content-encoding"))
        with contextlib.suppress(Exception):
            text = decode(raw) if decode else raw
        return raw, text[:MAX_ERROR_MESSAGE].decode("utf-8", "replace")

    # -- answer ----------------------------------------------------------------
    @staticmethod
    def _response_headers(
        resp: aiohttp.ClientResponse, drop_length: bool
    ) -> list[tuple[bytes, bytes]]:
        out = []
        for key, value in resp.raw_headers:
            k = key.lower()
            if k in _RESPONSE_DROP or (drop_length and k == b"content-length"):
                continue
            out.append((k, value))
        return out

    async def _send_read(
        self, resp: aiohttp.ClientResponse, body: bytes, text: str, call: _Call, send: Send
    ) -> None:
        """Forward an error answer whose body was already read for the retry decision."""
        call.http_status = resp.status
        call.error_message = text
        call.done = True
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": self._response_headers(resp, False),
            }
        )
        call.response_started = True
        await send({"type": "http.response.body", "body": body})

    async def _forward(
        self,
        resp: aiohttp.ClientResponse,
        call: _Call,
        send: Send,
        span: SpanRecord,
        attempt_start: float,
    ) -> None:
        """Stream the chosen answer to the client, reading a copy as it goes."""
        status = resp.status
        call.http_status = status
        cap = call.capture
        ctype = resp.headers.get("content-type", "")
        sse = ctype.startswith("text/event-stream")
        decode = _decoder(resp.headers.get("content-encoding"))
        strip = sse and cap.injected_usage and decode is None
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": self._response_headers(resp, strip),
            }
        )
        call.response_started = True
        reader = resp.content
        error: _Failure | None = None
        try:
            if sse and status < 400:
                await self._forward_sse(reader, call, send, decode, strip)
            else:
                await self._forward_body(reader, call, send, decode, status)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            timeout = isinstance(e, TimeoutError)
            error = _Failure(
                "timeout" if timeout else "connection",
                ("the upstream stalled mid-answer: " if timeout else "the upstream broke off: ")
                + (f"{type(e).__name__}: {e}" if str(e) else type(e).__name__),
                False,
            )
            call.error_class = error.error_class
            call.error_message = error.message
            call.done = True
            if sse:  # end the stream the way OpenAI reports mid-stream errors
                code = f"upstream_{error.error_class}"
                event = b"data: " + openai_error(error.message, "upstream_error", code) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            # Otherwise the answer is left incomplete: the server closes the connection,
            # which is how a client learns that a body was cut.
        finally:
            ended = call.error_class or (classify(status) if status >= 400 else None)
            self._end_attempt(span, attempt_start, status, ended, error.message if error else None)

    async def _forward_sse(
        self,
        reader: aiohttp.StreamReader,
        call: _Call,
        send: Send,
        decode: Callable[[bytes], bytes] | None,
        strip: bool,
    ) -> None:
        cap = call.capture
        splitter = SSESplitter()
        while chunk := await reader.readany():
            if call.first_byte is None:
                call.first_byte = time.perf_counter()
            if strip:
                kept = []
                for raw in splitter.feed(chunk):
                    event, data = parse_event(raw)
                    if data is not None and cap.on_event(event, data):
                        continue  # the usage chunk the client did not ask for
                    kept.append(raw)
                if kept:
                    await send(
                        {"type": "http.response.body", "body": b"".join(kept), "more_body": True}
                    )
            else:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                for raw in splitter.feed(decode(chunk) if decode else chunk):
                    event, data = parse_event(raw)
                    if data is not None:
                        cap.on_event(event, data)
        tail = splitter.tail()
        if tail:
            event, data = parse_event(tail)
            if data is not None:
                cap.on_event(event, data)
            if strip:
                await send({"type": "http.response.body", "body": tail, "more_body": True})
        call.done = True
        await send({"type": "http.response.body", "body": b""})

    async def _forward_body(
        self,
        reader: aiohttp.StreamReader,
        call: _Call,
        send: Send,
        decode: Callable[[bytes], bytes] | None,
        status: int,
    ) -> None:
        kept: list[bytes] = []
        size = 0
        pending: bytes | None = None  # one chunk held back so the last goes out as final
        while chunk := await reader.readany():
            if call.first_byte is None:
                call.first_byte = time.perf_counter()
            if size <= MAX_CAPTURE:
                kept.append(chunk)
                size += len(chunk)
            if pending is not None:
                await send({"type": "http.response.body", "body": pending, "more_body": True})
            pending = chunk
        call.done = True
        await send({"type": "http.response.body", "body": pending or b""})
        if size > MAX_CAPTURE:
            return
        raw = b"".join(kept)
        try:
            raw = decode(raw) if decode else raw
        except Exception:  # a body the gateway cannot decode is forwarded, not read
            return
        if status >= 400:
            call.error_message = raw[:MAX_ERROR_MESSAGE].decode("utf-8", "replace")
        elif call.capture.is_call:
            call.capture.on_body(raw)

    async def _fail(self, failure: _Failure, call: _Call, send: Send) -> None:
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
        await _send_json(send, status, openai_error(message, "upstream_error", code))
        call.response_started = True

    async def _refuse(self, refusal: Refusal, upstream: Upstream, call: _Call, send: Send) -> None:
        """Answer a call over budget with a 429 ``budget_exceeded`` and record it.

        The upstream is never contacted (the call has no attempt spans); the record's
        ``error_class`` is ``rate_limit`` (what a 429 is, and what OpenAI clients raise),
        with ``gensight.budget_rule`` naming the rule that refused it.
        """
        body = openai_error(refusal.message, "budget_exceeded", "budget_exceeded")
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

    # -- spans -----------------------------------------------------------------
    def _attempt_span(self, call: _Call, up: Upstream, method: str) -> SpanRecord:
        n = len(call.attempts) + 1
        span = SpanRecord(
            trace_id="",
            span_id=_new_id(64),
            name=f"{method} {up.name} (attempt {n})",
            ts=datetime.now(UTC),
            duration_ms=0.0,
            kind="client",
            attributes={
                "gensight.upstream": up.name,
                "gensight.attempt": n,
                "http.request.method": method,
                "server.address": up.host,
                "url.full": up.address + call.path,
            },
        )
        call.attempts.append(span)
        return span

    @staticmethod
    def _end_attempt(
        span: SpanRecord,
        started: float,
        status: int | None,
        error_class: str | None,
        message: str | None,
    ) -> None:
        span.duration_ms = (time.perf_counter() - started) * 1000.0
        if status is not None:
            span.attributes["http.response.status_code"] = status
        if error_class:
            span.status = "error"
            span.status_message = message[:MAX_ERROR_MESSAGE] if message else None
            span.attributes["error.type"] = error_class

    # -- record ----------------------------------------------------------------
    async def _record(self, call: _Call) -> None:
        """Build the call's records and hand them to the pipeline (never waits on it)."""
        cap = call.capture
        meta = call.meta
        parent = parse_traceparent(meta.get(b"traceparent"))
        trace_id, parent_id = parent if parent else (_new_id(128), None)
        span_id = _new_id(64)
        duration = call.elapsed_ms()
        up = call.target
        app = _text(meta.get(b"x-gensight-app"))
        status = "ok"
        error_class = call.error_class
        if error_class is None and call.http_status is not None and call.http_status >= 400:
            error_class = classify(call.http_status)
        if error_class is not None:
            status = "error"
        else:
            call.error_message = None
        attrs: dict[str, Any] = {"http.request.method": call.method, "url.path": call.route}
        if up is not None:
            attrs["gensight.upstream"] = up.name
        if call.budget_rule is not None:
            attrs["gensight.budget_rule"] = call.budget_rule
        if len({s.attributes["gensight.upstream"] for s in call.attempts}) > 1:
            attrs["gensight.fallback"] = True
        for s in call.attempts:
            s.trace_id = trace_id
            s.parent_span_id = span_id
            s.app = app
        spans: list[SpanRecord] = list(call.attempts)
        calls: list[CallRecord] = []
        if cap.is_call:
            record = CallRecord(
                id=span_id,
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent_id,
                ts=call.ts,
                duration_ms=duration,
                source="gateway",
                ttft_ms=(
                    (call.first_byte - call.start) * 1000.0
                    if cap.stream and call.first_byte is not None
                    else None
                ),
                app=app,
                provider=up.provider if up else None,
                server_address=up.host if up else None,
                user=_text(meta.get(b"x-gensight-user")),
                session=_text(meta.get(b"x-gensight-session")),
                tags=_tags(meta.get(b"x-gensight-tags")),
                http_status=call.http_status,
                attempts=len(call.attempts),
                attributes=attrs,
            )
            if status == "error":
                record.status = "error"
                record.error_class = error_class
                record.error_message = call.error_message
            cap.fill(record, self.capture_content)
            # Estimate what the upstream did not count: whole answers, and cut streams
            # (a partial answer was still generated, and billed).
            if cap.needs_estimate(record) and (record.status == "ok" or cap.outputs()):
                model = record.response_model or record.request_model
                if tokens.ready(model):
                    cap.estimate(record)
                else:  # the vocabulary is still loading: don't block the loop
                    await asyncio.to_thread(cap.estimate, record)
            status = record.status
            calls.append(record)
            name = f"{record.operation} {record.request_model or ''}".strip()
        else:
            name = f"{call.method} {call.path}"
            if call.http_status is not None:
                attrs["http.response.status_code"] = call.http_status
        spans.insert(
            0,
            SpanRecord(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent_id,
                name=name,
                kind="server",
                ts=call.ts,
                duration_ms=duration,
                status=status,
                status_message=(call.error_message or "")[:512] or None,
                app=app,
                call_id=span_id if calls else None,
                attributes=dict(attrs),
            ),
        )
        try:
            self.submit(calls, spans, ())
        except Exception:  # fail-open: the pipeline counts its own drops
            self._count("gateway_submit_errors")
            log.exception("pipeline refused a gateway record")


def _text(value: bytes | None) -> str | None:
    if not value:
        return None
    return value.decode("utf-8", "replace").strip() or None


def _tags(value: bytes | None) -> list[str]:
    text = _text(value)
    if not text:
        return []
    return [t.strip() for t in text.split(",") if t.strip()]
