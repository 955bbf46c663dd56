"""Issue #17 (hardening, round 2): each attack a security reviewer tried, refused."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gensight.demo import ServerThread
from gensight.model.settings import Settings
from gensight.web.app import create_app


def _serve(settings: Settings) -> tuple[Any, ServerThread]:
    app = create_app(settings)
    return app, ServerThread(app, server_header=False).start()


# -- item 1: --capture metadata drops upstream error bodies that echo the prompt -----------


async def _echoing_error(request: Request) -> JSONResponse:
    body = await request.json()
    prompt = body["messages"][0]["content"]
    # OpenAI's 400 shape; like many providers it quotes the offending input
    err = {"message": f"Invalid content {prompt!r}", "type": "invalid_request_error",
           "param": "messages", "code": "invalid_value"}  # fmt: skip
    return JSONResponse({"error": err}, status_code=400)


def test_capture_metadata_drops_upstream_error_bodies(tmp_path: Path) -> None:
    up = ServerThread(Starlette(routes=[Route("/v1/chat/completions", _echoing_error,
                                              methods=["POST"])])).start()  # fmt: skip
    app, srv = _serve(
        Settings(
            data_dir=tmp_path,
            upstreams={"openai": up.url + "/v1"},
            capture_content=False,
            flush_interval=0.02,
        )  # fmt: skip
    )
    marker = "prompt-marker-4d1f"
    try:
        client = openai.OpenAI(base_url=srv.url + "/openai/v1", api_key="sk-x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": marker}]
            )
        assert marker in str(err.value)  # the client still gets the upstream's answer
        api = httpx.Client(base_url=srv.url)
        deadline = time.monotonic() + 10
        items: list[dict[str, Any]] = []
        while not items and time.monotonic() < deadline:
            app.state.pipeline.flush()
            items = api.get("/api/calls").json()["items"]
        (call,) = items
        detail = api.get(f"/api/calls/{call['id']}").json()
        trace = api.get(f"/api/traces/{call['trace_id']}").json()
        assert marker not in str(detail) and marker not in str(trace)
        assert detail["error_class"] == "invalid_request"
        assert "type=invalid_request_error" in detail["error_message"]
    finally:
        srv.stop()
        up.stop()
