"""A fake Gemini API upstream (``generativelanguage.googleapis.com``), faithful enough for
the real ``google-genai`` client.

Endpoints, under ``/v1beta/models/{model}:`` (and ``/v1/…``, which ``google-genai`` ≥ 3
uses by default): ``generateContent``,
``streamGenerateContent`` (``?alt=sse``: an event stream, each event ``data: {…}``
ended by CRLF CRLF as Google sends it; without ``alt``: one JSON array of the same
responses, streamed element by element), ``embedContent``, ``batchEmbedContents`` and
``countTokens``. What the real API does and this one copies:

* a key is required, as ``x-goog-api-key`` or ``?key=`` — 403 ``PERMISSION_DENIED``
  without one;
* the body needs a non-empty ``contents`` list (400 ``INVALID_ARGUMENT``);
* a response: ``{"candidates": [{"content": {"parts": […], "role": "model"},
  "finishReason", "index"}], "usageMetadata": {promptTokenCount, candidatesTokenCount,
  totalTokenCount, cachedContentTokenCount?, thoughtsTokenCount?, promptTokensDetails},
  "modelVersion", "responseId"}``; ``promptTokenCount`` includes the cached tokens,
  ``candidatesTokenCount`` excludes the thinking (``thoughtsTokenCount``), and
  ``totalTokenCount`` is their sum;
* thinking: ``gemini-2.5*`` models think unless ``thinkingConfig.thinkingBudget`` is 0;
  ``includeThoughts`` adds the thought as a ``{"text", "thought": true}`` part first;
* tools: a request with ``functionDeclarations`` whose last turn is not a
  ``functionResponse`` gets one ``functionCall`` part calling the first function;
* ``finishReason``: ``STOP`` or ``MAX_TOKENS`` (the reply cut at ``maxOutputTokens``);
* a stream: each chunk a response with the next text piece and the usage so far
  (cumulative; the last chunk has the totals and the ``finishReason``);
* errors: ``{"error": {"code", "message", "status"}}`` with Google's status names
  (429 ``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` ``retryDelay``, 503
  ``UNAVAILABLE``, 500 ``INTERNAL``, …); Google sends no ``Retry-After`` header.

Injection, by request header: ``x-fake-status`` answers that error;
``x-fake-cached-tokens`` makes that many prompt tokens cached;
``x-fake-retry-delay`` sets the 429's ``retryDelay`` seconds (default 1).

Deterministic: tokens are :func:`gensight.demo.upstream.count_tokens` of the texts; the
reply is :func:`gensight.demo.upstream.reply_pieces` of the prompt, one token a piece.
``app.state.log`` records every exchange (``usage`` is the final ``usageMetadata``).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gensight.demo.serve import serve_in_thread
from gensight.demo.upstream import Exchange, count_tokens, reply_pieces
from gensight.demo.upstream.native import NativeFake
from gensight.demo.upstream.recording import int_header
from gensight.demo.upstream.text import embedding

__all__ = ["STATUSES", "create_app", "error_body", "gemini_prompt_tokens", "serve"]

#: Google's status name per HTTP status, as the Gemini API answers.
STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
    403: "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API.",
}


def error_body(status: int, message: str | None = None, retry_delay: int = 1) -> dict[str, Any]:
    """The JSON body the real Gemini API answers with for ``status``."""
    err: dict[str, Any] = {
        "code": status,
        "message": message or _MESSAGES.get(status, "Request contains an invalid argument."),
        "status": STATUSES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"),
    }
    if status == 429:
        err["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay}s"}
        ]
    return {"error": err}


def _texts(content: Any) -> list[str]:
    out = []
    for p in content.get("parts") or () if isinstance(content, Mapping) else ():
        if not isinstance(p, Mapping):
            continue
        if isinstance(p.get("text"), str):
            out.append(p["text"])
        for key in ("functionCall", "functionResponse"):
            if isinstance(p.get(key), Mapping):
                out.append(json.dumps(p[key], sort_keys=True))
    return out


def _system(body: Mapping[str, Any]) -> Any:
    return body.get("systemInstruction") or body.get("system_instruction")


def gemini_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens of a request: system + per content (2 + its tokens) + tools."""
    total = count_tokens(" ".join(_texts(_system(body))))
    for c in body.get("contents") or ():
        total += 2 + count_tokens(" ".join(_texts(c)))
    if body.get("tools"):
        total += count_tokens(json.dumps(body["tools"], sort_keys=True))
    return total


