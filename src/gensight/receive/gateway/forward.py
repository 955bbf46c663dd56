"""Forwarding one attempt: headers both ways, the upstream request, the answer streamed.

A request is read whole (request bodies are small) and forwarded with its headers
(hop-by-hop and ``X-Gensight-*`` aside); the answer is streamed back as it arrives:
status, headers and bytes unchanged, except that a streamed chat completion asks the
upstream for usage and the client does not see that extra chunk unless it asked for
it. A copy is read on the way for the record (decoded where the gateway can).
"""

from __future__ import annotations

import contextlib
import re
import time
import zlib
from collections.abc import Callable, Iterable

import aiohttp
import orjson
from multidict import CIMultiDict
from starlette.types import Send
from yarl import URL

from gensight.conventions.errors import classify_answer
from gensight.model.records import SpanRecord
from gensight.receive.gateway.call import Call
from gensight.receive.gateway.errors import MAX_ERROR_MESSAGE, Failure, stream_error_event
from gensight.receive.gateway.record import end_attempt
from gensight.receive.gateway.sse import SSESplitter, parse_event

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


def accept_encoding(value: bytes) -> bytes | None:
    """The client's Accept-Encoding, limited to codings the gateway can read back."""
    kept = []
    for item in value.decode("latin-1").split(","):
        coding = item.split(";", 1)[0].strip().lower()
        if coding in _DECODABLE:
            kept.append(item.strip())
    return ", ".join(kept).encode("latin-1") if kept else None


def request_headers(
    raw: Iterable[tuple[bytes, bytes]],
) -> tuple[list[tuple[str, str]], dict[bytes, bytes]]:
    """The headers to send upstream, and the gateway's own (``X-Gensight-*``, traceparent)."""
    headers: list[tuple[str, str]] = []
    meta: dict[bytes, bytes] = {}
    for key, value in raw:
        if key.startswith(_META_PREFIX):
            meta[key] = value
        elif key == b"traceparent":
            meta[key] = value
            headers.append(("traceparent", value.decode("latin-1")))
        elif key == b"accept-encoding":
            value = accept_encoding(value)
            if value:
                headers.append(("accept-encoding", value.decode("latin-1")))
        elif key not in _REQUEST_DROP:
            headers.append((key.decode("latin-1"), value.decode("latin-1")))
    return headers, meta


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    data: bytes | None,
) -> aiohttp.ClientResponse:
    """Send one attempt; a failure to get any answer raises ``Failure``."""
    try:
        return await session.request(method, url, headers=headers, data=data, allow_redirects=False)
    except aiohttp.ConnectionTimeoutError:
        raise Failure("timeout", "connecting timed out", True) from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise Failure("timeout", "no answer in time", False) from None
    except (aiohttp.ClientConnectionError, OSError) as e:
        raise Failure("connection", describe(e), True) from None
    except aiohttp.ClientError as e:
        raise Failure("connection", describe(e), False) from None


def describe(e: BaseException) -> str:
    """What went wrong with a connection, in words a user acts on (no client internals)."""
    if isinstance(e, aiohttp.ClientConnectorError):
        reason = e.os_error.strerror or "refused" if e.os_error else "refused"
        return f"could not connect to {e.host}:{e.port} ({str(reason).lower()})"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "the upstream closed the connection before answering"
    if isinstance(e, aiohttp.ClientPayloadError):
        return "the upstream broke off its answer"
    if isinstance(e, aiohttp.ClientOSError | OSError) and getattr(e, "strerror", None):
        return f"the connection failed ({str(e.strerror).lower()})"
    return "the connection to the upstream failed"


async def read_error(resp: aiohttp.ClientResponse) -> tuple[bytes, str]:
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


def _response_headers(resp: aiohttp.ClientResponse, drop_length: bool) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in resp.raw_headers:
        k = key.lower()
        if k in _RESPONSE_DROP or (drop_length and k == b"content-length"):
            continue
        out.append((k, value))
    return out


async def send_read(
    resp: aiohttp.ClientResponse,
    body: bytes,
    text: str,
    call: Call,
    send: Send,
    final: bool = False,
) -> None:
    """Forward an error answer whose body was already read for the retry decision.

    ``final``: the gateway has retried (or judged retrying useless), so the answer says
    ``x-should-retry: false`` and OpenAI's SDKs do not multiply the tries.
    """
    call.http_status = resp.status
    call.error_message = text
    call.upstream_error = True
    call.done = True
    headers = _response_headers(resp, False)
    if final:
        headers = [(k, v) for k, v in headers if k != b"x-should-retry"]
        headers.append((b"x-should-retry", b"false"))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    call.response_started = True
    await send({"type": "http.response.body", "body": body})


