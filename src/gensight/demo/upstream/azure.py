"""A fake Azure OpenAI resource (``https://RES.openai.azure.com``), for ``AzureOpenAI``.

What differs from OpenAI's own API, as Azure answers it:

- paths name a deployment, ``/openai/deployments/{deployment}/chat/completions``
  (``completions``, ``embeddings``), and need ``?api-version=``: without one, or with one
  Azure does not know, the answer is 404 ``Resource not found``; an unknown deployment is
  404 ``DeploymentNotFound``; ``/openai/responses`` takes the deployment as ``model``;
- the key travels as ``api-key`` (or ``Authorization: Bearer`` for Entra ID tokens);
  a wrong one is Azure's 401 ``Access denied…``;
- a deployment runs a model version: answers name it (``gpt-4o-mini-2024-07-18``), not
  the deployment; they carry ``prompt_filter_results`` and per-choice
  ``content_filter_results``, and a stream begins with a chunk without choices holding
  the prompt's filter results;
- api-versions before ``2024-09-01-preview`` reject ``stream_options`` (400
  ``Unrecognized request argument supplied: stream_options``);
- headers: ``apim-request-id``, ``x-request-id``, ``x-ms-region``, ``x-ratelimit-*``.

The answers themselves come from the OpenAI fake (``create_app``), whose ``log`` records
every request as it reached the model (``model`` rewritten to the deployment's).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from gensight.demo.upstream.app import create_app
from gensight.demo.upstream.config import UpstreamConfig

#: api-versions the fake knows (a sample of Azure's GA and preview versions).
API_VERSIONS = (
    "2023-05-15",
    "2024-02-01",
    "2024-06-01",
    "2024-08-01-preview",
    "2024-09-01-preview",
    "2024-10-21",
    "2025-01-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
)
#: The first api-version accepting ``stream_options``.
STREAM_OPTIONS_SINCE = "2024-09-01-preview"

#: ``deployment -> model version`` of the fake resource unless told otherwise.
DEFAULT_DEPLOYMENTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "chat-prod": "gpt-4o-2024-08-06",
    "embed": "text-embedding-3-small",
}

_FILTER_OK = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
_PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": _FILTER_OK}]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _base_model(version: str) -> str:
    """``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini`` (what the OpenAI fake answers for)."""
    head, _, tail = version.rpartition("-")
    if head and tail.isdigit() and len(tail) == 2:
        head2, _, _ = head.rpartition("-")
        head3, _, year = head2.rpartition("-")
        if year.isdigit() and len(year) == 4:
            return head3
    return version


class AzureFake:
    """The resource: its deployments, its key, the OpenAI fake behind it."""

    def __init__(
        self, deployments: Mapping[str, str], api_key: str | None, config: UpstreamConfig
    ) -> None:
        self.deployments = dict(deployments)
        self.api_key = api_key
        self.openai = create_app(config)
        self.upstream = self.openai.state.upstream

    def _refusal(self, request: Request) -> Response | None:
        version = request.query_params.get("api-version")
        if version not in API_VERSIONS:
            return _error(404, "404", "Resource not found")
        if self.api_key is not None:
            bearer = request.headers.get("authorization", "")
            if request.headers.get("api-key") != self.api_key and bearer != (
                f"Bearer {self.api_key}"
            ):
                return _error(
                    401,
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint. Make "
                    "sure to provide a valid key for an active subscription and use a correct "
                    "regional API endpoint for your resource.",
                )
        return None

    async def deployment_call(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        deployment = request.path_params["deployment"]
        if deployment not in self.deployments:
            return _error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
            )
        op = request.path_params["op"]
        if op not in ("chat/completions", "completions", "embeddings"):
            return _error(404, "404", "Resource not found")
        return await self._answer(request, deployment, op)

    async def responses(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            deployment = str(json.loads(await request.body()).get("model"))
        except (ValueError, AttributeError):
            deployment = ""
        if deployment not in self.deployments:
            return _error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
            )
        return await self._answer(request, deployment, "responses")

    async def not_found(self, request: Request) -> Response:
        return _error(404, "404", "Resource not found")

    async def _answer(self, request: Request, deployment: str, op: str) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "BadRequest", "The request body is not valid JSON.")
        version = request.query_params["api-version"]
        if "stream_options" in body and version < STREAM_OPTIONS_SINCE:
            return JSONResponse(
                {
                    "error": {
                        "message": "Unrecognized request argument supplied: stream_options",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status_code=400,
            )
        model = self.deployments[deployment]
        body["model"] = _base_model(model)
        forwarded = json.dumps(body).encode()
        scope = dict(request.scope, path=f"/v1/{op}", raw_path=f"/v1/{op}".encode())
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": forwarded, "more_body": False}
            return await request.receive()

        inner = Request(scope, receive)
        handler = {
            "chat/completions": self.upstream.chat_completions,
            "completions": self.upstream.completions,
            "embeddings": self.upstream.embeddings,
            "responses": self.upstream.responses,
        }[op]
        response = await handler(inner)
        request_id = str(uuid.uuid4())
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.startswith("x-ratelimit-") or k in ("retry-after", "cache-control")
        }
        headers.update(
            {"apim-request-id": request_id, "x-request-id": request_id, "x-ms-region": "East US"}
        )
        if isinstance(response, StreamingResponse):
            return StreamingResponse(
                self._stream(response.body_iterator, model, op),
                status_code=response.status_code,
                media_type="text/event-stream",
                headers=headers,
            )
        answer = json.loads(bytes(response.body))
        if response.status_code < 400 and isinstance(answer, dict):
            answer = self._dress(answer, model, op)
        return JSONResponse(answer, status_code=response.status_code, headers=headers)

    @staticmethod
    def _dress(answer: dict[str, Any], model: str, op: str) -> dict[str, Any]:
        if "model" in answer:
            answer["model"] = model
        if op in ("chat/completions", "completions"):
            answer["prompt_filter_results"] = _PROMPT_FILTER
            for choice in answer.get("choices") or ():
                choice["content_filter_results"] = _FILTER_OK
        return answer

    @staticmethod
    async def _stream(chunks: AsyncIterator[Any], model: str, op: str) -> AsyncIterator[bytes]:
        if op == "chat/completions":
            first = {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": _PROMPT_FILTER,
            }
            yield f"data: {json.dumps(first, separators=(',', ':'))}\n\n".encode()
        async for chunk in chunks:
            text = chunk if isinstance(chunk, str) else chunk.decode()
            yield text.replace(f'"model":"{_base_model(model)}"', f'"model":"{model}"').encode()


def create_azure_app(
    deployments: Mapping[str, str] | None = None,
    api_key: str | None = None,
    config: UpstreamConfig | None = None,
) -> Starlette:
    """The fake Azure OpenAI resource as an ASGI app: serve it and use its root URL as
    ``azure_endpoint``. ``app.state.log`` is the OpenAI fake's request log."""
    fake = AzureFake(deployments or DEFAULT_DEPLOYMENTS, api_key, config or UpstreamConfig())
    ops = "{op:path}"
    routes = [
        Route(f"/openai/deployments/{{deployment}}/{ops}", fake.deployment_call, methods=["POST"]),
        Route("/openai/responses", fake.responses, methods=["POST"]),
        Route("/{path:path}", fake.not_found, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.log = fake.openai.state.log
    app.state.fake = fake
    return app