def _function(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    decls = [
        fn
        for tool in body.get("tools") or ()
        if isinstance(tool, Mapping)
        for fn in tool.get("functionDeclarations") or ()
        if isinstance(fn, Mapping)
    ]
    last = (body.get("contents") or [{}])[-1]
    parts = last.get("parts") if isinstance(last, Mapping) else None
    if not decls or any(isinstance(p, Mapping) and "functionResponse" in p for p in parts or ()):
        return None
    return decls[0]


class _Gemini(NativeFake):
    def _error(self, ex: Exchange, status: int, message: str | None = None) -> Response:
        delay = int_header(ex.headers, "x-fake-retry-delay")
        ex.status = status
        ex.response = error_body(status, message, 1 if delay is None else delay)
        ex.completed = True
        self.log.add(ex)
        return JSONResponse(ex.response, status_code=status)

    async def model_method(self, request: Request) -> Response:
        started = time.perf_counter()
        model, _, method = request.path_params["rest"].partition(":")
        raw = await request.body()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        ex = Exchange(
            id=uuid.uuid4().hex, ts=time.time(), method="POST", path=request.url.path,
            headers=headers, body=body,
        )  # fmt: skip
        if not headers.get("x-goog-api-key") and not request.query_params.get("key"):
            return self._error(ex, 403)
        if not isinstance(body, dict):
            return self._error(ex, 400, "Invalid JSON payload received.")
        forced = int_header(headers, "x-fake-status")
        if forced and forced >= 400:
            return self._error(ex, forced)
        if method in ("embedContent", "batchEmbedContents"):
            return self._embed(ex, body, method)
        if not body.get("contents"):
            return self._error(
                ex, 400, "* GenerateContentRequest.contents: contents is not specified"
            )
        if method == "countTokens":
            ex.status, ex.completed = 200, True
            self.log.add(ex)
            return JSONResponse({"totalTokens": gemini_prompt_tokens(body)})
        if method not in ("generateContent", "streamGenerateContent"):
            return self._error(ex, 404, f"Method not found: {method}")
        return self._generate(ex, body, model, method, request.query_params.get("alt"), started)

    def _generate(
        self, ex: Exchange, body: dict[str, Any], model: str, method: str, alt: Any, started: float
    ) -> Response:
        config = body.get("generationConfig") or body.get("generation_config") or {}
        prompt = gemini_prompt_tokens(body)
        cached = min(int_header(ex.headers, "x-fake-cached-tokens") or 0, prompt)
        text = " ".join(t for c in body.get("contents") or () for t in _texts(c))
        fn = _function(body)
        finish = "STOP"
        if fn is not None:
            args = {name: "Paris" for name in (fn.get("parameters") or {}).get("required") or ()}
            pieces: list[Any] = [{"functionCall": {"name": fn.get("name"), "args": args}}]
            visible = 4 + count_tokens(json.dumps(args))
        else:
            words = reply_pieces(text, model)
            limit = config.get("maxOutputTokens")
            if isinstance(limit, int) and 0 < limit < len(words):
                words, finish = words[:limit], "MAX_TOKENS"
            pieces = [{"text": w} for w in words]
            visible = len(words)
        # proto JSON: the API takes camelCase and the proto's snake_case names alike
        # (google-genai 3 sends ``include_thoughts``)
        thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
        budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
        thoughts = 0
        if model.startswith("gemini-2.5") and budget != 0:
            thoughts = 3 * visible
            if thinking.get("includeThoughts") or thinking.get("include_thoughts"):
                thought = " ".join(reply_pieces("think " + text, model)[:6])
                pieces.insert(0, {"text": thought, "thought": True})

        def usage(out: int, thought: int) -> dict[str, Any]:
            u: dict[str, Any] = {"promptTokenCount": prompt}
            if out:
                u["candidatesTokenCount"] = out
            u["totalTokenCount"] = prompt + out + thought
            if cached:
                u["cachedContentTokenCount"] = cached
            if thought:
                u["thoughtsTokenCount"] = thought
            u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
            if cached:
                u["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
            return u

        rid = uuid.uuid4().hex[:22]
        final = usage(visible, thoughts)
        ex.status, ex.usage = 200, final

        def response(parts: list[Any], u: dict[str, Any], last: bool) -> dict[str, Any]:
            cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if last:
                cand["finishReason"] = finish
            cand["index"] = 0
            return {
                "candidates": [cand],
                "usageMetadata": u,
                "modelVersion": model,
                "responseId": rid,
            }

        if method == "generateContent":
            ex.response = response(pieces, final, True)
            ex.usage_sent = ex.completed = True
            ex.duration_ms = (time.perf_counter() - started) * 1000
            self.log.add(ex)
            return JSONResponse(ex.response)
        chunks = []
        for i, part in enumerate(pieces):
            last = i == len(pieces) - 1
            so_far = sum(1 for p in pieces[: i + 1] if not p.get("thought") and "text" in p)
            u = final if last else usage(so_far, thoughts)
            chunks.append(response([part], u, last))
        ex.response = chunks
        self.log.add(ex)
        sse = alt == "sse"
        return StreamingResponse(
            self._stream(ex, chunks, sse, started),
            media_type="text/event-stream" if sse else "application/json",
        )

    async def _stream(
        self, ex: Exchange, chunks: list[dict[str, Any]], sse: bool, started: float
    ) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(chunks):
            data = json.dumps(chunk)
            if sse:
                out = f"data: {data}\r\n\r\n"
            else:
                out = ("[" if i == 0 else "\n,\r\n") + data + ("]" if i == len(chunks) - 1 else "")
            if ex.ttft_ms is None:
                ex.ttft_ms = (time.perf_counter() - started) * 1000
            ex.chunks.append(out)
            yield out.encode()
        ex.usage_sent = ex.completed = True
        ex.duration_ms = (time.perf_counter() - started) * 1000

    def _embed(self, ex: Exchange, body: dict[str, Any], method: str) -> Response:
        requests = body.get("requests") if method == "batchEmbedContents" else [body]
        if not isinstance(requests, list) or not requests:
            return self._error(ex, 400, "* BatchEmbedContentsRequest.requests: is empty")
        vectors = []
        for r in requests:
            text = " ".join(_texts(r.get("content") if isinstance(r, Mapping) else None))
            dims = r.get("outputDimensionality") if isinstance(r, Mapping) else None
            vectors.append({"values": embedding(text, dims if isinstance(dims, int) else 768)})
        ex.status, ex.completed = 200, True
        ex.response = {"embeddings": vectors} if method == "batchEmbedContents" else {
            "embedding": vectors[0]
        }  # fmt: skip
        self.log.add(ex)
        return JSONResponse(ex.response)


def create_app() -> Starlette:
    """Build the fake Gemini upstream ASGI app (``app.state.log`` is its RequestLog).

    The ``google-genai`` client's base URL is the host; it adds ``/v1beta/…``.
    """
    upstream = _Gemini()
    return upstream.app(
        [
            Route("/v1beta/models/{rest:path}", upstream.model_method, methods=["POST"]),
            Route("/v1/models/{rest:path}", upstream.model_method, methods=["POST"]),
        ]
    )


@contextlib.contextmanager
def serve(app: Starlette | None = None) -> Iterator[str]:
    """Run the fake Gemini upstream on a free loopback port; yield ``http://127.0.0.1:PORT``."""
    with serve_in_thread(app if app is not None else create_app()) as url:
        yield url