async def forward(
    resp: aiohttp.ClientResponse,
    call: Call,
    send: Send,
    span: SpanRecord,
    attempt_start: float,
    final: bool = False,
) -> None:
    """Stream the chosen answer to the client, reading a copy as it goes (``final``: the
    gateway retried already, so the answer carries ``x-should-retry: false``)."""
    status = resp.status
    call.http_status = status
    cap = call.capture
    ctype = resp.headers.get("content-type", "")
    sse = ctype.startswith("text/event-stream")
    decode = _decoder(resp.headers.get("content-encoding"))
    strip = sse and cap.injected_usage and status < 400
    headers = _response_headers(resp, strip)
    if strip and decode is not None:
        # A compressed stream is decoded to take out what the client did not ask for,
        # and reaches it uncompressed (a client that accepts gzip accepts identity).
        headers = [(k, v) for k, v in headers if k != b"content-encoding"]
    if final:
        headers = [(k, v) for k, v in headers if k != b"x-should-retry"]
        headers.append((b"x-should-retry", b"false"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    call.response_started = True
    reader = resp.content
    error: Failure | None = None
    try:
        if sse and status < 400:
            await _forward_sse(reader, call, send, decode, strip)
        else:
            await _forward_body(reader, call, send, decode, status)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        timeout = isinstance(e, TimeoutError)
        error = Failure(
            "timeout" if timeout else "connection",
            "the upstream stalled mid-answer" if timeout else "the upstream broke off mid-answer",
            False,
        )
        call.error_class = error.error_class
        call.error_message = error.message
        call.done = True
        if sse and timeout:  # the upstream is still there: end the stream as OpenAI does
            code = f"upstream_{error.error_class}"
            wire = call.target.wire if call.target else None
            status = 504 if error.error_class == "timeout" else 502
            event = stream_error_event(wire, status, error.message, code)
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        # Otherwise the answer is left incomplete: the server closes the connection, which
        # is how a client learns that a body was cut, as it would from the upstream itself
        # (openai-python: a connection error, not an API error with our words in it).
    finally:
        ended = call.error_class or (
            classify_answer(status, call.error_message)[0] if status >= 400 else None
        )
        end_attempt(span, attempt_start, status, ended, error.message if error else None)


async def _forward_sse(
    reader: aiohttp.StreamReader,
    call: Call,
    send: Send,
    decode: Callable[[bytes], bytes] | None,
    strip: bool,
) -> None:
    cap = call.capture
    splitter = SSESplitter()
    while chunk := await reader.readany():
        arrived = time.perf_counter()
        if call.first_byte is None:
            call.first_byte = arrived
        if strip:
            kept = []
            for raw in splitter.feed(decode(chunk) if decode else chunk):
                event, data = parse_event(raw)
                if data is not None:
                    if cap.on_event(event, data):
                        continue  # the usage chunk the client did not ask for
                    if b'"usage"' in data:
                        raw = without_null_usage(raw, data)
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
        if call.first_token is None and cap.has_output:
            call.first_token = arrived
    tail = splitter.tail()
    if tail:
        event, data = parse_event(tail)
        hidden = data is not None and cap.on_event(event, data)
        if strip and not hidden:
            await send({"type": "http.response.body", "body": tail, "more_body": True})
    call.done = True
    await send({"type": "http.response.body", "body": b""})


# ``"usage": null``, the member an upstream adds to every chunk once usage is asked for.
# JSON strings cannot hold a bare quote, so this only matches a member, never text.
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,')


def without_null_usage(raw: bytes, data: bytes) -> bytes:
    """An event without the top-level ``"usage": null`` the injected request added,
    so a client that did not ask for usage gets chunks exactly as the upstream sends them
    to it directly."""
    found = _NULL_USAGE.findall(raw)
    if len(found) != 1:
        return raw
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return raw
    if not isinstance(parsed, dict) or "usage" not in parsed or parsed["usage"] is not None:
        return raw
    return _NULL_USAGE.sub(b"", raw, count=1)


async def _forward_body(
    reader: aiohttp.StreamReader,
    call: Call,
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
        call.upstream_error = True
    elif call.capture.is_call:
        call.capture.on_body(raw)
